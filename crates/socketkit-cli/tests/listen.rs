//! `socketkit listen` (nc -l) and `-x/--hexdump`, against peers that are not
//! ours: `socketkit connect`, nc, Python sockets, `openssl s_client`, and the
//! real `hexdump -C` for the dump format.

use std::fs::File;
use std::process::{Child, Command, Stdio};

use crate::util::*;
use sha2::{Digest, Sha256};

/// A `socketkit listen` whose stdin is a file (or a pipe) and whose stdout
/// and stderr go to files, as in `socketkit listen 9000 > file`.
struct Listening {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Listening {
    fn start(args: &[&str], stdin: Stdio) -> Listening {
        let dir = tempdir();
        let mut cmd = socketkit(["listen"]);
        cmd.args(args)
            .stdin(stdin)
            .stdout(File::create(dir.path().join("out")).unwrap())
            .stderr(File::create(dir.path().join("err")).unwrap());
        let child = cmd.spawn().unwrap();
        let err = dir.path().join("err");
        // Polled: the only signal of readiness is the line in the file.
        let announced = || {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            text.lines()
                .find_map(|l| l.strip_prefix("listening on "))
                .map(str::to_owned)
        };
        wait_until("the `listening on` line on stderr", || {
            announced().is_some()
        });
        let addr = announced().unwrap();
        Listening { child, dir, addr }
    }

    fn port(&self) -> String {
        port_of(&self.addr).to_string()
    }

    fn wait(&mut self) -> i32 {
        let status = wait_child(&mut self.child, RUN_LIMIT);
        status
            .code()
            .unwrap_or_else(|| panic!("listen died of a signal; stderr: {}", self.stderr()))
    }

