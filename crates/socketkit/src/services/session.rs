//! The opening every framed service shares (exec, recv): take a startup
//! slot, greet with `HELLO`, read the client's `HELLO` under the handshake
//! deadline with the small opening frame cap, decide who it is, answer
//! `READY` (and lift the cap) or an `ERROR` at once; and how protocol errors
//! are answered before a connection closes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::Framed;
use tracing::{debug, warn};

use super::auth::{AuthPolicy, Gate, Identity, Proof};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::exec::{ClientHello, ErrorMessage, Ready, Refusal, ServerHello};
use crate::protocol::{Frame, FrameCodec, FrameError, FrameType, VERSION};
use crate::server::Connection;
use crate::transport::SocketAddress;

/// A connection speaking the framed protocol.
pub(crate) type Wire<'a> = Framed<&'a mut Connection, FrameCodec>;

/// What the connection itself proves about the client.
pub(crate) fn proof_of(conn: &Connection) -> Proof {
    if let Some(uid) = conn.peer_uid() {
        Proof::Uid(uid)
    } else if let Some(fingerprint) = conn.peer_certificate() {
        Proof::Certificate(fingerprint)
    } else {
        Proof::Nothing
    }
}

/// One service's side of the opening.
pub(crate) struct Opening<'a> {
    /// `"exec"` or `"recv"`.
    pub service: &'static str,
    /// Whether `RUN` may carry shell lines (exec only).
    pub shell: bool,
    pub auth: &'a AuthPolicy,
    pub gate: &'a Gate,
    pub deadline: Duration,
}

impl Opening<'_> {
    /// Runs the opening on a wire made with [`FrameCodec::opening`].
    /// `Ok(None)`: the client was refused (already answered and logged);
    /// the connection should end.
    pub(crate) async fn run(
        &self,
        wire: &mut Wire<'_>,
        proof: &Proof,
        peer: &SocketAddress,
    ) -> Result<Option<Identity>> {
        // Held until this function returns: authenticated or refused.
        let Some(_slot) = self.gate.enter(peer) else {
            // Debug, not warn: this is the flood path, one line per refused
            // connection would be the attacker's to write.
            debug!(%peer, service = self.service, "too many connections authenticating; closed at once");
            refuse(
                wire,
                Refusal::Busy,
                "too many connections are authenticating; try again later",
            )
            .await;
            return Ok(None);
        };
        let hello = ServerHello {
            protocol: VERSION,
            server: format!("socketkit {}", env!("CARGO_PKG_VERSION")),
            service: self.service.to_owned(),
            auth: self
                .auth
                .requirement(proof)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            shell: self.shell,
        };
        wire.send(Frame::control(FrameType::HELLO, &hello)).await?;
        let answer = match tokio::time::timeout(self.deadline, wire.next()).await {
            Err(_elapsed) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "no HELLO before the handshake deadline",
                ))
            }
            Ok(None) => return Ok(None),
            Ok(Some(frame)) => frame?,
        };
        if answer.kind != FrameType::HELLO {
            return Err(FrameError::Unexpected { kind: answer.kind }.into());
        }
        let answer: ClientHello = answer.parse()?;
        if answer.protocol != VERSION {
            let message = format!(
                "this server speaks protocol {VERSION}, not {}",
                answer.protocol
            );
            refuse(wire, Refusal::Version, message).await;
            return Ok(None);
        }
        if let Err(wait) = self.gate.penalties().admit(peer) {
            warn!(%peer, service = self.service, retry_after = ?wait, "attempt inside the penalty after a failed authentication; refused unheard");
            let message = format!(
                "too many failed attempts from this address; try again in {:.1} s",
                wait.as_secs_f64()
            );
            refuse_for(wire, Refusal::Auth, message, Some(wait)).await;
            return Ok(None);
        }
        match self.auth.admit(proof, answer.token.as_deref()) {
            Ok(identity) => {
                self.gate.penalties().forgive(peer);
                let ready = Ready {
                    identity: identity.label.clone(),
                };
                wire.send(Frame::control(FrameType::READY, &ready)).await?;
                wire.codec_mut().end_opening();
                Ok(Some(identity))
            }
            Err(reason) => {
                // Answered and closed at once; the source's next attempt
                // waits instead (see `Penalties`).
                let penalty = self.gate.penalties().strike(peer);
                warn!(%peer, service = self.service, %reason, next_attempt_after = ?penalty, "authentication failed");
                refuse_for(
                    wire,
                    Refusal::Auth,
                    "the server did not accept these credentials",
                    Some(penalty),
                )
                .await;
                Ok(None)
            }
        }
    }
}

/// Sends an `ERROR`; the peer may already be gone, which changes nothing.
pub(crate) async fn refuse(wire: &mut Wire<'_>, kind: Refusal, message: impl Into<String>) {
    refuse_for(wire, kind, message, None).await;
}

/// [`refuse`], telling the client how long to wait before trying again.
async fn refuse_for(
    wire: &mut Wire<'_>,
    kind: Refusal,
    message: impl Into<String>,
    retry_after: Option<Duration>,
) {
    let error = ErrorMessage {
        retry_after_ms: retry_after.map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        ..ErrorMessage::new(kind, message)
    };
    let _ = wire.send(Frame::control(FrameType::ERROR, &error)).await;
}

/// A frame error (the peer's, not the socket's) gets an `ERROR` of kind
/// `protocol` before the connection closes; the stream is never read again
/// after it. The error is returned either way.
pub(crate) async fn answer_protocol_error(wire: &mut Wire<'_>, error: Error) -> Result<()> {
    if let Some(problem) = error
        .find_source::<FrameError>()
        .filter(|problem| problem.is_protocol())
    {
        refuse(wire, Refusal::Protocol, problem.to_string()).await;
    }
    Err(error)
}
