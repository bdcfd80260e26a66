//! `serve cmd` (inetd mode) against independent clients: Python sockets and
//! nc. Programs report what they see (environment, input, EOF), and /proc
//! shows that nothing a program started outlives its connection.

use crate::util::{
    alive, assert_one_error_line, hex, py_roundtrip, python_ok, random_bytes, run_socketkit,
    wait_until_dead, Server,
};

/// A `serve cmd` on 127.0.0.1 running `program`, with `options` before `--`.
fn serve_cmd(options: &[&str], program: &[&str]) -> Server {
    let mut args = vec!["serve", "cmd", "127.0.0.1:0"];
    args.extend_from_slice(options);
    args.push("--");
    args.extend_from_slice(program);
    Server::start(&args, 1)
}

#[test]
fn the_program_sees_the_connection_in_its_environment_and_nothing_of_the_servers() {
    let mut cmd = crate::util::socketkit([
        "serve",
        "cmd",
        "127.0.0.1:0",
        "--",
        "sh",
        "-c",
        "echo \"$SOCKETKIT_PEER_ADDR $SOCKETKIT_PEER_PORT $SOCKETKIT_LOCAL_ADDR $SOCKETKIT_LOCAL_PORT $SOCKETKIT_PROTO\"; env",
    ]);
    cmd.env("SOCKETKIT_TEST_SECRET", "server-only");
    let server = Server::start_command(cmd, 1);
    let code = r#"
s = connect(sys.argv[1])
s.shutdown(socket.SHUT_WR)
me, it = s.getsockname(), s.getpeername()
data = recv_all(s).decode()
first, env = data.split("\n", 1)
assert first == "%s %d %s %d tcp" % (me[0], me[1], it[0], it[1]), (first, me, it)
names = sorted(line.split("=", 1)[0] for line in env.splitlines())
out(" ".join(names))
"#;
    let names = crate::util::text(&python_ok(code, &[server.addr()], b""));
    assert!(!names.contains("SOCKETKIT_TEST_SECRET"), "{names}");
    for name in ["PATH", "LANG", "SOCKETKIT_PEER_ADDR", "SOCKETKIT_PROTO"] {
        assert!(names.contains(name), "{name} missing from {names}");
    }
}

#[test]
fn four_mib_through_cat_arrive_byte_exact() {
    let server = serve_cmd(&[], &["cat"]);
    let payload = random_bytes(4 << 20, crate::util::fresh_seed());
    let echoed = py_roundtrip(server.addr(), &payload);
    assert_eq!(echoed.len(), payload.len());
    use sha2::{Digest, Sha256};
    assert_eq!(
        hex(&Sha256::digest(&echoed)),
        hex(&Sha256::digest(&payload))
    );
}

#[test]
fn the_clients_fin_is_the_programs_eof_and_its_output_still_arrives() {
    // `wc -c` answers only at end of input; then more output after it.
    let server = serve_cmd(&[], &["sh", "-c", "wc -c; echo after-eof"]);
    let code = r#"
s = connect(sys.argv[1])
s.sendall(b"12345")
s.shutdown(socket.SHUT_WR)
out(recv_all(s))
"#;
    let reply = crate::util::text(&python_ok(code, &[server.addr()], b""));
    assert_eq!(reply, "5\nafter-eof\n");
}

#[test]
fn a_program_that_exits_closes_the_connection_though_the_client_keeps_it_open() {
    let server = serve_cmd(&[], &["echo", "bye"]);
    // The client never half-closes: the end of the program must end it.
    let code = r#"
s = connect(sys.argv[1])
out(recv_all(s))
"#;
    assert_eq!(
        crate::util::text(&python_ok(code, &[server.addr()], b"")),
        "bye\n"
    );
}

#[test]
fn stderr_goes_to_the_log_escaped_or_to_the_peer_when_asked() {
    let script = "echo out; printf 'err\\033[2J\\n' >&2";
    let server = serve_cmd(&[], &["sh", "-c", script]);
    let reply = crate::util::text(&py_roundtrip(server.addr(), b""));
    assert_eq!(reply, "out\n", "stderr kept from the peer");
    let line = server
        .proc
        .stderr
        .wait_for("the logged stderr line", |l| l.contains("cmd stderr"));
    assert!(line.contains(r"err\u{1b}[2J"), "escaped: {line}");
    assert!(!line.contains('\u{1b}'), "no raw escape: {line:?}");

    let server = serve_cmd(&["--stderr-to-peer"], &["sh", "-c", script]);
    let reply = py_roundtrip(server.addr(), b"");
    assert_eq!(reply, b"out\nerr\x1b[2J\n");
    // Nothing is left to log, so the connection ends with the program
    // (the audit's seconds cover the whole connection).
    let audit = server
        .proc
        .stderr
        .wait_for("the audit line", |l| l.contains("cmd connection finished"));
    let secs: f64 = audit
        .split_once(" secs=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no secs in {audit}"));
    assert!(secs < 1.9, "the connection lingered {secs}s: {audit}");
}

/// The program starts a `setsid` sleep, prints its pid, then copies its
/// input: the client's disconnect is its EOF, and the sleep must die too.
const ESCAPE_THEN_CAT: &str = "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!; cat";

