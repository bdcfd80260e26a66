//! `socketkit get` end to end against real servers on loopback: Python's
//! http.server (HTTP/1.0, close-delimited bodies), nginx (keep-alive,
//! Content-Length, HEAD, redirects, TLS with a private CA), and a std
//! TcpListener answering with exact bytes (chunked bodies, interim 1xx,
//! malformed and truncated responses, stalls).

use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::util::http::{
    fails, files_in, get, nginx_pki, nginx_tls, ok, stderr, stdout, Canned, Nginx, Reply,
};
use crate::util::{run, socketkit, Proc, RUN_LIMIT};

/// nginx's test site: static files, redirects, header echoes.
const SITE: &str = r#"
  server {
    listen 127.0.0.1:{port0};
    root {root};
    location = /headers {
      default_type text/plain;
      return 200 "auth=[$http_authorization] cookie=[$http_cookie] x=[$http_x_custom] ua=[$http_user_agent]\n";
    }
    location = /conn { default_type text/plain; return 200 "requests=$connection_requests\n"; }
    location = /to-conn { return 302 /conn; }
    location = /to-self { return 302 /headers; }
    location = /to-localhost { return 301 http://localhost:$server_port/headers; }
    location = /see-other { return 303 /conn; }
    location = /loop { return 302 /loop; }
    location = /r1 { return 307 /r2; }
    location = /r2 { return 308 /r3; }
    location = /r3 { return 302 /conn; }
  }
"#;

fn site() -> Nginx {
    Nginx::start(SITE, |dir| {
        std::fs::write(dir.join("www/hello.txt"), "hello, world\n").unwrap();
    })
}

fn sha256(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let out = run(cmd, b"");
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn python_http_server_content_length_and_close_delimited_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/http_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(dir.path());
    let server = Proc::spawn("http.server", cmd, false);
    let base = server
        .stdout
        .wait_for("the listening line", |l| l.starts_with("listening on "))
        .trim_start_matches("listening on ")
        .to_owned();

    assert_eq!(ok(&get(&[&format!("{base}/data.bin")])), data);
    let out = get(&["-i", &format!("{base}/close-delimited")]);
    let body = ok(&out);
    let head_end = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&body[..head_end]);
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(!head.to_lowercase().contains("content-length"), "{head}");
    assert_eq!(
        &body[head_end..],
        &data[..],
        "close-delimited body, byte for byte"
    );

    fails(
        &get(&["--fail", &format!("{base}/missing")]),
        1,
        "returned 404",
    );
}

