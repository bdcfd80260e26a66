//! `serve socks5`: curl (`--socks5`, `--socks5-hostname`, with and without
//! credentials) through it to nginx, byte-exact; wrong credentials refused
//! and logged; the destination policy (reply 0x02); the start-up rule
//! against an open proxy; UDP ASSOCIATE carrying DNS-sized datagrams to a
//! Python UDP echo server; and raw clients for the deadline and the 0x07 /
//! 0x08 replies.

use std::path::Path;
use std::process::{Command, Output};

use crate::util::http::Nginx;
use crate::util::{
    assert_one_error_line, assert_success, python_ok, random_bytes, run, run_with, socketkit,
    spawn_python_server, tempdir, text, Server, RUN_LIMIT,
};

const SITE: &str = r#"
  server {
    listen 127.0.0.1:{port0};
    root {root};
  }
"#;

fn site(big: bool) -> Nginx {
    Nginx::start(SITE, |dir| {
        std::fs::write(dir.join("www/hello.txt"), "hello through socks\n").unwrap();
        if big {
            std::fs::write(dir.join("www/big.bin"), random_bytes(100 << 20, 14)).unwrap();
        }
    })
}

/// `serve socks5 127.0.0.1:0 -v ARGS`.
fn socks5(args: &[&str]) -> Server {
    let mut all = vec!["serve", "socks5", "tcp://127.0.0.1:0", "-v"];
    all.extend_from_slice(args);
    Server::start(&all, 1)
}

/// Runs curl with ARGS; returns its output.
fn curl(args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60"]).args(args);
    run_with(cmd, b"", RUN_LIMIT * 4)
}

/// curl fetching nginx's `hello.txt` through `proxy` both ways SOCKS5
/// names a destination: `--socks5` (curl resolves, the proxy gets
/// 127.0.0.1) and `--socks5-hostname` (the proxy resolves `localhost`).
/// Yields each flag with curl's output, one run per step (a test's checks
/// on the first run come before the second), for the tests that admit and
/// refuse the same two requests.
fn hello_both_ways(proxy: &Server, nginx: &Nginx) -> impl Iterator<Item = (&'static str, Output)> {
    let at = format!("127.0.0.1:{}", proxy.port());
    let port = nginx.ports[0];
    [
        ("--socks5", "127.0.0.1"),
        ("--socks5-hostname", "localhost"),
    ]
    .into_iter()
    .map(move |(flag, host)| {
        let url = format!("http://{host}:{port}/hello.txt");
        (flag, curl(&[flag, &at, &url]))
    })
}

fn sha256(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let out = run(cmd, b"");
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A users file with `alice` / `wonderland`, hashed by `socketkit passwd`.
fn users_file(dir: &Path) -> std::path::PathBuf {
    let out = run(socketkit(["passwd", "alice"]), b"wonderland\n");
    assert_success("socketkit passwd", &out);
    let line = text(&out.stdout);
    assert!(line.starts_with("alice:$argon2id$"), "{line}");
    let path = dir.join("users");
    std::fs::write(&path, format!("# the team\n{line}")).unwrap();
    path
}

#[test]
fn curl_socks5_and_socks5_hostname_to_nginx_byte_exact() {
    let nginx = site(true);
    let proxy = socks5(&[]);
    for (flag, out) in hello_both_ways(&proxy, &nginx) {
        assert_success(flag, &out);
        assert_eq!(text(&out.stdout), "hello through socks\n", "{flag}");
    }
    let at = format!("127.0.0.1:{}", proxy.port());
    let port = nginx.ports[0];
    let dir = tempdir();
    let copy = dir.path().join("big.bin");
    let out = curl(&[
        "--socks5-hostname",
        &at,
        "-o",
        copy.to_str().unwrap(),
        &format!("http://localhost:{port}/big.bin"),
    ]);
    assert_success("curl 100 MiB", &out);
    assert_eq!(
        sha256(&copy),
        sha256(&nginx.www().join("big.bin")),
        "100 MiB byte-exact through socks5"
    );
    let log = proxy
        .proc
        .stderr
        .wait_for("the 100 MiB CONNECT's log line", |l| {
            l.contains("SOCKS5 CONNECT ended") && l.contains("to_client=1048")
        });
    assert!(log.contains("destination=\"localhost\":"), "{log}");
    assert!(log.contains("client=127.0.0.1:"), "{log}");
    assert!(log.contains("user=\"-\""), "{log}");
}

#[test]
fn credentials_are_checked_and_failures_logged() {
    let nginx = site(false);
    let dir = tempdir();
    let users = users_file(dir.path());
    let proxy = socks5(&["--users", users.to_str().unwrap()]);
    let at = format!("127.0.0.1:{}", proxy.port());
    let url = format!("http://127.0.0.1:{}/hello.txt", nginx.ports[0]);

    let out = curl(&["--socks5", &at, "--proxy-user", "alice:wonderland", &url]);
    assert_success("curl --proxy-user", &out);
    assert_eq!(text(&out.stdout), "hello through socks\n");
    let out = curl(&["-x", &format!("socks5h://alice:wonderland@{at}"), &url]);
    assert_success("curl socks5h://alice:…@", &out);

    // Without credentials: no acceptable method (the server has users).
    let out = curl(&["--socks5", &at, &url]);
    assert!(!out.status.success(), "no credentials accepted");
    proxy.proc.stderr.wait_for("the no-method refusal", |l| {
        l.contains("no acceptable authentication method")
    });

    let out = curl(&["-x", &format!("socks5://alice:guess@{at}"), &url]);
    assert!(!out.status.success(), "a wrong password accepted");
    assert_eq!(out.status.code(), Some(97), "{}", text(&out.stderr));
    let line = proxy.proc.stderr.wait_for("the failure's log line", |l| {
        l.contains("proxy authentication failed")
    });
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(line.contains("user=\"alice\""), "{line}");
    assert!(!line.contains("guess"), "the password was logged: {line}");
}

#[test]
fn a_denied_destination_gets_reply_2() {
    let nginx = site(false);
    let proxy = socks5(&["--deny-dest", "127.0.0.0/8", "--deny-dest", "localhost"]);
    for (flag, out) in hello_both_ways(&proxy, &nginx) {
        assert_eq!(out.status.code(), Some(97), "{flag}: {}", text(&out.stderr));
        // curl names the reply code it got.
        assert!(
            text(&out.stderr).contains("(2)"),
            "{flag}: {}",
            text(&out.stderr)
        );
    }
    let line = proxy.proc.stderr.wait_for("the refusal's log line", |l| {
        l.contains("SOCKS5 CONNECT refused") && l.contains("reply=2")
    });
    assert!(line.contains("--deny-dest"), "{line}");
}

#[test]
fn an_open_proxy_on_every_interface_refuses_to_start() {
    let out = run(socketkit(["serve", "socks5", "0.0.0.0:0"]), b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("open SOCKS5 proxy"), "{line}");
    assert!(
        line.contains("--users") && line.contains("--allow"),
        "{line}"
    );
    // Admitting only some clients is enough to start.
    let allowed = Server::start(&["serve", "socks5", "0.0.0.0:0", "--allow", "127.0.0.1"], 1);
    assert!(allowed.addr().contains("0.0.0.0:"), "{}", allowed.addr());
}

/// A SOCKS5 UDP client: associates, then sends `count` datagrams of
/// alternating sizes (a DNS query, an EDNS-sized answer) through the relay
/// to the echo server and checks each echo and its header; a fragment and
/// a datagram from another port are sent first and must not come back.
const UDP_CLIENT: &str = r#"
import struct
proxy_port, echo_port, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tcp = socket.create_connection(("127.0.0.1", proxy_port), timeout=T)
tcp.sendall(b"\x05\x01\x00")
assert tcp.recv(2) == b"\x05\x00"
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(T)
udp.bind(("127.0.0.1", 0))
tcp.sendall(b"\x05\x03\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", udp.getsockname()[1]))
reply = b""
while len(reply) < 10:
    reply += tcp.recv(10 - len(reply))
