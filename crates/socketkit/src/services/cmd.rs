//! `serve cmd`: inetd mode (ncat `--exec`, socat `EXEC:`). Each stream
//! connection gets its own run of one program, fixed by the operator, with
//! the connection as the program's stdin and stdout.
//!
//! The program starts as exec's commands do: argv without a shell (a shell
//! line only when the operator allows shells), a cleared environment plus
//! `SOCKETKIT_PEER_ADDR`, `SOCKETKIT_PEER_PORT`, `SOCKETKIT_LOCAL_ADDR`,
//! `SOCKETKIT_LOCAL_PORT` and `SOCKETKIT_PROTO`, a session and
//! [containment](super::contain) of its own. Bytes move through one
//! bidirectional relay; each direction's end is passed on (the client's FIN
//! closes the program's stdin, the end of its stdout sends our FIN). Every
//! process the program started is killed and reaped when the connection
//! ends, when the program exits, on the idle timeout, at the time limit, on
//! shutdown and at the drain deadline, and one audit line records each
//! connection. Its stderr goes to the server log (line by line, escaped,
//! bounded) or, if asked, to the peer with its stdout.
//!
//! Since the program is the operator's, not the client's, exec's client
//! rules (allow-lists, interpreters counted as shells) do not apply: `serve
//! cmd -- /bin/sh -c '…'` is an operator's argv. What keeps a network safe
//! is [`check_exposure`]: a command is never served to the whole network
//! without a limit on who may connect.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{ChildStderr, ChildStdin, Command};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use super::contain::{Contained, Containment};
use super::exec::audit::escape;
use super::exec::process::{base_environment, BASE_PATH};
use crate::addr::Endpoint;
use crate::client::{both_ways, BothWaysOptions};
use crate::codec::{Line, LineReader};
use crate::error::{Error, ErrorKind, Result};
use crate::server::{AccessList, Connection, StreamHandler};
use crate::transport::SocketAddress;

/// Longest stderr line logged whole; longer ones are reported, not logged.
const STDERR_LINE: usize = 4096;

/// Stderr lines logged per second and command; the rest are counted, so a
/// chatty program cannot flood the server log.
const STDERR_LINES_PER_SECOND: u32 = 20;

/// What each connection runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Program {
    /// A program and its arguments, run without a shell.
    Argv(Vec<String>),
    /// One line for `/bin/sh -c` (needs [`CmdPolicy::allow_shell`]).
    Shell(String),
}

/// How `serve cmd` runs its program.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CmdPolicy {
    /// The program.
    pub program: Program,
    /// Allow [`Program::Shell`]. Default off.
    pub allow_shell: bool,
    /// Send the program's stderr to the peer with its stdout instead of to
    /// the server log. Default off.
    pub stderr_to_peer: bool,
    /// The program's working directory.
    pub cwd: PathBuf,
    /// Wall-clock limit per connection. Default none (the idle timeout
    /// still applies).
    pub command_timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when the program must stop, and how long
    /// its output may still arrive once it exited. Default 2 s.
    pub kill_grace: Duration,
}

impl CmdPolicy {
    /// Runs `program` with the defaults: no shell lines, stderr to the log,
    /// no time limit, in `/`.
    pub fn new(program: Program) -> CmdPolicy {
        CmdPolicy {
            program,
            allow_shell: false,
            stderr_to_peer: false,
            cwd: PathBuf::from("/"),
            command_timeout: None,
            kill_grace: Duration::from_secs(2),
        }
    }

    /// The argv each connection runs, or why it cannot: an empty argv, a
    /// shell line without `allow_shell`, a program that cannot be found or
    /// run. [`Cmd::new`] checks it too; calling it first keeps a refused
    /// start from setting up containment.
    pub fn argv(&self) -> Result<Vec<String>> {
        let config = |why: String| Error::new(ErrorKind::Config, why);
        let argv = match &self.program {
            Program::Argv(argv) => argv.clone(),
            Program::Shell(_) if !self.allow_shell => {
                return Err(config(
                    "a shell line needs the policy's allow_shell (or give the program as argv)"
                        .to_owned(),
                ))
            }
            Program::Shell(line) => vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()],
        };
        let Some(program) = argv.first() else {
            return Err(config("no program to run".to_owned()));
        };
        find_program(program, &self.cwd).map_err(config)?;
        Ok(argv)
    }
}

