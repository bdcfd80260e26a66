//! `socketkit connect` against servers that are not ours: Python's
//! socketserver and socat.

use std::io::{Read, Write};
use std::process::Stdio;

use crate::util::*;
use sha2::{Digest, Sha256};

/// A Python socketserver (threading TCP or Unix stream) whose handler is
/// `handle(self)`; prints its port (or `ready`) once listening.
fn python_stream_server(handler_body: &str, unix_path: Option<&str>) -> (Proc, String) {
    let code = format!(
        r#"
import socketserver
class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(T)
{handler_body}
if len(sys.argv) > 1:
    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True
    server = Server(sys.argv[1], Handler)
    out("ready\n")
else:
    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
    server = Server(("127.0.0.1", 0), Handler)
    out("%d\n" % server.server_address[1])
server.serve_forever()
"#
    );
    let args: Vec<&str> = unix_path.into_iter().collect();
    let (proc, line) = spawn_python_server(&code, &args);
    let addr = match unix_path {
        Some(path) => {
            assert_eq!(line, "ready");
            format!("unix:{path}")
        }
        None => format!("tcp://127.0.0.1:{line}"),
    };
    (proc, addr)
}

const ECHO: &str = r#"
        while True:
            data = s.recv(65536)
            if not data:
                break
            s.sendall(data)
"#;

const UPPER: &str = r#"
        while True:
            data = s.recv(65536)
            if not data:
                break
            s.sendall(data.upper())
"#;

/// Reads to EOF, then answers with the hex of everything it received.
const RECORD: &str = r#"
        got = recv_all(s)
        s.sendall(got.hex().encode() + b"\n")
"#;

fn connect_ok(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut all = vec!["connect"];
    all.extend_from_slice(args);
    let out = run_socketkit(&all, input);
    assert_success("socketkit connect", &out);
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    out.stdout
}

#[test]
fn relays_binary_data_through_a_python_echo_server() {
    let (_server, addr) = python_stream_server(ECHO, None);
    let payload: Vec<u8> = (0..=255u8).cycle().take(256 * 1024).collect();
    let out = connect_ok(&[&addr], &payload);
    assert!(out == payload, "echo through connect differs");
}

#[test]
fn relays_through_a_python_upper_server() {
    let (_server, addr) = python_stream_server(UPPER, None);
    let out = connect_ok(&[&addr], b"Hello, World\nsecond line\n");
    assert_eq!(text(&out), "HELLO, WORLD\nSECOND LINE\n");
}

#[test]
fn relays_through_socat_cat() {
    let socat = Proc::spawn(
        "socat",
        {
            let mut cmd = std::process::Command::new("socat");
            cmd.args([
                "-d",
                "-d",
                "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr",
                "EXEC:cat",
            ]);
            cmd
        },
        false,
    );
    let line = socat
        .stderr
        .wait_for("socat's 'listening on'", |l| l.contains("listening on"));
    let port = port_of(line.trim());
    let payload = random_bytes(1 << 20, fresh_seed());
    let out = connect_ok(&[&format!("127.0.0.1:{port}")], &payload);
    assert_eq!(
        hex(&Sha256::digest(&out)),
        hex(&Sha256::digest(&payload)),
        "socat cat round trip differs"
    );
}

#[test]
fn relays_through_socat_tr() {
    let mut cmd = std::process::Command::new("socat");
    cmd.args([
        "-d",
        "-d",
        "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr",
        "SYSTEM:tr a-z A-Z",
    ]);
    let socat = Proc::spawn("socat", cmd, false);
    let line = socat
        .stderr
        .wait_for("socat's 'listening on'", |l| l.contains("listening on"));
    let port = port_of(line.trim());
    let out = connect_ok(&[&format!("tcp://127.0.0.1:{port}")], b"make me loud\n");
    assert_eq!(text(&out), "MAKE ME LOUD\n");
}

