//! Server lifecycle: --once, concurrency modes, connection limits, idle
//! timeouts, graceful shutdown on signals, Unix socket files.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::util::*;

// --- --once ----------------------------------------------------------------

#[test]
fn once_serves_one_connection_then_exits_zero() {
    let mut server = Server::start(&["serve", "echo", "127.0.0.1:0", "--once"], 1);
    let code = r#"
a = connect(sys.argv[1])
a.sendall(b"first\n")
out(recv_line(a))
# The listener closes once the first connection is taken: a second client is
# refused, or (if it slipped into the backlog just before) reset unserved.
try:
    b = connect(sys.argv[1])
    b.sendall(b"second\n")
    got = recv_all(b)
    out("second: closed, %d bytes\n" % len(got))
except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
    out("second: closed, 0 bytes\n")
a.sendall(b"still served\n")
out(recv_line(a))
a.shutdown(socket.SHUT_WR)
out("rest %r\n" % recv_all(a))
"#;
    let out = python_ok(code, &[server.addr()], b"");
    assert_eq!(
        text(&out),
        "first\nsecond: closed, 0 bytes\nstill served\nrest b''\n"
    );
    assert_eq!(server.exit_code(), 0, "stderr: {}", server.stderr());
    let err = TcpStream::connect(host_port(server.addr())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn once_over_udp_answers_one_datagram_then_exits() {
    let mut server = Server::start(&["serve", "upper", "udp://127.0.0.1:0", "--once"], 1);
    let out = run_socketkit(&["connect", server.addr()], b"just one\n");
    assert_success("connect udp", &out);
    assert_eq!(text(&out.stdout), "JUST ONE\n");
    assert_eq!(server.exit_code(), 0, "stderr: {}", server.stderr());
}

// --- modes and limits --------------------------------------------------------

/// Two clients open at once, both answered while both are open.
fn assert_two_clients_served_concurrently(extra: &[&str]) {
    let mut args = vec!["serve", "echo", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args, 1);
    let code = r#"
a = connect(sys.argv[1])
b = connect(sys.argv[1])
b.sendall(b"from b\n")
a.sendall(b"from a\n")
out(recv_line(b))          # b is answered although a is open and idle
out(recv_line(a))
a.shutdown(socket.SHUT_WR)
b.shutdown(socket.SHUT_WR)
out("rest %r %r\n" % (recv_all(a), recv_all(b)))
"#;
    let out = python_ok(code, &[server.addr()], b"");
    assert_eq!(text(&out), "from b\nfrom a\nrest b'' b''\n");
}

/// One client at a time: B connects (the kernel completes the handshake)
/// but is answered only after A has gone, in that order.
fn assert_second_client_waits_for_the_first(extra: &[&str]) {
    let mut args = vec!["serve", "echo", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args, 1);
    let code = r#"
a = connect(sys.argv[1])
a.sendall(b"a1\n")
out(recv_line(a))              # A is being served
b = connect(sys.argv[1])       # queued in the listen backlog
b.sendall(b"b1\n")
for i in (2, 3, 4):            # A keeps being served meanwhile
    a.sendall(b"a%d\n" % i)
    out(recv_line(a))
ready, _, _ = select.select([b], [], [], 0)
out("b answered while a open: %s\n" % bool(ready))
a.close()
out(recv_line(b))              # now B's turn
b.shutdown(socket.SHUT_WR)
out("rest %r\n" % recv_all(b))
"#;
    let out = python_ok(code, &[server.addr()], b"");
    assert_eq!(
        text(&out),
        "a1\na2\na3\na4\nb answered while a open: False\nb1\nrest b''\n"
    );
}

#[test]
fn tasks_mode_serves_clients_concurrently() {
    assert_two_clients_served_concurrently(&["--mode", "tasks"]);
}

#[test]
fn threads_mode_serves_clients_concurrently() {
    assert_two_clients_served_concurrently(&["--mode", "threads"]);
}

#[test]
fn sequential_mode_serves_one_client_at_a_time() {
    assert_second_client_waits_for_the_first(&["--mode", "sequential"]);
}

#[test]
fn max_conns_one_makes_the_second_client_wait() {
    assert_second_client_waits_for_the_first(&["--max-conns", "1"]);
}

#[test]
fn threads_mode_with_max_conns_one_also_waits() {
    assert_second_client_waits_for_the_first(&["--mode", "threads", "--max-conns", "1"]);
}

#[test]
fn all_modes_echo_correctly() {
    for mode in ["tasks", "threads", "sequential"] {
        let server = Server::start(&["serve", "upper", "127.0.0.1:0", "--mode", mode], 1);
        let payload = random_bytes(200_000, 42);
        let mut expected = payload.clone();
        expected.make_ascii_uppercase();
        let back = py_roundtrip(server.addr(), &payload);
        assert!(back == expected, "mode {mode}: upper round trip differs");
    }
}

#[test]
fn idle_timeout_closes_an_idle_connection_but_not_a_busy_one() {
    let server = Server::start(
        &["serve", "echo", "127.0.0.1:0", "--idle-timeout", "300ms"],
        1,
    );
    let code = r#"
a = connect(sys.argv[1])
a.sendall(b"hi\n")
out(recv_line(a))
b = connect(sys.argv[1])
result = {}
def idle():
    try:
        result["a"] = "EOF after %d bytes" % len(recv_all(a))
    except Exception as e:
        result["a"] = "error %r" % e
th = threading.Thread(target=idle)
th.start()
n, deadline = 0, time.time() + T
while th.is_alive() and time.time() < deadline:   # b keeps busy meanwhile
    msg = b"busy %d\n" % n
    b.sendall(msg)
    if recv_line(b) != msg:
        out("b: bad echo\n")
        break
    n += 1
th.join()
out("a: %s\n" % result["a"])
b.sendall(b"b still here\n")
out(recv_line(b))
b.shutdown(socket.SHUT_WR)
out("rest %r\n" % recv_all(b))
"#;
    let out = python_ok(code, &[server.addr()], b"");
    assert_eq!(
        text(&out),
        "hi\na: EOF after 0 bytes\nb still here\nrest b''\n"
    );
}

// --- signals -----------------------------------------------------------------

#[test]
fn sigterm_mid_stream_loses_no_bytes_and_exits_zero() {
    let mut server = Server::start(
        &["serve", "echo", "127.0.0.1:0", "--drain-timeout", "20s"],
        1,
    );
    let code = r#"
s = connect(sys.argv[1])
payload = os.urandom(2 * 1024 * 1024)
half = len(payload) // 2
received = []
def reader():
    received.append(recv_all(s))
th = threading.Thread(target=reader)
th.start()
for i in range(0, half, 32768):
    s.sendall(payload[i:min(i + 32768, half)])
out("half sent\n")
sys.stdin.readline()           # the test signals the server meanwhile
for i in range(half, len(payload), 32768):
    s.sendall(payload[i:i + 32768])
s.shutdown(socket.SHUT_WR)
th.join()
data = received[0] if received else b""
out("sent %d received %d equal %s\n" % (len(payload), len(data), data == payload))
"#;
    let mut client = spawn_python(code, &[server.addr()]);
    client.stdout.wait_for("'half sent'", |l| l == "half sent");
    server.sigterm();
    assert!(
        wait_until_refused(host_port(server.addr())),
        "the listener still accepts after SIGTERM"
    );
    assert!(
        server.proc.is_running(),
        "server exited before the client was done"
    );
    client.write_stdin(b"go\n");
    let line = client.stdout.wait_for("the result", |_| true);
    assert_eq!(line, "sent 2097152 received 2097152 equal True");
    assert_eq!(
        client.wait_exit().code(),
        Some(0),
        "{}",
        client.stderr.text()
    );
    assert_eq!(server.exit_code(), 0, "stderr: {}", server.stderr());
}

#[test]
fn second_signal_during_drain_exits_130() {
    let mut server = Server::start(
        &["serve", "echo", "127.0.0.1:0", "--drain-timeout", "120s"],
        1,
    );
    let mut conn = TcpStream::connect(host_port(server.addr())).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    conn.read_exact(&mut byte).unwrap(); // accepted and being served
    server.sigterm();
    server
        .proc
        .stderr
        .wait_for("the shutdown log", |l| l.contains("shutting down"));
    // Draining: the open connection would keep it alive for 120 s.
    server.sigterm();
    // Exiting well within the drain deadline is what "at once" means here.
    assert_eq!(server.exit_code(), 130, "stderr: {}", server.stderr());
}

#[test]
fn drain_deadline_cuts_off_an_idle_connection_and_exits_zero() {
    let mut server = Server::start(
        &["serve", "echo", "127.0.0.1:0", "--drain-timeout", "300ms"],
        1,
    );
    let mut conn = TcpStream::connect(host_port(server.addr())).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    conn.read_exact(&mut byte).unwrap();
    server.sigterm();
    assert_eq!(server.exit_code(), 0, "stderr: {}", server.stderr());
    let mut rest = Vec::new();
    match conn.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn sigint_is_graceful_too() {
    let mut server = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    assert_eq!(text(&py_roundtrip(server.addr(), b"before\n")), "before\n");
    signal(server.pid(), "INT");
    assert_eq!(server.exit_code(), 0, "stderr: {}", server.stderr());
}

#[test]
fn hello_says_goodbye_on_shutdown() {
    let mut server = Server::start(&["serve", "hello", "127.0.0.1:0"], 1);
    let mut client = spawn_python(
        r#"
s = connect(sys.argv[1])
out(recv_line(s))
out("connected\n")
out(recv_line(s))
out("rest %r\n" % recv_all(s))
"#,
        &[server.addr()],
    );
    client.stdout.wait_for("'connected'", |l| l == "connected");
    server.sigterm();
    assert_eq!(
        client.wait_exit().code(),
        Some(0),
        "{}",
        client.stderr.text()
    );
    assert_eq!(
        client.stdout.text(),
        "Welcome!\nconnected\nServer shutting down. Bye!\nrest b''\n"
    );
    assert_eq!(server.exit_code(), 0, "stderr: {}", server.stderr());
}

// --- Unix socket files ----------------------------------------------------------

fn is_socket(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn unix_socket_file_is_removed_on_shutdown() {
    let dir = tempdir();
    let stream = dir.path().join("s.sock");
    let dgram = dir.path().join("d.sock");
    let stream_addr = format!("unix:{}", stream.display());
    let dgram_addr = format!("unixgram:{}", dgram.display());
    let mut server = Server::start(&["serve", "echo", &stream_addr, &dgram_addr], 2);
    assert_eq!(server.addrs, vec![stream_addr.clone(), dgram_addr]);
    assert!(is_socket(&stream) && is_socket(&dgram));
    assert_eq!(text(&py_roundtrip(&stream_addr, b"unix\n")), "unix\n");
    server.sigterm();
    assert_eq!(server.exit_code(), 0, "stderr: {}", server.stderr());
    assert!(!stream.exists(), "{} left behind", stream.display());
    assert!(!dgram.exists(), "{} left behind", dgram.display());
}

#[test]
fn a_stale_unix_socket_file_is_replaced() {
    let dir = tempdir();
    let path = dir.path().join("stale.sock");
    // Bound, then closed without unlinking: what a crashed server leaves.
    python_ok(
        r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.close()
"#,
        &[path.to_str().unwrap()],
        b"",
    );
    assert!(is_socket(&path));
    let addr = format!("unix:{}", path.display());
    let server = Server::start(&["serve", "upper", &addr], 1);
    assert_eq!(server.addrs, vec![addr.clone()]);
    assert_eq!(text(&py_roundtrip(&addr, b"fresh\n")), "FRESH\n");
}

#[test]
fn a_live_unix_socket_is_in_use() {
    let dir = tempdir();
    let path = dir.path().join("live.sock");
    let (_owner, _) = spawn_python_server(
        r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen()
out("ready\n")
while True:
    c, _ = s.accept()
    try:                       # socketkit's liveness probe hangs up at once
        c.sendall(b"still mine\n")
    except OSError:
        pass
    c.close()
"#,
        &[path.to_str().unwrap()],
    );
    let addr = format!("unix:{}", path.display());
    let out = run_socketkit(&["serve", "echo", &addr], b"");
    let line = assert_error_with_hint(&out);
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains("live socket"), "{line}");
    assert!(
        line.contains("another program holds this address"),
        "{line}"
    );
    // The owner's socket file was left alone and still works.
    let code = "s = connect(sys.argv[1]); out(recv_all(s))";
    assert_eq!(text(&python_ok(code, &[&addr], b"")), "still mine\n");
}

// --- open-file limit ----------------------------------------------------------

#[test]
fn serve_raises_its_soft_open_file_limit_to_the_hard_limit() {
    // Started with a soft limit of 256, as a 1024 default would be.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -Sn 256 && exec \"$0\" serve echo 127.0.0.1:0"])
        .arg(bin())
        .env_remove("RUST_LOG");
    let mut server = Proc::spawn("socketkit serve echo (soft limit 256)", cmd, false);
    let line = server
        .stdout
        .next_line_until(std::time::Instant::now() + WAIT)
        .expect("a listening line");
    assert!(line.starts_with("listening on "), "{line}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let row = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_ne!(hard, "256", "this test needs a hard limit above 256");
    assert_eq!(soft, hard, "{row}");
    sigterm(server.pid());
    assert!(server.wait_exit().success());
}
