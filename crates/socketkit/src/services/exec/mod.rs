//! Remote exec: the textbook "simulated ssh", done safely.
//!
//! A client connects, proves who it is (Unix peer uid, TLS client
//! certificate, or a token inside TLS), and runs commands over the framed
//! protocol of PROTOCOL.md: what it may run is decided by `policy.rs` (argv
//! without a shell unless the server allows shells, allow-lists pinning argv
//! prefixes, interpreters counted as shells), then a cleared environment, a fixed working directory, a session and
//! [containment](super::contain) of its own, a wall-clock limit, output
//! streamed with back-pressure, and everything the command started killed
//! and reaped when it ends, times out, the client leaves, the server shuts
//! down or the session is aborted, with an audit line in every case.
//!
//! Choosing which transports may carry exec (no plaintext TCP except on
//! loopback for demos) is the caller's job; this module enforces identity
//! and policy per connection.

pub(super) mod audit;
mod local;
mod policy;
pub(super) mod process;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use tracing::info;

pub use self::local::{
    check_local_server, default_socket_path, locate_default_socket, prepare_default_socket,
};
pub use self::policy::{is_interpreter, CommandList, CommandRule, EnvAllowList};
pub use super::auth::{parse_authorized_clients, AuthPolicy, Identity, StartupLimits, Token};
pub use super::contain::{Containment, ContainmentMode};

use self::audit::{escape, Audit};
use self::process::Limits;
use super::auth::Gate;
use super::session::{answer_protocol_error, proof_of, refuse, Opening, Wire};
use crate::error::Result;
use crate::protocol::exec::{Refusal, Run, Started};
use crate::protocol::{Frame, FrameCodec, FrameError, FrameType};
use crate::server::{Connection, StreamHandler};
use crate::transport::SocketAddress;

/// What the exec service allows. Defaults are the safe ones.
#[derive(Debug, Clone)]
pub struct ExecPolicy {
    /// Who may connect.
    pub auth: AuthPolicy,
    /// Allow shell lines (`/bin/sh -c`) and interpreters in argv. Default
    /// off. Without an allow-list this is a convenience, not a boundary
    /// (see `policy.rs`).
    pub allow_shell: bool,
    /// If set, argv must start with one of these entries. Default none:
    /// any program may run, as with ssh.
    pub allowed_commands: Option<CommandList>,
    /// Environment variable names a client may set. Default none.
    pub allowed_env: EnvAllowList,
    /// The working directory of every command (a client's `cwd` must stay
    /// inside it).
    pub cwd: PathBuf,
    /// Wall-clock limit per command. Default 60 s.
    pub command_timeout: Duration,
    /// Output limit per command (stdout + stderr); reaching it kills the
    /// command and reports `truncated`. Default none: back-pressure already
    /// bounds memory.
    pub max_output: Option<u64>,
    /// Commands running at once, server-wide; beyond it a `busy` error.
    /// Default 64.
    pub max_commands: usize,
    /// Deadline for the client's `HELLO`, from the start of the connection.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a command must stop. Default 2 s.
    pub kill_grace: Duration,
}

impl Default for ExecPolicy {
    fn default() -> ExecPolicy {
        ExecPolicy {
            auth: AuthPolicy::default(),
            allow_shell: false,
            allowed_commands: None,
            allowed_env: EnvAllowList::default(),
            cwd: PathBuf::from("/"),
            command_timeout: Duration::from_secs(60),
            max_output: None,
            max_commands: 64,
            handshake_timeout: Duration::from_secs(10),
            kill_grace: Duration::from_secs(2),
        }
    }
}

/// The exec service.
#[derive(Debug)]
pub struct Exec {
    policy: ExecPolicy,
    running: Arc<Semaphore>,
    gate: Gate,
    containment: Containment,
}

impl Exec {
    /// The service under `policy`, its commands contained as `containment`
    /// says (see [`Containment::new`]).
    pub fn new(policy: ExecPolicy, containment: Containment) -> Exec {
        Exec {
            running: Arc::new(Semaphore::new(policy.max_commands.max(1))),
            gate: Gate::new(policy.auth.startups),
            policy,
            containment,
        }
    }

