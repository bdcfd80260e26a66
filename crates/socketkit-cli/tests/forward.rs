//! `serve forward` end to end: nc, socat, Python, openssl and curl as
//! clients and targets on loopback; half-close each way, TLS termination and
//! origination, Unix sockets, an unreachable target, SIGTERM mid-transfer.

// Only its nginx harness is used here.
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Instant;

use crate::util::http::{Nginx, COUNTING_SITE};
use crate::util::{
    assert_echoed, py_roundtrip, python_ok, random_bytes, run, socketkit, spawn_python_server,
    Ending, Proc, Server, WAIT,
};

/// `serve forward ADDR --to TARGET [EXTRA...]` with -v, once it listens.
fn forward(listen: &str, target: &str, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "forward", listen, "--to", target, "-v"];
    args.extend_from_slice(extra);
    Server::start(&args, 1)
}

/// A plain TCP client of `fwd` whose reads give up after [`WAIT`].
fn client(fwd: &Server) -> TcpStream {
    let s = TcpStream::connect(crate::util::host_port(fwd.addr())).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn echo() -> Server {
    Server::start(&["serve", "echo", "tcp://127.0.0.1:0"], 1)
}

/// A Python target that reads to EOF, then answers with what it read
/// reversed and closes: only a FIN passed through the forward ends its read.
const REPLY_AFTER_EOF: &str = r#"
l, c = accept_one()
data = recv_all(c)
c.sendall(b"got " + data[::-1])
c.close()
"#;

/// A Python target that speaks first and half-closes, then reads to EOF
/// and prints what it read: the client can still send after its FIN.
const SPEAK_FIRST_THEN_LISTEN: &str = r#"
l, c = accept_one()
c.sendall(b"banner\n")
c.shutdown(socket.SHUT_WR)
print(recv_all(c).decode(), flush=True)
c.close()
"#;

#[test]
fn python_nc_and_socat_through_a_forward_to_echo() {
    let target = echo();
    let fwd = forward("tcp://127.0.0.1:0", target.addr(), &[]);
    let payload = random_bytes(3 * 1024 * 1024 + 17, 13);
    assert_echoed(fwd.addr(), &payload, Ending::HalfClose, "3 MiB byte-exact");

    let mut nc = Command::new("nc");
    nc.args(["-N", "127.0.0.1", &fwd.port().to_string()]);
    let out = run(nc, b"via nc\n");
    assert_eq!(out.stdout, b"via nc\n");

    let mut socat = Command::new("socat");
    socat.args(["-", &format!("TCP:127.0.0.1:{}", fwd.port())]);
    let out = run(socat, b"via socat\n");
    assert_eq!(out.stdout, b"via socat\n");
    // The line is logged as the forward winds down, which may be just
    // after socat has its echo: wait for it.
    crate::util::wait_until("-v to log the socat forward with bytes each way", || {
        let log = fwd.stderr();
        log.contains("forward ended")
            && log.contains("to_target=10")
            && log.contains("to_client=10")
    });
}

#[test]
fn socat_as_the_target_and_nc_as_the_client() {
    let port = crate::util::free_port();
    let mut cmd = Command::new("socat");
    cmd.args([
        "-T",
        "10",
        &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
        "SYSTEM:tr a-z A-Z",
    ]);
    let _socat = Proc::spawn("socat", cmd, false);
    crate::util::wait_until("socat listening", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let fwd = forward("tcp://127.0.0.1:0", &format!("tcp://127.0.0.1:{port}"), &[]);
    let mut nc = Command::new("nc");
    nc.args(["-N", "127.0.0.1", &fwd.port().to_string()]);
    let out = run(nc, b"shout\n");
    assert_eq!(crate::util::text(&out.stdout), "SHOUT\n");
}

#[test]
fn half_close_passes_through_the_forward_client_first() {
    let (_target, port) = spawn_python_server(REPLY_AFTER_EOF, &[]);
    let fwd = forward("tcp://127.0.0.1:0", &format!("tcp://127.0.0.1:{port}"), &[]);
    // The client half-closes and still reads the reply sent after its FIN.
    let mut s = client(&fwd);
    s.write_all(b"abc").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(crate::util::text(&reply), "got cba");
}

#[test]
fn half_close_passes_through_the_forward_target_first() {
    let (target, port) = spawn_python_server(SPEAK_FIRST_THEN_LISTEN, &[]);
    let fwd = forward("tcp://127.0.0.1:0", &format!("tcp://127.0.0.1:{port}"), &[]);
    let mut s = client(&fwd);
    // The target's FIN arrives as end of stream...
    let mut banner = Vec::new();
    s.read_to_end(&mut banner).unwrap();
    assert_eq!(banner, b"banner\n");
    // ...and our direction stays open: what we send after it still arrives.
    s.write_all(b"still talking").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    target
        .stdout
        .wait_for("the target to read our bytes after its FIN", |l| {
            l == "still talking"
        });
}

#[test]
fn an_unreachable_target_closes_the_client_at_once_and_is_logged() {
    let dead = crate::util::free_port();
    let fwd = forward("tcp://127.0.0.1:0", &format!("tcp://127.0.0.1:{dead}"), &[]);
    let mut s = client(&fwd);
    let started = Instant::now();
    let mut got = Vec::new();
    // End of stream (or a reset), not a read timeout.
    let result = s.read_to_end(&mut got);
    assert!(
        result.is_ok()
            || result
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{result:?}"
    );
    assert!(
        started.elapsed() < WAIT / 2,
        "closed after {:?}",
        started.elapsed()
    );
    assert!(got.is_empty());
    fwd.proc.stderr.wait_for("the reason in the log", |l| {
        l.contains(&format!("cannot connect to tcp://127.0.0.1:{dead}")) && l.contains("refused")
    });
}

#[test]
fn tls_termination_in_front_of_a_plaintext_echo_with_openssl() {
    let config = crate::util::tempdir();
    let target = echo();
    let mut cmd = socketkit([
        "serve",
        "forward",
        "tls://127.0.0.1:0",
        "--self-signed",
        "--to",
        target.addr(),
    ]);
    cmd.env("XDG_CONFIG_HOME", config.path());
    let fwd = Server::start_command(cmd, 1);
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        crate::util::host_port(fwd.addr()),
        "-quiet",
    ]);
    let mut client = Proc::spawn("openssl s_client", cmd, true);
    client.write_stdin(b"terminated here\n");
    client
        .stdout
        .wait_for("the echo through the TLS forward", |l| {
            l == "terminated here"
        });
}