assert reply[:4] == b"\x05\x00\x00\x01", reply
relay = (socket.inet_ntoa(reply[4:8]), struct.unpack(">H", reply[8:10])[0])
header = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", echo_port)
stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stranger.sendto(header + b"from a stranger", relay)
udp.sendto(b"\x00\x00\x01" + header[3:] + b"a fragment", relay)
for i in range(count):
    size = 60 if i % 2 == 0 else 1232
    payload = (b"%06d" % i) + os.urandom(size - 6)
    udp.sendto(header + payload, relay)
    got, source = udp.recvfrom(65536)
    assert source == relay, source
    assert got[:10] == header, got[:10]
    assert got[10:] == payload, (i, len(got))
out("%d echoed\n" % count)
tcp.close()
"#;

const UDP_ECHO: &str = r#"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, peer = s.recvfrom(65536)
    s.sendto(data, peer)
"#;

#[test]
fn udp_associate_relays_dns_sized_datagrams_to_a_python_echo() {
    let (_echo, echo_port) = spawn_python_server(UDP_ECHO, &[]);
    let proxy = socks5(&[]);
    let port = proxy.port().to_string();
    let out = python_ok(UDP_CLIENT, &[&port, &echo_port, "400"], b"");
    assert_eq!(text(&out), "400 echoed\n");
    // The association ends with its TCP connection, counting what it did:
    // 400 each way, the fragment and the stranger dropped.
    let line = proxy.proc.stderr.wait_for("the association's end", |l| {
        l.contains("SOCKS5 UDP ASSOCIATE ended")
    });
    assert!(line.contains("to_destinations=400"), "{line}");
    assert!(line.contains("to_client=400"), "{line}");
    assert!(line.contains("dropped=2"), "{line}");
    assert!(line.contains("client closed the TCP connection"), "{line}");
}

/// Sends `greeting` then `request` (when given) raw and prints every byte
/// the server sends until it closes, as hex.
const RAW: &str = r#"
s = connect(sys.argv[1])
s.sendall(bytes.fromhex(sys.argv[2]))
if len(sys.argv) > 3:
    assert s.recv(2) == b"\x05\x00"
    s.sendall(bytes.fromhex(sys.argv[3]))
out(recv_all(s).hex())
"#;

#[test]
fn a_truncated_greeting_hits_the_handshake_deadline() {
    let proxy = socks5(&["--handshake-timeout", "300ms"]);
    let out = python_ok(RAW, &[proxy.addr(), "05"], b"");
    assert_eq!(text(&out), "", "closed without a reply");
    proxy.proc.stderr.wait_for("the timeout's log line", |l| {
        l.contains("SOCKS5 negotiation timed out")
    });
}

#[test]
fn unsupported_commands_and_address_types_get_7_and_8() {
    let proxy = socks5(&[]);
    for (request, code) in [
        ("05090001" /* command 9 */, "07"),
        ("05020001" /* BIND, not implemented */, "07"),
        ("05010008", "08"),
    ] {
        // An IPv4 destination completes the first two; type 8 stops at once.
        let request = if code == "07" {
            format!("{request}7f0000010050")
        } else {
            request.to_owned()
        };
        let out = python_ok(RAW, &[proxy.addr(), "050100", &request], b"");
        assert_eq!(text(&out), format!("05{code}0001000000000000"), "{request}");
    }
}