/// Refuses to serve a command where the whole network could run it: every
/// internet address that is not loopback needs `access` to admit only some
/// peers (allow rules), or be `tls://` with client certificates required.
/// Unix sockets are local (and their permissions decide).
pub fn check_exposure(
    endpoints: &[Endpoint],
    access: &AccessList,
    client_certificates: bool,
) -> Result<()> {
    for endpoint in endpoints {
        let Some(host_port) = endpoint.host_port() else {
            continue;
        };
        let certified = matches!(endpoint, Endpoint::Tls(_)) && client_certificates;
        if host_port.host.is_loopback() || certified || access.restricts() {
            continue;
        }
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "refusing to serve a command on {endpoint}: anyone who can reach it could run it; admit only some peers, or require client certificates on tls://"
            ),
        ));
    }
    Ok(())
}

/// The `serve cmd` service.
#[derive(Debug)]
pub struct Cmd {
    argv: Vec<String>,
    policy: CmdPolicy,
    containment: Containment,
}

impl Cmd {
    /// The service under `policy`, its programs contained as `containment`
    /// says. Fails as [`CmdPolicy::argv`] does.
    pub fn new(policy: CmdPolicy, containment: Containment) -> Result<Cmd> {
        let argv = policy.argv()?;
        Ok(Cmd {
            argv,
            policy,
            containment,
        })
    }

    /// The program for one connection, its environment describing it.
    fn command(&self, peer: &SocketAddress, local: Option<&SocketAddress>, proto: &str) -> Command {
        let mut command = Command::new(&self.argv[0]);
        command.args(&self.argv[1..]);
        base_environment(&mut command)
            .current_dir(&self.policy.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("SOCKETKIT_PROTO", proto);
        for (name, address) in [("PEER", Some(peer)), ("LOCAL", local)] {
            let (addr, port) = match address {
                Some(SocketAddress::Inet(addr)) => (addr.ip().to_string(), addr.port().to_string()),
                Some(SocketAddress::Unix(Some(path))) => {
                    (path.display().to_string(), String::new())
                }
                _ => (String::new(), String::new()),
            };
            command
                .env(format!("SOCKETKIT_{name}_ADDR"), addr)
                .env(format!("SOCKETKIT_{name}_PORT"), port);
        }
        command
    }
}

/// Where `program` is: a path (relative to `cwd`) or a name on the
/// commands' PATH; it must be an executable file.
fn find_program(program: &str, cwd: &Path) -> std::result::Result<PathBuf, String> {
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = cwd.join(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!("program {program}: not an executable file"))
        };
    }
    BASE_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| executable(path))
        .ok_or_else(|| format!("program '{program}' not found in the commands' PATH ({BASE_PATH})"))
}

