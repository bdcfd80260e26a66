//! The PROXY protocol: HAProxy's `send-proxy` and `send-proxy-v2` in front
//! of `serve echo --proxy-protocol` (the client from 127.0.0.2 is what the
//! log and `--deny` see, not HAProxy on 127.0.0.1); `serve forward
//! --send-proxy v1|v2` into nginx's `proxy_protocol` and HAProxy's
//! `accept-proxy`, which report the address that arrived; raw Python peers
//! with LOCAL, UNSPEC, AF_UNIX, TLVs, a truncated, a malformed and a missing
//! header, and a connection from outside `--proxy-from`.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::http::Nginx;
use crate::util::*;

/// Connects from SOURCE to TARGET, sends the bytes HEX, then (mode `shut`)
/// half-closes or (mode `hold`) keeps sending nothing, and reads until the
/// other side closes. Prints `port N` (its own port), then `bytes HEX` with
/// what arrived, `closed HEX` when the connection ended in a reset (or
/// was reset before the half-close), or `timeout` if it never ended.
const PEER: &str = r#"
source, target, payload, mode = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), sys.argv[4]
family, _, addr = parse(target)
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(T)
s.bind((source, 0))
s.connect(addr)
print("port", s.getsockname()[1], flush=True)
got = b""
try:
    s.sendall(payload)
    if mode == "shut":
        s.shutdown(socket.SHUT_WR)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    print("bytes", got.hex())
except socket.timeout:
    print("timeout")
except OSError:
    print("closed", got.hex())
"#;

/// What a [`PEER`] run saw: its own port and the bytes that came back
/// (`None`: the connection was reset).
struct Visit {
    port: u16,
    got: Option<Vec<u8>>,
}

fn visit(source: &str, target: &str, payload: &[u8], mode: &str) -> Visit {
    let out = python_ok(PEER, &[source, target, &hex(payload), mode], b"");
    let out = text(&out);
    let mut lines = out.lines();
    let port = lines
        .next()
        .and_then(|l| l.strip_prefix("port "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port line in {out:?}"));
    let result = lines
        .next()
        .unwrap_or_else(|| panic!("no result in {out:?}"));
    let (kind, data) = result.split_once(' ').unwrap_or((result, ""));
    assert_ne!(kind, "timeout", "{target} never closed the connection");
    let bytes = (0..data.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&data[i..i + 2], 16).unwrap())
        .collect();
    Visit {
        port,
        got: (kind == "bytes").then_some(bytes),
    }
}

/// `serve echo` behind trusted proxies on 127.0.0.1, logging at -v.
fn echo_behind_proxy(extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "echo",
        "127.0.0.1:0",
        "--proxy-protocol",
        "--proxy-from",
        "127.0.0.1/32",
        "-v",
    ];
    args.extend_from_slice(extra);
    Server::start(&args, 1)
}

// ---------------------------------------------------------------------------
// HAProxy, in the foreground, in a temporary directory.

struct HaProxy {
    child: Child,
    _dir: tempfile::TempDir,
    /// The port of `{front}` in the configuration.
    front: u16,
}

