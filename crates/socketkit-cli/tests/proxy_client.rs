//! `--proxy` on the clients and `--to-proxy` on `serve forward`, through
//! real proxies on loopback: microsocks (SOCKS5, with and without
//! username/password), dante (SOCKS5, and its username method with a
//! user of its own), tinyproxy (HTTP CONNECT and absolute-form requests,
//! with and without Basic auth), and Python proxies that break the protocol. The
//! targets are our echo, nginx (plain and TLS) and a closed port. Each
//! proxy's own log shows what it was asked for (a name or an address, an
//! absolute-form request or a CONNECT).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::http::{nginx_tls, Nginx};
use crate::util::{
    assert_echoed, assert_one_error_line, assert_success, free_port, random_bytes, run,
    run_socketkit, serve_forward_udp_refused, sigterm, socketkit, spawn_python_server, text,
    wait_until, Ending, Proc, Server, WAIT,
};

/// A proxy process listening on 127.0.0.1:`port`, killed by PID on drop.
struct Proxy {
    proc: Proc,
    port: u16,
    /// Its configuration directory (dante, tinyproxy), removed on drop.
    _dir: tempfile::TempDir,
    /// SIGTERM first (dante's mother process then stops its children).
    term_first: bool,
}

impl Proxy {
    /// Starts `command` (given the port and the directory) and waits until
    /// the port accepts connections.
    fn start(name: &str, term_first: bool, command: impl Fn(u16, &Path) -> Command) -> Proxy {
        let dir = crate::util::tempdir();
        let port = free_port();
        let mut proc = Proc::spawn(name, command(port, dir.path()), false);
        wait_until(&format!("{name} accepting on port {port}"), || {
            assert!(
                proc.is_running(),
                "{name} exited:\n{}\n{}",
                proc.stdout.text(),
                proc.stderr.text()
            );
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Proxy {
            proc,
            port,
            _dir: dir,
            term_first,
        }
    }

    fn microsocks(credentials: Option<(&str, &str)>) -> Proxy {
        Proxy::start("microsocks", false, |port, _| {
            let mut cmd = Command::new("/usr/bin/microsocks");
            cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((user, password)) = credentials {
                cmd.args(["-u", user, "-P", password]);
            }
            cmd
        })
    }

    /// dante with `socksmethod` (`none`, or `username` checked against
    /// the system's users). With `account`, dante runs in a mount namespace
    /// of its own whose /etc/passwd and /etc/shadow add that user and
    /// password (crypt SHA-512 from `openssl passwd -6`): dante's username
    /// method reads only the system's accounts, and the machine's own stay
    /// untouched.
    fn dante(socksmethod: &str, account: Option<(&str, &str)>) -> Proxy {
        Proxy::start("danted", true, |port, dir| {
            let config = format!(
                "logoutput: stderr\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
                 clientmethod: none\nsocksmethod: {socksmethod}\n\
                 user.privileged: root\nuser.unprivileged: nobody\n\
                 client pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n}}\n\
                 socks pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n  log: connect error\n}}\n"
            );
            std::fs::write(dir.join("danted.conf"), config).unwrap();
            let danted = format!(
                "exec /usr/sbin/danted -f '{0}/danted.conf' -p '{0}/danted.pid'",
                dir.display()
            );
            let Some((user, password)) = account else {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(danted);
                return cmd;
            };
            let mut openssl = Command::new("openssl");
            openssl.args(["passwd", "-6", "-stdin"]);
            let hash = run(openssl, password.as_bytes());
            assert_success("openssl passwd", &hash);
            let hash = text(&hash.stdout);
            let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
            passwd.push_str(&format!(
                "{user}:x:64999:65534::/nonexistent:/usr/sbin/nologin\n"
            ));
            let mut shadow = std::fs::read_to_string("/etc/shadow").unwrap();
            shadow.push_str(&format!("{user}:{}:19000:0:99999:7:::\n", hash.trim()));
            std::fs::write(dir.join("passwd"), passwd).unwrap();
            std::fs::write(dir.join("shadow"), shadow).unwrap();
            let mut cmd = Command::new("unshare");
            cmd.args(["--mount", "sh", "-c"]).arg(format!(
                "mount --bind '{0}/passwd' /etc/passwd && mount --bind '{0}/shadow' /etc/shadow && {danted}",
                dir.display()
            ));
            cmd
        })
    }

    /// tinyproxy in the foreground (its log on stdout) with `extra`
    /// configuration lines.
    fn tinyproxy(extra: &str) -> Proxy {
        Proxy::start("tinyproxy", false, |port, dir| {
            let config = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Connect\nMaxClients 20\n{extra}\n"
            );
            std::fs::write(dir.join("tinyproxy.conf"), config).unwrap();
            let mut cmd = Command::new("tinyproxy");
            cmd.arg("-d").arg("-c").arg(dir.join("tinyproxy.conf"));
            cmd
        })
    }

    fn url(&self, scheme: &str, credentials: &str) -> String {
        format!("{scheme}://{credentials}127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.term_first && self.proc.is_running() {
            sigterm(self.proc.pid());
            let _ = self.proc.exit_within(WAIT);
        }
    }
}

