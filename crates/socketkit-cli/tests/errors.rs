//! Error reporting: every failure is one `socketkit: ...` line on stderr
//! with a hint where one helps, exit 1 (2 for usage errors), never a panic.

use std::net::TcpListener;
use std::process::Command;

use crate::util::*;

#[test]
fn address_in_use() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let out = run_socketkit(&["serve", "echo", &addr], b"");
    let line = assert_error_with_hint(&out);
    assert!(line.contains(&format!("tcp://{addr}")), "{line}");
    assert!(line.contains("in use"), "{line}");
    assert!(
        line.contains("another program holds this address"),
        "{line}"
    );
    assert!(
        text(&out.stdout).is_empty(),
        "announced an address it could not bind"
    );
}

#[test]
fn address_in_use_held_by_python() {
    let (_holder, port) = spawn_python_server(
        r#"
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
out("%d\n" % s.getsockname()[1])
sys.stdin.read()
"#,
        &[],
    );
    let out = run_socketkit(&["serve", "upper", &format!("tcp://127.0.0.1:{port}")], b"");
    let line = assert_error_with_hint(&out);
    assert!(line.contains("in use"), "{line}");
}

#[test]
fn udp_address_in_use() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = run_socketkit(&["serve", "echo", &format!("udp://127.0.0.1:{port}")], b"");
    let line = assert_error_with_hint(&out);
    assert!(line.contains("in use"), "{line}");
}

/// Runs `socketkit ARGS` as an unprivileged user when we are root (ports
/// below 1024 are always allowed to root); None when that is impossible.
fn run_unprivileged(args: &[&str]) -> Option<std::process::Output> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if text(&uid.stdout).trim() != "0" {
        return Some(run_socketkit(args, b""));
    }
    let setpriv = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let works = Command::new("setpriv")
        .args(setpriv)
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(setpriv)
        .arg(bin())
        .args(args)
        .env_remove("RUST_LOG");
    Some(run(cmd, b""))
}

#[test]
fn permission_denied_on_a_privileged_port() {
    let Some(out) = run_unprivileged(&["serve", "echo", "127.0.0.1:80"]) else {
        eprintln!("note: skipped, running as root and setpriv is unavailable");
        return;
    };
    if out.status.code() == Some(127) || text(&out.stderr).contains("setpriv:") {
        eprintln!(
            "note: skipped, setpriv could not run the binary: {}",
            text(&out.stderr)
        );
        return;
    }
    let line = assert_error_with_hint(&out);
    assert!(line.contains("tcp://127.0.0.1:80"), "{line}");
    assert!(line.contains("Permission denied"), "{line}");
    assert!(line.contains("ports below 1024"), "{line}");
}

#[test]
fn connection_refused() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let out = run_socketkit(&["connect", &addr], b"never sent\n");
    let line = assert_error_with_hint(&out);
    assert!(line.contains(&format!("tcp://{addr}")), "{line}");
    assert!(line.contains("refused"), "{line}");
    assert!(line.contains("nothing is listening there"), "{line}");
    assert!(out.stdout.is_empty());
}

#[test]
fn connection_refused_over_udp() {
    // A connected UDP socket learns of the refusal from the ICMP error.
    let port = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let out = run_socketkit(
        &["connect", &format!("udp://127.0.0.1:{port}")],
        b"hello?\n",
    );
    let line = assert_error_with_hint(&out);
    assert!(line.contains("refused"), "{line}");
}

#[test]
fn name_not_resolved() {
    let out = run_socketkit(&["connect", "no-such-host.invalid:80"], b"");
    let line = assert_error_with_hint(&out);
    assert!(line.contains("no-such-host.invalid"), "{line}");
    assert!(line.contains("cannot resolve"), "{line}");
    assert!(line.contains("check the host name"), "{line}");
}