impl StreamHandler for Cmd {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let peer = conn.peer_addr().clone();
        let local = conn.local_addr().ok();
        let proto = match conn.local_endpoint() {
            Endpoint::Tls(_) => "tls",
            Endpoint::Unix(_) => "unix",
            _ => "tcp",
        };
        let server = conn.server().clone();
        let mut command = self.command(&peer, local.as_ref(), proto);
        // With --stderr-to-peer both streams share one pipe, so the peer
        // sees them interleaved in the order the program wrote them.
        let shared_output = if self.policy.stderr_to_peer {
            let (reader, writer) = pipe().map_err(|e| spawn_error(&self.argv, e))?;
            let second = writer.try_clone().map_err(|e| spawn_error(&self.argv, e))?;
            command.stdout(writer).stderr(second);
            Some(reader)
        } else {
            None
        };
        let spawned = self.containment.spawn(&mut command);
        // Our copies of the pipes' write ends go with the command, or the
        // program's output would never reach its end.
        drop(command);
        let mut contained = spawned.map_err(|e| spawn_error(&self.argv, e))?;
        let audit = Audit::new(&peer, &self.argv, contained.pid());
        let child = contained.child();
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let stdout: Pin<Box<dyn AsyncRead + Send>> = match shared_output {
            Some(reader) => Box::pin(
                tokio::net::unix::pipe::Receiver::from_owned_fd(reader)
                    .map_err(|e| spawn_error(&self.argv, e))?,
            ),
            None => match child.stdout.take() {
                Some(stdout) => Box::pin(stdout),
                None => return Err(spawn_error(&self.argv, io::Error::other("no stdout pipe"))),
            },
        };
        let fin = Fin::default();
        let mut process = ProcessIo {
            stdout,
            stdin,
            fin: &fin,
        };
        let relay = BothWaysOptions {
            idle_timeout: conn.idle_timeout(),
            ..BothWaysOptions::default()
        };
        let mut link = Link { conn, fin: &fin };
        let mut run = Run::new(&self.policy);
        // None with --stderr-to-peer: nothing to log, nothing to wait for.
        let mut stderr_open = stderr.is_some();
        let stderr_log = log_stderr(stderr, contained.pid());
        tokio::pin!(stderr_log);
        {
            // The one relay between the connection and the program.
            let pump = both_ways(&mut link, &mut process, &relay);
            tokio::pin!(pump);
            loop {
                if run.status.is_some() && fin.sent.load(Ordering::Acquire) {
                    // The program is gone and all its output delivered: as
                    // inetd, the connection ends with it.
                    break;
                }
                tokio::select! {
                    pumped = &mut pump => {
                        if let Err(error) = pumped {
                            run.idle = error.is_timeout();
                            run.broken = true;
                        }
                        break;
                    }
                    exited = contained.wait(), if run.status.is_none() => {
                        // The program is gone; whatever it left behind goes too.
                        contained.signal_all(libc::SIGKILL);
                        run.status = Some(exited);
                        run.output_deadline = Some(Instant::now() + self.policy.kill_grace);
                    }
                    () = fin.notify.notified(), if run.status.is_some() => {}
                    () = sleep_until_some(run.output_deadline) => {
                        let waiting = fin.waiting_since.lock().ok().and_then(|since| *since);
                        let grace = self.policy.kill_grace;
                        if !fin.output_ended.load(Ordering::Acquire)
                            && waiting.is_none_or(|since| since.elapsed() < grace)
                        {
                            // Still delivering what the program left in
                            // its pipe to a slow client, or only just
                            // waiting for more: wait on.
                            run.output_deadline =
                                Some(waiting.unwrap_or_else(Instant::now) + grace);
                            continue;
                        }
                        if !fin.output_ended.load(Ordering::Acquire) {
                            // Nothing read for the whole grace: something
                            // outside the containment holds the program's
                            // stdout. Stop waiting for it.
                            break;
                        }
                        // Output ended: delivering the rest to the client is
                        // bounded by the idle timeout, not by this deadline.
                        run.output_deadline = None;
                    }
                    () = sleep_until_some(run.deadline), if run.kill_at.is_none() && !run.timed_out => {
                        run.timed_out = true;
                        run.terminate(&contained);
                    }
                    () = sleep_until_some(run.kill_at) => {
                        contained.signal_all(libc::SIGKILL);
                        run.kill_at = None;
                    }
                    () = server.shutdown_requested(), if !run.shutting_down => {
                        run.shutting_down = true;
                        run.terminate(&contained);
                    }
                    () = &mut stderr_log, if stderr_open => stderr_open = false,
                }
            }
        }
        drop(process);
        if run.status.is_none() && !run.broken {
            // Both directions ended cleanly: the program is likely exiting
            // now; give it a moment before the kill.
            if let Ok(exited) = tokio::time::timeout(self.policy.kill_grace, contained.wait()).await
            {
                run.status = Some(exited);
            }
        }
        contained.end().await;
        // Everything is dead: the rest of its stderr is in the pipe.
        if stderr_open {
            let _ = tokio::time::timeout(self.policy.kill_grace, &mut stderr_log).await;
        }
        audit.finished(&run, conn.bytes_read(), conn.bytes_written());
        Ok(())
    }
}

/// A pipe, both ends close-on-exec (the child gets its end through stdio).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds` and nothing else.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn spawn_error(argv: &[String], error: io::Error) -> Error {
    let program = argv.first().map_or("", String::as_str);
    Error::with_source(
        ErrorKind::Io,
        format!("cannot start {}", escape(program)),
        error,
    )
}