fn echo() -> Server {
    Server::start(&["serve", "echo", "tcp://127.0.0.1:0"], 1)
}

/// `serve forward` on a free port to `target` through `proxy`.
fn forward_via(target: &str, proxy: &str) -> Server {
    Server::start(
        &[
            "serve",
            "forward",
            "tcp://127.0.0.1:0",
            "--to",
            target,
            "--to-proxy",
            proxy,
        ],
        1,
    )
}

/// `socketkit connect --proxy PROXY TARGET EXTRA...` with `input`.
fn connect(proxy: &str, target: &str, extra: &[&str], input: &[u8]) -> Output {
    let mut args = vec!["connect", "--proxy", proxy, target];
    args.extend_from_slice(extra);
    run_socketkit(&args, input)
}

/// `socketkit connect --proxy PROXY TARGET` that sends `line` and waits
/// for it to come back before ending stdin: microsocks and tinyproxy close
/// both directions when one side half-closes, so a reply still on its way
/// would be lost (RFC 1928 and 9110 say nothing of half-close).
fn echo_through(proxy: &str, target: &str, line: &str) {
    converse(
        &["connect", "--proxy", proxy, target],
        &format!("{line}\n"),
        line,
    );
}

/// `socketkit ARGS` that sends `input` and waits for the line `expect`
/// before ending stdin (see [`echo_through`]).
fn converse(args: &[&str], input: &str, expect: &str) {
    let mut client = Proc::spawn("socketkit connect", socketkit(args), true);
    client.write_stdin(input.as_bytes());
    client.stdout.wait_for(expect, |l| l == expect);
    client.close_stdin();
    let status = client.wait_exit();
    assert!(status.success(), "{status:?}: {}", client.stderr.text());
}

/// The one error line of a failed run, which must name all of `needles`
/// and never `secret`.
fn error_naming(out: &Output, needles: &[&str], secret: &str) -> String {
    let line = assert_one_error_line(out, 1);
    for needle in needles {
        assert!(line.contains(needle), "expected {needle:?} in: {line}");
    }
    assert!(!line.contains(secret), "the password shows: {line}");
    line
}

/// nginx serving `big.bin` (`len` random bytes) on `{port0}`.
fn nginx_with_file(data: &[u8]) -> Nginx {
    Nginx::start(
        "  server {\n    listen 127.0.0.1:{port0};\n    root {root};\n  }\n",
        |dir| std::fs::write(dir.join("www/big.bin"), data).unwrap(),
    )
}

