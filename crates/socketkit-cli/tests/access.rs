//! `--allow` / `--deny` on `serve`: peers from 127.0.0.2 (a second loopback
//! source) are refused before any byte, TLS included; deny wins; the file
//! form; UDP datagrams dropped; IPv6 and IPv4-mapped rules; the count in the
//! shutdown summary; Unix peers untouched.

use crate::util::*;

/// Connects from SOURCE to the server, optionally over TLS (unverified, it
/// is only the handshake that matters), sends `hi\n` and reads to EOF
/// (over TLS: one line).
/// Prints `bytes HEX` with what arrived, or `closed HEX` when the connection
/// ended in a reset or a failed TLS handshake (HEX: the bytes before it).
const PEER: &str = r#"
import ssl
source, target, use_tls = sys.argv[1], sys.argv[2], sys.argv[3] == "tls"
family, _, addr = parse(target.replace("tls://", "tcp://"))
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(T)
s.bind((source, 0))
s.connect(addr)
got = b""
try:
    if use_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(b"hi\n")
    if not use_tls:
        # (an SSLSocket's shutdown() drops TLS; over TLS, read one line)
        s.shutdown(socket.SHUT_WR)
    while not (use_tls and got.endswith(b"\n")):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    print("bytes", got.hex())
except OSError:  # reset, ENOTCONN after the FIN, or a failed TLS handshake
    print("closed", got.hex())
"#;

fn visit(source: &str, target: &str, tls: bool) -> String {
    let mode = if tls { "tls" } else { "plain" };
    text(&python_ok(PEER, &[source, target, mode], b""))
        .trim()
        .to_owned()
}

fn refused(outcome: &str) -> bool {
    outcome == "bytes" || outcome == "closed"
}

fn serve(args: &[&str]) -> Server {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    Server::start(&all, 1)
}

#[test]
fn allow_refuses_other_sources_before_the_greeting() {
    let mut server = serve(&["hello", "127.0.0.1:0", "--allow", "127.0.0.1", "-v"]);
    let admitted = visit("127.0.0.1", server.addr(), false);
    assert!(
        admitted.starts_with("bytes ") && admitted.len() > "bytes ".len(),
        "an allowed peer gets the greeting: {admitted}"
    );
    let outcome = visit("127.0.0.2", server.addr(), false);
    assert!(refused(&outcome), "refused peer got bytes: {outcome}");
    assert!(
        server.stderr().contains("peer refused by the access list"),
        "-v logs the refusal:\n{}",
        server.stderr()
    );
    assert_eq!(refused_count(&mut server), 1);
}

#[test]
fn a_refused_peer_never_reaches_the_tls_handshake() {
    let config = tempdir();
    let mut server = Server::start_with_config(
        &[
            "serve",
            "echo",
            "tls://127.0.0.1:0",
            "--self-signed",
            "--allow",
            "127.0.0.1",
        ],
        config.path(),
        1,
    );
    let admitted = visit("127.0.0.1", server.addr(), true);
    assert_eq!(admitted, format!("bytes {}", hex(b"hi\n")));
    let outcome = visit("127.0.0.2", server.addr(), true);
    assert_eq!(outcome, "closed", "no handshake for a refused peer");
    assert!(
        !server.stderr().contains("TLS handshake"),
        "the refusal happens before TLS, not as a failed handshake:\n{}",
        server.stderr()
    );
    assert_eq!(refused_count(&mut server), 1);
}

#[test]
fn deny_wins_over_allow() {
    let mut server = serve(&[
        "echo",
        "127.0.0.1:0",
        "--allow",
        "127.0.0.0/8",
        "--deny",
        "127.0.0.2",
    ]);
    assert_eq!(
        visit("127.0.0.1", server.addr(), false),
        format!("bytes {}", hex(b"hi\n"))
    );
    assert!(refused(&visit("127.0.0.2", server.addr(), false)));
    assert!(refused(&visit("127.0.0.2", server.addr(), false)));
    assert_eq!(refused_count(&mut server), 2);
}

#[test]
fn lists_from_files_with_comments() {
    let dir = tempdir();
    let allow = dir.path().join("allow.txt");
    let deny = dir.path().join("deny.txt");
    std::fs::write(
        &allow,
        "# loopback only\n127.0.0.0/8   # both test sources\n\n",
    )
    .unwrap();
    std::fs::write(&deny, "127.0.0.2\n").unwrap();
    let mut server = serve(&[
        "echo",
        "127.0.0.1:0",
        "--allow-file",
        allow.to_str().unwrap(),
        "--deny-file",
        deny.to_str().unwrap(),
    ]);
    assert_eq!(
        visit("127.0.0.1", server.addr(), false),
        format!("bytes {}", hex(b"hi\n"))
    );
    assert!(refused(&visit("127.0.0.2", server.addr(), false)));
    assert_eq!(refused_count(&mut server), 1);
}