#[test]
fn descendants_die_when_the_client_disconnects() {
    for containment in ["auto", "subreaper"] {
        let server = serve_cmd(
            &["--containment", containment],
            &["sh", "-c", ESCAPE_THEN_CAT],
        );
        let code = r#"
s = connect(sys.argv[1])
out(recv_line(s))
s.close()
"#;
        let pid: u32 = crate::util::text(&python_ok(code, &[server.addr()], b""))
            .trim()
            .parse()
            .unwrap();
        wait_until_dead(pid, &format!("setsid sleep under {containment}"));
        server
            .proc
            .stderr
            .wait_for("the audit line", |l| l.contains("cmd connection finished"));
    }
}

#[test]
fn a_program_over_its_time_limit_is_killed_and_audited() {
    let server = serve_cmd(&["--cmd-timeout", "500ms"], &["sh", "-c", ESCAPE_THEN_CAT]);
    let code = r#"
s = connect(sys.argv[1])
out(recv_line(s))
start = time.time()
assert recv_all(s) == b""
out("%.1f\n" % (time.time() - start))
"#;
    let reply = crate::util::text(&python_ok(code, &[server.addr()], b""));
    let (pid, secs) = reply.split_once('\n').unwrap();
    let secs: f64 = secs.trim().parse().unwrap();
    assert!(secs < 5.0, "closed after {secs}s");
    wait_until_dead(pid.parse().unwrap(), "the sleep of a timed-out program");
    server.proc.stderr.wait_for("a timed-out audit line", |l| {
        l.contains("cmd connection finished") && l.contains("timed_out=true")
    });
}

#[test]
fn a_non_loopback_address_needs_an_allow_list() {
    let out = run_socketkit(&["serve", "cmd", "0.0.0.0:0", "--", "cat"], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("--allow"), "{line}");
    let out = run_socketkit(&["serve", "cmd", ":0", "--", "cat"], b"");
    assert_one_error_line(&out, 1);

    let server = Server::start(
        &[
            "serve",
            "cmd",
            "0.0.0.0:0",
            "--allow",
            "127.0.0.0/8",
            "--",
            "cat",
        ],
        1,
    );
    let target = format!("tcp://127.0.0.1:{}", server.port());
    assert_eq!(py_roundtrip(&target, b"through\n"), b"through\n");
}

/// A Python client that stays connected: prints the first line it gets
/// (a pid), then `eof` once the server closes. Returns it and that pid.
fn connected_client(server: &Server) -> (crate::util::Proc, u32) {
    let client = crate::util::spawn_python(
        "s = connect(sys.argv[1])\nout(recv_line(s))\nout(b'eof' if recv_all(s) == b'' else b'data')\n",
        &[server.addr()],
    );
    let pid = client.stdout.wait_for("a pid", |_| true).parse().unwrap();
    (client, pid)
}

#[test]
fn sigterm_with_a_running_program_leaves_nothing() {
    let mut server = serve_cmd(&[], &["sh", "-c", ESCAPE_THEN_CAT]);
    let (client, pid) = connected_client(&server);
    assert!(alive(pid));
    server.sigterm();
    assert_eq!(server.exit_code(), 0, "{}", server.stderr());
    wait_until_dead(pid, "the sleep of a program running at shutdown");
    client.stdout.wait_for("the client's EOF", |l| l == "eof");
}

/// The textbook "simulated ssh" done as inetd would: the operator's shell
/// loop runs each line a client sends and answers with the length first,
/// then the output ("no output" for a silent command); the seed-style client
/// sends command lines and reads replies, one bigger than one `recv`.
#[test]
fn the_simulated_ssh_seed_as_an_inetd_service() {
    let loop_ = r#"while IFS= read -r line; do
  out=$(sh -c "$line" 2>&1)
  [ -z "$out" ] && out="no output"
  printf '%s\n' "$(printf '%s' "$out" | wc -c)"
  printf '%s' "$out"
done"#;
    let server = serve_cmd(&[], &["/bin/sh", "-c", loop_]);
    let client = r#"
s = connect(sys.argv[1])
f = s.makefile("rb")
for command in sys.stdin.read().splitlines():
    s.sendall(command.encode() + b"\n")
    size = int(f.readline())
    data = f.read(size)
    assert len(data) == size, (command, size, len(data))
    out(b"%s => %d %s\n" % (command.encode(), size, hashlib.sha256(data).hexdigest()[:16].encode()))
    if command == "echo hello":
        assert data == b"hello", data
    if command == "true":
        assert data == b"no output", data
    if command.startswith("seq"):
        assert data == "\n".join(str(i) for i in range(1, 20001)).encode()
s.close()
"#;
    let commands = "echo hello\nseq 1 20000\ntrue\necho $SOCKETKIT_PROTO\n";
    let replies = crate::util::text(&python_ok(client, &[server.addr()], commands.as_bytes()));
    let lines: Vec<&str> = replies.lines().collect();
    assert_eq!(lines.len(), 4, "{replies}");
    assert!(lines[0].starts_with("echo hello => 5 "), "{replies}");
    assert!(
        lines[3].starts_with("echo $SOCKETKIT_PROTO => 3 "),
        "{replies}"
    );
}