#[test]
fn connect_through_microsocks_socks5_resolves_here_and_socks5h_there() {
    let target = echo();
    let socks = Proxy::microsocks(None);
    let dest = format!("localhost:{}", target.port());

    echo_through(&socks.url("socks5", ""), &dest, "resolved here");
    // microsocks logs the destination as it was asked for it: an address.
    socks.proc.stderr.wait_for("an address request", |l| {
        l.contains(&format!("connected to 127.0.0.1:{}", target.port()))
    });

    echo_through(&socks.url("socks5h", ""), &dest, "resolved there");
    socks.proc.stderr.wait_for("a name request", |l| {
        l.contains(&format!("connected to localhost:{}", target.port()))
    });
}

#[test]
fn microsocks_with_credentials_and_a_closed_port() {
    let target = echo();
    let socks = Proxy::microsocks(Some(("alice", "s3cr:t@")));
    let dest = target.addr();
    let good = socks.url("socks5", "alice:s3cr%3At%40@");
    echo_through(&good, dest, "with a password");

    let wrong = socks.url("socks5", "alice:wrongpass@");
    let out = connect(&wrong, dest, &[], b"x\n");
    let proxy_shown = format!("socks5://alice:***@127.0.0.1:{}", socks.port);
    let dest_shown = crate::util::host_port(dest);
    error_naming(
        &out,
        &[
            &proxy_shown,
            dest_shown,
            "rejected the user name or password",
        ],
        "wrongpass",
    );

    let out = connect(&socks.url("socks5", ""), dest, &[], b"x\n");
    error_naming(&out, &["requires authentication"], "s3cr");

    // The proxy's refusal: reply 0x05 for a port nobody listens on.
    let closed = format!("127.0.0.1:{}", free_port());
    let out = connect(&good, &closed, &[], b"x\n");
    error_naming(
        &out,
        &[
            &proxy_shown,
            &closed,
            "connection refused (SOCKS5 reply 0x05)",
        ],
        "s3cr",
    );
}

#[test]
fn get_and_forward_through_microsocks_and_dante_to_nginx_and_echo() {
    let seed = crate::util::fresh_seed();
    let data = random_bytes(3 * 1024 * 1024 + 7, seed);
    let nginx = nginx_with_file(&data);
    let target = echo();
    let microsocks = Proxy::microsocks(None);
    let dante = Proxy::dante("none", None);
    for (name, proxy) in [("microsocks", &microsocks), ("dante", &dante)] {
        for scheme in ["socks5", "socks5h"] {
            let url = proxy.url(scheme, "");
            let out = run_socketkit(&["get", "--proxy", &url, &nginx.url(0, "/big.bin")], b"");
            assert_success(&format!("get via {name} {scheme}"), &out);
            assert!(out.stdout == data, "get via {name} {scheme}: byte-exact");
        }
        let forward = forward_via(target.addr(), &proxy.url("socks5h", ""));
        assert_echoed(
            forward.addr(),
            &data,
            Ending::ReadExactly,
            &format!("forward via {name}: byte-exact"),
        );
    }
    dante.proc.stderr.wait_for("dante's pass line", |l| {
        l.contains("tcp/connect") && l.contains(&format!("127.0.0.1.{}", nginx.ports[0]))
    });
}

#[test]
fn dante_username_method_admits_its_user_and_refuses_the_rest() {
    let target = echo();
    let data = random_bytes(512 * 1024 + 3, crate::util::fresh_seed());
    let nginx = nginx_with_file(&data);
    let password = "p@ss:w0rd %";
    let dante = Proxy::dante("username", Some(("skuser", password)));
    let good = dante.url("socks5h", "skuser:p%40ss%3Aw0rd%20%25@");

    echo_through(&good, target.addr(), "logged in");
    let out = run_socketkit(&["get", "--proxy", &good, &nginx.url(0, "/big.bin")], b"");
    assert_success("get via dante with a password", &out);
    assert!(out.stdout == data, "get via dante: byte-exact");
    let forward = forward_via(target.addr(), &good);
    assert_echoed(
        forward.addr(),
        &data,
        Ending::ReadExactly,
        "forward via dante with a password: byte-exact",
    );
    dante
        .proc
        .stderr
        .wait_for("dante's pass line for the user", |l| {
            l.contains("tcp/connect") && l.contains("username%skuser@")
        });

    for credentials in ["skuser:wrong@", "nobody:guess@"] {
        let out = connect(
            &dante.url("socks5", credentials),
            target.addr(),
            &[],
            b"x\n",
        );
        error_naming(&out, &["rejected the user name or password"], "p@ss");
    }
    let out = connect(&dante.url("socks5", ""), target.addr(), &[], b"x\n");
    error_naming(&out, &["requires authentication"], "p@ss");
}

