//! Test harness for the `socketkit` binary, in the style of ripgrep's
//! `tests/util.rs`: start the real binary (and independent peers written in
//! Python, socat or nc), learn its addresses from what it prints, and clean up
//! by PID whatever happens.
//!
//! Every wait is bounded: a server that never prints `listening on`, a client
//! that never finishes or a reply that never comes fails the test after
//! [`WAIT`] instead of hanging it. Conditions are waited for by reading (a
//! line, a reply, end of stream); only process exit and "is the listener
//! closed yet" are polled, in bounded loops, because no event exists for
//! them.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

/// The chat tests' harness: `serve chat` and nc-like clients.
pub mod chat;
/// HTTP peers for `get` and `forward`: nginx and canned replies.
pub mod http;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single expected event may take before the test fails.
/// Generous: the suite must pass on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(10);

/// Bound on a whole client run (a Python script, `socketkit connect`, nc).
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Path of the binary under test, built by cargo for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_socketkit")
}

/// A `socketkit` command with a clean logging environment.
pub fn socketkit<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("RUST_LOG");
    cmd
}

// ---------------------------------------------------------------------------
// Reading a child's output line by line, with deadlines.

/// A reader thread over one pipe of a child: every line goes to a channel
/// (for waiting on it) and to a log (for failure messages). The thread keeps
/// draining the pipe until it closes, so a chatty child never blocks on a
/// full pipe.
pub struct LineTap {
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<u8>>>,
}