#[test]
fn a_tls_target_is_verified_by_pin_and_a_wrong_pin_is_refused() {
    let config = crate::util::tempdir();
    let mut cmd = socketkit(["serve", "upper", "tls://127.0.0.1:0", "--self-signed"]);
    cmd.env("XDG_CONFIG_HOME", config.path());
    let target = Proc::spawn("serve upper tls", cmd, false);
    let addr = target
        .stdout
        .wait_for("the listening line", |l| {
            l.starts_with("listening on tls://")
        })
        .trim_start_matches("listening on ")
        .to_owned();
    let pin = target
        .stdout
        .wait_for("the fingerprint", |l| l.starts_with("fingerprint sha256:"))
        .trim_start_matches("fingerprint ")
        .to_owned();
    let fwd = forward("tcp://127.0.0.1:0", &addr, &["--to-pin", &pin]);
    assert_eq!(py_roundtrip(fwd.addr(), b"wrap me\n"), b"WRAP ME\n");

    let wrong = format!("sha256:{}", "00".repeat(32));
    let fwd = forward("tcp://127.0.0.1:0", &addr, &["--to-pin", &wrong]);
    assert_eq!(
        py_roundtrip(fwd.addr(), b"wrap me\n"),
        b"",
        "nothing through a wrong pin"
    );
    fwd.proc.stderr.wait_for("the refusal", |l| {
        l.contains("connection failed") && l.contains("tls://")
    });
}

#[test]
fn unix_socket_to_tcp_and_tcp_to_unix_socket() {
    let dir = crate::util::tempdir();
    let target = echo();
    let sock = dir.path().join("in.sock");
    let unix_in = forward(&format!("unix:{}", sock.display()), target.addr(), &[]);
    assert_eq!(py_roundtrip(unix_in.addr(), b"over unix\n"), b"over unix\n");
    let tcp_in = forward("tcp://127.0.0.1:0", unix_in.addr(), &[]);
    assert_eq!(
        py_roundtrip(tcp_in.addr(), b"tcp, unix, tcp\n"),
        b"tcp, unix, tcp\n"
    );
}