#[test]
fn tinyproxy_connect_tunnels_with_and_without_basic_auth() {
    let target = echo();
    let open = Proxy::tinyproxy("");
    echo_through(&open.url("http", ""), target.addr(), "tunnelled");
    open.proc.stdout.wait_for("the CONNECT", |l| {
        l.contains(&format!(
            "CONNECT {} HTTP/1.1",
            crate::util::host_port(target.addr())
        ))
    });

    let auth = Proxy::tinyproxy("BasicAuth alice s3cret");
    echo_through(
        &auth.url("http", "alice:s3cret@"),
        target.addr(),
        "authorised",
    );
    let shown = format!("http://alice:***@127.0.0.1:{}", auth.port);
    for (credentials, secret) in [("alice:nope@", "nope"), ("", "s3cret")] {
        let out = connect(&auth.url("http", credentials), target.addr(), &[], b"x\n");
        // tinyproxy answers a CONNECT with bad credentials 401, not 407.
        let line = error_naming(
            &out,
            &[
                crate::util::host_port(target.addr()),
                "missing or wrong credentials",
            ],
            secret,
        );
        assert!(line.contains(" 401 ") || line.contains(" 407 "), "{line}");
        if !credentials.is_empty() {
            assert!(line.contains(&shown), "{line}");
        }
    }

    // Forward's target through the authenticated tunnel, byte-exact.
    let forward = forward_via(target.addr(), &auth.url("http", "alice:s3cret@"));
    let data = random_bytes(1024 * 1024, 5);
    assert_echoed(
        forward.addr(),
        &data,
        Ending::ReadExactly,
        "forward via tinyproxy",
    );
}

#[test]
fn tinyproxy_refusals_are_one_line_with_the_status() {
    let target = echo();
    let only_443 = Proxy::tinyproxy("ConnectPort 443");
    let out = connect(&only_443.url("http", ""), target.addr(), &[], b"x\n");
    let line = error_naming(
        &out,
        &[
            &format!("http://127.0.0.1:{}", only_443.port),
            crate::util::host_port(target.addr()),
            "403 Access violation",
        ],
        "-",
    );
    assert!(line.contains("could not connect to"), "{line}");

    let open = Proxy::tinyproxy("");
    let closed = format!("127.0.0.1:{}", free_port());
    let out = connect(&open.url("http", ""), &closed, &[], b"x\n");
    // tinyproxy answers 500 "Unable to connect" (others say 502).
    error_naming(&out, &[&closed, "Unable to connect"], "-");
}

