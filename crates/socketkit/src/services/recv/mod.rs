//! The file receiver (`serve recv`): takes files offered over the framed
//! protocol (PROTOCOL.md, "File transfer") into one directory, verifying
//! every byte with BLAKE3, resuming interrupted transfers, and never writing
//! outside the directory or over an existing file unless told to.

mod store;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::info;

use super::auth::{AuthPolicy, Gate, Identity};
use super::session::{answer_protocol_error, io_error, proof_of, refuse, Opening, Wire};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::exec::Refusal;
use crate::protocol::transfer::{Accept, Digest, Offer, Start};
use crate::protocol::{Frame, FrameCodec, FrameError, FrameType};
use crate::server::{Connection, StreamHandler};
use crate::transport::SocketAddress;

use store::{Part, Writer};

/// What the receiver accepts.
#[derive(Debug, Clone)]
pub struct RecvPolicy {
    /// Where files go. Nothing is ever written outside it.
    pub dir: PathBuf,
    /// Replace existing files. Default off.
    pub overwrite: bool,
    /// Largest file accepted. Default none.
    pub max_size: Option<u64>,
    /// Who may send.
    pub auth: AuthPolicy,
    /// Deadline for the client's `HELLO`. Default 10 s.
    pub handshake_timeout: Duration,
}

impl RecvPolicy {
    /// A policy storing into `dir` with the defaults above.
    pub fn new(dir: PathBuf, auth: AuthPolicy) -> RecvPolicy {
        RecvPolicy {
            dir,
            overwrite: false,
            max_size: None,
            auth,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Told about files as they arrive, e.g. to draw progress bars. Each
/// transfer has an id unique within the receiver.
pub trait TransferObserver: Send + Sync + std::fmt::Debug + 'static {
    /// A transfer of `name` starts; `total` is its size if offered, `offset`
    /// what a resume kept.
    fn started(&self, id: u64, name: &str, total: Option<u64>, offset: u64);
    /// `bytes` more arrived.
    fn advanced(&self, id: u64, bytes: u64);
    /// The transfer ended, stored or not.
    fn finished(&self, id: u64, stored: bool);
}

/// The receiver service.
#[derive(Debug)]
pub struct Recv {
    policy: RecvPolicy,
    gate: Gate,
    observer: Option<Arc<dyn TransferObserver>>,
    next_id: AtomicU64,
}

impl Recv {
    /// The receiver; `policy.dir` must exist.
    pub fn new(policy: RecvPolicy) -> Result<Recv> {
        let dir = policy.dir.canonicalize().map_err(|e| {
            Error::with_source(
                ErrorKind::Io,
                format!(
                    "cannot use {} as the receive directory",
                    policy.dir.display()
                ),
                e,
            )
        })?;
        Ok(Recv {
            gate: Gate::new(policy.auth.startups),
            policy: RecvPolicy { dir, ..policy },
            observer: None,
            next_id: AtomicU64::new(0),
        })
    }

    /// Reports every transfer to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn TransferObserver>) -> Recv {
        self.observer = Some(observer);
        self
    }
}

/// A refusal to send back before any data moved.
type Refused = (Refusal, String);

/// A file being received.
struct Incoming {
    offer: Offer,
    part: Part,
    /// Bytes already in the part file, and their hash state.
    held: u64,
    prefix: blake3::Hasher,
}

impl Recv {
    /// Checks an offer and opens its part file (hashing what it holds).
    async fn prepare(&self, offer: Offer) -> std::result::Result<Incoming, Refused> {
        if let Some(why) = store::unsafe_name(&offer.name) {
            return Err((
                Refusal::Name,
                format!("'{}': {why}", offer.name.escape_debug()),
            ));
        }
        if let (Some(size), Some(max)) = (offer.size, self.policy.max_size) {
            if size > max {
                return Err((
                    Refusal::TooLarge,
                    format!("{size} bytes is over the {max}-byte limit"),
                ));
            }
        }
        let dir = self.policy.dir.clone();
        let overwrite = self.policy.overwrite;
        tokio::task::spawn_blocking(move || open_incoming(dir, offer, overwrite))
            .await
            .map_err(|e| (Refusal::Io, e.to_string()))?
    }