    fn stdout(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("out")).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err")).unwrap()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `socketkit listen ARGS` with piped stdin, stdout and stderr, once it
/// announced its address (returned).
fn spawn_listen(args: &[&str]) -> (Proc, String) {
    let mut all = vec!["listen"];
    all.extend_from_slice(args);
    let listen = Proc::spawn(&all.join(" "), socketkit(&all), true);
    let line = listen.stderr.wait_for("listening on", |_| true);
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected stderr line {line:?}"))
        .to_owned();
    (listen, addr)
}

fn file_with(dir: &std::path::Path, name: &str, data: &[u8]) -> File {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    File::open(path).unwrap()
}

fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

#[test]
fn a_file_from_socketkit_connect_arrives_byte_exact_and_stdout_stays_clean() {
    let data = random_bytes(1 << 20, fresh_seed());
    let mut listen = Listening::start(&["0"], Stdio::null());
    assert!(
        listen.addr.starts_with("tcp://127.0.0.1:"),
        "{}",
        listen.addr
    );
    let out = run_socketkit(&["connect", &listen.addr], &data);
    assert_success("socketkit connect", &out);
    assert_eq!(listen.wait(), 0, "stderr: {}", listen.stderr());
    assert_eq!(sha(&listen.stdout()), sha(&data));
    // Only the announcement on stderr, nothing but data on stdout.
    assert_eq!(listen.stderr(), format!("listening on {}\n", listen.addr));
}

#[test]
fn nc_half_closing_first_does_not_cut_our_stdin_short() {
    // nc sends a small file and its FIN at once; we are still sending 4 MiB
    // from stdin, which must all arrive (the old nc-style relay stopped at
    // the peer's FIN).
    let dir = tempdir();
    let ours = random_bytes(4 << 20, fresh_seed());
    let theirs = random_bytes(10_000, fresh_seed());
    let stdin = file_with(dir.path(), "ours", &ours);
    let mut listen = Listening::start(&["0"], stdin.into());
    let mut nc = Command::new("nc");
    nc.args(["-N", "127.0.0.1", &listen.port()]);
    let out = run(nc, &theirs);
    assert_success("nc -N", &out);
    assert_eq!(listen.wait(), 0, "stderr: {}", listen.stderr());
    assert_eq!(sha(&listen.stdout()), sha(&theirs));
    assert_eq!(out.stdout.len(), ours.len());
    assert_eq!(sha(&out.stdout), sha(&ours));
}

#[test]
fn our_eof_half_closes_and_the_reply_that_follows_is_printed() {
    let dir = tempdir();
    let stdin = file_with(dir.path(), "q", b"question\n");
    let mut listen = Listening::start(&["0"], stdin.into());
    // Answers only after our FIN, then closes.
    let client = r#"
s = connect(sys.argv[1])
got = recv_all(s)
s.sendall(b"after your eof: " + got)
s.close()
"#;
    python_ok(client, &[&listen.addr], b"");
    assert_eq!(listen.wait(), 0, "stderr: {}", listen.stderr());
    assert_eq!(text(&listen.stdout()), "after your eof: question\n");
}

#[test]
fn keep_open_serves_connections_in_turn_and_stdin_goes_to_the_current_one() {
    let (mut listen, addr) = spawn_listen(&["-k", "0"]);
    let once = r#"
s = connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
if len(sys.argv) > 3:
    out(recv_line(s))
s.shutdown(socket.SHUT_WR)
recv_all(s)
"#;
    python_ok(once, &[&addr, "first"], b"");
    assert_eq!(listen.stdout.wait_for("first", |_| true), "first");
    let mut second = spawn_python(once, &[&addr, "second", "read"]);
    assert_eq!(listen.stdout.wait_for("second", |_| true), "second");
    listen.write_stdin(b"to the second\n");
    assert_eq!(
        second.stdout.wait_for("our line", |_| true),
        "to the second"
    );
    assert_eq!(second.wait_exit().code(), Some(0));
    sigterm(listen.pid());
    assert_eq!(
        listen.wait_exit().code(),
        Some(0),
        "{}",
        listen.stderr.text()
    );
    assert_eq!(listen.stdout.text(), "first\nsecond\n");
}

#[test]
fn a_reset_exits_1_with_one_line() {
    let (mut listen, addr) = spawn_listen(&["0"]);
    let reset = r#"
import struct
s = connect(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"#;
    python_ok(reset, &[&addr], b"");
    assert_eq!(listen.wait_exit().code(), Some(1));
    let stderr = listen.stderr.text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[1].starts_with("socketkit: connection from 127.0.0.1:"),
        "{stderr}"
    );
    assert!(lines[1].contains("reset"), "{stderr}");
}

#[test]
fn allow_refuses_a_peer_from_127_0_0_2_and_serves_127_0_0_1() {
    let mut listen = Listening::start(&["--allow", "127.0.0.1", "-v", "0"], Stdio::null());
    let from = r#"
s = socket.socket()
s.settimeout(T)
s.bind((sys.argv[2], 0))
s.connect(("127.0.0.1", int(sys.argv[1])))
# A refused peer is closed at once: any step may meet the reset.
try:
    s.sendall(sys.argv[2].encode() + b"\n")
    s.shutdown(socket.SHUT_WR)
    got = recv_all(s)
except OSError:
    got = b""
out(b"closed\n" if got == b"" else got)
"#;
    let port = listen.port();
    assert_eq!(
        text(&python_ok(from, &[&port, "127.0.0.2"], b"")),
        "closed\n"
    );
    python_ok(from, &[&port, "127.0.0.1"], b"");
    assert_eq!(listen.wait(), 0, "stderr: {}", listen.stderr());
    // The refused peer's bytes never reached stdout.
    assert_eq!(text(&listen.stdout()), "127.0.0.1\n");
    let stderr = listen.stderr();
    assert!(
        stderr.contains("127.0.0.2"),
        "-v logs the refusal: {stderr}"
    );
    assert!(
        stderr.contains("bytes_in=10"),
        "-v logs the bytes: {stderr}"
    );
}

#[test]
fn tls_with_openssl_s_client() {
    let dir = tempdir();
    let mut cmd = socketkit(["listen", "--self-signed", "tls://127.0.0.1:0"]);
    cmd.env("XDG_CONFIG_HOME", dir.path());
    let mut listen = Proc::spawn("socketkit listen tls", cmd, true);
    let addr = listen.stderr.wait_for("listening on", |_| true);
    let fingerprint = listen.stderr.wait_for("fingerprint", |_| true);
    assert!(
        fingerprint.starts_with("fingerprint sha256:"),
        "{fingerprint}"
    );
    let port = port_of(addr.strip_prefix("listening on ").unwrap());
    let mut s_client = Command::new("openssl");
    s_client.args([
        "s_client",
        "-quiet",
        "-connect",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut s_client = Proc::spawn("openssl s_client", s_client, true);
    // Each side speaks in turn: s_client ends as soon as we close, so our
    // stdin waits for its line.
    s_client.write_stdin(b"hello over tls\n");
    assert_eq!(
        listen.stdout.wait_for("its line", |_| true),
        "hello over tls"
    );
    listen.write_stdin(b"reply over tls\n");
    listen.close_stdin();
    assert_eq!(
        s_client.stdout.wait_for("our line", |_| true),
        "reply over tls"
    );
    assert_eq!(
        listen.wait_exit().code(),
        Some(0),
        "{}",
        listen.stderr.text()
    );
    assert_eq!(listen.stdout.text(), "hello over tls\n");
    assert_eq!(
        listen.stderr.text().lines().count(),
        2,
        "{}",
        listen.stderr.text()
    );
}

// --- -x/--hexdump ------------------------------------------------------------

/// `hexdump -C` of `data`, without its closing offset line.
fn real_hexdump(data: &[u8]) -> String {
    let mut hexdump = Command::new("hexdump");
    hexdump.arg("-C").env("LC_ALL", "C");
    let out = run(hexdump, data);
    assert_success("hexdump -C", &out);
    let text = text(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn connect_hexdump_matches_hexdump_c_byte_for_byte() {
    // Every byte value, in an order with no two equal 16-byte lines (which
    // hexdump would collapse into `*`).
    let mut data: Vec<u8> = (0..=255u8).collect();
    data.extend_from_slice(b"hello, world\n\t\x7f\x80tail");
    let echo = r#"
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
out("%d\n" % l.getsockname()[1])
c, _ = l.accept()
c.sendall(recv_all(c))
c.close()
"#;
    let (_server, port) = spawn_python_server(echo, &[]);
    let addr = format!("tcp://127.0.0.1:{port}");
    let dir = tempdir();
    let dump = dir.path().join("dump");
    let out = run_socketkit(
        &["connect", "--hexdump-file", dump.to_str().unwrap(), &addr],
        &data,
    );
    assert_success("socketkit connect -x", &out);
    assert_eq!(out.stdout, data, "dumping changed the bytes");
    let dumped = std::fs::read_to_string(&dump).unwrap();
    let sent = format!("> {} bytes to {addr}\n{}", data.len(), real_hexdump(&data));
    assert!(
        dumped.starts_with(&sent),
        "dump:\n{dumped}\nwanted first:\n{sent}"
    );
    // The echo may come back in several chunks; their sizes add up, with
    // the offsets running on per direction.
    let received: usize = dumped
        .lines()
        .filter_map(|l| l.strip_prefix("< "))
        .map(|l| {
            assert!(l.ends_with(&format!(" bytes from {addr}")), "{l}");
            l.split(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(received, data.len());
}

#[test]
fn a_mebibyte_through_listen_with_hexdump_arrives_byte_exact() {
    let data = random_bytes(1 << 20, fresh_seed());
    let mut listen = Listening::start(&["-x", "0"], Stdio::null());
    let out = run_socketkit(&["connect", &listen.addr], &data);
    assert_success("socketkit connect", &out);
    assert_eq!(listen.wait(), 0);
    assert_eq!(sha(&listen.stdout()), sha(&data));
    let dump = listen.stderr();
    let mut dumped = 0;
    let mut next_offset = 0usize;
    for line in dump.lines() {
        if let Some(header) = line.strip_prefix("< ") {
            dumped += header.split(' ').next().unwrap().parse::<usize>().unwrap();
        } else if line.len() > 8 && line.as_bytes()[8] == b' ' && !line.starts_with("listening") {
            // Offsets run on across chunks, never backwards.
            let offset = usize::from_str_radix(&line[..8], 16).unwrap();
            assert!(offset >= next_offset, "{line}");
            next_offset = offset;
        }
    }
    assert_eq!(dumped, data.len());
}

#[test]
fn udp_prints_every_datagram_and_sends_stdin_lines_to_the_latest_sender() {
    let dir = tempdir();
    let dump = dir.path().join("dump");
    let (mut listen, addr) = spawn_listen(&[
        "--hexdump-file",
        dump.to_str().unwrap(),
        "udp://127.0.0.1:0",
    ]);
    // Two clients; each line we type goes to whoever sent last. `a`'s first
    // datagram received is the second line: the first went to `b` only.
    let clients = r#"
target = parse(sys.argv[1])[2]
a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
for s in (a, b):
    s.settimeout(T)
    s.bind(("127.0.0.1", 0))
a.sendto(b"from a\n", target)
b.sendto(b"from b\n", target)
out(b"b got " + b.recv(65536) + b"\n")
a.sendto(b"a again", target)
out(b"a got " + a.recv(65536) + b"\n")
"#;
    let mut py = spawn_python(clients, &[&addr]);
    assert_eq!(listen.stdout.wait_for("from a", |_| true), "from a");
    assert_eq!(listen.stdout.wait_for("from b", |_| true), "from b");
    listen.write_stdin(b"to the latest\n");
    assert_eq!(
        py.stdout.wait_for("b's line", |_| true),
        "b got to the latest"
    );
    assert_eq!(listen.stdout.wait_for("a again", |_| true), "a again");
    listen.write_stdin(b"now to a\n");
    assert_eq!(py.stdout.wait_for("a's line", |_| true), "a got now to a");
    assert_eq!(py.wait_exit().code(), Some(0), "{}", py.stderr.text());
    sigterm(listen.pid());
    assert_eq!(
        listen.wait_exit().code(),
        Some(0),
        "{}",
        listen.stderr.text()
    );
    // A datagram without a line ending is printed on a line of its own.
    assert_eq!(listen.stdout.text(), "from a\nfrom b\na again\n");
    // -x: one chunk per datagram each way, each from offset 0.
    let dumped = std::fs::read_to_string(&dump).unwrap();
    let headers: Vec<&str> = dumped
        .lines()
        .filter(|l| l.starts_with("< ") || l.starts_with("> "))
        .map(|l| l.split(" 127.0.0.1:").next().unwrap())
        .collect();
    assert_eq!(
        headers,
        [
            "< 7 bytes from",
            "< 7 bytes from",
            "> 13 bytes to",
            "< 7 bytes from",
            "> 8 bytes to"
        ],
        "{dumped}"
    );
    assert!(dumped.contains(&real_hexdump(b"now to a")), "{dumped}");
}

#[test]
fn stream_and_datagram_addresses_together_are_refused() {
    let out = run_socketkit(&["listen", "tcp://127.0.0.1:0", "udp://127.0.0.1:0"], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("not both"), "{line}");
}

#[test]
fn unix_stream_and_unixgram() {
    let dir = tempdir();
    let path = dir.path().join("l.sock");
    let addr = format!("unix:{}", path.display());
    let mut listen = Listening::start(&[&addr], Stdio::null());
    assert_eq!(listen.addr, addr);
    let out = run_socketkit(&["connect", &addr], b"over a unix socket\n");
    assert_success("socketkit connect", &out);
    assert_eq!(listen.wait(), 0, "stderr: {}", listen.stderr());
    assert_eq!(text(&listen.stdout()), "over a unix socket\n");

    let gram = format!("unixgram:{}", dir.path().join("g.sock").display());
    let (mut listen, _) = spawn_listen(&[&gram]);
    // A named client socket: an unnamed one could not be answered.
    let client = r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.settimeout(T)
s.bind(sys.argv[2])
s.sendto(b"ping", parse(sys.argv[1])[2])
out(s.recv(65536) + b"\n")
"#;
    let me = dir.path().join("c.sock");
    let mut py = spawn_python(client, &[&gram, me.to_str().unwrap()]);
    assert_eq!(listen.stdout.wait_for("ping", |_| true), "ping");
    listen.write_stdin(b"pong\n");
    assert_eq!(py.stdout.wait_for("pong", |_| true), "pong");
    assert_eq!(py.wait_exit().code(), Some(0));
    sigterm(listen.pid());
    assert_eq!(
        listen.wait_exit().code(),
        Some(0),
        "{}",
        listen.stderr.text()
    );
}

#[test]
fn idle_timeout_gives_up_on_a_silent_peer_with_one_line() {
    let (mut listen, addr) = spawn_listen(&["--idle-timeout", "300ms", "0"]);
    // Connects, says nothing, and waits for us to give up.
    let silent = Proc::spawn(
        "python3",
        python_cmd("s = connect(sys.argv[1])\nrecv_all(s)\n", &[&addr]),
        true,
    );
    assert_eq!(listen.wait_exit().code(), Some(1));
    let stderr = listen.stderr.text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[1].starts_with("socketkit: connection from "),
        "{stderr}"
    );
    assert!(lines[1].contains("300ms"), "{stderr}");
    drop(silent);
}

#[test]
fn minus_4_and_minus_6_bind_one_family_only() {
    // `:0` is `0.0.0.0` and `[::]` (IPV6_V6ONLY) on one port; each flag
    // keeps one of them, and a loopback peer of the other family finds
    // nothing there.
    for (flag, announced, bound, other) in [
        ("-4", "0.0.0.0", "127.0.0.1", "[::1]"),
        ("-6", "[::]", "[::1]", "127.0.0.1"),
    ] {
        let mut listen = Listening::start(&[flag, ":0"], Stdio::null());
        let port = listen.port();
        let lines: Vec<String> = listen
            .stderr()
            .lines()
            .filter_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
            .collect();
        assert_eq!(lines, [format!("tcp://{announced}:{port}")], "{flag}");
        let refused = std::net::TcpStream::connect(format!("{other}:{port}"));
        assert!(refused.is_err(), "{flag}: nothing listens on {other}");
        let out = run_socketkit(&["connect", &format!("{bound}:{port}")], b"hi\n");
        assert_success("socketkit connect", &out);
        assert_eq!(listen.wait(), 0);
        assert_eq!(listen.stdout(), b"hi\n");
    }
    // An address of the other family is a one-line error.
    let out = run(socketkit(["listen", "-6", "127.0.0.1:0"]), b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("no IPv6 address"), "{line}");
}
