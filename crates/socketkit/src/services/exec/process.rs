//! Running one command: building it under the server's policy, streaming its
//! output and input through frames with back-pressure, and enforcing its
//! limits on its whole [containment](crate::services::contain).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::policy::Denial;
use super::ExecPolicy;
use crate::protocol::exec::{Exit, Run, SignalRequest};
use crate::protocol::{Frame, FrameError, FrameType, DATA_CHUNK};
use crate::server::ServerHandle;
use crate::services::auth::Identity;
use crate::services::contain::Contained;
use crate::services::session::Wire;

/// The environment every command starts from; nothing of the server's own.
pub(in crate::services) const BASE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const BASE_LANG: &str = "C.UTF-8";

/// Clears `command`'s environment down to the base every command (exec's
/// and `serve cmd`'s) starts from: nothing of the server's own.
pub(in crate::services) fn base_environment(command: &mut Command) -> &mut Command {
    command
        .env_clear()
        .env("PATH", BASE_PATH)
        .env("LANG", BASE_LANG)
}

/// Output chunks in flight between the pipe readers and the socket: small,
/// so a slow client stops the readers and the command blocks on its pipe.
const OUTPUT_QUEUE: usize = 4;

/// Builds the command `request` asks for, or says why it is not allowed.
pub(super) fn build(
    policy: &ExecPolicy,
    identity: &Identity,
    request: &Run,
) -> Result<Command, Denial> {
    super::policy::check(policy, identity, request)?;
    let mut command = match (&request.argv, &request.shell) {
        (Some(argv), None) => {
            let (program, args) = argv.split_first().ok_or(Denial::EmptyArgv)?;
            let mut command = Command::new(program);
            command.args(args);
            command
        }
        (None, Some(line)) => {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(line);
            command
        }
        _ => return Err(Denial::Malformed),
    };
    base_environment(&mut command)
        .current_dir(working_dir(&policy.cwd, request.cwd.as_deref()).map_err(Denial::WorkingDir)?)
        .stdin(if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Names were checked against the policy above.
    command.envs(&request.env);
    Ok(command)
}

/// The server's directory, or a subdirectory of it that must stay inside
/// (checked after resolving symlinks and `..`).
fn working_dir(base: &Path, requested: Option<&str>) -> Result<PathBuf, String> {
    let base = base
        .canonicalize()
        .map_err(|e| format!("server directory {}: {e}", base.display()))?;
    let Some(requested) = requested else {
        return Ok(base);
    };
    let dir = base
        .join(requested)
        .canonicalize()
        .map_err(|e| format!("cwd '{requested}': {e}"))?;
    if dir.starts_with(&base) {
        Ok(dir)
    } else {
        Err(format!(
            "cwd '{requested}' is outside the server's directory"
        ))
    }
}

/// How a command's supervision ended.
pub(super) struct Outcome {
    /// The exit report, sent to the client unless it is gone.
    pub exit: Exit,
    /// Output bytes forwarded.
    pub bytes_out: u64,
    /// The client disconnected (or broke the protocol) mid-command.
    pub client_gone: Option<FrameError>,
}

/// Limits applied to one running command.
pub(super) struct Limits {
    pub timeout: Duration,
    pub max_output: Option<u64>,
    pub kill_grace: Duration,
}

/// Runs a spawned command to its end, relaying frames both ways. The
/// socket is written in the same `select!` as the time limit, signals and
/// shutdown are watched, so a client that stops reading cannot hold them
/// off; its stalled write fails at the connection's idle timeout.
pub(super) async fn supervise(
    wire: &mut Wire<'_>,
    command: &mut Contained,
    limits: &Limits,
    server: &ServerHandle,
) -> Outcome {
    let started = Instant::now();
    let (output_tx, mut output) = mpsc::channel(OUTPUT_QUEUE);
    let mut readers = JoinSet::new();
    let child = command.child();
    if let Some(stdout) = child.stdout.take() {
        readers.spawn(read_pipe(stdout, FrameType::STDOUT, output_tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.spawn(read_pipe(stderr, FrameType::STDERR, output_tx));
    }
    let mut stdin = child.stdin.take().map(StdinFeeder::start);
    let mut state = State::new(limits, started);
    let mut status: Option<io::Result<ExitStatus>> = None;
    let mut output_open = true;
    let mut outbox = Outbox::default();
    // A client still sending (stdin, signals) keeps the connection's idle
    // timer fresh, so a write it never takes gets its own deadline.
    let write_limit = wire.get_ref().idle_timeout();
    while status.is_none() || output_open || outbox.busy() {
        let reading = stdin.as_ref().is_none_or(StdinFeeder::idle) && state.client_gone.is_none();
        let write_deadline = outbox.deadline(write_limit);
        tokio::select! {
            event = exchange(wire, &mut outbox, reading) => match event {
                Exchange::Received(frame) => {
                    if let Err(error) = handle_client_frame(frame, &mut stdin, command) {
                        state.client_gone = Some(error);
                        state.terminate(command, limits.kill_grace);
                    }
                }
                Exchange::Sent => {}
                Exchange::Failed(error) => {
                    outbox = Outbox::default();
                    state.client_gone = Some(error);
                    state.terminate(command, Duration::ZERO);
                }
            },
            () = sleep_until_some(write_deadline) => {
                outbox = Outbox::default();
                state.client_gone = Some(FrameError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no output for the idle timeout",
                )));
                state.terminate(command, Duration::ZERO);
            }
            sent = feed(&mut stdin) => if !sent { stdin = None },
            chunk = output.recv(), if output_open && !outbox.busy() => match chunk {
                Some(frame) => state.forward(&mut outbox, frame, command),
                None => output_open = false,
            },
            exited = command.wait(), if status.is_none() => {
                // The leader is gone; whatever it left behind goes too.
                command.signal_all(libc::SIGKILL);
                status = Some(exited);
                state.output_deadline = Some(Instant::now() + limits.kill_grace);
            }
            () = sleep_until_some(state.output_deadline), if output_open => {
                // Something outside the containment holds the pipes (it was
                // passed them): stop waiting for it.
                output_open = false;
            }
            () = tokio::time::sleep_until(state.deadline), if state.kill_at.is_none() => {
                state.exit.timed_out = true;
                state.terminate(command, limits.kill_grace);
            }
            () = sleep_until_some(state.kill_at) => {
                command.signal_all(libc::SIGKILL);
                state.kill_at = None;
                state.deadline = far_future();
            }
            () = server.shutdown_requested(), if state.kill_at.is_none() && !state.shutting_down => {
                state.shutting_down = true;
                state.terminate(command, limits.kill_grace);
            }
        }
    }
    readers.shutdown().await;
    state.finish(status, started)
}

/// The output frame on its way to the client: waiting for room in the
/// codec's buffer, then being flushed.
#[derive(Default)]
struct Outbox {
    frame: Option<Frame>,
    flushing: bool,
    /// When the frame was queued.
    since: Option<Instant>,
}

impl Outbox {
    fn put(&mut self, frame: Frame) {
        self.frame = Some(frame);
        self.since = Some(Instant::now());
    }

    fn busy(&self) -> bool {
        self.frame.is_some() || self.flushing
    }

    /// When a frame still not written has taken too long.
    fn deadline(&self, limit: Option<Duration>) -> Option<Instant> {
        self.since.zip(limit).map(|(since, limit)| since + limit)
    }
}

/// What happened on the client's socket.
enum Exchange {
    /// A frame from the client (or its end).
    Received(Option<Result<Frame, FrameError>>),
    /// The outbox is written out.
    Sent,
    /// Writing failed (the client is gone, or stalled past the idle timeout).
    Failed(FrameError),
}

/// Moves the outbox towards the socket and, when `reading`, waits for a
/// frame from the client: one future for both directions, since both need
/// the one `wire`.
async fn exchange(wire: &mut Wire<'_>, outbox: &mut Outbox, reading: bool) -> Exchange {
    std::future::poll_fn(|cx| {
        if outbox.frame.is_some() {
            match wire.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(frame) = outbox.frame.take() {
                        if let Err(error) = wire.start_send_unpin(frame) {
                            return Poll::Ready(Exchange::Failed(error));
                        }
                        outbox.flushing = true;
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Exchange::Failed(error)),
                Poll::Pending => {}
            }
        }
        if outbox.frame.is_none() && outbox.flushing {
            match wire.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    outbox.flushing = false;
                    outbox.since = None;
                    return Poll::Ready(Exchange::Sent);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Exchange::Failed(error)),
                Poll::Pending => {}
            }
        }
        if reading {
            if let Poll::Ready(frame) = wire.poll_next_unpin(cx) {
                return Poll::Ready(Exchange::Received(frame));
            }
        }
        Poll::Pending
    })
    .await
}