#[test]
fn half_closes_at_end_of_input_and_prints_the_reply_that_follows() {
    // The server answers only after our EOF: connect must half-close (not
    // close) and keep printing.
    let summary = r#"
        got = recv_all(s)
        s.sendall(b"got %d bytes, sha256 %s\n" % (len(got), hashlib.sha256(got).hexdigest().encode()))
"#;
    let (_server, addr) = python_stream_server(summary, None);
    let payload = random_bytes(300_000, fresh_seed());
    let out = connect_ok(&[&addr], &payload);
    let expected = format!(
        "got {} bytes, sha256 {}\n",
        payload.len(),
        hex(&Sha256::digest(&payload))
    );
    assert_eq!(text(&out), expected);
}

#[test]
fn crlf_turns_bare_newlines_into_crlf() {
    let (_server, addr) = python_stream_server(RECORD, None);
    let out = connect_ok(&["--crlf", &addr], b"a\nb\r\nc\n\nd");
    assert_eq!(text(&out), format!("{}\n", hex(b"a\r\nb\r\nc\r\n\r\nd")));
}

#[test]
fn without_crlf_bytes_go_out_unchanged() {
    let (_server, addr) = python_stream_server(RECORD, None);
    let out = connect_ok(&[&addr], b"a\nb\r\n");
    assert_eq!(text(&out), format!("{}\n", hex(b"a\nb\r\n")));
}

#[test]
fn line_mode_skips_empty_lines_and_stops_at_exit() {
    let (_server, addr) = python_stream_server(RECORD, None);
    let out = connect_ok(
        &["--line-mode", &addr],
        b"one\n\n\r\ntwo\r\nexit\nnever sent\n",
    );
    assert_eq!(text(&out), format!("{}\n", hex(b"one\ntwo\nexit\n")));
}

#[test]
fn line_mode_stops_at_bye_and_honours_crlf() {
    let (_server, addr) = python_stream_server(RECORD, None);
    let out = connect_ok(
        &["--line-mode", "--crlf", &addr],
        b"one\n\ntwo\nbye\nnever sent\n",
    );
    assert_eq!(text(&out), format!("{}\n", hex(b"one\r\ntwo\r\nbye\r\n")));
}

#[test]
fn connects_to_a_python_unix_stream_server() {
    let dir = tempdir();
    let path = dir.path().join("py.sock");
    let (_server, addr) = python_stream_server(UPPER, Some(path.to_str().unwrap()));
    let out = connect_ok(&[&addr], b"over a unix socket\n");
    assert_eq!(text(&out), "OVER A UNIX SOCKET\n");
}

#[test]
fn is_full_duplex_and_ends_cleanly_at_end_of_input() {
    // The server greets before reading anything; connect must print the
    // greeting while its stdin is still open.
    let greeter = r#"
        s.sendall(b"greetings\n")
        while True:
            data = s.recv(65536)
            if not data:
                break
            s.sendall(data)
"#;
    let (_server, addr) = python_stream_server(greeter, None);
    let mut client = Proc::spawn("socketkit connect", socketkit(["connect", &addr]), true);
    assert_eq!(
        client.stdout.wait_for("the greeting", |_| true),
        "greetings"
    );
    client.write_stdin(b"ping\n");
    assert_eq!(client.stdout.wait_for("the echo", |_| true), "ping");
    client.write_stdin(b"pong\n");
    assert_eq!(client.stdout.wait_for("the echo", |_| true), "pong");
    client.close_stdin();
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {}", client.stderr.text());
    assert_eq!(client.stdout.text(), "greetings\nping\npong\n");
}

#[test]
fn ends_when_the_peer_closes_even_with_stdin_open() {
    let bye = r#"
        s.sendall(b"one line and gone\n")
"#;
    let (_server, addr) = python_stream_server(bye, None);
    // stdin is a pipe we never write to nor close.
    let mut client = Proc::spawn("socketkit connect", socketkit(["connect", &addr]), true);
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {}", client.stderr.text());
    assert_eq!(client.stdout.text(), "one line and gone\n");
}

