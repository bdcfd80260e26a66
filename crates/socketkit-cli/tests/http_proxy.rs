//! `socketkit serve http-proxy` end to end: curl through our proxy to nginx
//! (absolute-form requests, CONNECT tunnels with `--proxytunnel`, https
//! through CONNECT to nginx's TLS listener, keep-alive both sides), the
//! request and response heads as a canned origin sees and sends them
//! (hop-by-hop headers gone, `Via` added), and the refusals in their
//! statuses (400, 403, 407, 431, 502, 504) from raw sockets and curl.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::http::{nginx_tls, Canned, Nginx, Reply, COUNTING_SITE};
use crate::util::{self, full_backlog_listener, host_port, run, Server, WAIT};

/// nginx's site: a file, and `/conn` saying how many requests its
/// connection has carried (keep-alive upstream shows as `requests=2`).
fn site(prepare: impl Fn(&Path)) -> Nginx {
    Nginx::start(COUNTING_SITE, |dir| {
        std::fs::write(dir.join("www/hello.txt"), "hello, world\n").unwrap();
        prepare(dir);
    })
}

/// `serve http-proxy` on a free loopback port, logging each request (-v).
fn proxy(extra: &[&str]) -> Server {
    let mut args = vec!["serve", "http-proxy", "127.0.0.1:0", "-v"];
    args.extend_from_slice(extra);
    Server::start(&args, 1)
}

/// The proxy URL curl takes.
fn proxy_url(server: &Server) -> String {
    format!("http://{}", host_port(server.addr()))
}

/// curl with a bounded run and no config file, through `proxy`.
fn curl(proxy: &Server, args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-q",
        "-sS",
        "--max-time",
        "20",
        "--proxy",
        &proxy_url(proxy),
    ])
    .args(args);
    run(cmd, b"")
}