#[test]
fn sigterm_mid_transfer_loses_nothing() {
    let target = echo();
    let fwd = forward("tcp://127.0.0.1:0", target.addr(), &[]);
    // The client sends a first MiB and reads its echo (so the forward is
    // mid-connection), signals the forward, then sends 20 MiB more: the
    // drain delivers every byte both ways before the forward exits.
    let code = r#"
import os, signal, hashlib
s = connect(sys.argv[1])
first = os.urandom(1 << 20)
s.sendall(first)
got = b""
while len(got) < len(first):
    b = s.recv(65536)
    if not b:
        raise SystemExit("closed early")
    got += b
os.kill(int(sys.argv[2]), signal.SIGTERM)
rest = os.urandom(20 << 20)
def send():
    s.sendall(rest)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got += recv_all(s)
t.join()
print(got == first + rest, len(got))
"#;
    let out = python_ok(code, &[fwd.addr(), &fwd.pid().to_string()], b"");
    assert_eq!(crate::util::text(&out), format!("True {}\n", 21 << 20));
    let mut fwd = fwd;
    assert_eq!(fwd.exit_code(), 0);
}

#[test]
fn access_lists_apply_to_the_forward() {
    let target = echo();
    let fwd = forward("tcp://127.0.0.1:0", target.addr(), &["--deny", "127.0.0.1"]);
    let mut s = client(&fwd);
    let _ = s.write_all(b"let me in\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "a refused peer gets nothing: {got:?}");
    fwd.proc
        .stderr
        .wait_for("the refusal", |l| l.contains("refused by the access list"));
    assert!(!fwd.stderr().contains("forward ended"), "{}", fwd.stderr());
}

#[test]
fn bad_forward_command_lines_are_one_line_errors() {
    for (args, needle) in [
        (&["serve", "forward", "tcp://127.0.0.1:0"][..], "--to"),
        (
            &[
                "serve",
                "forward",
                "tcp://127.0.0.1:0",
                "--to",
                "udp://127.0.0.1:1",
            ][..],
            "datagram",
        ),
        (
            &[
                "serve",
                "forward",
                "tcp://127.0.0.1:0",
                "--to",
                "tcp://127.0.0.1:1",
                "--to-insecure",
            ][..],
            "tls:// target",
        ),
    ] {
        let out = run(socketkit(args), b"");
        let line = crate::util::assert_one_error_line(&out, 1);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
    // Another service's flag is a usage error naming the service.
    let args = [
        "serve",
        "echo",
        "tcp://127.0.0.1:0",
        "--to",
        "tcp://127.0.0.1:1",
    ];
    let out = run(socketkit(args), b"");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--to belongs to `serve forward`"),
        "{stderr}"
    );
}

/// nginx behind a forward: curl's keep-alive (two requests on one
/// connection) and a 200 MiB body byte-exact.
#[test]
fn curl_through_a_forward_to_nginx() {
    let nginx = Nginx::start(COUNTING_SITE, |dir| {
        let data = random_bytes(200 << 20, 7);
        std::fs::write(dir.join("www/big.bin"), data).unwrap();
    });
    let fwd = forward(
        "tcp://127.0.0.1:0",
        &format!("tcp://127.0.0.1:{}", nginx.ports[0]),
        &[],
    );
    let base = format!("http://127.0.0.1:{}", fwd.port());
    let mut curl = Command::new("curl");
    curl.args(["-sS", &format!("{base}/conn"), &format!("{base}/conn")]);
    let out = run(curl, b"");
    assert_eq!(crate::util::text(&out.stdout), "requests=1\nrequests=2\n");

    let dir = crate::util::tempdir();
    let copy = dir.path().join("big.bin");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-o"])
        .arg(&copy)
        .arg(format!("{base}/big.bin"));
    let out = crate::util::run_with(curl, b"", crate::util::RUN_LIMIT * 4);
    crate::util::assert_success("curl", &out);
    let got = std::fs::read(&copy).unwrap();
    assert!(
        got == std::fs::read(nginx.www().join("big.bin")).unwrap(),
        "200 MiB byte-exact through the forward ({} bytes)",
        got.len()
    );
}

#[test]
fn every_mode_forwards() {
    let target = echo();
    for mode in ["threads", "sequential"] {
        let fwd = forward("tcp://127.0.0.1:0", target.addr(), &["--mode", mode]);
        let payload = random_bytes(256 * 1024, 5);
        assert_echoed(
            fwd.addr(),
            &payload,
            Ending::HalfClose,
            &format!("--mode {mode}"),
        );
    }
}

#[test]
fn an_idle_forward_is_closed_after_the_idle_timeout_on_both_sides() {
    let (target, port) = spawn_python_server(SPEAK_FIRST_THEN_LISTEN, &[]);
    let fwd = forward(
        "tcp://127.0.0.1:0",
        &format!("tcp://127.0.0.1:{port}"),
        &["--idle-timeout", "300ms"],
    );
    // The target half-closes after its banner and then waits for us; we
    // send nothing: the forward gives up on both and the target sees EOF.
    let mut s = client(&fwd);
    let started = Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(got, b"banner\n");
    target
        .stdout
        .wait_for("the target to see the forward close", |l| l.is_empty());
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}

#[test]
fn hexdump_labels_both_legs_and_changes_nothing() {
    let target = echo();
    let dir = crate::util::tempdir();
    let file = dir.path().join("dump.txt");
    let fwd = forward(
        "tcp://127.0.0.1:0",
        target.addr(),
        &["--hexdump-file", file.to_str().unwrap()],
    );
    assert_eq!(py_roundtrip(fwd.addr(), b"hello\n"), b"hello\n");
    let to = target.addr().to_owned();
    let dump = || std::fs::read_to_string(&file).unwrap_or_default();
    crate::util::wait_until("four chunks in the dump", || {
        dump().lines().filter(|l| l.contains(" 6 bytes ")).count() == 4
    });
    let dump = dump();
    for header in [format!("> 6 bytes to {to}"), format!("< 6 bytes from {to}")] {
        assert!(dump.contains(&header), "{header} in\n{dump}");
    }
    assert!(dump.contains("< 6 bytes from 127.0.0.1:"), "{dump}");
    assert!(dump.contains("> 6 bytes to 127.0.0.1:"), "{dump}");
    assert!(
        dump.lines()
            .filter(|l| l.starts_with("00000000  68 65 6c 6c 6f 0a ") && l.ends_with(" |hello.|"))
            .count()
            == 4,
        "{dump}"
    );
}

/// A Python UDP server that answers each datagram with the port it came
/// from and the payload, so each client can tell its replies are its own.
const UDP_TARGET: &str = r#"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
print(u.getsockname()[1], flush=True)
while True:
    data, addr = u.recvfrom(65536)
    u.sendto(b"%d:" % addr[1] + data, addr)
"#;

#[test]
fn udp_forward_two_clients_at_once_each_gets_its_own_replies() {
    let (_target, port) = spawn_python_server(UDP_TARGET, &[]);
    let fwd = forward(
        "udp://127.0.0.1:0",
        &format!("udp://127.0.0.1:{port}"),
        &["--idle-timeout", "500ms"],
    );
    let code = r#"
host, port = sys.argv[1].removeprefix("udp://").rsplit(":", 1)
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.settimeout(T)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.settimeout(T)
for i in range(3):
    a.sendto(b"a%d" % i, (host, int(port)))
    b.sendto(b"b%d" % i, (host, int(port)))
got_a = sorted(a.recv(100).split(b":", 1)[1] for _ in range(3))
got_b = sorted(b.recv(100).split(b":", 1)[1] for _ in range(3))
print(got_a == [b"a0", b"a1", b"a2"], got_b == [b"b0", b"b1", b"b2"])
"#;
    let out = python_ok(code, &[fwd.addr()], b"");
    assert_eq!(crate::util::text(&out), "True True\n");
    // Both sessions end once idle, each logged.
    for _ in 0..2 {
        fwd.proc.stderr.wait_for("a session to end when idle", |l| {
            l.contains("forward session ended")
        });
    }
}

#[test]
fn udp_sessions_are_bounded_by_max_conns() {
    let (_target, port) = spawn_python_server(UDP_TARGET, &[]);
    let fwd = forward(
        "udp://127.0.0.1:0",
        &format!("udp://127.0.0.1:{port}"),
        &["--max-conns", "1"],
    );
    // The first client takes the only session and is answered; the
    // second's datagram is dropped (and logged) while it lasts.
    let code = r#"
host, port = sys.argv[1].removeprefix("udp://").rsplit(":", 1)
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.settimeout(T)
a.sendto(b"first", (host, int(port)))
print(a.recv(100).split(b":", 1)[1].decode())
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.sendto(b"second", (host, int(port)))
"#;
    let out = python_ok(code, &[fwd.addr()], b"");
    assert_eq!(crate::util::text(&out), "first\n");
    fwd.proc
        .stderr
        .wait_for("the second client's datagram dropped", |l| {
            l.contains("every forward session is taken")
        });
}
