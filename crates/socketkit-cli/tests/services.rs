//! The five services of `socketkit serve`, driven by independent clients:
//! Python's `socket` module, OpenBSD nc, and our own `connect`.

use crate::util::*;
use sha2::{Digest, Sha256};

fn nc(port: u16, input: &[u8]) -> Vec<u8> {
    let mut cmd = std::process::Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &port.to_string()]);
    let out = run(cmd, input);
    assert_success("nc -N", &out);
    out.stdout
}

// --- echo ------------------------------------------------------------------

#[test]
fn echo_tcp_python_client_gets_every_byte_back() {
    let server = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    assert!(
        server.addr().starts_with("tcp://127.0.0.1:"),
        "{:?}",
        server.addrs
    );
    let payload = b"hello\x00\xff\r\n world\nno newline at the end";
    assert_eq!(text(&py_roundtrip(server.addr(), payload)), text(payload));
}

#[test]
fn echo_tcp_nc_client() {
    let server = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    let input = b"line one\nline two\n\nlast line\n";
    assert_eq!(text(&nc(server.port(), input)), text(input));
}

#[test]
fn echo_over_udp_with_python_client() {
    let server = Server::start(&["serve", "echo", "udp://127.0.0.1:0"], 1);
    assert!(
        server.addr().starts_with("udp://127.0.0.1:"),
        "{:?}",
        server.addrs
    );
    let code = r#"
s = connect(sys.argv[1])
for payload in [b"ping", b"", b"\x00\xff binary \n", b"x" * 1400]:
    s.send(payload)
    reply = s.recv(65536)
    out(reply.hex() + "\n")
"#;
    let expected: String = [&b"ping"[..], b"", b"\x00\xff binary \n", &[b'x'; 1400]]
        .iter()
        .map(|p| format!("{}\n", hex(p)))
        .collect();
    assert_eq!(text(&python_ok(code, &[server.addr()], b"")), expected);
}

#[test]
fn echo_over_udp_with_our_connect() {
    let server = Server::start(&["serve", "echo", "udp://127.0.0.1:0"], 1);
    let out = run_socketkit(&["connect", server.addr()], b"ping\n");
    assert_success("connect udp", &out);
    assert_eq!(text(&out.stdout), "ping\n");

    let out = run_socketkit(&["connect", server.addr()], b"one\ntwo\nthree\n");
    assert_success("connect udp", &out);
    assert_eq!(text(&out.stdout), "one\ntwo\nthree\n");
}

#[test]
fn echo_over_unix_stream_with_python_client() {
    let dir = tempdir();
    let path = dir.path().join("echo.sock");
    let addr = format!("unix:{}", path.display());
    let server = Server::start(&["serve", "echo", &addr], 1);
    assert_eq!(server.addrs, vec![addr.clone()]);
    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    assert!(
        py_roundtrip(&addr, &payload) == payload,
        "unix echo differs"
    );
}

#[test]
fn echo_over_unix_datagram_with_python_client() {
    let dir = tempdir();
    let path = dir.path().join("echo.dgram");
    let addr = format!("unixgram:{}", path.display());
    let server = Server::start(&["serve", "echo", &addr], 1);
    assert_eq!(server.addrs, vec![addr.clone()]);
    // A Unix datagram client must be bound to a path to be answered.
    let code = r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.settimeout(T)
s.bind(sys.argv[2])
s.connect(sys.argv[1][len("unixgram:"):])
for payload in [b"first", b"\x00\x01\x02\xff", b""]:
    s.send(payload)
    out(s.recv(65536).hex() + "\n")
"#;
    let client = dir.path().join("client.dgram");
    let out = python_ok(code, &[&addr, client.to_str().unwrap()], b"");
    assert_eq!(text(&out), "6669727374\n000102ff\n\n");
}