#[test]
fn get_follows_curls_proxy_variables_through_tinyproxy() {
    let data = b"through the proxy\n".to_vec();
    let nginx = nginx_with_file(&data);
    let tiny = Proxy::tinyproxy("");
    let url = format!("http://localhost:{}/big.bin", nginx.ports[0]);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let get = |env: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = socketkit(["get"]);
        cmd.args(extra).arg(&url);
        for name in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
            "no_proxy",
            "NO_PROXY",
        ] {
            cmd.env_remove(name);
        }
        cmd.envs(env.iter().copied());
        run(cmd, b"")
    };

    // http_proxy: an absolute-form request, as tinyproxy logs it.
    let proxy = tiny.url("http", "");
    let out = get(&[("http_proxy", &proxy)], &[]);
    assert_success("get with http_proxy", &out);
    assert_eq!(out.stdout, data);
    tiny.proc.stdout.wait_for("the absolute-form request", |l| {
        l.contains(&format!("GET {url} HTTP/1.1"))
    });
    // all_proxy when http_proxy is unset.
    let out = get(&[("ALL_PROXY", &proxy)], &[]);
    assert_success("get with ALL_PROXY", &out);

    // Variables that must not be used: each points at a dead port.
    for (env, extra) in [
        (vec![("HTTP_PROXY", dead.as_str())], vec![]),
        (
            vec![("http_proxy", &dead), ("no_proxy", "example.com,localhost")],
            vec![],
        ),
        (vec![("http_proxy", &dead), ("NO_PROXY", "*")], vec![]),
        (vec![("http_proxy", &dead)], vec!["--noproxy", "localhost"]),
        (vec![("http_proxy", &dead)], vec!["--proxy", ""]),
        (vec![("https_proxy", &dead)], vec![]),
    ] {
        let out = get(&env, &extra);
        assert_success(&format!("get with {env:?} {extra:?}"), &out);
        assert_eq!(out.stdout, data);
    }
    // An explicit --proxy wins over the variables.
    let out = get(&[("http_proxy", &dead)], &["--proxy", &proxy]);
    assert_success("get --proxy over http_proxy", &out);
    // A dead proxy really is used when nothing exempts the host.
    let out = get(&[("http_proxy", &dead)], &[]);
    let line = assert_one_error_line(&out, 1);
    assert!(
        line.contains(&format!("cannot connect to proxy {dead}")),
        "{line}"
    );
}

#[test]
fn https_always_tunnels_and_tls_runs_end_to_end() {
    let nginx = nginx_tls("", "", |_| {});
    let ca = nginx.dir.path().join("pki/ca.pem");
    let ca = ca.to_str().unwrap();
    let tiny = Proxy::tinyproxy("");
    let authority = format!("localhost:{}", nginx.ports[0]);
    let url = format!("https://{authority}/hello.txt");
    let mut cmd = socketkit(["get", "--ca", ca, &url]);
    cmd.env("https_proxy", tiny.url("http", ""));
    let out = run(cmd, b"");
    assert_success("get https via https_proxy", &out);
    assert_eq!(text(&out.stdout), "hello over tls\n");
    tiny.proc.stdout.wait_for("the CONNECT for https", |l| {
        l.contains(&format!("CONNECT {authority} HTTP/1.1"))
    });

    // tls:// through SOCKS5: the certificate is checked for the
    // destination's name, inside the tunnel.
    let socks = Proxy::microsocks(None);
    converse(
        &[
            "connect",
            "--proxy",
            &socks.url("socks5h", ""),
            "--ca",
            ca,
            &format!("tls://{authority}"),
        ],
        "GET /hello.txt HTTP/1.0\r\nHost: localhost\r\n\r\n",
        "hello over tls",
    );
}