#[test]
fn connect_timeout() {
    // Only loopback traffic is allowed here, so the unanswered SYN goes to a
    // listener whose accept queue is full: the kernel drops it, exactly as a
    // firewall would.
    let (_listener, port) = full_backlog_listener();
    let addr = format!("127.0.0.1:{port}");
    let out = run_socketkit(&["connect", "--timeout", "300ms", &addr], b"");
    let line = assert_one_error_line(&out, 1);
    if line.contains("timed out") {
        assert!(line.contains(&format!("tcp://{addr}")), "{line}");
        assert!(line.contains("300ms"), "{line}");
        assert!(line.contains("raise --timeout"), "{line}");
    } else {
        eprintln!("note: the connect failed at once instead of timing out: {line}");
    }
}

#[test]
fn ipv6_without_brackets_is_a_usage_error() {
    let out = run_socketkit(&["connect", "::1:80"], b"");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("brackets"), "{stderr}");
    assert!(stderr.contains("[::1]:7007"), "{stderr}");
}

#[test]
fn other_bad_addresses_are_usage_errors() {
    for (args, reason) in [
        (&["connect", "127.0.0.1:65536"][..], "0 to 65535"),
        (&["connect", "sctp://127.0.0.1:5"], "unknown scheme"),
        (&["serve", "echo", "unix:"], "empty path"),
        (&["check", "[::1:80"], "missing ']'"),
        (&["serve", "echo", "localhost"], "expected HOST:PORT"),
    ] {
        let out = run_socketkit(args, b"");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn unknown_service_and_bad_flags_are_usage_errors() {
    for args in [
        &["serve", "chargen"][..],
        &["serve", "echo", "--idle-timeout", "soon", "127.0.0.1:0"],
        &["serve", "echo", "--mode", "forks", "127.0.0.1:0"],
        &["connect"],
        &["frobnicate"],
    ] {
        let out = run_socketkit(args, b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"));
    }
}

#[test]
fn hello_refuses_datagram_endpoints() {
    let out = run_socketkit(&["serve", "hello", "udp://127.0.0.1:0"], b"");
    let line = assert_error_with_hint(&out);
    assert!(line.contains("hello"), "{line}");
    assert!(line.contains("udp://127.0.0.1:0"), "{line}");
    assert!(out.stdout.is_empty());

    let dir = tempdir();
    let addr = format!("unixgram:{}", dir.path().join("h.dgram").display());
    let out = run_socketkit(&["serve", "hello", &addr], b"");
    assert_error_with_hint(&out);
    assert!(
        !dir.path().join("h.dgram").exists(),
        "socket file left behind"
    );
}

#[test]
fn unix_path_that_is_not_a_socket_is_left_alone() {
    let dir = tempdir();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, b"keep me").unwrap();
    let out = run_socketkit(&["serve", "echo", &format!("unix:{}", path.display())], b"");
    let line = assert_error_with_hint(&out);
    assert!(line.contains("not a socket"), "{line}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn unix_paths_in_a_missing_directory() {
    let dir = tempdir();
    let path = dir.path().join("no/such/dir/s.sock");
    let addr = format!("unix:{}", path.display());
    let out = run_socketkit(&["serve", "echo", &addr], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains(&addr), "{line}");
    let out = run_socketkit(&["connect", &addr], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains(&addr), "{line}");
}

#[test]
fn refused_with_other_flags_and_over_ipv6_is_still_one_line() {
    let free = free_port();
    for args in [
        vec![
            "connect".to_owned(),
            format!("127.0.0.1:{free}"),
            "--crlf".into(),
        ],
        vec![
            "connect".to_owned(),
            "--line-mode".into(),
            format!("[::1]:{free}"),
        ],
        vec![
            "connect".to_owned(),
            "-v".into(),
            format!("tcp://127.0.0.1:{free}"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_socketkit(&args, b"data\n");
        let line = assert_error_with_hint(&out);
        assert!(line.contains("refused"), "{args:?}: {line}");
    }
}