    /// Runs one `RUN` request; says whether the connection goes on.
    async fn run(
        &self,
        wire: &mut Wire<'_>,
        request: Run,
        identity: &Identity,
        peer: &SocketAddress,
        server: &crate::server::ServerHandle,
    ) -> Result<AfterRun> {
        let mut command = match process::build(&self.policy, identity, &request) {
            Ok(command) => command,
            Err(denial) => {
                let message = denial.to_string();
                info!(
                    peer = %escape(&peer.to_string()),
                    identity = %escape(&identity.label),
                    command = %audit::command(&request),
                    message = %escape(&message),
                    "exec refused"
                );
                refuse(wire, denial.kind(), message).await;
                return Ok(if denial.kind().keeps_connection() {
                    AfterRun::Next
                } else {
                    AfterRun::Close
                });
            }
        };
        let Ok(_slot) = self.running.clone().try_acquire_owned() else {
            let message = format!(
                "{} commands are running, the server's maximum",
                self.policy.max_commands
            );
            refuse(wire, Refusal::Busy, message).await;
            return Ok(AfterRun::Next);
        };
        let mut contained = match self.containment.spawn(&mut command) {
            Ok(contained) => contained,
            Err(error) => {
                refuse(
                    wire,
                    Refusal::Spawn,
                    format!("{}: {error}", request.describe()),
                )
                .await;
                return Ok(AfterRun::Next);
            }
        };
        let pid = contained.pid();
        // From here on, however the session ends, the command's processes
        // die with `contained` and `audit` writes its line.
        let audit = Audit::new(peer, &identity.label, &request, pid);
        wire.send(Frame::control(FrameType::STARTED, &Started { pid }))
            .await?;
        let limits = Limits {
            timeout: self.policy.command_timeout,
            max_output: self.policy.max_output,
            kill_grace: self.policy.kill_grace,
        };
        let outcome = process::supervise(wire, &mut contained, &limits, server).await;
        contained.end().await;
        audit.finished(&outcome);
        if let Some(error) = outcome.client_gone {
            return match error {
                FrameError::Io(error) if process::is_disconnect(&error) => Ok(AfterRun::Close),
                error => Err(error.into()),
            };
        }
        wire.send(Frame::control(FrameType::EXIT, &outcome.exit))
            .await?;
        Ok(AfterRun::Next)
    }
}

/// What the connection does after a `RUN`.
enum AfterRun {
    /// Read the next request.
    Next,
    /// End: the client is gone, or the refusal closes the connection.
    Close,
}

impl StreamHandler for Exec {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let peer = conn.peer_addr().clone();
        let server = conn.server().clone();
        let proof = proof_of(conn);
        let mut wire = Framed::new(conn, FrameCodec::opening());
        let opening = Opening {
            service: "exec",
            shell: self.policy.allow_shell,
            auth: &self.policy.auth,
            gate: &self.gate,
            deadline: self.policy.handshake_timeout,
        };
        let identity = match opening.run(&mut wire, &proof, &peer).await {
            Ok(Some(identity)) => identity,
            Ok(None) => return Ok(()),
            Err(error) => return answer_protocol_error(&mut wire, error).await,
        };
        loop {
            let frame = tokio::select! {
                frame = wire.next() => frame,
                () = server.shutdown_requested() => return Ok(()),
            };
            let request = match frame {
                None => return Ok(()),
                Some(Ok(frame)) if frame.kind == FrameType::RUN => match frame.parse::<Run>() {
                    Ok(request) => request,
                    Err(error) => return answer_protocol_error(&mut wire, error.into()).await,
                },
                // Input and signals for a command that has just ended may
                // still be in flight: not an error.
                Some(Ok(frame)) if is_late_input(frame.kind) => continue,
                Some(Ok(frame)) => {
                    let error = FrameError::Unexpected { kind: frame.kind };
                    return answer_protocol_error(&mut wire, error.into()).await;
                }
                Some(Err(error)) => return answer_protocol_error(&mut wire, error.into()).await,
            };
            match self
                .run(&mut wire, request, &identity, &peer, &server)
                .await
            {
                Ok(AfterRun::Next) => {}
                Ok(AfterRun::Close) => return Ok(()),
                Err(error) => return answer_protocol_error(&mut wire, error).await,
            }
        }
    }
}

fn is_late_input(kind: FrameType) -> bool {
    matches!(
        kind,
        FrameType::STDIN | FrameType::STDIN_END | FrameType::SIGNAL
    )
}