/// What the supervisor tracks while a command runs.
struct State {
    exit: Exit,
    bytes_out: u64,
    max_output: Option<u64>,
    deadline: Instant,
    kill_at: Option<Instant>,
    shutting_down: bool,
    client_gone: Option<FrameError>,
    /// After the command exited: how long its output may still trickle in.
    output_deadline: Option<Instant>,
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn new(limits: &Limits, started: Instant) -> State {
        State {
            exit: Exit::default(),
            bytes_out: 0,
            max_output: limits.max_output,
            deadline: started + limits.timeout,
            kill_at: None,
            shutting_down: false,
            client_gone: None,
            output_deadline: None,
        }
    }

    /// Queues one output frame for the client, cut at the output limit.
    /// Once the client is gone, output is drained and dropped so the
    /// command can end.
    fn forward(&mut self, outbox: &mut Outbox, mut frame: Frame, command: &Contained) {
        if self.client_gone.is_some() || self.exit.truncated {
            return;
        }
        if let Some(max) = self.max_output {
            let left = max.saturating_sub(self.bytes_out);
            if frame.body.len() as u64 > left {
                frame.body.truncate(left as usize);
                self.exit.truncated = true;
                self.terminate(command, Duration::ZERO);
            }
        }
        self.bytes_out += frame.body.len() as u64;
        if !frame.body.is_empty() {
            outbox.put(frame);
        }
    }