#[test]
fn nc_and_socat_as_clients_over_tcp_and_a_unix_socket() {
    // `sort` answers only at end of input: nc -N's half-close must arrive.
    let server = serve_cmd(&[], &["sort", "-r"]);
    let port = server.port().to_string();
    let out = crate::util::run(
        {
            let mut nc = std::process::Command::new("nc");
            nc.args(["-N", "127.0.0.1", &port]);
            nc
        },
        b"a\nc\nb\n",
    );
    crate::util::assert_success("nc", &out);
    assert_eq!(crate::util::text(&out.stdout), "c\nb\na\n");

    let dir = crate::util::tempdir();
    let path = dir.path().join("cmd.sock");
    let address = format!("unix:{}", path.display());
    let server = Server::start(
        &[
            "serve",
            "cmd",
            &address,
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; echo \"$SOCKETKIT_PROTO\"",
        ],
        1,
    );
    assert_eq!(server.addr(), address);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is its owner's only");
    let out = crate::util::run(
        {
            let mut socat = std::process::Command::new("socat");
            socat.args(["-t", "5", "-", &format!("UNIX-CONNECT:{}", path.display())]);
            socat
        },
        b"hello\n",
    );
    crate::util::assert_success("socat", &out);
    assert_eq!(crate::util::text(&out.stdout), "HELLO\nunix\n");
}

#[test]
fn a_silent_connection_ends_at_the_idle_timeout_with_all_its_processes() {
    // The program neither reads nor writes after the pid: only the idle
    // timeout can end it while the client stays connected and silent.
    let server = serve_cmd(
        &["--idle-timeout", "500ms"],
        &[
            "sh",
            "-c",
            "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!; exec sleep 300",
        ],
    );
    let code = r#"
s = connect(sys.argv[1])
out(recv_line(s))
assert recv_all(s) == b""
"#;
    let pid: u32 = crate::util::text(&python_ok(code, &[server.addr()], b""))
        .trim()
        .parse()
        .unwrap();
    wait_until_dead(pid, "the sleep of an idle connection");
    server.proc.stderr.wait_for("an idle audit line", |l| {
        l.contains("cmd connection finished") && l.contains("idle=true")
    });
}

#[test]
fn client_certificates_let_tls_serve_off_loopback() {
    let dir = crate::util::tempdir();
    let pki = dir.path().join("pki");
    let pki_path = pki.to_str().unwrap();
    let out = run_socketkit(&["pki", "init", pki_path, "--client", "alice"], b"");
    crate::util::assert_success("pki init", &out);
    let file = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    let (cert, key, ca) = (file("server.pem"), file("server-key.pem"), file("ca.pem"));
    let program = ["--", "sh", "-c", "echo \"$SOCKETKIT_PROTO\"; cat"];
    let mut refused = vec![
        "serve",
        "cmd",
        "tls://0.0.0.0:0",
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    refused.extend_from_slice(&program);
    let line = assert_one_error_line(&run_socketkit(&refused, b""), 1);
    assert!(line.contains("--client-ca"), "{line}");

    let mut args = refused[..7].to_vec();
    args.extend_from_slice(&["--client-ca", &ca]);
    args.extend_from_slice(&program);
    let server = Server::start(&args, 1);
    let target = format!("tls://127.0.0.1:{}", server.port());
    let (alice, alice_key) = (file("alice.pem"), file("alice-key.pem"));
    let out = run_socketkit(
        &[
            "connect", &target, "--ca", &ca, "--cert", &alice, "--key", &alice_key,
        ],
        b"over tls\n",
    );
    crate::util::assert_success("connect with a client certificate", &out);
    assert_eq!(crate::util::text(&out.stdout), "tls\nover tls\n");
}

#[test]
fn the_drain_deadline_kills_a_program_that_ignores_sigterm() {
    let script = "trap '' TERM; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!; \
                  while :; do sleep 1; done";
    let mut server = serve_cmd(&["--drain-timeout", "300ms"], &["sh", "-c", script]);
    let (_client, pid) = connected_client(&server);
    server.sigterm();
    assert_eq!(server.exit_code(), 0, "{}", server.stderr());
    wait_until_dead(pid, "the sleep of a program that ignored SIGTERM");
    assert!(
        server
            .stderr()
            .contains("cmd killed: its connection was aborted"),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_slow_client_gets_all_the_output_of_a_program_that_exited() {
    // The program's 4 MiB sit in the pipe and socket buffers when it exits;
    // a client reading 32 KiB every 50 ms takes seconds more to get them.
    let server = serve_cmd(&[], &["head", "-c", "4194304", "/dev/zero"]);
    let code = r#"
s = connect(sys.argv[1])
s.shutdown(socket.SHUT_WR)
total = 0
while True:
    b = s.recv(32768)
    if not b:
        break
    total += len(b)
    time.sleep(0.05)
out("%d\n" % total)
"#;
    let total = crate::util::text(&python_ok(code, &[server.addr()], b""));
    assert_eq!(total.trim(), "4194304");
}