/// What the supervision of one connection's program tracks.
struct Run {
    status: Option<io::Result<ExitStatus>>,
    deadline: Option<Instant>,
    kill_at: Option<Instant>,
    kill_grace: Duration,
    /// After the program exited: how long the relay may wait on its empty
    /// but open stdout (something it passed it to may hold it). Time spent
    /// writing what it left to a slow client does not count; once output
    /// has ended, the rest is delivered however long a slow client takes,
    /// within the idle timeout.
    output_deadline: Option<Instant>,
    timed_out: bool,
    shutting_down: bool,
    /// The relay failed (the peer reset, nothing moved for the idle
    /// timeout).
    broken: bool,
    /// It failed on the idle timeout.
    idle: bool,
}

impl Run {
    fn new(policy: &CmdPolicy) -> Run {
        Run {
            status: None,
            deadline: policy.command_timeout.map(|limit| Instant::now() + limit),
            kill_at: None,
            kill_grace: policy.kill_grace,
            output_deadline: None,
            timed_out: false,
            shutting_down: false,
            broken: false,
            idle: false,
        }
    }

    /// SIGTERM to every process of the program, SIGKILL after the grace.
    fn terminate(&mut self, contained: &Contained) {
        contained.signal_all(libc::SIGTERM);
        self.kill_at.get_or_insert(Instant::now() + self.kill_grace);
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How far the relay got: the program's output ended (its stdout reached
/// EOF) and our FIN went out (all of it delivered), with a wake-up for the
/// supervisor at the FIN.
#[derive(Default)]
struct Fin {
    output_ended: AtomicBool,
    /// Since when the relay has been waiting for the program's output (its
    /// read was pending); `None` while it is busy elsewhere, such as writing
    /// to a slow client. After the program exited, only a wait on an empty
    /// pipe that lasts the whole grace means something outside the
    /// containment holds stdout open.
    waiting_since: std::sync::Mutex<Option<Instant>>,
    sent: AtomicBool,
    notify: Notify,
}

/// The connection side of the relay: notes our FIN.
struct Link<'a> {
    conn: &'a mut Connection,
    fin: &'a Fin,
}

impl AsyncRead for Link<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().conn).poll_read(cx, buf)
    }
}

impl AsyncWrite for Link<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().conn).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().conn).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.conn).poll_shutdown(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            this.fin.sent.store(true, Ordering::Release);
            this.fin.notify.notify_one();
        }
        polled
    }
}

/// The program side of the relay: reads its stdout, writes its stdin.
/// Shutting it down closes the program's stdin (its EOF); once the program
/// has closed its stdin, further input is dropped, as a pipe's reader that
/// left would never see it, so the output still arrives.
struct ProcessIo<'a> {
    stdout: Pin<Box<dyn AsyncRead + Send>>,
    stdin: Option<ChildStdin>,
    fin: &'a Fin,
}

impl AsyncRead for ProcessIo<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = this.stdout.as_mut().poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() == before {
            this.fin.output_ended.store(true, Ordering::Release);
        }
        if let Ok(mut since) = this.fin.waiting_since.lock() {
            match polled {
                Poll::Pending => {
                    since.get_or_insert_with(Instant::now);
                }
                Poll::Ready(_) => *since = None,
            }
        }
        polled
    }
}

impl AsyncWrite for ProcessIo<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(stdin) = this.stdin.as_mut() else {
            return Poll::Ready(Ok(buf.len()));
        };
        match Pin::new(stdin).poll_write(cx, buf) {
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
                this.stdin = None;
                Poll::Ready(Ok(buf.len()))
            }
            polled => polled,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stdin.as_mut() {
            Some(stdin) => match Pin::new(stdin).poll_flush(cx) {
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
                    Poll::Ready(Ok(()))
                }
                polled => polled,
            },
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A pipe has no half-close: closing it is the program's EOF.
        self.get_mut().stdin = None;
        Poll::Ready(Ok(()))
    }
}