#[test]
fn idle_timeout_gives_up_on_a_silent_peer() {
    let silent = r#"
        s.settimeout(None)
        recv_all(s)
"#;
    let (_server, addr) = python_stream_server(silent, None);
    let mut client = Proc::spawn(
        "socketkit connect",
        socketkit(["connect", "--idle-timeout", "300ms", &addr]),
        true,
    );
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(1));
    let stderr = client.stderr.text();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("socketkit: "), "{stderr}");
    assert!(stderr.contains("300ms"), "{stderr}");
    assert!(stderr.contains("(hint: "), "{stderr}");
}

#[test]
fn empty_input_sends_nothing_and_exits_zero() {
    let (_server, addr) = python_stream_server(RECORD, None);
    // The server sees EOF at once and answers with the hex of nothing.
    assert_eq!(text(&connect_ok(&[&addr], b"")), "\n");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    // Like `socketkit connect ... | head -c 10`: the reader has what it
    // wanted, so the broken pipe ends the relay with status 0.
    let (_server, addr) = python_stream_server(ECHO, None);
    let mut child = socketkit(["connect", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..160 {
            if stdin.write_all(&chunk).is_err() {
                return; // connect is gone: expected
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"zzzzzzzzzz");
    drop(stdout);
    let status = wait_child(&mut child, WAIT);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    feeder.join().unwrap();
}

// --- datagrams -------------------------------------------------------------

/// A Python UDP (or Unix datagram) server answering `data.upper()`, or
/// nothing when `silent`.
fn python_datagram_server(unix_path: Option<&str>, silent: bool) -> (Proc, String) {
    let code = r#"
silent = sys.argv[1] == "silent"
if len(sys.argv) > 2:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sys.argv[2])
    out("ready\n")
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    out("%d\n" % s.getsockname()[1])
while True:
    data, peer = s.recvfrom(65536)
    if not silent:
        s.sendto(data.upper(), peer)
"#;
    let mode = if silent { "silent" } else { "upper" };
    let mut args = vec![mode];
    args.extend(unix_path);
    let (proc, line) = spawn_python_server(code, &args);
    let addr = match unix_path {
        Some(path) => format!("unixgram:{path}"),
        None => format!("udp://127.0.0.1:{line}"),
    };
    (proc, addr)
}

#[test]
fn udp_sends_one_datagram_per_line_and_prints_each_reply() {
    let (_server, addr) = python_datagram_server(None, false);
    let out = connect_ok(&[&addr], b"alpha\nbeta\r\ngamma\n");
    assert_eq!(text(&out), "ALPHA\nBETA\nGAMMA\n");
}

#[test]
fn udp_empty_line_is_an_empty_datagram() {
    let (_server, addr) = python_datagram_server(None, false);
    let out = connect_ok(&[&addr], b"a\n\nb\n");
    assert_eq!(text(&out), "A\n\nB\n");
}

#[test]
fn udp_line_mode_skips_empty_lines_and_stops_after_exit() {
    let (_server, addr) = python_datagram_server(None, false);
    let out = connect_ok(&["--line-mode", &addr], b"a\n\nexit\nnever sent\n");
    assert_eq!(text(&out), "A\nEXIT\n");
}

#[test]
fn unixgram_against_a_python_server() {
    let dir = tempdir();
    let path = dir.path().join("py.dgram");
    let (_server, addr) = python_datagram_server(Some(path.to_str().unwrap()), false);
    let out = connect_ok(&[&addr], b"quiet please\n");
    assert_eq!(text(&out), "QUIET PLEASE\n");
}

#[test]
fn udp_without_replies_ends_after_wait() {
    let (_server, addr) = python_datagram_server(None, true);
    let out = connect_ok(&["--wait", "300ms", &addr], b"anyone there?\n");
    assert_eq!(text(&out), "");
}