    /// Receives one offered file. `Err`: the connection must end.
    async fn receive(
        &self,
        wire: &mut Wire<'_>,
        offer: Offer,
        peer: &SocketAddress,
        identity: &Identity,
    ) -> Result<()> {
        let name = offer.name.clone();
        let incoming = match self.prepare(offer).await {
            Ok(incoming) => incoming,
            Err((kind, message)) => {
                info!(%peer, name = %name.escape_debug(), %message, "file refused");
                refuse(wire, kind, message).await;
                return Ok(());
            }
        };
        let prefix_hash =
            (incoming.held > 0).then(|| incoming.prefix.finalize().to_hex().to_string());
        let accept = Accept {
            offset: incoming.held,
            prefix_hash,
        };
        wire.send(Frame::control(FrameType::ACCEPT, &accept))
            .await?;
        let start: Start = expect_control(wire, FrameType::START).await?;
        let (offset, hasher) = match start.offset {
            0 => (0, blake3::Hasher::new()),
            offset if offset == incoming.held => (offset, incoming.prefix.clone()),
            offset => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("START at {offset}, but {} was accepted", incoming.held),
                ))
            }
        };
        let started = Instant::now();
        let writer = Writer::start(incoming.part.file, offset, hasher);
        let mut watch = Watch::start(self, &name, incoming.offer.size, offset);
        let (end, written) =
            match receive_data(wire, writer, offset, incoming.offer.size, &watch).await? {
                Received::Complete { end, written } => (end, written),
                Received::Refused(kind, message) => {
                    info!(%peer, name = %name.escape_debug(), %message, "transfer failed");
                    refuse(wire, kind, message).await;
                    return Ok(());
                }
                Received::Overrun(message) => {
                    let _ = std::fs::remove_file(&incoming.part.path);
                    refuse(wire, Refusal::Mismatch, message.clone()).await;
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("'{name}': {message}"),
                    ));
                }
            };
        let (file, hasher, written_now) = *written;
        let total = offset + written_now;
        let hash = hasher.finalize().to_hex().to_string();
        let verdict = verify(&incoming.offer, &end, total, &hash);
        if let Some(message) = verdict {
            let _ = std::fs::remove_file(&incoming.part.path);
            info!(%peer, name = %name.escape_debug(), %message, "transfer failed verification");
            refuse(wire, Refusal::Mismatch, message).await;
            return Ok(());
        }
        let (dir, part_path, mode, overwrite) = (
            self.policy.dir.clone(),
            incoming.part.path.clone(),
            incoming.offer.mode,
            self.policy.overwrite,
        );
        let stored_name = name.clone();
        let committed = tokio::task::spawn_blocking(move || {
            store::commit(&part_path, &file, &dir, &stored_name, mode, overwrite)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        if let Err(error) = committed {
            let kind = if error.kind() == std::io::ErrorKind::AlreadyExists {
                Refusal::Exists
            } else {
                Refusal::Io
            };
            refuse(wire, kind, format!("cannot store '{name}': {error}")).await;
            return Ok(());
        }
        let secs = started.elapsed().as_secs_f64();
        info!(%peer, identity = %identity.label, name = %name.escape_debug(), bytes = total, resumed_from = offset, secs, %hash, "file received");
        let done = Digest {
            size: total,
            hash,
            resumed_from: Some(offset),
        };
        watch.stored();
        wire.send(Frame::control(FrameType::DONE, &done)).await?;
        Ok(())
    }
}

/// One transfer as the observer sees it; reports `finished` when dropped
/// unless it was stored.
struct Watch<'a> {
    observer: Option<&'a dyn TransferObserver>,
    id: u64,
    stored: bool,
}