impl HaProxy {
    /// Starts `haproxy -db` with `body` (its `{front}` placeholder replaced
    /// by a free port) after a `ready` frontend that answers HTTP 200
    /// itself: polling that one shows HAProxy is up without ever touching
    /// the backend under test.
    fn start(body: &str) -> HaProxy {
        let dir = tempdir();
        for _attempt in 0..5 {
            let (front, ready) = (free_port(), free_port());
            let config = format!(
                "global\n    maxconn 64\n\
                 defaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
                 frontend ready\n    mode http\n    bind 127.0.0.1:{ready}\n    http-request return status 200\n\
                 {}\n",
                body.replace("{front}", &front.to_string())
            );
            let path = dir.path().join("haproxy.cfg");
            std::fs::write(&path, config).unwrap();
            let mut child = Command::new("/usr/sbin/haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy is needed for these tests (apt-get install haproxy)");
            if answers_http(ready, &mut child) {
                return HaProxy {
                    child,
                    _dir: dir,
                    front,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("haproxy could not start on free ports");
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls (no event exists for "a process is listening") until `port`
/// answers an HTTP request, or `child` exits (a port taken meanwhile).
fn answers_http(port: u16, child: &mut Child) -> bool {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let mut reply = Vec::new();
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let _ = s.read_to_end(&mut reply);
            if reply.starts_with(b"HTTP/1.") {
                return true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("haproxy did not answer on port {port} within {WAIT:?}");
}

fn behind_haproxy(server: &Server, send_proxy: &str) -> HaProxy {
    HaProxy::start(&format!(
        "listen front\n    mode tcp\n    bind 127.0.0.1:{{front}}\n    server echo 127.0.0.1:{} {send_proxy}\n",
        server.port()
    ))
}

#[test]
fn haproxy_send_proxy_v1_and_v2_name_the_client_not_haproxy() {
    for send_proxy in ["send-proxy", "send-proxy-v2"] {
        let server = echo_behind_proxy(&[]);
        let haproxy = behind_haproxy(&server, send_proxy);
        let front = format!("tcp://127.0.0.1:{}", haproxy.front);
        let visit = visit("127.0.0.2", &front, b"hi through haproxy\n", "shut");
        assert_eq!(
            visit.got.as_deref(),
            Some(&b"hi through haproxy\n"[..]),
            "{send_proxy}: {}",
            server.stderr()
        );
        let client = format!("peer=127.0.0.2:{}", visit.port);
        let opened = server
            .proc
            .stderr
            .wait_for("connection opened", |l| l.contains("connection opened"));
        assert!(opened.contains(&client), "{send_proxy}: {opened}");
        let stderr = server.stderr();
        let accepted = stderr
            .lines()
            .find(|l| l.contains("PROXY header accepted"))
            .unwrap_or_else(|| panic!("{send_proxy}: no header line:\n{stderr}"));
        let version = if send_proxy == "send-proxy" {
            "v1"
        } else {
            "v2"
        };
        assert!(
            accepted.contains(&format!("client=127.0.0.2:{}", visit.port))
                && accepted.contains("proxy=127.0.0.1:")
                && accepted.contains(&format!("version={version}")),
            "{accepted}"
        );
    }
}

#[test]
fn deny_judges_the_client_haproxy_names() {
    let mut server = echo_behind_proxy(&["--deny", "127.0.0.2/32"]);
    let haproxy = behind_haproxy(&server, "send-proxy-v2");
    let front = format!("tcp://127.0.0.1:{}", haproxy.front);
    let denied = visit("127.0.0.2", &front, b"hi\n", "shut");
    assert_ne!(
        denied.got.as_deref(),
        Some(&b"hi\n"[..]),
        "echoed to a denied client"
    );
    server.proc.stderr.wait_for("the refusal", |l| {
        l.contains("refused by the access list")
            && l.contains(&format!("peer=127.0.0.2:{}", denied.port))
            && l.contains("proxy=127.0.0.1:")
    });
    // HAProxy itself, on 127.0.0.1, is not what was denied: its clients
    // from elsewhere are served.
    let admitted = visit("127.0.0.1", &front, b"hi\n", "shut");
    assert_eq!(admitted.got.as_deref(), Some(&b"hi\n"[..]));
    assert_eq!(refused_count(&mut server), 1);
}

// ---------------------------------------------------------------------------
// serve forward --send-proxy.

/// nginx answering with the addresses its `proxy_protocol` listener got.
const NGINX_PROXY_PROTOCOL: &str = r#"
server {
    listen 127.0.0.1:{port0} proxy_protocol;
    location / {
        return 200 "$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port\n";
    }
}
"#;

const HTTP_GET: &[u8] = b"GET / HTTP/1.0\r\nHost: test\r\n\r\n";

fn body(reply: &[u8]) -> String {
    let reply = text(reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let (_, body) = reply.split_once("\r\n\r\n").unwrap();
    body.trim().to_owned()
}

fn forward_to(target: &str, version: &str) -> Server {
    Server::start(
        &[
            "serve",
            "forward",
            "127.0.0.1:0",
            "--to",
            target,
            "--send-proxy",
            version,
        ],
        1,
    )
}

#[test]
fn forward_send_proxy_v1_and_v2_into_nginx() {
    let nginx = Nginx::start(NGINX_PROXY_PROTOCOL, |_: &Path| {});
    let target = format!("tcp://127.0.0.1:{}", nginx.ports[0]);
    for version in ["v1", "v2"] {
        let forward = forward_to(&target, version);
        let visit = visit("127.0.0.2", forward.addr(), HTTP_GET, "hold");
        let reply = visit.got.unwrap_or_else(|| panic!("{version}: reset"));
        assert_eq!(
            body(&reply),
            format!("127.0.0.2:{} 127.0.0.1:{}", visit.port, forward.port()),
            "{version}"
        );
    }
}

#[test]
fn forward_send_proxy_v2_into_haproxy_accept_proxy() {
    let haproxy = HaProxy::start(
        "frontend front\n    mode http\n    bind 127.0.0.1:{front} accept-proxy\n    \
         http-request return status 200 content-type text/plain lf-string \"%[src]:%[src_port] %[dst]:%[dst_port]\"\n",
    );
    let forward = forward_to(&format!("tcp://127.0.0.1:{}", haproxy.front), "v2");
    let visit = visit("127.0.0.2", forward.addr(), HTTP_GET, "hold");
    let reply = visit.got.expect("reset");
    assert_eq!(
        body(&reply),
        format!("127.0.0.2:{} 127.0.0.1:{}", visit.port, forward.port())
    );
}

// ---------------------------------------------------------------------------
// Raw peers.

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[command, family]);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

fn unix_path(path: &str) -> Vec<u8> {
    let mut field = path.as_bytes().to_vec();
    field.resize(108, 0);
    field
}

#[test]
fn raw_headers_of_every_family_and_command() {
    let server = echo_behind_proxy(&[]);
    // TCP4 with TLVs (a NOOP and an ALPN), the payload in the same write:
    // not one byte of it may be taken for the header.
    let mut tcp4 = vec![192, 0, 2, 9, 127, 0, 0, 1, 0x15, 0xb3, 0, 7];
    tcp4.extend_from_slice(&[0x04, 0, 2, 0, 0, 0x01, 0, 2, b'h', b'2']);
    let unix = [unix_path("/run/front.sock"), unix_path("/run/back.sock")].concat();
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "v2 TCP4 + TLVs",
            v2(0x21, 0x11, &tcp4),
            Some("192.0.2.9:5555"),
        ),
        ("v2 LOCAL", v2(0x20, 0x11, &tcp4[..12]), None),
        ("v2 UNSPEC", v2(0x21, 0x00, b"ignored"), None),
        (
            "v2 AF_UNIX",
            v2(0x21, 0x31, &unix),
            Some("unix:/run/front.sock"),
        ),
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec(), None),
        (
            "v1 TCP6",
            b"PROXY TCP6 2001:db8::5 ::1 7 7007\r\n".to_vec(),
            Some("[2001:db8::5]:7"),
        ),
    ];
    for (name, header, client) in cases {
        let payload = format!("payload after {name}\n");
        let visit = visit(
            "127.0.0.1",
            server.addr(),
            &[&header[..], payload.as_bytes()].concat(),
            "shut",
        );
        assert_eq!(
            visit.got.as_deref(),
            Some(payload.as_bytes()),
            "{name}: {}",
            server.stderr()
        );
        // No address in the header: the proxy's own stands.
        let own = format!("127.0.0.1:{}", visit.port);
        let peer = format!("peer={}", client.unwrap_or(&own));
        server
            .proc
            .stderr
            .wait_for(&format!("{name}: connection opened {peer}"), |l| {
                l.contains("connection opened") && l.contains(&peer)
            });
    }
}

#[test]
fn a_truncated_header_is_closed_at_the_handshake_deadline() {
    let server = echo_behind_proxy(&["--handshake-timeout", "500ms"]);
    let header = v2(0x21, 0x11, &[10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2]);
    // Held open, not half-closed: only the deadline ends it.
    let visit = visit("127.0.0.1", server.addr(), &header[..20], "hold");
    assert!(
        visit.got.as_deref().unwrap_or_default().is_empty(),
        "{:?}",
        visit.got
    );
    let line = server.proc.stderr.wait_for("the deadline", |l| {
        l.contains("PROXY protocol header refused")
    });
    assert!(
        line.contains("no whole PROXY header within 500ms")
            && line.contains(&format!("proxy=127.0.0.1:{}", visit.port)),
        "{line}"
    );
}

#[test]
fn malformed_and_missing_headers_close_the_connection_with_a_log_line() {
    let server = echo_behind_proxy(&[]);
    for (payload, why) in [
        (
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nhi\n"[..],
            "malformed PROXY v1 header",
        ),
        (
            &v2(0x22, 0x11, &[0; 12])[..],
            "PROXY v2 header with command",
        ),
        (b"hi\n", "no PROXY protocol header"),
    ] {
        let visit = visit("127.0.0.1", server.addr(), payload, "shut");
        assert!(
            visit.got.as_deref().unwrap_or_default().is_empty(),
            "{why}: echoed {:?}",
            visit.got
        );
        let line = server.proc.stderr.wait_for(why, |l| {
            l.contains("PROXY protocol header refused") && l.contains(why)
        });
        assert!(
            line.contains(&format!("proxy=127.0.0.1:{}", visit.port)),
            "{line}"
        );
    }
}

#[test]
fn a_peer_outside_proxy_from_is_refused_whatever_it_sends() {
    let mut server = echo_behind_proxy(&[]);
    let header = b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\nhi\n";
    let visit = visit("127.0.0.2", server.addr(), header, "shut");
    assert!(
        visit.got.as_deref().unwrap_or_default().is_empty(),
        "served an untrusted peer: {:?}",
        visit.got
    );
    server.proc.stderr.wait_for("the refusal", |l| {
        l.contains("not a trusted PROXY protocol source")
            && l.contains(&format!("peer=127.0.0.2:{}", visit.port))
    });
    assert_eq!(refused_count(&mut server), 1);
}

#[test]
fn proxy_protocol_flags_are_checked_before_binding() {
    let out = run_socketkit(&["serve", "echo", "127.0.0.1:0", "--proxy-protocol"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--proxy-from"),
        "{}",
        text(&out.stderr)
    );
    let out = run_socketkit(
        &[
            "serve",
            "echo",
            "udp://127.0.0.1:0",
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.1",
        ],
        b"",
    );
    let line = assert_error_with_hint(&out);
    assert!(line.contains("stream endpoints only"), "{line}");
    serve_forward_udp_refused(&["--send-proxy", "v2"]);
}

/// Connects to the Unix socket PATH, sends the bytes HEX, and prints the
/// `auth` list of the exec server's `HELLO` (length, type, JSON body).
const EXEC_HELLO: &str = r#"
path, payload = sys.argv[1], bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(T)
s.connect(path)
s.sendall(payload)
def exactly(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("closed after %d bytes" % len(buf))
        buf += chunk
    return buf
length = int.from_bytes(exactly(4), "big")
kind = exactly(1)
print(json.dumps(json.loads(exactly(length - 1))["auth"]))
"#;

#[test]
fn a_proxied_unix_peer_is_not_taken_for_the_proxys_uid() {
    let dir = tempdir();
    let direct = dir.path().join("direct.sock");
    let proxied = dir.path().join("proxied.sock");
    let unix = |path: &Path| format!("unix:{}", path.display());
    let _plain = Server::start(&["serve", "exec", &unix(&direct)], 1);
    let _behind = Server::start(
        &[
            "serve",
            "exec",
            &unix(&proxied),
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.1",
        ],
        1,
    );
    let direct = python_ok(EXEC_HELLO, &[&direct.display().to_string(), ""], b"");
    assert_eq!(text(&direct).trim(), r#"["peer-uid"]"#);
    // Same user, same machine: but the socket's credentials are the
    // proxy's, so the client must prove itself.
    let header = hex(b"PROXY TCP4 192.0.2.1 192.0.2.2 5000 22\r\n");
    let proxied = python_ok(EXEC_HELLO, &[&proxied.display().to_string(), &header], b"");
    assert_eq!(text(&proxied).trim(), r#"["token"]"#);
}

/// Over TLS from SOURCE to TARGET (unverified: the handshake is what
/// matters), sends `hi\n` and prints the line that comes back.
const TLS_PEER: &str = r#"
import ssl
source, target = sys.argv[1], sys.argv[2]
family, _, addr = parse(target)
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(T)
s.bind((source, 0))
s.connect(addr)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(s)
s.sendall(b"hi\n")
print(s.getsockname()[1], recv_line(s).decode().strip())
"#;

#[test]
fn the_header_comes_before_tls() {
    let config = tempdir();
    let server = Server::start_with_config(
        &[
            "serve",
            "echo",
            "tls://127.0.0.1:0",
            "--self-signed",
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.1",
            "-v",
        ],
        config.path(),
        1,
    );
    let haproxy = behind_haproxy(&server, "send-proxy-v2");
    let front = format!("tcp://127.0.0.1:{}", haproxy.front);
    let out = text(&python_ok(TLS_PEER, &["127.0.0.2", &front], b""));
    let (port, line) = out.trim().split_once(' ').unwrap();
    assert_eq!(line, "hi", "{}", server.stderr());
    let peer = format!("peer=127.0.0.2:{port}");
    server
        .proc
        .stderr
        .wait_for("the TLS client's address", |l| {
            l.contains("connection opened") && l.contains(&peer)
        });
}
