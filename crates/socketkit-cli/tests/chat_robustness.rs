//! Chat under pressure and over TLS: the bot survives a `!roll` flood (it
//! keeps reading and drops what it cannot answer, not itself), and chat over
//! `tls://` reaches real TLS clients (Python's ssl) because every write is
//! flushed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::chat::{pki_init, signal, wait_exit, ChatServer, Client, WAIT};

#[test]
fn the_bot_stays_in_the_room_through_a_roll_flood() {
    // A short queue makes "too slow" come quickly: 240 commands (at 40 a
    // second, after bursts of 80) against a bot allowed 10 lines a second
    // and 128 events of backlog. People reading along keep up.
    let server = ChatServer::start(&["--bot", "--queue", "128"]);
    let mut watch = Client::join(&server.addr, "watch");
    watch.send("/who");
    watch.expect("*** In #lobby (2): bot, watch");
    let mut flooders: Vec<Client> = (0..4)
        .map(|i| Client::join(&server.addr, &format!("f{i}")))
        .collect();
    for flooder in &mut flooders {
        let flood = "!roll 2d6\n".repeat(60);
        flooder.send_bytes(flood.as_bytes());
    }
    let mut rolls = 0;
    while rolls < 240 {
        let Some(line) = watch.line() else {
            panic!(
                "watch was disconnected: {:#?}",
                &watch.seen[watch.seen.len().saturating_sub(8)..]
            );
        };
        if line.starts_with("<f") && line.ends_with("> !roll 2d6") {
            rolls += 1;
        }
    }
    // The bot is still here and answers once it caught up.
    let deadline = Instant::now() + WAIT;
    loop {
        watch.send("!time");
        let line = watch.expect("");
        if line.starts_with("<bot> watch: it is") {
            break;
        }
        assert!(Instant::now() < deadline, "the bot never answered again");
        std::thread::sleep(Duration::from_millis(100));
    }
    watch.send("/who");
    let who = watch.expect("*** In #lobby");
    assert!(who.contains("bot,"), "{who}");
    assert!(
        !watch.seen.iter().any(|l| l.starts_with("*** bot left")),
        "the bot was dropped: {:#?}",
        watch.seen
    );
    drop(flooders);
    assert!(server.stop().success());
}

const TLS_CLIENTS: &str = r#"
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)

def wait(f, needle):
    while True:
        line = f.readline()
        if not line:
            sys.exit("closed while waiting for %r" % needle)
        if needle in line:
            return line.decode().strip()

def connect(nick):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = ctx.wrap_socket(raw, server_hostname="127.0.0.1").makefile("rwb")
    wait(f, b"Your nickname?")
    f.write(nick.encode() + b"\n"); f.flush()
    wait(f, b"*** Welcome, " + nick.encode())
    return f

def connect_slow(nick):
    # A small receive buffer that is read slowly: the server's writes keep
    # finding the socket full, and whatever TLS has buffered must still be
    # flushed once the reader catches up.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    return s

ann = connect("ann")
ben = connect("ben")
wait(ann, b"ben joined")
ann.write(b"hello over tls\n"); ann.flush()
print(wait(ben, b"hello over tls"))
ben.write(b"hi ann\n"); ben.flush()
print(wait(ann, b"hi ann"))

cat = connect_slow("cat")
buf = b""
while b"Your nickname?" not in buf:
    buf += cat.recv(4096)
cat.sendall(b"cat\n")
line = b"x" * 3000 + b"\n"
ann.write(line * 2000 + b"the last line\n"); ann.flush()
buf = b""
while b"the last line" not in buf:
    chunk = cat.recv(8192)
    if not chunk:
        sys.exit("closed before the last line")
    buf = buf[-64:] + chunk
    time.sleep(0.001)
print("cat got the last line")
"#;

#[test]
fn chat_over_tls_reaches_real_tls_clients() {
    let dir = tempfile::tempdir().unwrap();
    let file = pki_init(dir.path());
    let mut server = Command::new(env!("CARGO_BIN_EXE_socketkit"))
        .args(["serve", "chat", "tls://127.0.0.1:0", "--rate", "0"])
        // More than the kernel's largest send buffer (4 MiB), so the
        // server's writes find the socket full.
        .args(["--queue-bytes", "16777216", "--cert"])
        .args([file("server.pem"), "--key".into(), file("server-key.pem")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start socketkit");
    // Kept open until the end: the server may print more.
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on tls://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected {line:?}"))
        .to_owned();
    let out = Command::new("python3")
        .args(["-c", TLS_CLIENTS, &port, &file("ca.pem")])
        .output()
        .expect("run python3");
    signal(server.id(), "TERM");
    assert!(wait_exit(&mut server).success());
    drop(stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "<ann> hello over tls\n<ben> hi ann\ncat got the last line\n"
    );
}