#[test]
fn nginx_keep_alive_content_length_head_and_headers() {
    let nginx = site();
    // Keep-alive: the body ends at Content-Length, not when nginx closes
    // (it would keep the connection 75 s; the harness allows 30).
    assert_eq!(ok(&get(&[&nginx.url(0, "/hello.txt")])), b"hello, world\n");

    let out = get(&["-I", &nginx.url(0, "/hello.txt")]);
    let head = String::from_utf8(ok(&out)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-length: 13\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD prints no body: {head}");

    let out = get(&[
        "-H",
        "X-Custom: one two",
        "-H",
        "User-Agent: tester/1",
        &nginx.url(0, "/headers"),
    ]);
    assert_eq!(
        stdout(&out),
        "auth=[] cookie=[] x=[one two] ua=[tester/1]\n",
        "{}",
        stderr(&out)
    );
    let out = get(&["-H", "no colon here", &nginx.url(0, "/")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn nginx_redirects_reuse_the_connection_and_keep_credentials_to_the_same_origin_only() {
    let nginx = site();
    // Without -L the redirect itself is the answer.
    let out = get(&["-i", &nginx.url(0, "/to-conn")]);
    assert!(
        stdout(&out).starts_with("HTTP/1.1 302 Moved Temporarily\r\n"),
        "{}",
        stdout(&out)
    );

    // Same origin: the second request rides the first connection.
    let out = get(&["-L", "-w", &nginx.url(0, "/to-conn")]);
    assert_eq!(stdout(&out), "requests=2\n", "{}", stderr(&out));
    let meta: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(meta["redirects"], 1);
    assert_eq!(meta["reused_connection"], true);
    assert_eq!(meta["status"], 200);
    assert!(meta["url"].as_str().unwrap().ends_with("/conn"), "{meta}");

    // 307, 308, 302 in a row, each head shown with -i.
    let out = get(&["-L", "-i", &nginx.url(0, "/r1")]);
    let text = stdout(&out);
    let statuses: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(statuses.len(), 4, "{text}");
    assert!(
        statuses[0].starts_with("HTTP/1.1 307") && statuses[3].starts_with("HTTP/1.1 200"),
        "{text}"
    );
    assert!(text.ends_with("requests=4\n"), "{text}");
    fails(
        &get(&["-L", "--max-redirs", "2", &nginx.url(0, "/r1")]),
        1,
        "too many redirects",
    );
    fails(
        &get(&["-L", &nginx.url(0, "/loop")]),
        1,
        "too many redirects",
    );
    let out = get(&["-L", "-I", &nginx.url(0, "/see-other")]);
    assert!(
        stdout(&out).contains("HTTP/1.1 200 OK"),
        "303 keeps HEAD: {}",
        stdout(&out)
    );

    let secrets = [
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "Cookie: id=42",
        "-L",
    ];
    let same = get(&[&secrets[..], &[nginx.url(0, "/to-self").as_str()]].concat());
    assert_eq!(
        stdout(&same),
        format!(
            "auth=[Bearer s3cret] cookie=[id=42] x=[] ua=[socketkit/{}]\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let other = get(&[&secrets[..], &[nginx.url(0, "/to-localhost").as_str()]].concat());
    assert!(
        stdout(&other).starts_with("auth=[] cookie=[] "),
        "to another host, no credentials: {}",
        stdout(&other)
    );
    let url = nginx
        .url(0, "/to-self")
        .replace("127.0.0.1", "al:pw@127.0.0.1");
    assert!(stdout(&get(&["-L", &url])).starts_with("auth=[Basic YWw6cHc=]"));
    let url = nginx
        .url(0, "/to-localhost")
        .replace("127.0.0.1", "al:pw@127.0.0.1");
    assert!(stdout(&get(&["-L", &url])).starts_with("auth=[] "));
}

#[test]
fn two_hundred_mib_arrive_byte_exact_and_the_file_appears_only_when_complete() {
    let nginx = Nginx::start(SITE, |dir| {
        let status = Command::new("head")
            .args(["-c", "200M", "/dev/urandom"])
            .stdout(std::fs::File::create(dir.join("www/big.bin")).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
    });
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("big.bin");
    let out = get(&[
        "-o",
        target.to_str().unwrap(),
        "-w",
        &nginx.url(0, "/big.bin"),
    ]);
    ok(&out);
    assert!(
        out.stderr.is_empty(),
        "no progress bar off a terminal: {}",
        stderr(&out)
    );
    assert_eq!(sha256(&target), sha256(&nginx.www().join("big.bin")));
    assert_eq!(
        files_in(out_dir.path()),
        ["big.bin"],
        "no temporary file left"
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["bytes"], 200 * 1024 * 1024);
    assert_eq!(meta["content_length"], 200 * 1024 * 1024);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o644,
        0o644,
        "an ordinary file, not a 0600 temporary: {mode:o}"
    );
}

fn response(head: &str, body: &[u8]) -> Vec<u8> {
    [head.replace('\n', "\r\n").as_bytes(), body].concat()
}

#[test]
fn chunked_bodies_with_extensions_and_trailers_and_interim_responses() {
    let chunked = "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n";
    let body = b"5;name=value\r\nhello\r\n1\r\n,\r\n7\r\n world!\r\n0\r\nX-Checksum: abc\r\n\r\n";
    let interim = "HTTP/1.1 100 Continue\n\nHTTP/1.1 103 Early Hints\nLink: </style.css>\n\nHTTP/1.1 200 OK\nContent-Length: 2\n\n";
    let server = Canned::serve(
        "127.0.0.1:0",
        vec![
            Reply::Close(response(chunked, body)),
            Reply::Close(response(interim, b"ok")),
            Reply::Close(response(interim, b"ok")),
            Reply::Close(response(
                "HTTP/1.1 204 No Content\nContent-Length: 0\n\n",
                b"",
            )),
            Reply::Close(response("HTTP/1.1 304 Not Modified\nETag: \"x\"\n\n", b"")),
        ],
    );
    assert_eq!(ok(&get(&[&server.url("/chunked")])), b"hello, world!");
    assert_eq!(ok(&get(&[&server.url("/interim")])), b"ok");
    let shown = stdout(&get(&["-i", &server.url("/interim")]));
    assert!(
        shown.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{shown}"
    );
    assert_eq!(ok(&get(&[&server.url("/no-content")])), b"");
    assert_eq!(ok(&get(&[&server.url("/not-modified")])), b"");
    let requests = server.requests();
    let first = String::from_utf8_lossy(&requests[0]);
    assert!(
        first.starts_with("GET /chunked HTTP/1.1\r\nHost: 127.0.0.1:"),
        "{first}"
    );
}

#[test]
fn raw_shows_exactly_the_bytes_on_the_wire() {
    let reply = response(
        "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nX-Odd:   spaced  \n\n",
        b"4\r\nwire\r\n0\r\n\r\n",
    );
    let server = Canned::serve("127.0.0.1:0", vec![Reply::Close(reply.clone())]);
    let out = get(&["--raw", "-H", "X-Test: 1", &server.url("/path?q=1#frag")]);
    assert_eq!(ok(&out), reply, "stdout is the response, framing and all");
    let requests = server.requests();
    assert_eq!(
        out.stderr, requests[0],
        "stderr is the request as the server read it"
    );
    let request = String::from_utf8_lossy(&requests[0]);
    assert!(
        request.starts_with("GET /path?q=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("\r\nX-Test: 1\r\n"), "{request}");
}

#[test]
fn ipv6_literal_urls_and_the_host_header() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    drop(listener);
    let server = Canned::serve(
        "[::1]:0",
        vec![Reply::Close(response(
            "HTTP/1.1 200 OK\nContent-Length: 3\n\n",
            b"v6\n",
        ))],
    );
    let url = format!("http://[::1]:{}/", server.addr.port());
    let out = get(&["-w", &url]);
    assert_eq!(ok(&out), b"v6\n");
    let meta: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(
        meta["remote_address"],
        format!("[::1]:{}", server.addr.port())
    );
    let port = server.addr.port();
    let request = String::from_utf8(server.requests().remove(0)).unwrap();
    assert!(
        request.contains(&format!("\r\nHost: [::1]:{port}\r\n")),
        "{request}"
    );
}

#[test]
fn malformed_and_truncated_responses_fail_in_one_line_and_leave_no_file() {
    let oversized = format!(
        "HTTP/1.1 200 OK\n{}Content-Length: 2\n\n",
        "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n".repeat(1000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            response(
                "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n",
                b"5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n",
            ),
            "malformed response body",
        ),
        (
            response(
                "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n",
                b"5\r\nhello\r\n",
            ),
            "ended before its last chunk",
        ),
        (
            response("HTTP/1.1 200 OK\nContent-Length: 1000\n\n", &[b'x'; 400]),
            "ended after 400 of 1000 bytes",
        ),
        (response(&oversized, b"ok"), "message head is too large"),
        (
            b"HTTP/1.1 2000 Whatever\r\n\r\n".to_vec(),
            "malformed response",
        ),
        (b"this is not http\r\n\r\n".to_vec(), "malformed response"),
        (
            Vec::new(),
            "closed the connection before a complete response head",
        ),
    ];
    let replies = cases
        .iter()
        .map(|(bytes, _)| Reply::Close(bytes.clone()))
        .collect();
    let server = Canned::serve("127.0.0.1:0", replies);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.bin");
    for (_, message) in &cases {
        let out = get(&["-o", target.to_str().unwrap(), &server.url("/")]);
        fails(&out, 1, message);
        assert_eq!(
            files_in(dir.path()),
            Vec::<String>::new(),
            "{message}: no file left"
        );
    }
    server.requests();
}

#[test]
fn an_existing_file_is_replaced_only_by_a_complete_download() {
    let body = vec![b'n'; 100_000];
    let server = Canned::serve(
        "127.0.0.1:0",
        vec![
            Reply::Close(response(
                "HTTP/1.1 200 OK\nContent-Length: 200000\n\n",
                &body,
            )),
            Reply::Close(response(
                "HTTP/1.1 200 OK\nContent-Length: 100000\n\n",
                &body,
            )),
            Reply::Close(response(
                "HTTP/1.1 404 Not Found\nContent-Length: 4\n\n",
                b"nope",
            )),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("keep.bin");
    std::fs::write(&target, "old").unwrap();
    fails(
        &get(&["-o", target.to_str().unwrap(), &server.url("/")]),
        1,
        "ended after 100000 of 200000 bytes",
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    ok(&get(&["-o", target.to_str().unwrap(), &server.url("/")]));
    assert_eq!(std::fs::read(&target).unwrap(), body);
    fails(
        &get(&["--fail", "-o", target.to_str().unwrap(), &server.url("/")]),
        1,
        "returned 404 Not Found",
    );
    assert_eq!(std::fs::read(&target).unwrap(), body);
    assert_eq!(files_in(dir.path()), ["keep.bin"]);
    server.requests();
}

#[test]
fn output_to_a_fifo_writes_through_it_instead_of_replacing_it() {
    let server = Canned::serve(
        "127.0.0.1:0",
        vec![Reply::Close(response(
            "HTTP/1.1 200 OK\nContent-Length: 5\n\n",
            b"piped",
        ))],
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(&get(&["-o", fifo.to_str().unwrap(), &server.url("/")]));
    assert_eq!(reader.join().unwrap(), b"piped");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    server.requests();
}

#[test]
fn unreachable_servers_fail_with_their_reason() {
    let port = crate::util::free_port();
    fails(
        &get(&[&format!("http://127.0.0.1:{port}/")]),
        1,
        "Connection refused",
    );
    // A destination that cannot be written fails before connecting.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/file");
    let url = format!("http://127.0.0.1:{port}/");
    fails(
        &get(&["-o", missing.to_str().unwrap(), &url]),
        1,
        "cannot create a temporary file",
    );
    fails(
        &get(&["-o", dir.path().to_str().unwrap(), &url]),
        1,
        "it is a directory",
    );
    fails(
        &get(&["http://no-such-host.invalid/"]),
        1,
        "cannot resolve host name 'no-such-host.invalid'",
    );
    for bad in ["ftp://example.com/", "http://", "not a url"] {
        let out = get(&[bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("invalid URL"), "{}", stderr(&out));
    }
}

#[test]
fn connect_timeout_and_max_time_bound_the_transfer() {
    // A listener with a full accept queue: further SYNs are dropped, so
    // connecting hangs until our timeout.
    let (_listener, port) = crate::util::full_backlog_listener();
    let addr = format!("127.0.0.1:{port}");
    fails(
        &get(&["--timeout", "1", &format!("http://{addr}/")]),
        1,
        "timed out connecting",
    );

    let server = Canned::serve(
        "127.0.0.1:0",
        vec![Reply::Hold(response(
            "HTTP/1.1 200 OK\nContent-Length: 1000\n\n",
            b"partial",
        ))],
    );
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("slow.bin");
    let out = get(&[
        "--max-time",
        "1",
        "-o",
        target.to_str().unwrap(),
        &server.url("/"),
    ]);
    fails(&out, 1, "did not finish within 1s (--max-time)");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
    server.requests();
}

/// nginx with TLS: `{port0}` has a certificate from our CA for localhost,
/// 127.0.0.1 and ::1; `{port1}` one for other.example only.
#[test]
fn https_with_a_private_ca_sni_and_clear_verification_failures() {
    let nginx = nginx_tls(
        r#"location = /sni { default_type text/plain; return 200 "sni=[$ssl_server_name]\n"; }"#,
        r#"
  server {
    listen 127.0.0.1:{port1} ssl;
    ssl_certificate {dir}/other/server.pem;
    ssl_certificate_key {dir}/other/server-key.pem;
    root {root};
  }
"#,
        |dir| nginx_pki(dir, "other", &["other.example"]),
    );
    let ca = nginx.dir.path().join("pki/ca.pem");
    let ca = ca.to_str().unwrap();
    let (good, wrong) = (nginx.ports[0], nginx.ports[1]);

    let out = get(&[
        "--ca",
        ca,
        "-w",
        &format!("https://localhost:{good}/hello.txt"),
    ]);
    assert_eq!(ok(&out), b"hello over tls\n");
    let meta: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert!(meta["tls_ms"].as_f64().unwrap() > 0.0, "{meta}");
    assert_eq!(
        stdout(&get(&[
            "--ca",
            ca,
            &format!("https://localhost:{good}/sni")
        ])),
        "sni=[localhost]\n"
    );
    assert_eq!(
        stdout(&get(&[
            "--ca",
            ca,
            &format!("https://127.0.0.1:{good}/sni")
        ])),
        "sni=[]\n",
        "no SNI for an IP address (RFC 6066)"
    );

    let out = get(&[&format!("https://localhost:{good}/hello.txt")]);
    fails(
        &out,
        1,
        &format!("TLS handshake with tls://localhost:{good} failed: server certificate sha256:"),
    );
    assert!(
        stderr(&out).contains("is not issued by a trusted CA"),
        "{}",
        stderr(&out)
    );
    let out = get(&["--ca", ca, &format!("https://localhost:{wrong}/hello.txt")]);
    fails(&out, 1, "is not issued by a trusted CA");
    let other_ca = nginx.dir.path().join("other/ca.pem");
    let out = get(&[
        "--ca",
        other_ca.to_str().unwrap(),
        &format!("https://localhost:{wrong}/hello.txt"),
    ]);
    fails(&out, 1, "is not valid for this server name");

    let out = get(&[
        "--insecure",
        &format!("https://localhost:{wrong}/hello.txt"),
    ]);
    assert_eq!(ok(&out), b"hello over tls\n");
    assert!(
        stderr(&out).contains("--insecure"),
        "a warning: {}",
        stderr(&out)
    );
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let server = Canned::serve(
        "127.0.0.1:0",
        vec![Reply::Close(response(
            "HTTP/1.1 200 OK\nContent-Length: 4000000\n\n",
            &vec![b'y'; 4_000_000],
        ))],
    );
    let mut child = socketkit(["get", &server.url("/")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is now closed: the next write fails with EPIPE.
    let status = crate::util::wait_child(&mut child, RUN_LIMIT);
    let mut errors = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    assert!(status.success(), "{errors}");
    assert!(errors.is_empty(), "{errors}");
    server.requests();
}

#[test]
fn a_progress_bar_on_a_terminal_and_an_interrupt_leaves_no_file() {
    let server = Canned::serve(
        "127.0.0.1:0",
        vec![
            Reply::Close(response(
                "HTTP/1.1 200 OK\nContent-Length: 1048576\n\n",
                &vec![b'p'; 1 << 20],
            )),
            Reply::Hold(response(
                "HTTP/1.1 200 OK\nContent-Length: 9999\n\n",
                b"partial",
            )),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("bar.bin");
    // script(1) runs the command on a pseudo-terminal.
    let command = format!(
        "{} get -o {} {}",
        env!("CARGO_BIN_EXE_socketkit"),
        target.display(),
        server.url("/")
    );
    let mut script = Command::new("script");
    script.args(["-qec", &command, "/dev/null"]);
    let screen = stdout(&run(script, b""));
    assert!(screen.contains("bar.bin 1.00 MiB/1.00 MiB"), "{screen}");
    assert_eq!(std::fs::read(&target).unwrap().len(), 1 << 20);

    let partial = dir.path().join("partial.bin");
    let mut client = Proc::spawn(
        "get",
        socketkit(["get", "-o", partial.to_str().unwrap(), &server.url("/")]),
        false,
    );
    crate::util::wait_until("the temporary file", || {
        files_in(dir.path()).iter().any(|f| f.ends_with(".part"))
    });
    crate::util::signal(client.pid(), "INT");
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", client.stderr.text());
    assert_eq!(
        files_in(dir.path()),
        ["bar.bin"],
        "the partial download is gone"
    );
    server.requests();
}
