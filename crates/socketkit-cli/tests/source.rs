//! `connect -s/--source` and `-4`/`-6`: the local address a Python server
//! sees is the one asked for.

use crate::util::*;

/// A TCP server on HOST that answers each connection with the peer
/// address it saw (`IP PORT`), for connections until stdin closes. Prints
/// its port once listening.
const WHO_AM_I: &str = r#"
host = sys.argv[1]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
l = socket.socket(family)
l.bind((host, 0))
l.listen(16)
print(l.getsockname()[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
while True:
    c, peer = l.accept()
    c.sendall(f"{peer[0]} {peer[1]}\n".encode())
    c.close()
"#;

fn who_am_i(host: &str) -> (Proc, u16) {
    let (proc, line) = spawn_python_server(WHO_AM_I, &[host]);
    (proc, line.trim().parse().unwrap())
}

fn connect(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["connect"];
    all.extend_from_slice(args);
    let out = run_socketkit(&all, b"");
    (
        out.status.code().expect("killed by a signal"),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn source_address_port_or_both() {
    let (_server, port) = who_am_i("127.0.0.1");
    let target = format!("127.0.0.1:{port}");
    let (code, out, err) = connect(&["-s", "127.0.0.2", &target]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("127.0.0.2 "), "{out}");

    let local = free_port();
    let (code, out, err) = connect(&["--source", &format!(":{local}"), &target]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("127.0.0.1 {local}\n"));

    let local = free_port();
    let (code, out, err) = connect(&["-s", &format!("127.0.0.2:{local}"), &target]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("127.0.0.2 {local}\n"));
}

#[test]
fn ipv6_source_and_family_mismatches() {
    let (_server, port) = who_am_i("::1");
    let target = format!("[::1]:{port}");
    let (code, out, err) = connect(&["-s", "::1", &target]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("::1 "), "{out}");
    // An IPv4 source cannot reach an IPv6-only target.
    let out = run_socketkit(&["connect", "-s", "127.0.0.2", &target], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(
        line.contains("no IPv4 address for source 127.0.0.2"),
        "{line}"
    );
    let out = run_socketkit(&["connect", "-4", &target], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("no IPv4 address"), "{line}");
}

#[test]
fn family_flags_on_connect() {
    // `:PORT` is ::1 and 127.0.0.1; the server listens on 127.0.0.1 only.
    let (_server, port) = who_am_i("127.0.0.1");
    let any = format!(":{port}");
    let (code, out, err) = connect(&["-4", &any]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("127.0.0.1 "), "{out}");
    let out = run_socketkit(&["connect", "-6", &any], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("cannot connect"), "{line}");
    let out = run_socketkit(&["connect", "-4", "-6", &any], b"");
    assert_eq!(out.status.code(), Some(2), "-4 and -6 conflict");
}

#[test]
fn a_source_in_use_is_a_clear_error() {
    // A listening socket holds the port: SO_REUSEADDR does not let a
    // connecting socket share a port that is in LISTEN.
    let (_server, port) = who_am_i("127.0.0.1");
    let target = format!("127.0.0.1:{port}");
    let out = run_socketkit(
        &["connect", "-s", &format!("127.0.0.1:{port}"), &target],
        b"",
    );
    let line = assert_one_error_line(&out, 1);
    assert!(
        line.contains(&format!("cannot bind source 127.0.0.1:{port}")),
        "{line}"
    );
}

#[test]
fn source_on_udp() {
    let code = r#"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
data, peer = s.recvfrom(100)
s.sendto(f"{peer[0]}\n".encode(), peer)
"#;
    let (mut server, line) = spawn_python_server(code, &[]);
    let target = format!("udp://127.0.0.1:{}", line.trim());
    let out = run_socketkit(&["connect", "-s", "127.0.0.2", &target], b"who\n");
    assert_success("connect", &out);
    assert_eq!(text(&out.stdout), "127.0.0.2\n");
    server.wait_exit();
}

#[test]
fn bad_source_is_a_usage_error() {
    let out = run_socketkit(&["connect", "-s", "nowhere", "127.0.0.1:9"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid source address 'nowhere'"));
}

#[test]
fn a_source_on_a_unix_socket_is_an_error() {
    let dir = tempdir();
    let path = format!("unix:{}", dir.path().join("s.sock").display());
    let out = run_socketkit(&["connect", "-s", "127.0.0.2", &path], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("not unix:"), "{line}");
}
