//! Remote exec end to end: the real server and client binaries, a Python
//! client written from PROTOCOL.md, raw sockets for protocol abuse, and
//! /proc to check that nothing a command started survives it.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use util::{run, run_with, socketkit, Proc, Server, WAIT};

const TOKEN: &str = "correct horse battery staple";

/// A demo-mode exec server (plain TCP on loopback with a token) in a temp
/// directory that is also the commands' working directory.
struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start(extra: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        let token = dir.path().join("token");
        let cwd = dir.path().to_str().unwrap().to_owned();
        let mut args = vec![
            "serve",
            "exec",
            "tcp://127.0.0.1:0",
            "--insecure-plaintext",
            "--token-file",
            token.to_str().unwrap(),
            "--cwd",
            &cwd,
        ];
        args.extend_from_slice(extra);
        let server = Server::start(&args, 1);
        Fixture { server, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn client(&self, command: &[&str]) -> Command {
        self.client_with(&[], command)
    }

    fn client_with(&self, options: &[&str], command: &[&str]) -> Command {
        let token = self.path("token");
        let mut args = vec![
            "exec",
            self.server.addr(),
            "--insecure-plaintext",
            "--token-file",
            token.to_str().unwrap(),
        ];
        args.extend_from_slice(options);
        args.push("--");
        args.extend_from_slice(command);
        socketkit(args)
    }

    fn exec(&self, command: &[&str], input: &[u8]) -> Output {
        run(self.client(command), input)
    }

    /// Runs `sh -c SCRIPT` in the background; the script's first line of
    /// output is a pid, returned once it arrives.
    fn spawn_printing_pid(&self, name: &str, script: &str) -> (Proc, u32) {
        let client = Proc::spawn(name, self.client(&["sh", "-c", script]), true);
        let pid = client
            .stdout
            .wait_for("a pid", |l| !l.is_empty())
            .parse()
            .unwrap();
        (client, pid)
    }
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ten_mebibytes_of_output_arrive_exactly_with_streams_kept_apart() {
    let fx = Fixture::start(&[]);
    let out = fx.exec(&["sh", "-c", "seq 1 1500000; seq 1 3 >&2"], b"");
    let expected: String = (1..=1_500_000).map(|n| format!("{n}\n")).collect();
    assert!(expected.len() > 10 * 1024 * 1024);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        out.stdout == expected.as_bytes(),
        "stdout differs ({} bytes)",
        out.stdout.len()
    );
    assert_eq!(stderr_of(&out), "1\n2\n3\n");
}

#[test]
fn exit_statuses_and_signals_are_reported() {
    let fx = Fixture::start(&[]);
    for (script, status) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 42", 42),
        ("kill -9 $$", 137),
    ] {
        let out = fx.exec(&["sh", "-c", script], b"");
        assert_eq!(
            out.status.code(),
            Some(status),
            "{script}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn stdin_is_forwarded_to_the_end() {
    let fx = Fixture::start(&[]);
    let input = vec![7u8; 5 * 1024 * 1024];
    let out = fx.exec(&["wc", "-c"], &input);
    assert_eq!(stdout_of(&out).trim(), "5242880", "{}", stderr_of(&out));
}

#[test]
fn fifty_sessions_at_once() {
    let fx = Fixture::start(&[]);
    let mut clients: Vec<Proc> = (0..50)
        .map(|n| {
            let label = format!("session-{n}");
            Proc::spawn(&label, fx.client(&["echo", &label]), false)
        })
        .collect();
    for (n, client) in clients.iter_mut().enumerate() {
        let label = format!("session-{n}");
        client.stdout.wait_for(&label, |l| l == label);
        let status = client.wait_exit_within(Duration::from_secs(60));
        assert!(status.success(), "session {n}: {}", client.stderr.text());
    }
}

/// Every process whose /proc/PID/stat fields after the command name
/// (state, ppid, pgrp, session, ...) satisfy `wanted`.
fn processes_where(wanted: impl Fn(&[&str]) -> bool) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if wanted(&fields) {
            found.push(pid);
        }
    }
    found
}