#[test]
fn echo_unixgram_with_our_connect() {
    let dir = tempdir();
    let addr = format!("unixgram:{}", dir.path().join("e.dgram").display());
    let server = Server::start(&["serve", "echo", &addr], 1);
    let out = run_socketkit(&["connect", server.addr()], b"alpha\nbeta\n");
    assert_success("connect unixgram", &out);
    assert_eq!(text(&out.stdout), "alpha\nbeta\n");
}

#[test]
fn echo_four_mib_of_random_data_python_client() {
    let server = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    let payload = random_bytes(4 << 20, fresh_seed());
    let back = py_roundtrip(server.addr(), &payload);
    assert_eq!(back.len(), payload.len());
    assert_eq!(
        hex(&Sha256::digest(&back)),
        hex(&Sha256::digest(&payload)),
        "SHA-256 of the echo differs"
    );
}

#[test]
fn echo_four_mib_of_random_data_through_our_connect() {
    let server = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    let payload = random_bytes(4 << 20, fresh_seed());
    let out = run_socketkit(&["connect", server.addr()], &payload);
    assert_success("connect", &out);
    assert_eq!(out.stdout.len(), payload.len());
    assert_eq!(
        hex(&Sha256::digest(&out.stdout)),
        hex(&Sha256::digest(&payload)),
        "SHA-256 of the echo differs"
    );
}

#[test]
fn any_host_port_zero_binds_one_port_for_both_families() {
    let server = Server::start(&["serve", "echo", ":0"], 2);
    let port = server.port();
    assert_ne!(port, 0);
    assert_eq!(
        server.addrs,
        vec![
            format!("tcp://[::]:{port}"),
            format!("tcp://0.0.0.0:{port}")
        ]
    );
    let v4 = py_roundtrip(&format!("tcp://127.0.0.1:{port}"), b"over IPv4\n");
    assert_eq!(text(&v4), "over IPv4\n");
    let v6 = py_roundtrip(&format!("tcp://[::1]:{port}"), b"over IPv6\n");
    assert_eq!(text(&v6), "over IPv6\n");
}

#[test]
fn ipv6_loopback() {
    let server = Server::start(&["serve", "echo", "[::1]:0"], 1);
    assert!(
        server.addr().starts_with("tcp://[::1]:"),
        "{:?}",
        server.addrs
    );
    assert_eq!(text(&py_roundtrip(server.addr(), b"six\n")), "six\n");
    let out = run_socketkit(&["connect", server.addr()], b"via connect\n");
    assert_success("connect [::1]", &out);
    assert_eq!(text(&out.stdout), "via connect\n");
}

// --- upper -----------------------------------------------------------------

#[test]
fn upper_is_binary_safe_for_all_256_byte_values() {
    let server = Server::start(&["serve", "upper", "127.0.0.1:0"], 1);
    let payload: Vec<u8> = (0..=255u8).cycle().take(256 * 64).collect();
    let back = py_roundtrip(server.addr(), &payload);
    assert_eq!(back.len(), payload.len());
    for (i, (&sent, &got)) in payload.iter().zip(&back).enumerate() {
        // Python's bytes.upper(): only a-z change.
        let want = if sent.is_ascii_lowercase() {
            sent - 32
        } else {
            sent
        };
        assert_eq!(got, want, "byte {i}: sent {sent:#04x}");
    }
}

#[test]
fn upper_with_nc() {
    let server = Server::start(&["serve", "upper", "127.0.0.1:0"], 1);
    let out = nc(server.port(), "hello World 123, grüße\n".as_bytes());
    assert_eq!(text(&out), "HELLO WORLD 123, GRüßE\n");
}

#[test]
fn upper_over_udp_with_our_connect() {
    let server = Server::start(&["serve", "upper", "udp://127.0.0.1:0"], 1);
    let out = run_socketkit(&["connect", server.addr()], b"shout this\nand this\n");
    assert_success("connect udp", &out);
    assert_eq!(text(&out.stdout), "SHOUT THIS\nAND THIS\n");
}