#[test]
fn a_bad_entry_is_one_error_naming_file_and_line() {
    let dir = tempdir();
    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, "127.0.0.1\n# fine\n10.0.0.0/33\n").unwrap();
    let out = run_socketkit(
        &[
            "serve",
            "echo",
            "127.0.0.1:0",
            "--allow-file",
            allow.to_str().unwrap(),
        ],
        b"",
    );
    let line = assert_one_error_line(&out, 1);
    assert!(
        line.contains(&format!("{}:3:", allow.display())) && line.contains("10.0.0.0/33"),
        "{line}"
    );
    let out = run_socketkit(
        &["serve", "echo", "127.0.0.1:0", "--deny", "not-an-ip"],
        b"",
    );
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("'not-an-ip'"), "{line}");
    let out = run_socketkit(
        &[
            "serve",
            "echo",
            "127.0.0.1:0",
            "--deny-file",
            "/nonexistent/deny",
        ],
        b"",
    );
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("/nonexistent/deny"), "{line}");
}

#[test]
fn refused_datagrams_are_dropped_unanswered() {
    let mut server = serve(&["echo", "udp://127.0.0.1:0", "--deny", "127.0.0.2"]);
    // The server serves one socket's datagrams in arrival order: once the
    // admitted peer's reply is in, a reply to the earlier refused datagram
    // would already be queued at the refused peer's socket.
    let code = r#"
_, _, (host, port) = parse(sys.argv[1])
refused = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
refused.bind(("127.0.0.2", 0))
admitted = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
admitted.bind(("127.0.0.1", 0))
admitted.settimeout(T)
refused.sendto(b"from two", (host, port))
admitted.sendto(b"from one", (host, port))
print(admitted.recvfrom(100)[0].decode())
refused.setblocking(False)
try:
    print("answered", refused.recvfrom(100)[0])
except BlockingIOError:
    print("dropped")
"#;
    let out = text(&python_ok(code, &[server.addr()], b""));
    assert_eq!(out, "from one\ndropped\n");
    assert_eq!(refused_count(&mut server), 1);
}

#[test]
fn ipv6_peers_and_ipv4_mapped_rules() {
    // ::1 is not 127.0.0.1: an IPv4 allow list refuses it.
    let mut server = serve(&["echo", "[::1]:0", "--allow", "127.0.0.1"]);
    assert!(refused(&visit("::1", server.addr(), false)));
    assert_eq!(refused_count(&mut server), 1);
    let mut server = serve(&["echo", "[::1]:0", "--allow", "::1"]);
    assert_eq!(
        visit("::1", server.addr(), false),
        format!("bytes {}", hex(b"hi\n"))
    );
    assert_eq!(refused_count(&mut server), 0);
    // A rule written as an IPv4-mapped address matches the IPv4 peer.
    let mut server = serve(&["echo", "127.0.0.1:0", "--deny", "::ffff:127.0.0.2"]);
    assert!(refused(&visit("127.0.0.2", server.addr(), false)));
    assert_eq!(
        visit("127.0.0.1", server.addr(), false),
        format!("bytes {}", hex(b"hi\n"))
    );
    assert_eq!(refused_count(&mut server), 1);
}

#[test]
fn unix_peers_are_not_subject_to_ip_lists() {
    let dir = tempdir();
    let path = format!("unix:{}", dir.path().join("echo.sock").display());
    let mut server = serve(&["echo", &path, "--allow", "127.0.0.1", "--deny", "0.0.0.0/0"]);
    assert_eq!(py_roundtrip(server.addr(), b"unix peer\n"), b"unix peer\n");
    assert_eq!(refused_count(&mut server), 0);
}

#[test]
fn a_refused_peer_does_not_use_up_once() {
    let mut server = serve(&["echo", "127.0.0.1:0", "--once", "--deny", "127.0.0.2"]);
    assert!(refused(&visit("127.0.0.2", server.addr(), false)));
    assert_eq!(
        visit("127.0.0.1", server.addr(), false),
        format!("bytes {}", hex(b"hi\n"))
    );
    assert_eq!(server.exit_code(), 0, "{}", server.stderr());
}

#[test]
fn a_flood_of_refusals_is_counted_in_full_but_logged_sparingly() {
    let mut server = serve(&["echo", "127.0.0.1:0", "--deny", "127.0.0.2", "-v"]);
    let code = r#"
_, _, (host, port) = parse(sys.argv[1])
started = time.monotonic()
for _ in range(40):
    s = socket.socket()
    s.settimeout(T)
    s.bind(("127.0.0.2", 0))
    s.connect((host, port))
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()
print(time.monotonic() - started)
"#;
    let secs: f64 = text(&python_ok(code, &[server.addr()], b""))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(refused_count(&mut server), 40);
    let logged = server
        .stderr()
        .lines()
        .filter(|l| l.contains("peer refused by the access list"))
        .count();
    // At most 10 a second (the first second's window may straddle two).
    let bound = 10 * (secs.ceil() as usize + 1);
    assert!(logged >= 1, "-v logs refusals:\n{}", server.stderr());
    assert!(
        logged <= bound,
        "{logged} refusal lines for 40 refusals in {secs:.2}s:\n{}",
        server.stderr()
    );
}