/// Every process whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let pgid = pgid.to_string();
    processes_where(|fields| fields.get(2) == Some(&pgid.as_str()))
}

/// Polls `find` until it finds nothing, failing after [`WAIT`].
fn wait_until_none(what: &str, find: impl Fn() -> Vec<u32>) {
    let deadline = Instant::now() + WAIT;
    while !find().is_empty() {
        assert!(Instant::now() < deadline, "{what}: {:?}", find());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_until_gone(pgid: u32) {
    wait_until_none(&format!("process group {pgid} still alive"), || {
        group_members(pgid)
    });
}

#[test]
fn a_command_dies_with_its_group_when_the_client_disconnects() {
    let fx = Fixture::start(&[]);
    // The shell starts a background sleep, prints its pid (= the group id),
    // then waits on a second sleep.
    let (mut client, pgid) =
        fx.spawn_printing_pid("exec sleep", "sleep 1000 & echo $$; sleep 1000");
    assert!(group_members(pgid).len() >= 2, "sh and its sleeps run");
    util::signal(client.pid(), "KILL");
    client.wait_exit();
    wait_until_gone(pgid);
}

#[test]
fn server_shutdown_ends_running_commands_and_their_groups() {
    let mut fx = Fixture::start(&[]);
    let (_client, pgid) = fx.spawn_printing_pid("exec sleep", "echo $$; sleep 1000");
    fx.server.sigterm();
    assert_eq!(fx.server.exit_code(), 0);
    wait_until_gone(pgid);
}

#[test]
fn a_command_over_its_time_limit_is_killed() {
    let fx = Fixture::start(&["--cmd-timeout", "500ms"]);
    let out = fx.exec(&["sleep", "30"], b"");
    assert_eq!(out.status.code(), Some(128 + 15), "SIGTERM ended it");
    assert!(
        stderr_of(&out).contains("time limit"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn output_over_the_limit_is_cut_and_reported() {
    let fx = Fixture::start(&["--max-output", "1000"]);
    let out = fx.exec(&["seq", "1", "1000000"], b"");
    assert_eq!(out.stdout.len(), 1000);
    assert!(stderr_of(&out).contains("truncated"), "{}", stderr_of(&out));
}

// ---------------------------------------------------------------------------
// Containment: nothing a command starts outlives it, however it detaches.

/// Whether `pid` runs (a zombie is dead).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    state != Some("Z")
}

fn wait_until_dead(pid: u32, what: &str) {
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still alive after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid a command wrote to `path`, waiting for it to appear.
fn pid_in(path: &Path) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A subreaper server must reap what it inherits: no dead children of
/// `server` stay unreaped.
fn wait_until_reaped(server: u32) {
    let server = server.to_string();
    wait_until_none("the server left zombies", || {
        processes_where(|fields| {
            fields.first() == Some(&"Z") && fields.get(1) == Some(&server.as_str())
        })
    });
}

/// Two ways out of a process group: `setsid`, and the daemon's double fork
/// (fork, setsid, fork, parent exits). Each escapee writes its pid to
/// `escaped`; the command waits until it has, then prints it and runs on
/// for `then`.
fn escape_scripts(then: &str) -> [(&'static str, String); 2] {
    let wait = "while [ ! -e escaped ]; do sleep 0.01; done; echo \"$(cat escaped)\"";
    let setsid = format!(
        "setsid sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped; exec sleep 300' \
         </dev/null >/dev/null 2>&1 & {wait}; {then}"
    );
    let daemon = "import os\n\
        if os.fork(): os._exit(0)\n\
        os.setsid()\n\
        if os.fork(): os._exit(0)\n\
        open('escaped.tmp', 'w').write(str(os.getpid()))\n\
        os.rename('escaped.tmp', 'escaped')\n\
        os.execvp('sleep', ['sleep', '300'])\n";
    let double_fork = format!("python3 -c \"{daemon}\" </dev/null >/dev/null 2>&1; {wait}; {then}");
    [("setsid", setsid), ("double fork", double_fork)]
}

/// Each containment this machine offers: the automatic one (a cgroup where
/// the server may create one) and the subreaper.
const CONTAINMENTS: [&str; 2] = ["auto", "subreaper"];

#[test]
fn a_process_that_leaves_the_session_dies_when_the_command_ends() {
    for containment in CONTAINMENTS {
        let fx = Fixture::start(&["--containment", containment]);
        for (how, script) in escape_scripts("true") {
            let _ = std::fs::remove_file(fx.path("escaped"));
            let out = fx.exec(&["sh", "-c", &script], b"");
            assert_eq!(out.status.code(), Some(0), "{how}: {}", stderr_of(&out));
            let pid: u32 = stdout_of(&out).trim().parse().unwrap();
            wait_until_dead(pid, &format!("{how} escapee under {containment}"));
            if containment == "subreaper" {
                wait_until_reaped(fx.server.pid());
            }
        }
    }
}

#[test]
fn a_process_that_leaves_the_session_dies_at_the_time_limit() {
    for containment in CONTAINMENTS {
        let fx = Fixture::start(&["--containment", containment, "--cmd-timeout", "1s"]);
        for (how, script) in escape_scripts("sleep 30") {
            let _ = std::fs::remove_file(fx.path("escaped"));
            let out = fx.exec(&["sh", "-c", &script], b"");
            assert_eq!(
                out.status.code(),
                Some(128 + 15),
                "{how}: {}",
                stderr_of(&out)
            );
            let pid: u32 = stdout_of(&out).trim().parse().unwrap();
            wait_until_dead(pid, &format!("{how} escapee under {containment}"));
        }
    }
}

#[test]
fn a_process_that_leaves_the_session_dies_with_the_server() {
    for containment in CONTAINMENTS {
        for (how, script) in escape_scripts("sleep 300") {
            let mut fx = Fixture::start(&["--containment", containment]);
            let (_client, pid) = fx.spawn_printing_pid(how, &script);
            assert!(alive(pid), "{how}: the escapee runs");
            fx.server.sigterm();
            assert_eq!(fx.server.exit_code(), 0, "{}", fx.server.stderr());
            wait_until_dead(pid, &format!("{how} escapee under {containment}"));
        }
    }
}

#[test]
fn commands_of_a_killed_server_die_when_the_next_one_starts() {
    let fx = Fixture::start(&[]);
    if !fx.server.stderr().contains("cgroup v2") {
        eprintln!("skipped: no cgroup v2 containment here");
        return;
    }
    let (_client, pid) = fx.spawn_printing_pid("orphaned", "echo $$; exec sleep 300");
    util::signal(fx.server.pid(), "KILL");
    assert!(alive(pid), "nothing was left to kill it");
    let _next = Fixture::start(&[]);
    wait_until_dead(pid, "the command of a killed server");
}

#[test]
fn the_containment_in_force_is_logged_at_start() {
    let fx = Fixture::start(&["--containment", "subreaper"]);
    fx.server
        .proc
        .stderr
        .wait_for("the containment", |l| l.contains("containment=subreaper"));
}

/// A client that floods itself with output and then stops reading (SIGSTOP),
/// its stdout thrown away so the test holds none of it. Killed on drop.
struct StoppedClient(std::process::Child);

impl StoppedClient {
    fn start(fx: &Fixture, script: &str) -> (StoppedClient, u32) {
        let mut cmd = fx.client(&["sh", "-c", script]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let client = StoppedClient(cmd.spawn().unwrap());
        let leader = pid_in(&fx.path("leader"));
        util::signal(client.0.id(), "STOP");
        wait_until_stalled(fx.server.port());
        (client, leader)
    }
}

/// Bytes the server has queued for its one client on `port` and the client
/// has not taken, from /proc/net/tcp.
fn send_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit_once(':')?.1;
        let established = fields.get(3) == Some(&"01");
        if !established || u16::from_str_radix(local_port, 16).ok()? != port {
            return None;
        }
        let tx = fields.get(4)?.split_once(':')?.0;
        u64::from_str_radix(tx, 16).ok()
    })
}

/// Waits until the server's writes to a client that stopped reading are
/// stuck: its send queue is full and no longer moving.
fn wait_until_stalled(port: u16) {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    loop {
        let queued = send_queue(port).filter(|&q| q > 0);
        if queued.is_some() && queued == last {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server's writes never stalled"
        );
        last = queued;
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for StoppedClient {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_client_that_stops_reading_cannot_hold_off_the_time_limit() {
    let fx = Fixture::start(&["--cmd-timeout", "2s"]);
    let (_client, leader) = StoppedClient::start(&fx, "echo $$ > leader; exec yes");
    // The time limit (2 s) and the kill after it (2 s later) fire while
    // the write to the client is stuck; the idle timeout is 300 s.
    wait_until_dead(leader, "the flooding command");
}

#[test]
fn shutdown_is_heard_while_a_client_stops_reading() {
    let fx = Fixture::start(&["--drain-timeout", "60s"]);
    let script = "sleep 300 & echo $! > background; echo $$ > leader; exec yes";
    let (_client, leader) = StoppedClient::start(&fx, script);
    let background = pid_in(&fx.path("background"));
    fx.server.sigterm();
    // Long before the drain deadline: shutdown ended the command at once.
    wait_until_dead(leader, "the flooding command");
    wait_until_dead(background, "its background sleep");
}

/// A client that never reads but keeps sending input keeps the connection
/// busy; the write it never takes still fails after the idle timeout.
#[test]
fn a_client_that_only_sends_cannot_hold_a_stalled_write() {
    let fx = Fixture::start(&["--cmd-timeout", "1s", "--idle-timeout", "1s"]);
    // Speaks PROTOCOL.md: authenticates, runs `yes` with stdin, then sends
    // a byte of input every 100 ms and never reads.
    let trickler = r#"
import json, socket, struct, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
def frame(kind, body):
    s.sendall(struct.pack(">IB", len(body) + 1, kind) + body)
def read_frame():
    head = b""
    while len(head) < 5:
        head += s.recv(5 - len(head))
    length, kind = struct.unpack(">IB", head)
    body = b""
    while len(body) < length - 1:
        body += s.recv(length - 1 - len(body))
    return kind
read_frame()
frame(0x01, json.dumps({"protocol": 1, "client": "trickler", "token": sys.argv[2]}).encode())
read_frame()
frame(0x10, json.dumps({"argv": ["yes"], "stdin": True}).encode())
print("started", flush=True)
try:
    while True:
        frame(0x20, b"x")
        time.sleep(0.1)
except OSError:
    print("closed", flush=True)
"#;
    let port = fx.server.port().to_string();
    let client = util::spawn_python(trickler, &[&port, TOKEN]);
    client
        .stdout
        .wait_for("the command started", |l| l == "started");
    // The idle timeout is 11 s here (the time limit plus 10 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let log = fx.server.stderr();
        if log.contains("exec command finished") {
            assert!(log.contains("client_gone=true"), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled write never failed:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_drain_deadline_kills_the_command_and_audits_it() {
    for containment in CONTAINMENTS {
        let mut fx = Fixture::start(&["--containment", containment, "--drain-timeout", "300ms"]);
        // SIGTERM ignored, so only the kill after the 2 s grace would end
        // it, and the drain deadline comes first.
        let script = "trap '' TERM; echo $$; exec sleep 300";
        let (_client, pid) = fx.spawn_printing_pid("stubborn", script);
        fx.server.sigterm();
        fx.server.exit_code();
        wait_until_dead(
            pid,
            &format!("the command of an aborted session ({containment})"),
        );
        let log = fx.server.stderr();
        assert!(
            log.lines().any(|l| l.contains("its session was aborted") && l.contains(&format!("pid={pid}"))),
            "no audit line for pid {pid}:\n{log}"
        );
    }
}

/// The subreaper's sweep at one command's end spares the orphans of
/// another command that is still running (they are still in its session),
/// and kills them when that one ends.
#[test]
fn a_sweep_spares_what_a_running_command_still_owns() {
    let fx = Fixture::start(&["--containment", "subreaper"]);
    let script = "(sleep 300 & echo $! > owned); echo $$; sleep 300";
    let (client, leader) = fx.spawn_printing_pid("owner", script);
    let owned = pid_in(&fx.path("owned"));
    // Wait until the sleep is an orphan of the server's, what a sweep looks at.
    let server = fx.server.pid().to_string();
    let deadline = Instant::now() + WAIT;
    while !processes_where(|fields| fields.get(1) == Some(&server.as_str())).contains(&owned) {
        assert!(
            Instant::now() < deadline,
            "the sleep never became the server's"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = fx.exec(&["true"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    wait_until_reaped(fx.server.pid());
    assert!(
        alive(owned) && alive(leader),
        "the running command was left whole"
    );
    drop(client);
    wait_until_dead(owned, "the orphan of the command that ended");
    wait_until_dead(leader, "the command whose client left");
}

#[test]
fn hostile_argv_cannot_forge_audit_lines() {
    let fx = Fixture::start(&["--allow-cmd", "echo"]);
    let forged = "x\n2026-01-01T00:00:00Z  INFO FORGED exec command finished\u{1b}[2J\u{7}";
    let refused = fx.exec(&[forged], b"");
    assert_eq!(refused.status.code(), Some(255));
    let ran = fx.exec(&["echo", forged], b"");
    assert_eq!(ran.status.code(), Some(0), "{}", stderr_of(&ran));
    let stderr = &fx.server.proc.stderr;
    stderr.wait_for("the refusal", |l| l.contains("exec refused"));
    stderr.wait_for("the audit line", |l| l.contains("exec command finished"));
    let log = fx.server.stderr();
    for line in log.lines().filter(|l| l.contains("FORGED")) {
        assert!(
            line.contains("exec refused") || line.contains("peer="),
            "a forged line: {line:?}\n{log}"
        );
    }
    assert!(!log.contains('\u{1b}') && !log.contains('\u{7}'), "{log:?}");
}

#[test]
fn a_wrong_token_runs_nothing() {
    let fx = Fixture::start(&[]);
    std::fs::write(fx.path("wrong"), "not the token").unwrap();
    let marker = fx.path("marker");
    let wrong = fx.path("wrong");
    let out = run(
        socketkit([
            "exec",
            fx.server.addr(),
            "--insecure-plaintext",
            "--token-file",
            wrong.to_str().unwrap(),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr_of(&out).contains("authentication failed"),
        "{}",
        stderr_of(&out)
    );
    assert!(!marker.exists(), "the command must not have run");
    fx.server
        .proc
        .stderr
        .wait_for("a warning naming the peer", |l| {
            l.contains("authentication failed") && l.contains("127.0.0.1")
        });
}

#[test]
fn plain_tcp_is_refused_at_start_without_the_flags() {
    let refused = run(socketkit(["serve", "exec", "tcp://127.0.0.1:0"]), b"");
    let line = util::assert_error_with_hint(&refused);
    assert!(line.contains("refusing plain TCP"), "{line}");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t");
    std::fs::write(&token, "x").unwrap();
    let public = run(
        socketkit([
            "serve",
            "exec",
            ":0",
            "--insecure-plaintext",
            "--token-file",
            token.to_str().unwrap(),
        ]),
        b"",
    );
    assert!(util::assert_one_error_line(&public, 1).contains("loopback"));
    let tokenless = run(
        socketkit(["serve", "exec", "127.0.0.1:0", "--insecure-plaintext"]),
        b"",
    );
    assert!(util::assert_one_error_line(&tokenless, 1).contains("--token-file"));
}

#[test]
fn argv_is_not_a_shell_and_shells_need_the_flag() {
    let fx = Fixture::start(&[]);
    let out = fx.exec(&["echo", "$(touch marker); ls | wc"], b"");
    assert_eq!(stdout_of(&out), "$(touch marker); ls | wc\n");
    assert!(!fx.path("marker").exists());
    let shell = run(fx.client_with(&["--shell"], &["echo", "hi", ">", "x"]), b"");
    assert_eq!(shell.status.code(), Some(255));
    assert!(
        stderr_of(&shell).contains("--allow-shell"),
        "{}",
        stderr_of(&shell)
    );

    let permissive = Fixture::start(&["--allow-shell"]);
    let shell = run(
        permissive.client_with(&["--shell"], &["echo hi | tr a-z A-Z"]),
        b"",
    );
    assert_eq!(stdout_of(&shell), "HI\n", "{}", stderr_of(&shell));
}

#[test]
fn allowed_commands_restrict_what_runs() {
    let fx = Fixture::start(&["--allow-cmd", "echo"]);
    assert_eq!(stdout_of(&fx.exec(&["echo", "ok"], b"")), "ok\n");
    let denied = fx.exec(&["touch", "marker"], b"");
    assert_eq!(denied.status.code(), Some(255));
    assert!(
        stderr_of(&denied).contains("not allowed"),
        "{}",
        stderr_of(&denied)
    );
    assert!(!fx.path("marker").exists());
}

#[test]
fn the_environment_is_cleared_and_extra_names_need_permission() {
    let fx = Fixture::start(&["--allow-env", "GREETING"]);
    let out = run(fx.client_with(&["--env", "GREETING=hi"], &["env"]), b"");
    let listing = stdout_of(&out);
    let mut names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split('=').next())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["GREETING", "LANG", "PATH"], "{}", stderr_of(&out));
    let refused = run(
        fx.client_with(&["--env", "LD_PRELOAD=/x.so"], &["true"]),
        b"",
    );
    assert!(
        stderr_of(&refused).contains("LD_PRELOAD"),
        "{}",
        stderr_of(&refused)
    );
}

#[test]
fn a_second_command_beyond_the_maximum_gets_busy() {
    let fx = Fixture::start(&["--max-commands", "1"]);
    let first = Proc::spawn(
        "first",
        fx.client(&["sh", "-c", "echo started; sleep 30"]),
        true,
    );
    first
        .stdout
        .wait_for("the first command running", |l| l == "started");
    let second = fx.exec(&["true"], b"");
    assert_eq!(second.status.code(), Some(255));
    assert!(
        stderr_of(&second).contains("busy"),
        "{}",
        stderr_of(&second)
    );
}

#[test]
fn ctrl_c_is_forwarded_to_the_command() {
    let fx = Fixture::start(&[]);
    let script = "trap 'echo got INT; exit 3' INT; echo ready; while :; do sleep 0.1; done";
    let mut client = Proc::spawn("trap", fx.client(&["sh", "-c", script]), true);
    client
        .stdout
        .wait_for("the trap installed", |l| l == "ready");
    util::signal(client.pid(), "INT");
    client
        .stdout
        .wait_for("the trap's message", |l| l == "got INT");
    assert_eq!(client.wait_exit().code(), Some(3));
}

#[test]
fn the_prompt_runs_one_command_per_line() {
    let fx = Fixture::start(&[]);
    let token = fx.path("token");
    let cmd = socketkit([
        "exec",
        fx.server.addr(),
        "--insecure-plaintext",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    let out = run(
        cmd,
        b"echo 'hello world'\n\ntrue\nsh -c 'exit 4'\nexit\necho never\n",
    );
    assert_eq!(stdout_of(&out), "hello world\n");
    let stderr = stderr_of(&out);
    assert!(stderr.contains(">>: "), "{stderr}");
    assert!(stderr.contains("no output"), "{stderr}");
    assert!(stderr.contains("exit status 4"), "{stderr}");
}

fn python_client(target: &str, token: &str, argv: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/exec_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(target).arg(token).args(argv);
    run(cmd, b"")
}

#[test]
fn a_python_client_written_from_the_spec_runs_a_command() {
    let fx = Fixture::start(&[]);
    let target = format!("tcp:127.0.0.1:{}", fx.server.port());
    let out = python_client(
        &target,
        TOKEN,
        &["sh", "-c", "echo from python; echo warn >&2; exit 5"],
    );
    assert_eq!(stdout_of(&out), "from python\n");
    assert_eq!(stderr_of(&out), "warn\n");
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn a_four_gibibyte_frame_header_closes_only_that_connection() {
    let fx = Fixture::start(&[]);
    let mut abuser = TcpStream::connect(util::host_port(fx.server.addr())).unwrap();
    abuser.set_read_timeout(Some(WAIT)).unwrap();
    abuser.write_all(&[0xff, 0xff, 0xff, 0xff, 0x22]).unwrap();
    let mut received = Vec::new();
    abuser.read_to_end(&mut received).unwrap();
    // HELLO first, then an ERROR frame of kind protocol, then EOF.
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("\"kind\":\"protocol\""), "{text}");
    assert!(text.contains("limit"), "{text}");
    let out = fx.exec(&["echo", "still serving"], b"");
    assert_eq!(stdout_of(&out), "still serving\n");
}

#[test]
fn the_local_socket_admits_only_its_own_user() {
    let runtime = tempfile::tempdir().unwrap();
    let mut server_cmd = socketkit(["serve", "exec"]);
    server_cmd.env("XDG_RUNTIME_DIR", runtime.path());
    let server = Proc::spawn("local exec", server_cmd, false);
    let line = server
        .stdout
        .wait_for("the local socket", |l| l.starts_with("listening on unix:"));
    let path = line.strip_prefix("listening on unix:").unwrap().to_owned();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut client = socketkit(["exec", "--", "echo", "local"]);
    client.env("XDG_RUNTIME_DIR", runtime.path());
    let out = run(client, b"");
    assert_eq!(stdout_of(&out), "local\n", "{}", stderr_of(&out));
    let out = python_client(&format!("unix:{path}"), "-", &["echo", "spec"]);
    assert_eq!(stdout_of(&out), "spec\n", "{}", stderr_of(&out));
    drop(server);
}

/// Runs `cmd` as the unprivileged `nobody` user, when this test runs as
/// root and setpriv exists.
fn as_nobody(args: &[&str]) -> Option<Command> {
    let root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !root || !setpriv {
        eprintln!("skipped: needs root and setpriv to run a server as another user");
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        util::bin(),
    ])
    .args(args);
    Some(cmd)
}

/// A runtime directory (for the local exec socket) that `nobody` may use.
fn runtime_dir_for_anyone() -> tempfile::TempDir {
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        runtime.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    runtime
}

#[test]
fn a_peer_of_another_uid_is_refused_by_its_credentials() {
    let runtime = runtime_dir_for_anyone();
    let marker = runtime.path().join("marker");
    let Some(mut server_cmd) = as_nobody(&["serve", "exec", "--cwd", "/tmp"]) else {
        return;
    };
    server_cmd.env("XDG_RUNTIME_DIR", runtime.path());
    let server = Proc::spawn("exec as nobody", server_cmd, false);
    server
        .stdout
        .wait_for("the local socket", |l| l.starts_with("listening on unix:"));
    // Root may open the 0600 socket file; the uid check must still refuse it.
    let mut client = socketkit(["exec", "--", "touch", marker.to_str().unwrap()]);
    client.env("XDG_RUNTIME_DIR", runtime.path());
    let out = run_with(client, b"", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(255), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("authentication failed"),
        "{}",
        stderr_of(&out)
    );
    assert!(!marker.exists());
    server
        .stderr
        .wait_for("the refusal logged", |l| l.contains("peer uid 0"));
}

#[test]
fn without_a_writable_cgroup_auto_falls_back_and_cgroup_refuses_to_start() {
    let runtime = runtime_dir_for_anyone();
    let Some(mut forced) = as_nobody(&["serve", "exec", "--containment", "cgroup"]) else {
        return;
    };
    forced.env("XDG_RUNTIME_DIR", runtime.path());
    let line = util::assert_one_error_line(&run(forced, b""), 1);
    assert!(line.contains("no cgroup v2 containment"), "{line}");
    let Some(mut auto) = as_nobody(&["serve", "exec", "--cwd", "/tmp"]) else {
        return;
    };
    auto.env("XDG_RUNTIME_DIR", runtime.path());
    let server = Proc::spawn("exec as nobody", auto, false);
    server
        .stderr
        .wait_for("the fallback", |l| l.contains("containment=subreaper"));
}