impl LineTap {
    fn new<R: Read + Send + 'static>(pipe: R) -> LineTap {
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        shared.lock().unwrap().extend_from_slice(&line);
                        let text = String::from_utf8_lossy(&line);
                        let text = text.strip_suffix('\n').unwrap_or(&text);
                        // The receiver may be gone; keep draining anyway.
                        let _ = tx.send(text.to_owned());
                    }
                }
            }
        });
        LineTap { lines, log }
    }

    /// Everything read so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// The next line, or `None` if the pipe closed or `deadline` passed.
    pub fn next_line_until(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// Reads lines until one satisfies `wanted` and returns it; panics after
    /// [`WAIT`] or at end of stream, showing `what` and everything seen.
    pub fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next_line_until(deadline) {
                Some(line) if wanted(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "no line with {what} within {WAIT:?} (or the stream ended); saw:\n{}",
                    self.text()
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// A background child process.

/// A child running in the background (a server, a Python peer, an
/// interactive client). Dropping it kills that child, by PID, and reaps it.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: LineTap,
    pub stderr: LineTap,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr piped (and tapped); stdin is a
    /// pipe when `with_stdin`, else /dev/null.
    pub fn spawn(name: &str, mut cmd: Command, with_stdin: bool) -> Proc {
        cmd.stdin(if with_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = LineTap::new(child.stdout.take().unwrap());
        let stderr = LineTap::new(child.stderr.take().unwrap());
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes to the child's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is not a pipe or closed");
        stdin.write_all(data).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The exit status if the child exits within `limit`, polling (there is
    /// no event for a child's exit that does not consume it).
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.status {
            return Some(status);
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most [`WAIT`]) for the child to exit; panics otherwise.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(WAIT)
    }

    pub fn wait_exit_within(&mut self, limit: Duration) -> ExitStatus {
        match self.exit_within(limit) {
            Some(status) => status,
            None => panic!(
                "{} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                self.name,
                self.stdout.text(),
                self.stderr.text()
            ),
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.status.is_none() && self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            // `Child::kill` signals exactly this PID (SIGKILL); then reap it.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The server under test.

/// A running `socketkit serve`, with the addresses it announced.
pub struct Server {
    pub proc: Proc,
    /// What followed `listening on ` on each announced line, in order.
    pub addrs: Vec<String>,
}

impl Server {
    /// Runs `socketkit ARGS` and reads `expect` lines of `listening on ADDR`
    /// from its stdout (each within [`WAIT`]).
    pub fn start(args: &[&str], expect: usize) -> Server {
        Server::start_command(socketkit(args), expect)
    }

    /// [`Server::start`] for a prepared command (e.g. with a umask set).
    pub fn start_command(cmd: Command, expect: usize) -> Server {
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let proc = Proc::spawn(&format!("socketkit {}", args.join(" ")), cmd, false);
        let deadline = Instant::now() + WAIT;
        let mut addrs = Vec::new();
        while addrs.len() < expect {
            let Some(line) = proc.stdout.next_line_until(deadline) else {
                panic!(
                    "socketkit {} announced {} of {expect} addresses within {WAIT:?}\nstdout:\n{}\nstderr:\n{}",
                    args.join(" "),
                    addrs.len(),
                    proc.stdout.text(),
                    proc.stderr.text()
                );
            };
            let addr = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"));
            addrs.push(addr.to_owned());
        }
        Server { proc, addrs }
    }

    /// [`Server::start`] with `config` as the server's `XDG_CONFIG_HOME`, so
    /// `--self-signed` makes and keeps its identity there rather than in the
    /// user's own configuration. `config` must outlive the server.
    pub fn start_with_config(args: &[&str], config: &Path, expect: usize) -> Server {
        let mut cmd = socketkit(args);
        cmd.env("XDG_CONFIG_HOME", config);
        Server::start_command(cmd, expect)
    }

    /// The first announced address, e.g. `tcp://127.0.0.1:40123`.
    pub fn addr(&self) -> &str {
        &self.addrs[0]
    }

    /// The port of the first announced internet address.
    pub fn port(&self) -> u16 {
        port_of(self.addr())
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        sigterm(self.pid());
    }

    /// Waits for exit and returns the code; panics on a signal death.
    pub fn exit_code(&mut self) -> i32 {
        let status = self.proc.wait_exit();
        status.code().unwrap_or_else(|| {
            panic!(
                "server died of a signal: {status:?}\nstderr:\n{}",
                self.proc.stderr.text()
            )
        })
    }

    /// Everything the server logged so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr.text()
    }
}

/// Stops `server` (SIGTERM, exit 0) and returns the `refused=N` of its
/// `server stopped` summary line: how many peers the access list (or the
/// PROXY protocol's `--proxy-from`) turned away, as the tests of both count
/// them.
pub fn refused_count(server: &mut Server) -> u64 {
    server.sigterm();
    assert_eq!(server.exit_code(), 0, "{}", server.stderr());
    let stderr = server.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("server stopped"))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"));
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("refused="))
        .unwrap_or_else(|| panic!("no refused= in {line:?}"))
        .parse()
        .unwrap()
}

/// The port at the end of an address like `tcp://[::]:5000`.
pub fn port_of(addr: &str) -> u16 {
    let (_, port) = addr.rsplit_once(':').expect("no port in address");
    port.parse().expect("bad port")
}

/// `host:port` without the scheme, for std clients.
pub fn host_port(addr: &str) -> &str {
    addr.split_once("://").map_or(addr, |(_, rest)| rest)
}

// ---------------------------------------------------------------------------
// Signals.

/// Sends signal `name` (TERM, INT, ...) to `pid` with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

pub fn sigterm(pid: u32) {
    signal(pid, "TERM");
}

// ---------------------------------------------------------------------------
// Running a client to completion.

/// Runs `cmd` to completion with `input` on stdin (written by a thread, so a
/// child that answers while reading never deadlocks against us), collecting
/// stdout and stderr; kills it and panics after `limit`.
pub fn run_with(mut cmd: Command, input: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        // The child may exit without reading everything: not our failure.
        let _ = stdin.write_all(&input);
    });
    let collect = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// `run_with` bounded by [`RUN_LIMIT`].
pub fn run(cmd: Command, input: &[u8]) -> Output {
    run_with(cmd, input, RUN_LIMIT)
}

/// Runs `socketkit ARGS` to completion with `input` on stdin.
pub fn run_socketkit(args: &[&str], input: &[u8]) -> Output {
    run(socketkit(args), input)
}

/// Panics, showing the output, unless the run exited 0.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The contract for every runtime error: exit status `code`, and stderr is
/// exactly one line starting `socketkit: `, no panic. Returns that line.
pub fn assert_one_error_line(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{stderr}");
    assert!(
        lines[0].starts_with("socketkit: "),
        "line does not start with 'socketkit: ': {stderr}"
    );
    lines[0].to_owned()
}

/// An error line that also carries a hint.
pub fn assert_error_with_hint(out: &Output) -> String {
    let line = assert_one_error_line(out, 1);
    assert!(line.contains(" (hint: "), "no hint in {line:?}");
    assert!(line.ends_with(')'), "hint not at the end: {line:?}");
    line
}

/// Runs `serve forward udp://127.0.0.1:0 --to udp://127.0.0.1:9 EXTRA...`
/// and returns its one error line (exit 1, see [`assert_one_error_line`]):
/// options that only make sense on a stream (`--to-proxy`, `--send-proxy`)
/// must refuse a datagram forward before it binds. Shared by the tests of
/// each such option.
pub fn serve_forward_udp_refused(extra: &[&str]) -> String {
    let mut args = vec![
        "serve",
        "forward",
        "udp://127.0.0.1:0",
        "--to",
        "udp://127.0.0.1:9",
    ];
    args.extend_from_slice(extra);
    assert_one_error_line(&run_socketkit(&args, b""), 1)
}

// ---------------------------------------------------------------------------
// Python peers.

/// Prepended to every Python snippet: connect to any address socketkit
/// prints, read a line, read to EOF, a sender-thread round trip, raw output,
/// and a one-connection TCP server (`accept_one`) for Python targets.
/// Every socket has a timeout, so a missing reply fails instead of hanging.
pub const PY_PRELUDE: &str = r#"
import hashlib, json, os, select, socket, sys, threading, time
T = 10.0

def parse(target):
    if target.startswith("unixgram:"):
        return socket.AF_UNIX, socket.SOCK_DGRAM, target[len("unixgram:"):]
    if target.startswith("unix:"):
        return socket.AF_UNIX, socket.SOCK_STREAM, target[len("unix:"):]
    kind = socket.SOCK_STREAM
    if target.startswith("udp://"):
        kind, target = socket.SOCK_DGRAM, target[len("udp://"):]
    elif target.startswith("tcp://"):
        target = target[len("tcp://"):]
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, kind, (host, int(port))

def connect(target):
    family, kind, addr = parse(target)
    s = socket.socket(family, kind)
    s.settimeout(T)
    s.connect(addr)
    return s

def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        buf += b
    return buf

def recv_all(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)

def out(data):
    if isinstance(data, str):
        data = data.encode()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()

def accept_one():
    """Listens on a free 127.0.0.1 port, prints it (the ready line
    spawn_python_server reads) and accepts one connection; returns the
    listener (keep it, so it stays open) and that connection, with a timeout."""
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(1)
    print(l.getsockname()[1], flush=True)
    c, _ = l.accept()
    c.settimeout(T)
    return l, c

def roundtrip(target, payload):
    """Sends payload from a thread while reading, half-closes, reads to EOF."""
    s = connect(target)
    errors = []
    def send():
        try:
            for i in range(0, len(payload), 65536):
                s.sendall(payload[i:i + 65536])
            s.shutdown(socket.SHUT_WR)
        except Exception as e:
            errors.append(e)
    sender = threading.Thread(target=send)
    sender.start()
    data = recv_all(s)
    sender.join()
    s.close()
    if errors:
        raise errors[0]
    return data
"#;

/// A `python3 -c PRELUDE+CODE ARGS...` command.
pub fn python_cmd(code: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(format!("{PY_PRELUDE}\n{code}"))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Runs a Python snippet to completion (bounded by [`RUN_LIMIT`]).
pub fn python(code: &str, args: &[&str], input: &[u8]) -> Output {
    run(python_cmd(code, args), input)
}

/// Runs a Python snippet that must succeed; returns its stdout.
pub fn python_ok(code: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = python(code, args, input);
    assert_success("python client", &out);
    out.stdout
}

/// Starts a Python snippet in the background (stdin piped).
pub fn spawn_python(code: &str, args: &[&str]) -> Proc {
    Proc::spawn("python3", python_cmd(code, args), true)
}

/// Starts a Python server that prints one line (its port or `ready`) once it
/// listens; returns it and that line.
pub fn spawn_python_server(code: &str, args: &[&str]) -> (Proc, String) {
    let proc = spawn_python(code, args);
    let line = proc.stdout.wait_for("the server's ready line", |_| true);
    (proc, line)
}

/// Sends `payload` to a stream address with a Python client (sender thread
/// plus reader, then half-close) and returns everything received.
pub fn py_roundtrip(target: &str, payload: &[u8]) -> Vec<u8> {
    python_ok(
        "out(roundtrip(sys.argv[1], sys.stdin.buffer.read()))",
        &[target],
        payload,
    )
}

/// How a Python echo client ([`assert_echoed`]) ends its side.
pub enum Ending {
    /// Half-closes after sending and reads to EOF ([`py_roundtrip`]).
    HalfClose,
    /// Reads exactly as many bytes as it sent and never half-closes: some
    /// proxies (microsocks, tinyproxy) close both directions when one side
    /// half-closes, so a reply still on its way would be lost (RFC 1928 and
    /// 9110 say nothing of half-close).
    ReadExactly,
}

/// Sends `payload` to `target` with a Python client (a sender thread while
/// it reads) and returns exactly as many bytes as were sent, never
/// half-closing (see [`Ending::ReadExactly`]).
pub fn py_echo_exact(target: &str, payload: &[u8]) -> Vec<u8> {
    python_ok(
        r#"
s = connect(sys.argv[1])
payload = sys.stdin.buffer.read()
sender = threading.Thread(target=lambda: s.sendall(payload))
sender.start()
got = bytearray()
while len(got) < len(payload):
    b = s.recv(65536)
    if not b:
        break
    got += b
sender.join()
s.close()
out(bytes(got))
"#,
        &[target],
        payload,
    )
}

/// Asserts that `payload`, sent to `target` (an echo, or a forward to one)
/// by a Python client ending as `ending` says, comes back byte-exact. The
/// bytes are compared without printing them (payloads run to megabytes);
/// `what` names the path in the failure.
pub fn assert_echoed(target: &str, payload: &[u8], ending: Ending, what: &str) {
    let got = match ending {
        Ending::HalfClose => py_roundtrip(target, payload),
        Ending::ReadExactly => py_echo_exact(target, payload),
    };
    assert!(got == payload, "{what}");
}

/// A TCP listener on 127.0.0.1 whose accept queue is full and never drained:
/// the kernel drops further SYNs, so connecting to it times out. A loopback
/// stand-in for a firewalled host (no traffic leaves the machine).
pub fn full_backlog_listener() -> (Proc, u16) {
    let code = r#"
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(0)
port = l.getsockname()[1]
first = socket.create_connection(("127.0.0.1", port), timeout=T)   # fills the queue
second = socket.socket()
second.setblocking(False)
try:
    second.connect(("127.0.0.1", port))                          # its SYN is dropped
except BlockingIOError:
    pass
out("%d\n" % port)
sys.stdin.read()
"#;
    let (proc, line) = spawn_python_server(code, &[]);
    (proc, line.parse().unwrap())
}

/// Waits (polling, bounded by `limit`) for a child we manage by hand; kills
/// it and panics on timeout.
pub fn wait_child(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {limit:?}", child.id());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// Misc.

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
/// closed), for "nothing listens here" cases.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls (bounded, no event exists for it) until connecting to `addr` is
/// refused, i.e. the listener is closed. Returns false after [`WAIT`].
pub fn wait_until_refused(addr: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return true,
            Err(e) => panic!("connecting to {addr}: unexpected error {e}"),
            Ok(stream) => {
                let _ = stream.shutdown(Shutdown::Both);
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    false
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failure can be
/// reproduced from the printed seed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A seed that differs between runs, printed for reproduction.
pub fn fresh_seed() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("random seed: {seed}");
    seed
}

/// Lower-case hex, for comparing binary data and digests readably.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lossy text, for assertions with readable diffs.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("socketkit-test-")
        .tempdir()
        .unwrap()
}

/// Polls `condition` until it holds, for conditions no event announces (a
/// file reaching a size, a directory emptying); panics after [`WAIT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` runs (a zombie is dead).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    state != Some("Z")
}

/// Polls (no event exists for another process's death) until `pid` is
/// dead; panics after [`WAIT`].
pub fn wait_until_dead(pid: u32, what: &str) {
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still alive after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