/// Logs the program's stderr line by line, escaped, each line at most
/// [`STDERR_LINE`] bytes and at most [`STDERR_LINES_PER_SECOND`] lines a
/// second (the rest are counted); always reads on, so the program never
/// blocks on a full stderr pipe.
async fn log_stderr(stderr: Option<ChildStderr>, pid: u32) {
    let Some(stderr) = stderr else {
        return;
    };
    let mut lines = LineReader::new(stderr, STDERR_LINE);
    let mut window = Instant::now();
    let (mut logged, mut dropped) = (0u32, 0u64);
    while let Ok(Some(line)) = lines.next_line().await {
        if window.elapsed() >= Duration::from_secs(1) {
            if dropped > 0 {
                warn!(
                    pid,
                    dropped, "cmd stderr: lines over the log's rate were dropped"
                );
            }
            window = Instant::now();
            (logged, dropped) = (0, 0);
        }
        if logged >= STDERR_LINES_PER_SECOND {
            dropped += 1;
            continue;
        }
        logged += 1;
        match line {
            Line::Text(text) => {
                info!(pid, line = %escape(&String::from_utf8_lossy(&text)), "cmd stderr")
            }
            Line::TooLong => {
                info!(
                    pid,
                    "cmd stderr: a line longer than {STDERR_LINE} bytes, not logged"
                )
            }
        }
    }
    if dropped > 0 {
        warn!(
            pid,
            dropped, "cmd stderr: lines over the log's rate were dropped"
        );
    }
}

/// The audit record of one connection's program: [`Audit::finished`]
/// writes the line; if the connection is aborted first (the drain
/// deadline), `Drop` writes one saying so.
struct Audit {
    peer: String,
    command: String,
    pid: u32,
    started: Instant,
    written: bool,
}

impl Audit {
    fn new(peer: &SocketAddress, argv: &[String], pid: u32) -> Audit {
        let words: Vec<String> = argv.iter().map(|w| escape(w).to_string()).collect();
        Audit {
            peer: peer.to_string(),
            command: words.join(" "),
            pid,
            started: Instant::now(),
            written: false,
        }
    }

    fn finished(mut self, run: &Run, bytes_in: u64, bytes_out: u64) {
        let status = run.status.as_ref().and_then(|s| s.as_ref().ok());
        info!(
            target: "socketkit::audit",
            peer = %escape(&self.peer),
            command = %self.command,
            pid = self.pid,
            exit = ?status.and_then(ExitStatus::code),
            signal = ?status.and_then(ExitStatus::signal),
            timed_out = run.timed_out,
            idle = run.idle,
            secs = self.started.elapsed().as_secs_f64(),
            bytes_in,
            bytes_out,
            "cmd connection finished"
        );
        self.written = true;
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if !self.written {
            info!(
                target: "socketkit::audit",
                peer = %escape(&self.peer),
                command = %self.command,
                pid = self.pid,
                secs = self.started.elapsed().as_secs_f64(),
                "cmd killed: its connection was aborted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Rule;

    fn endpoints(list: &[&str]) -> Vec<Endpoint> {
        list.iter().map(|e| e.parse().unwrap()).collect()
    }

    #[test]
    fn exposure_needs_an_allow_list_or_client_certificates() {
        let open = AccessList::new();
        let local = endpoints(&["tcp://127.0.0.1:0", "tcp://[::1]:0", "unix:/tmp/x"]);
        assert!(check_exposure(&local, &open, false).is_ok());
        for exposed in ["tcp://0.0.0.0:0", ":9000", "tls://192.0.2.1:9000"] {
            let e = endpoints(&[exposed]);
            assert!(check_exposure(&e, &open, false).is_err(), "{exposed}");
        }
        let mut limited = AccessList::new();
        limited.add(Rule::Allow, "127.0.0.0/8").unwrap();
        assert!(check_exposure(&endpoints(&["tcp://0.0.0.0:0"]), &limited, false).is_ok());
        let mut only_denies = AccessList::new();
        only_denies.add(Rule::Deny, "10.0.0.0/8").unwrap();
        assert!(check_exposure(&endpoints(&[":9000"]), &only_denies, false).is_err());
        // Client certificates protect tls:// only.
        assert!(check_exposure(&endpoints(&["tls://0.0.0.0:0"]), &open, true).is_ok());
        assert!(check_exposure(&endpoints(&["tcp://0.0.0.0:0"]), &open, true).is_err());
    }

    #[test]
    fn programs_are_checked_at_start() {
        assert!(find_program("sh", Path::new("/")).is_ok());
        assert!(find_program("/bin/sh", Path::new("/")).is_ok());
        assert!(find_program("no-such-program-here", Path::new("/")).is_err());
        assert!(find_program("/etc/passwd", Path::new("/")).is_err());
    }
}