    /// SIGTERM to all of the command now, SIGKILL after `grace` unless it
    /// is gone by then (at once when `grace` is zero).
    fn terminate(&mut self, command: &Contained, grace: Duration) {
        if grace.is_zero() {
            command.signal_all(libc::SIGKILL);
            return;
        }
        command.signal_all(libc::SIGTERM);
        if self.kill_at.is_none() {
            self.kill_at = Some(Instant::now() + grace);
        }
    }

    fn finish(mut self, status: Option<io::Result<ExitStatus>>, started: Instant) -> Outcome {
        self.exit.duration_ms = started.elapsed().as_millis() as u64;
        match status {
            Some(Ok(status)) => describe_status(&mut self.exit, status),
            Some(Err(error)) => {
                self.client_gone.get_or_insert(error.into());
            }
            None => {}
        }
        Outcome {
            exit: self.exit,
            bytes_out: self.bytes_out,
            client_gone: self.client_gone,
        }
    }
}

fn describe_status(exit: &mut Exit, status: ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    exit.code = status.code();
    exit.signal = status.signal();
    exit.signal_name = status.signal().map(signal_name);
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGILL => "ILL",
        libc::SIGABRT => "ABRT",
        libc::SIGFPE => "FPE",
        libc::SIGKILL => "KILL",
        libc::SIGSEGV => "SEGV",
        libc::SIGPIPE => "PIPE",
        libc::SIGALRM => "ALRM",
        libc::SIGTERM => "TERM",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        libc::SIGBUS => "BUS",
        _ => return format!("SIG{signal}"),
    };
    name.to_owned()
}

/// Acts on a frame from the client while a command runs. `Err` means the
/// client is gone or broke the protocol: the command must end.
fn handle_client_frame(
    frame: Option<Result<Frame, FrameError>>,
    stdin: &mut Option<StdinFeeder>,
    command: &Contained,
) -> Result<(), FrameError> {
    let frame = match frame {
        Some(Ok(frame)) => frame,
        Some(Err(error)) => return Err(error),
        None => {
            return Err(FrameError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client disconnected",
            )))
        }
    };
    match frame.kind {
        FrameType::STDIN => {
            if let Some(feeder) = stdin {
                feeder.pending = Some(frame.body);
            }
        }
        FrameType::STDIN_END => *stdin = None,
        FrameType::SIGNAL => {
            let request: SignalRequest = frame.parse()?;
            let signal = match request.signal.as_str() {
                "INT" => libc::SIGINT,
                "TERM" => libc::SIGTERM,
                "HUP" => libc::SIGHUP,
                _ => {
                    return Err(FrameError::BadBody {
                        kind: frame.kind,
                        reason: format!("unknown signal '{}'", request.signal),
                    })
                }
            };
            command.signal_group(signal);
        }
        kind => return Err(FrameError::Unexpected { kind }),
    }
    Ok(())
}

/// Feeds the command's standard input one chunk at a time. While a chunk is
/// pending no further client frame is read, so a command that does not read
/// its input slows the client down through TCP instead of filling memory;
/// output keeps flowing meanwhile, so neither side can deadlock the other.
struct StdinFeeder {
    pending: Option<Bytes>,
    sender: mpsc::Sender<Bytes>,
}

impl StdinFeeder {
    fn start(stdin: ChildStdin) -> StdinFeeder {
        let (sender, mut chunks) = mpsc::channel::<Bytes>(1);
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(chunk) = chunks.recv().await {
                if stdin.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        StdinFeeder {
            pending: None,
            sender,
        }
    }

    fn idle(&self) -> bool {
        self.pending.is_none()
    }
}

/// Hands the pending chunk to the writer task; `false` once the command has
/// closed its input (further input is dropped, as a pipe would).
async fn feed(stdin: &mut Option<StdinFeeder>) -> bool {
    let Some(feeder) = stdin.as_mut().filter(|f| f.pending.is_some()) else {
        return std::future::pending().await;
    };
    match feeder.sender.reserve().await {
        Ok(permit) => {
            permit.send(feeder.pending.take().unwrap_or_default());
            true
        }
        Err(_closed) => false,
    }
}

async fn read_pipe(mut pipe: impl AsyncRead + Unpin, kind: FrameType, frames: mpsc::Sender<Frame>) {
    let mut buf = BytesMut::with_capacity(DATA_CHUNK);
    loop {
        buf.reserve(DATA_CHUNK);
        match (&mut pipe).take(DATA_CHUNK as u64).read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if frames
                    .send(Frame::data(kind, buf.split().freeze()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// `true` when an I/O error is really the peer disconnecting.
pub(super) fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}