#[test]
fn bench_exec_and_send_go_through_the_proxy_too() {
    let target = echo();
    let socks = Proxy::microsocks(None);
    let out = run_socketkit(
        &[
            "bench",
            target.addr(),
            "--proxy",
            &socks.url("socks5", ""),
            "-c",
            "2",
            "-n",
            "50",
            "--json",
        ],
        b"",
    );
    assert_success("bench via socks5", &out);
    socks.proc.stderr.wait_for("bench's connection", |l| {
        l.contains(&format!("connected to 127.0.0.1:{}", target.port()))
    });

    let dir = crate::util::tempdir();
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let token = token.to_str().unwrap();
    let exec = Server::start(
        &[
            "serve",
            "exec",
            "tcp://127.0.0.1:0",
            "--insecure-plaintext",
            "--token-file",
            token,
        ],
        1,
    );
    let out = run_socketkit(
        &[
            "exec",
            exec.addr(),
            "--insecure-plaintext",
            "--token-file",
            token,
            "--proxy",
            &socks.url("socks5", ""),
            "--",
            "echo",
            "via the proxy",
        ],
        b"",
    );
    assert_success("exec via socks5", &out);
    assert_eq!(text(&out.stdout), "via the proxy\n");

    // A file to `serve recv` through tinyproxy's CONNECT, byte-exact.
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let recv = Server::start(
        &[
            "serve",
            "recv",
            "127.0.0.1:0",
            "--dir",
            inbox.to_str().unwrap(),
        ],
        1,
    );
    let data = random_bytes(2 * 1024 * 1024 + 3, 9);
    let file = dir.path().join("payload.bin");
    std::fs::write(&file, &data).unwrap();
    let tiny = Proxy::tinyproxy("");
    let out = run_socketkit(
        &[
            "send",
            recv.addr(),
            file.to_str().unwrap(),
            "--proxy",
            &tiny.url("http", ""),
        ],
        b"",
    );
    assert_success("send via tinyproxy", &out);
    assert!(
        std::fs::read(inbox.join("payload.bin")).unwrap() == data,
        "sent byte-exact"
    );
    tiny.proc.stdout.wait_for("send's CONNECT", |l| {
        l.contains(&format!(
            "CONNECT {} HTTP/1.1",
            crate::util::host_port(recv.addr())
        ))
    });
}

/// A Python proxy that misbehaves as `mode` says, on its first connection.
const BROKEN_PROXY: &str = r#"
l, c = accept_one()
def rx(n):
    got = b""
    while len(got) < n:
        b = c.recv(n - len(got))
        if not b:
            break
        got += b
    return got
mode = sys.argv[1]
if mode == "close-in-greeting":
    rx(3)
elif mode == "truncated-reply":
    rx(3)
    c.sendall(b"\x05\x00")
    rx(10)
    c.sendall(b"\x05\x00\x00\x01\x7f")
elif mode == "not-socks":
    rx(3)
    c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
elif mode == "http-truncated":
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = c.recv(1)
        if not b:
            break
        head += b
    c.sendall(b"HTTP/1.1 200 Connection established\r\n")
c.close()
"#;

#[test]
fn a_proxy_that_closes_early_or_breaks_the_protocol_is_one_line() {
    for (scheme, mode, reason) in [
        (
            "socks5",
            "close-in-greeting",
            "closed the connection during the greeting reply",
        ),
        (
            "socks5",
            "truncated-reply",
            "closed the connection during the CONNECT reply",
        ),
        ("socks5", "not-socks", "malformed reply from the proxy"),
        (
            "http",
            "http-truncated",
            "closed the connection during the CONNECT response",
        ),
    ] {
        let (mut proxy, port) = spawn_python_server(BROKEN_PROXY, &[mode]);
        let url = format!("{scheme}://127.0.0.1:{port}");
        let out = connect(&url, "127.0.0.1:9", &[], b"x\n");
        error_naming(&out, &[&url, "127.0.0.1:9", reason], "-");
        assert!(
            proxy.wait_exit().success(),
            "{mode}: {}",
            proxy.stderr.text()
        );
    }
}

#[test]
fn proxy_flags_are_checked_before_connecting() {
    // Only stream targets go through a proxy.
    let out = run_socketkit(
        &[
            "connect",
            "--proxy",
            "socks5://127.0.0.1:1",
            "udp://127.0.0.1:9",
        ],
        b"",
    );
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("not udp://127.0.0.1:9"), "{line}");
    let line = serve_forward_udp_refused(&["--to-proxy", "socks5://127.0.0.1:1"]);
    assert!(
        line.contains("--to-proxy needs a tcp:// or tls:// target"),
        "{line}"
    );
    // A malformed URL is a usage error that does not echo a password back
    // in socketkit's own words.
    let out = run_socketkit(&["get", "--proxy", "ftp://u:hunter2@h", "http://x/"], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(
        line.contains("unsupported scheme 'ftp'") && !line.contains("hunter2"),
        "{line}"
    );
}