// --- hello -----------------------------------------------------------------

#[test]
fn hello_dialogue_with_python_client_ends_with_exit() {
    let server = Server::start(&["serve", "hello", "127.0.0.1:0"], 1);
    let code = r#"
s = connect(sys.argv[1])
out(recv_line(s))
s.sendall(b"Alice\n")
out(recv_line(s))
s.sendall(b"\n\r\n\nBob\r\n")      # empty lines are ignored
out(recv_line(s))
s.sendall(b"exit\n")
out(recv_line(s))
rest = recv_all(s)                # the server closes after Bye!
out("EOF after %d more bytes\n" % len(rest))
"#;
    let out = python_ok(code, &[server.addr()], b"");
    assert_eq!(
        text(&out),
        "Welcome!\nHello, Alice!\nHello, Bob!\nBye!\nEOF after 0 more bytes\n"
    );
}

#[test]
fn hello_answers_a_partial_line_after_a_pause() {
    let server = Server::start(&["serve", "hello", "127.0.0.1:0"], 1);
    let code = r#"
s = connect(sys.argv[1])
out(recv_line(s))
s.sendall(b"Michael")             # no newline: the textbook client waits
out(recv_line(s))
"#;
    let out = python_ok(code, &[server.addr()], b"");
    assert_eq!(text(&out), "Welcome!\nHello, Michael!\n");
}

#[test]
fn hello_reports_invalid_utf8_and_keeps_the_connection() {
    let server = Server::start(&["serve", "hello", "127.0.0.1:0"], 1);
    let code = r#"
s = connect(sys.argv[1])
out(recv_line(s))
s.sendall(b"\xff\xfe\xfd\n")
out(recv_line(s))
s.sendall(b"Zo\xc3\xab\n")        # valid UTF-8 afterwards still works
out(recv_line(s))
"#;
    let out = text(&python_ok(code, &[server.addr()], b""));
    let lines: Vec<&str> = out.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert_eq!(lines[0], "Welcome!\n");
    assert!(
        lines[1].starts_with("error:") && lines[1].ends_with('\n'),
        "{out:?}"
    );
    assert_eq!(lines[2], "Hello, Zoë!\n");
}

#[test]
fn hello_rejects_an_overlong_line_and_stays_up() {
    let server = Server::start(&["serve", "hello", "127.0.0.1:0", "--max-line", "16"], 1);
    let code = r#"
s = connect(sys.argv[1])
out(recv_line(s))
s.sendall(b"x" * 100 + b"\n")
out(recv_line(s))
s.sendall(b"abcdefghijklmnop\n")  # exactly 16 bytes is allowed
out(recv_line(s))
s.sendall(b"Carol\n")
out(recv_line(s))
"#;
    let out = text(&python_ok(code, &[server.addr()], b""));
    let lines: Vec<&str> = out.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[0], "Welcome!\n");
    assert!(lines[1].starts_with("error:"), "{out:?}");
    assert_eq!(lines[2], "Hello, abcdefghijklmnop!\n");
    assert_eq!(lines[3], "Hello, Carol!\n");
}

#[test]
fn hello_accepts_crlf_lines_from_our_connect() {
    let server = Server::start(&["serve", "hello", "127.0.0.1:0"], 1);
    let out = run_socketkit(&["connect", server.addr()], b"Ann\r\nexit\r\n");
    assert_success("connect", &out);
    assert_eq!(text(&out.stdout), "Welcome!\nHello, Ann!\nBye!\n");
}

#[test]
fn hello_with_nc() {
    let server = Server::start(&["serve", "hello", "127.0.0.1:0"], 1);
    let out = nc(server.port(), b"Alice\nexit\n");
    assert_eq!(text(&out), "Welcome!\nHello, Alice!\nBye!\n");
}