impl<'a> Watch<'a> {
    fn start(recv: &'a Recv, name: &str, total: Option<u64>, offset: u64) -> Watch<'a> {
        let id = recv.next_id.fetch_add(1, Ordering::Relaxed);
        let observer = recv.observer.as_deref();
        if let Some(observer) = observer {
            observer.started(id, name, total, offset);
        }
        Watch {
            observer,
            id,
            stored: false,
        }
    }

    fn advanced(&self, bytes: u64) {
        if let Some(observer) = self.observer {
            observer.advanced(self.id, bytes);
        }
    }

    fn stored(&mut self) {
        self.stored = true;
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if let Some(observer) = self.observer {
            observer.finished(self.id, self.stored);
        }
    }
}

fn open_incoming(
    dir: PathBuf,
    offer: Offer,
    overwrite: bool,
) -> std::result::Result<Incoming, Refused> {
    let target = dir.join(&offer.name);
    if !overwrite && std::fs::symlink_metadata(&target).is_ok() {
        return Err((
            Refusal::Exists,
            format!("'{}' exists (the receiver does not overwrite)", offer.name),
        ));
    }
    let io = |e: std::io::Error| (Refusal::Io, format!("'{}': {e}", offer.name));
    let mut part = Part::open(&dir, &offer.name).map_err(io)?;
    let mut held = part.file.metadata().map_err(io)?.len();
    if offer.size.is_some_and(|size| held > size) {
        held = 0;
    }
    if let Some(size) = offer.size {
        let free = store::free_space(&dir).map_err(io)?;
        let needed = size - held;
        if needed > free {
            return Err((
                Refusal::NoSpace,
                format!("{needed} bytes needed, {free} free"),
            ));
        }
    }
    let prefix = store::hash_prefix(&mut part.file, held).map_err(io)?;
    Ok(Incoming {
        offer,
        part,
        held,
        prefix,
    })
}

/// How the data phase ended.
enum Received {
    Complete {
        end: Digest,
        /// The file, the hash of all of it, and the bytes written now
        /// (boxed: the hasher state is large).
        written: Box<(std::fs::File, blake3::Hasher, u64)>,
    },
    Refused(Refusal, String),
    /// The sender sent more than it offered and is still sending: after
    /// the refusal the stream cannot be resynchronised, so it ends.
    Overrun(String),
}

/// Moves `FILE_DATA` into the writer until `END`. A sender that sends more
/// than it offered is stopped at once (the connection then closes: the
/// stream cannot be resynchronised); a full disk is reported after `END`.
async fn receive_data(
    wire: &mut Wire<'_>,
    writer: Writer,
    offset: u64,
    size: Option<u64>,
    watch: &Watch<'_>,
) -> Result<Received> {
    let mut received = offset;
    let mut writer_alive = true;
    let end: Digest = loop {
        let frame = match wire.next().await {
            Some(frame) => frame?,
            None => {
                // The sender vanished: keep what arrived for a resume.
                let _ = writer.finish().await;
                return Err(Error::new(
                    ErrorKind::Io,
                    "the sender disconnected mid-file",
                ));
            }
        };
        match frame.kind {
            FrameType::FILE_DATA => {
                received += frame.body.len() as u64;
                if size.is_some_and(|size| received > size) {
                    let _ = writer.finish().await;
                    let message =
                        format!("more bytes than the {} offered", size.unwrap_or_default());
                    return Ok(Received::Overrun(message));
                }
                watch.advanced(frame.body.len() as u64);
                if writer_alive {
                    writer_alive = writer.write(frame.body).await;
                }
            }
            FrameType::END => break frame.parse().map_err(io_error)?,
            kind => return Err(io_error(FrameError::Unexpected { kind })),
        }
    };
    match writer.finish().await {
        Ok(written) => Ok(Received::Complete {
            end,
            written: Box::new(written),
        }),
        Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => Ok(Received::Refused(
            Refusal::NoSpace,
            format!("the disk filled up: {error}"),
        )),
        Err(error) => Ok(Received::Refused(
            Refusal::Io,
            format!("write failed: {error}"),
        )),
    }
}

fn verify(offer: &Offer, end: &Digest, total: u64, hash: &str) -> Option<String> {
    if end.size != total {
        return Some(format!(
            "the sender says {} bytes, {total} arrived",
            end.size
        ));
    }
    if let Some(size) = offer.size.filter(|size| *size != total) {
        return Some(format!("{size} bytes were offered, {total} arrived"));
    }
    if end.hash != hash {
        return Some(format!(
            "hash mismatch: the sender has {}, the receiver {hash}",
            end.hash
        ));
    }
    None
}

async fn expect_control<T: serde::de::DeserializeOwned>(
    wire: &mut Wire<'_>,
    kind: FrameType,
) -> Result<T> {
    match wire.next().await {
        Some(frame) => {
            let frame = frame?;
            if frame.kind != kind {
                return Err(io_error(FrameError::Unexpected { kind: frame.kind }));
            }
            frame.parse().map_err(io_error)
        }
        None => Err(Error::new(ErrorKind::Io, "the sender disconnected")),
    }
}

impl StreamHandler for Recv {
    async fn handle(&self, conn: &mut Connection) -> Result<()> {
        let peer = conn.peer_addr().clone();
        let proof = proof_of(conn);
        let mut wire = Framed::new(conn, FrameCodec::opening());
        let opening = Opening {
            service: "recv",
            shell: false,
            auth: &self.policy.auth,
            gate: &self.gate,
            deadline: self.policy.handshake_timeout,
        };
        let identity = match opening.run(&mut wire, &proof, &peer).await {
            Ok(Some(identity)) => identity,
            Ok(None) => return Ok(()),
            Err(error) => return answer_protocol_error(&mut wire, error).await,
        };
        while let Some(frame) = wire.next().await {
            let outcome = match frame {
                Ok(frame) if frame.kind == FrameType::OFFER => match frame.parse::<Offer>() {
                    Ok(offer) => self.receive(&mut wire, offer, &peer, &identity).await,
                    Err(problem) => Err(io_error(problem)),
                },
                Ok(frame) => Err(io_error(FrameError::Unexpected { kind: frame.kind })),
                Err(error) => Err(error.into()),
            };
            if let Err(error) = outcome {
                return answer_protocol_error(&mut wire, error).await;
            }
        }
        Ok(())
    }
}