fn sha256(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let out = run(cmd, b"");
    util::text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Writes `request` on a raw connection to the proxy and reads its answer
/// to the end (the proxy closes after an error; bounded by [`WAIT`]).
fn raw(proxy: &Server, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(host_port(proxy.addr())).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    util::text(&answer)
}

#[test]
fn absolute_form_and_tunnels_carry_100_mib_byte_exact_to_nginx() {
    let nginx = site(|dir| {
        let status = Command::new("head")
            .args(["-c", "100M", "/dev/urandom"])
            .stdout(std::fs::File::create(dir.join("www/big.bin")).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
    });
    let server = proxy(&[]);
    let expected = sha256(&nginx.www().join("big.bin"));
    let out_dir = util::tempdir();
    for (name, tunnel) in [("absolute.bin", false), ("tunnel.bin", true)] {
        let target = out_dir.path().join(name);
        let mut args = vec!["-o", target.to_str().unwrap()];
        if tunnel {
            args.push("--proxytunnel");
        }
        let url = nginx.url(0, "/big.bin");
        args.push(&url);
        let out = curl(&server, &args);
        util::assert_success("curl", &out);
        assert_eq!(sha256(&target), expected, "{name}");
    }
    let port = nginx.ports[0];
    server.proc.stderr.wait_for("the GET's log line", |line| {
        line.contains("http-proxy request")
            && line.contains("method=GET")
            && line.contains(&format!("destination=127.0.0.1:{port}"))
            && line.contains("status=200")
            && line.contains("bytes=104857600")
    });
    server
        .proc
        .stderr
        .wait_for("the tunnel's log line", |line| {
            line.contains("method=CONNECT")
                && line.contains(&format!("destination=127.0.0.1:{port}"))
                && line.contains("to_client=")
        });
}

#[test]
fn two_urls_share_one_client_connection_and_one_upstream_connection() {
    let nginx = site(|_| {});
    let server = proxy(&[]);
    let out = curl(
        &server,
        &["-v", &nginx.url(0, "/hello.txt"), &nginx.url(0, "/conn")],
    );
    util::assert_success("curl", &out);
    assert_eq!(util::text(&out.stdout), "hello, world\nrequests=2\n");
    let verbose = util::text(&out.stderr);
    assert!(
        verbose.contains("Re-using existing connection"),
        "curl kept its connection to the proxy: {verbose}"
    );
    assert!(verbose.contains("< Via: 1.1 socketkit"), "{verbose}");
    server.proc.stderr.wait_for("the second request", |line| {
        line.contains("http-proxy request")
            && line.contains("status=200")
            && line.contains("bytes=11")
    });
    let opened = server.stderr().matches("connection opened").count();
    assert_eq!(opened, 1, "one client connection: {}", server.stderr());
}

#[test]
fn https_goes_through_a_connect_tunnel_to_nginx_tls() {
    let nginx = nginx_tls("", "", |_| {});
    let server = proxy(&[]);
    let ca = nginx.dir.path().join("pki/ca.pem");
    let url = format!("https://localhost:{}/hello.txt", nginx.ports[0]);
    let out = curl(&server, &["--cacert", ca.to_str().unwrap(), &url]);
    util::assert_success("curl", &out);
    assert_eq!(util::text(&out.stdout), "hello over tls\n");
    server
        .proc
        .stderr
        .wait_for("the tunnel's log line", |line| {
            line.contains("tunnel ended")
                && line.contains(&format!("destination=localhost:{}", nginx.ports[0]))
        });
}

#[test]
fn hop_by_hop_headers_are_removed_both_ways_and_via_is_added() {
    let body = "origin says hi\n";
    let origin = Canned::serve(
        "127.0.0.1:0",
        vec![Reply::Close(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\n\
                 Keep-Alive: timeout=5\r\nX-End: kept\r\nVia: 1.1 upstream\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )],
    );
    let server = proxy(&[]);
    let out = curl(
        &server,
        &[
            "-i",
            "-H",
            "Connection: X-Private",
            "-H",
            "X-Private: drop me",
            "-H",
            "Keep-Alive: 300",
            "-H",
            "TE: trailers",
            "-H",
            "Upgrade: h2c",
            "-H",
            "Host: elsewhere.example",
            "-H",
            "X-Kept: yes",
            &origin.url("/path?q=1"),
        ],
    );
    util::assert_success("curl", &out);
    let answer = util::text(&out.stdout);
    let origin_addr = origin.addr;
    let requests = origin.requests();
    let head = util::text(&requests[0]);
    assert!(
        head.starts_with("GET /path?q=1 HTTP/1.1\r\n"),
        "origin-form upstream: {head}"
    );
    let lower = head.to_ascii_lowercase();
    for gone in [
        "x-private",
        "keep-alive",
        "te:",
        "upgrade",
        "proxy-connection",
        "elsewhere",
    ] {
        assert!(!lower.contains(gone), "{gone} reached the origin: {head}");
    }
    assert!(
        lower.contains(&format!("\r\nhost: {}\r\n", origin_addr)),
        "Host from the URL: {head}"
    );
    assert!(lower.contains("\r\nx-kept: yes\r\n"), "{head}");
    assert!(lower.contains("\r\nvia: 1.1 socketkit\r\n"), "{head}");

    let (response, got) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(got, body);
    let response = response.to_ascii_lowercase();
    assert!(!response.contains("x-hop"), "{answer}");
    assert!(!response.contains("keep-alive"), "{answer}");
    assert!(response.contains("\r\nx-end: kept"), "{answer}");
    assert!(
        response.contains("\r\nvia: 1.1 upstream\r\nvia: 1.1 socketkit")
            || response.contains("\r\nvia: 1.1 upstream, 1.1 socketkit"),
        "our hop follows the origin's: {answer}"
    );
}

#[test]
fn refused_and_silent_upstreams_are_502_and_504() {
    let server = proxy(&["--connect-timeout", "1s"]);
    let closed = format!("127.0.0.1:{}", util::free_port());
    let out = curl(&server, &["-i", &format!("http://{closed}/")]);
    assert!(
        util::text(&out.stdout).starts_with("HTTP/1.1 502 "),
        "{out:?}"
    );
    let out = curl(&server, &["--proxytunnel", &format!("http://{closed}/")]);
    assert!(
        util::text(&out.stderr).contains("CONNECT tunnel failed, response 502"),
        "{out:?}"
    );
    let (_listener, port) = full_backlog_listener();
    let out = curl(&server, &["-i", &format!("http://127.0.0.1:{port}/")]);
    assert!(
        util::text(&out.stdout).starts_with("HTTP/1.1 504 "),
        "{out:?}"
    );

    // An origin that accepts and never answers: the client's connection is
    // idle too, and ends at --idle-timeout (and so does the origin's).
    let idle = proxy(&["--idle-timeout", "1s"]);
    let silent = Canned::serve("127.0.0.1:0", vec![Reply::Hold(Vec::new())]);
    let out = curl(&idle, &["-i", &silent.url("/")]);
    assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");
    silent.requests();
}

#[test]
fn malformed_origin_form_and_oversized_requests_are_refused_in_their_status() {
    let server = proxy(&[]);
    let answer = raw(&server, b"NONSENSE\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let answer = raw(&server, b"GET / HTTP/1.1\r\nHost: proxy\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "origin-form: {answer}");
    assert!(answer.contains("absolute URL"), "{answer}");
    let answer = raw(&server, b"CONNECT /path HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 "),
        "CONNECT without host:port: {answer}"
    );

    // Past MAX_HEADER_BYTES (64 KiB), and past MAX_HEADERS (1024) lines.
    let target = format!("127.0.0.1:{}", util::free_port());
    let mut long = format!("GET http://{target}/ HTTP/1.1\r\nX-Long: ").into_bytes();
    long.extend(std::iter::repeat_n(b'a', 70 * 1024));
    long.extend_from_slice(b"\r\n\r\n");
    let answer = raw(&server, &long);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let mut many = format!("GET http://{target}/ HTTP/1.1\r\n").into_bytes();
    for i in 0..1100 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let answer = raw(&server, &many);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[test]
fn an_unfinished_head_is_closed_at_the_handshake_deadline() {
    let server = proxy(&["--handshake-timeout", "500ms"]);
    let mut conn = TcpStream::connect(host_port(server.addr())).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut answer = Vec::new();
    // Ends (EOF, or a 408 then EOF) well before WAIT; a read timeout fails.
    conn.read_to_end(&mut answer)
        .expect("the proxy closes a head that never completes");
}

/// A users file with alice (password `wonder`), made by `socketkit passwd`.
fn users_file(dir: &Path) -> String {
    let out = util::run_socketkit(&["passwd", "alice"], b"wonder\n");
    util::assert_success("passwd", &out);
    let path = dir.join("users");
    std::fs::write(&path, &out.stdout).unwrap();
    path.to_str().unwrap().to_owned()
}

fn status_line(out: &Output) -> String {
    util::text(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn with_users_every_request_needs_basic_credentials() {
    let nginx = site(|_| {});
    let dir = util::tempdir();
    let users = users_file(dir.path());
    let server = proxy(&["--users", &users]);
    let url = nginx.url(0, "/hello.txt");
    // Right credentials first: a failure delays the source's next attempt.
    let out = curl(&server, &["--proxy-user", "alice:wonder", &url]);
    util::assert_success("curl", &out);
    assert_eq!(util::text(&out.stdout), "hello, world\n");
    let out = curl(
        &server,
        &["--proxy-user", "alice:wonder", "--proxytunnel", &url],
    );
    util::assert_success("curl --proxytunnel", &out);
    assert_eq!(util::text(&out.stdout), "hello, world\n");
    server.proc.stderr.wait_for("the user in the log", |line| {
        line.contains("http-proxy request")
            && line.contains("user=alice")
            && line.contains("status=200")
    });

    let out = curl(&server, &["-i", &url]);
    assert!(status_line(&out).starts_with("HTTP/1.1 407 "), "{out:?}");
    assert!(
        util::text(&out.stdout).contains("Proxy-Authenticate: Basic realm=\"socketkit\"\r\n"),
        "{out:?}"
    );
    let out = curl(&server, &["--proxytunnel", &url]);
    assert!(
        util::text(&out.stderr).contains("CONNECT tunnel failed, response 407"),
        "{out:?}"
    );
    let out = curl(&server, &["-i", "--proxy-user", "alice:wrong", &url]);
    assert!(status_line(&out).starts_with("HTTP/1.1 407 "), "{out:?}");
    server
        .proc
        .stderr
        .wait_for("the failure, penalised", |line| {
            line.contains("proxy authentication failed")
                && line.contains("alice")
                && line.contains("penalty_ms=")
        });
    assert!(!server.stderr().contains("wrong"), "no password in the log");
}

#[test]
fn denied_destinations_get_403_and_an_exposed_proxy_guards_loopback() {
    let nginx = site(|_| {});
    let url = nginx.url(0, "/hello.txt");
    let server = proxy(&["--deny-dest", "127.0.0.0/8", "--deny-dest", "blocked.test"]);
    let out = curl(&server, &["-i", &url]);
    assert!(status_line(&out).starts_with("HTTP/1.1 403 "), "{out:?}");
    let out = curl(&server, &["--proxytunnel", &url]);
    assert!(
        util::text(&out.stderr).contains("CONNECT tunnel failed, response 403"),
        "{out:?}"
    );
    // Refused by name, before any resolution.
    let out = curl(&server, &["-i", "http://www.blocked.test/"]);
    assert!(status_line(&out).starts_with("HTTP/1.1 403 "), "{out:?}");

    // Listening on every interface (clients admitted by --allow), the SSRF
    // guard refuses this host's own addresses unless --allow-dest names them.
    for (extra, expected) in [
        (None, "HTTP/1.1 403 "),
        (Some("127.0.0.0/8"), "HTTP/1.1 200 "),
    ] {
        let mut args = vec![
            "serve",
            "http-proxy",
            "tcp://0.0.0.0:0",
            "--allow",
            "127.0.0.1",
        ];
        if let Some(cidr) = extra {
            args.extend(["--allow-dest", cidr]);
        }
        let exposed = Server::start(&args, 1);
        let mut cmd = Command::new("curl");
        cmd.args(["-q", "-sS", "-i", "--max-time", "20", "--proxy"])
            .arg(format!("http://127.0.0.1:{}", exposed.port()))
            .arg(&url);
        let out = run(cmd, b"");
        assert!(
            status_line(&out).starts_with(expected),
            "{extra:?}: {out:?}"
        );
    }
}

#[test]
fn an_open_proxy_off_loopback_refuses_to_start() {
    let out = util::run_socketkit(&["serve", "http-proxy", "tcp://0.0.0.0:0"], b"");
    let line = util::assert_one_error_line(&out, 1);
    assert!(line.contains("open HTTP proxy"), "{line}");
    assert!(line.contains("--users"), "{line}");
}