#[test]
fn hello_serves_200_concurrent_clients_each_their_own_name() {
    let server = Server::start(&["serve", "hello", "127.0.0.1:0"], 1);
    let code = r#"
N = 200
barrier = threading.Barrier(N, timeout=T)
results = [None] * N
def client(i):
    try:
        s = connect(sys.argv[1])
        welcome = recv_line(s)
        barrier.wait()            # all N connected and greeted at once
        s.sendall(b"client-%d\n" % i)
        results[i] = welcome + recv_line(s)
        s.close()
    except Exception as e:
        results[i] = ("%d failed: %r\n" % (i, e)).encode()
threads = [threading.Thread(target=client, args=(i,)) for i in range(N)]
for t in threads: t.start()
for t in threads: t.join()
for r in results: out(r)
"#;
    let out = text(&python_ok(code, &[server.addr()], b""));
    let expected: String = (0..200)
        .map(|i| format!("Welcome!\nHello, client-{i}!\n"))
        .collect();
    assert_eq!(out, expected);
}

// --- discard ---------------------------------------------------------------

#[test]
fn discard_reads_everything_and_answers_nothing() {
    let server = Server::start(&["serve", "discard", "127.0.0.1:0"], 1);
    let payload = random_bytes(1 << 20, 7);
    let back = py_roundtrip(server.addr(), &payload);
    assert_eq!(back.len(), 0);
    assert_eq!(text(&nc(server.port(), b"into the void\n")), "");
}

#[test]
fn discard_over_udp_sends_no_reply() {
    let server = Server::start(&["serve", "discard", "udp://127.0.0.1:0"], 1);
    // No reply is owed an answer, so connect ends after --wait.
    let out = run_socketkit(&["connect", "--wait", "200ms", server.addr()], b"x\n");
    assert_success("connect udp", &out);
    assert_eq!(text(&out.stdout), "");
}

// --- daytime ---------------------------------------------------------------

/// `Sat, 21 Nov 2026 22:55:52 GMT\r\n`: RFC 7231 IMF-fixdate plus CRLF.
fn assert_daytime_line(line: &str) {
    assert!(line.ends_with(" GMT\r\n"), "{line:?}");
    assert_eq!(line.len(), 31, "{line:?}");
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
    let b = line.as_bytes();
    assert!(
        b[..3].iter().all(u8::is_ascii_alphabetic) && &b[3..5] == b", ",
        "{line:?}"
    );
    assert!(b[5..7].iter().all(u8::is_ascii_digit), "{line:?}");
    assert_eq!(b[19], b':', "{line:?}");
    assert_eq!(b[22], b':', "{line:?}");
}

#[test]
fn daytime_sends_one_line_then_closes() {
    let server = Server::start(&["serve", "daytime", "127.0.0.1:0"], 1);
    let code = r#"
s = connect(sys.argv[1])
data = recv_all(s)                 # ends because the server closes
out(data)
"#;
    let out = text(&python_ok(code, &[server.addr()], b""));
    assert_daytime_line(&out);
    // The date is today's (a sanity check of the clock, not of speed).
    let check = r#"
import email.utils, datetime
when = email.utils.parsedate_to_datetime(sys.argv[2].strip())
now = datetime.datetime.now(datetime.timezone.utc)
out("ok\n" if abs((now - when).total_seconds()) < 3600 else "off: %s\n" % when)
"#;
    assert_eq!(text(&python_ok(check, &["", &out], b"")), "ok\n");
    let nc_out = text(&nc(server.port(), b""));
    assert_daytime_line(&nc_out);
}

#[test]
fn daytime_over_udp() {
    let server = Server::start(&["serve", "daytime", "udp://127.0.0.1:0"], 1);
    let code = r#"
s = connect(sys.argv[1])
s.send(b"what time is it?")
out(s.recv(65536))
"#;
    assert_daytime_line(&text(&python_ok(code, &[server.addr()], b"")));
}
