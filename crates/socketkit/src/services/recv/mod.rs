//! The file receiver (`serve recv`): takes files offered over the framed
//! protocol (PROTOCOL.md, "File transfer") into one directory, verifying
//! every byte with BLAKE3, resuming interrupted transfers of authenticated
//! senders, enforcing the size and free-space limits on the bytes as they
//! arrive, and never writing outside the directory or over an existing file
//! unless told to.

mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::{info, warn};

use super::auth::{AuthPolicy, Gate, Identity};
use super::session::{answer_protocol_error, proof_of, refuse, Opening, Wire};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::exec::Refusal;
use crate::protocol::transfer::{Accept, Digest, Offer, Start};
use crate::protocol::{Frame, FrameCodec, FrameError, FrameType};
use crate::server::{Connection, StreamHandler};
use crate::transport::SocketAddress;

use store::{Part, PrefixCache, Stamp, Writer};

/// What the receiver accepts.
#[derive(Debug, Clone)]
pub struct RecvPolicy {
    /// Where files go. Nothing is ever written outside it.
    pub dir: PathBuf,
    /// Replace existing files. Default off.
    pub overwrite: bool,
    /// Largest file accepted, enforced on the offer and again on the bytes
    /// that arrive (an offer of unknown size included). Default none.
    pub max_size: Option<u64>,
    /// Accept names starting with `.`. Default off.
    pub allow_dotfiles: bool,
    /// Part files of interrupted transfers untouched this long are removed
    /// (at start and then now and again); `None` keeps them. Default a day.
    pub part_ttl: Option<Duration>,
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
            allow_dotfiles: false,
            part_ttl: Some(Duration::from_secs(24 * 60 * 60)),
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
    /// Hash states of part files, so resume offers do not re-read them.
    prefixes: Arc<PrefixCache>,
    /// Masks the modes senders ask for.
    umask: u32,
    /// When part files were last expired.
    last_sweep: Mutex<Instant>,
}

/// How often (at most) a receiver looks for expired part files, checked as
/// offers arrive: only offers create part files.
const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// Free space is measured again after every this many received bytes.
const FREE_SPACE_STEP: u64 = 4 * 1024 * 1024;

/// A transfer of unknown size stops when less than this would remain free:
/// room for the bytes that arrive until the next measurement and those
/// still queued for the writer, so the disk is never filled.
const FREE_SPACE_RESERVE: u64 = 16 * 1024 * 1024;

/// After a refusal mid-file the receiver discards the sender's data up to
/// its `END`, so the connection stays usable; a sender that goes on longer
/// than this is cut off.
const DRAIN_LIMIT: u64 = 32 * 1024 * 1024;

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
        if let Some(ttl) = policy.part_ttl {
            let removed = store::expire_parts(&dir, ttl).map_err(|e| {
                Error::with_source(
                    ErrorKind::Io,
                    format!("cannot expire part files in {}", dir.display()),
                    e,
                )
            })?;
            if removed > 0 {
                info!(removed, dir = %dir.display(), "expired part files removed");
            }
        }
        Ok(Recv {
            gate: Gate::new(policy.auth.startups),
            policy: RecvPolicy { dir, ..policy },
            observer: None,
            next_id: AtomicU64::new(0),
            prefixes: Arc::default(),
            umask: store::process_umask(),
            last_sweep: Mutex::new(Instant::now()),
        })
    }

    /// Expires part files in the background when the last sweep is older
    /// than [`SWEEP_EVERY`] (or the TTL, if shorter).
    fn sweep_if_due(&self) {
        let Some(ttl) = self.policy.part_ttl else {
            return;
        };
        let every = ttl.clamp(Duration::from_secs(1), SWEEP_EVERY);
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < every {
                return;
            }
            *last = Instant::now();
        }
        let dir = self.policy.dir.clone();
        tokio::task::spawn_blocking(move || match store::expire_parts(&dir, ttl) {
            Ok(0) => {}
            Ok(removed) => info!(removed, dir = %dir.display(), "expired part files removed"),
            Err(error) => warn!(%error, dir = %dir.display(), "cannot expire part files"),
        });
    }

    /// Reports every transfer to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn TransferObserver>) -> Recv {
        self.observer = Some(observer);
        self
    }
}

/// Why the receiver turns a file down, before or during its data; sent
/// to the sender as an `ERROR` of [`Refused::kind`].
#[derive(Debug)]
enum Refused {
    /// Not a plain, safe file name.
    UnsafeName { name: String, why: &'static str },
    /// A name starting with `.`, which the policy refuses.
    Dotfile { name: String },
    /// The offered size is over the per-file limit.
    OfferTooLarge { size: u64, max: u64 },
    /// The file exists and the receiver does not overwrite.
    Exists { name: String },
    /// Another sender holds the file's part.
    Busy { name: String },
    /// The offer does not fit in the free space.
    NoRoom { needed: u64, free: u64 },
    /// Opening, measuring or hashing the part failed.
    Io { name: String, error: std::io::Error },
    /// The blocking task preparing the part failed.
    Task(tokio::task::JoinError),
    /// More than the per-file limit arrived (an offer of unknown size).
    ArrivedTooLarge { max: u64 },
    /// A file of known size no longer fits.
    RanOutOfRoom { remaining: u64, free: u64 },
    /// A file of unknown size would leave less than the reserve.
    NearlyFull { received: u64, free: u64 },
    /// Writing failed for lack of space.
    DiskFull(std::io::Error),
    /// Writing failed.
    WriteFailed(store::WriteError),
    /// Moving the verified file into place failed (it may have appeared
    /// meanwhile).
    Store { name: String, error: std::io::Error },
}

impl Refused {
    /// The `ERROR` kind the sender sees.
    fn kind(&self) -> Refusal {
        match self {
            Refused::UnsafeName { .. } | Refused::Dotfile { .. } => Refusal::Name,
            Refused::OfferTooLarge { .. } | Refused::ArrivedTooLarge { .. } => Refusal::TooLarge,
            Refused::Exists { .. } => Refusal::Exists,
            Refused::Store { error, .. } if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Refusal::Exists
            }
            Refused::Store { .. } => Refusal::Io,
            Refused::Busy { .. } => Refusal::Busy,
            Refused::NoRoom { .. }
            | Refused::RanOutOfRoom { .. }
            | Refused::NearlyFull { .. }
            | Refused::DiskFull(_) => Refusal::NoSpace,
            Refused::Io { .. } | Refused::Task(_) | Refused::WriteFailed(_) => Refusal::Io,
        }
    }
}

/// The `ERROR` message: for the sender, so it names its file, not our paths.
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::UnsafeName { name, why } => write!(f, "'{}': {why}", name.escape_debug()),
            Refused::Dotfile { name } => write!(
                f,
                "'{}': names starting with '.' are refused",
                name.escape_debug()
            ),
            Refused::OfferTooLarge { size, max } => {
                write!(f, "{size} bytes is over the {max}-byte limit")
            }
            Refused::Exists { name } => {
                write!(f, "'{name}' exists (the receiver does not overwrite)")
            }
            Refused::Busy { name } => {
                write!(f, "'{name}' is being received from another sender")
            }
            Refused::NoRoom { needed, free } => write!(f, "{needed} bytes needed, {free} free"),
            Refused::Io { name, error } => write!(f, "'{name}': {error}"),
            Refused::Task(error) => write!(f, "{error}"),
            Refused::ArrivedTooLarge { max } => write!(f, "more than the {max}-byte limit arrived"),
            Refused::RanOutOfRoom { remaining, free } => {
                write!(f, "{remaining} more bytes needed, {free} free")
            }
            Refused::NearlyFull { received, free } => write!(
                f,
                "the disk is nearly full after {received} bytes ({free} bytes free, the receiver keeps {FREE_SPACE_RESERVE})"
            ),
            Refused::DiskFull(error) => write!(f, "the disk filled up: {error}"),
            Refused::WriteFailed(error) => write!(f, "write failed: {error}"),
            Refused::Store { name, error } => write!(f, "cannot store '{name}': {error}"),
        }
    }
}

/// A file being received.
struct Incoming {
    offer: Offer,
    /// Its part file; the lock on it is held while this lives.
    part: Part,
    /// Bytes already in the part file, and their hash state.
    held: u64,
    prefix: blake3::Hasher,
}

impl Recv {
    /// Checks an offer and opens its part file; with `resumable`, what the
    /// part holds is offered for resume (its hash cached or computed).
    async fn prepare(
        &self,
        offer: Offer,
        resumable: bool,
    ) -> std::result::Result<Incoming, Refused> {
        if let Some(why) = store::unsafe_name(&offer.name) {
            return Err(Refused::UnsafeName {
                name: offer.name,
                why,
            });
        }
        if offer.name.starts_with('.') && !self.policy.allow_dotfiles {
            return Err(Refused::Dotfile { name: offer.name });
        }
        if let (Some(size), Some(max)) = (offer.size, self.policy.max_size) {
            if size > max {
                return Err(Refused::OfferTooLarge { size, max });
            }
        }
        let dir = self.policy.dir.clone();
        let overwrite = self.policy.overwrite;
        let prefixes = Arc::clone(&self.prefixes);
        tokio::task::spawn_blocking(move || {
            open_incoming(dir, offer, overwrite, resumable.then_some(&*prefixes))
        })
        .await
        .map_err(Refused::Task)?
    }

    /// Receives one offered file. Only an authenticated sender may resume
    /// (hashing a large part is work an anonymous client could force on
    /// every offer). `Err`: the connection must end.
    async fn receive(
        &self,
        wire: &mut Wire<'_>,
        offer: Offer,
        peer: &SocketAddress,
        identity: &Identity,
        anonymous: bool,
    ) -> Result<()> {
        self.sweep_if_due();
        let name = offer.name.clone();
        let incoming = match self.prepare(offer, !anonymous).await {
            Ok(incoming) => incoming,
            Err(refused) => {
                info!(%peer, name = %name.escape_debug(), message = %refused, "file refused");
                refuse(wire, refused.kind(), refused.to_string()).await;
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
        // The writer gets its own descriptor of the part; `incoming.part`
        // keeps the lock (shared by both) until this transfer is over.
        let file = incoming
            .part
            .file
            .try_clone()
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot write the part file", e))?;
        let writer = Writer::start(file, offset, hasher);
        let mut watch = Watch::start(self, &name, incoming.offer.size, offset);
        let limits = Limits {
            offered: incoming.offer.size,
            max_size: self.policy.max_size,
            dir: &self.policy.dir,
        };
        let part_path = &incoming.part.path;
        let (end, written) = match receive_data(wire, writer, offset, &limits, &watch).await? {
            Received::Complete { end, written } => (end, written),
            Received::Refused(refused) => {
                if anonymous {
                    self.discard(part_path); // it would never be resumed
                }
                info!(%peer, name = %name.escape_debug(), message = %refused, "transfer failed");
                refuse(wire, refused.kind(), refused.to_string()).await;
                return Ok(());
            }
            Received::Stopped(refused) => {
                self.discard(part_path);
                info!(%peer, name = %name.escape_debug(), message = %refused, "transfer stopped");
                refuse(wire, refused.kind(), refused.to_string()).await;
                return drain_to_end(wire).await;
            }
            Received::Overrun(message) => {
                self.discard(part_path);
                refuse(wire, Refusal::Mismatch, message.clone()).await;
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("'{name}': {message}"),
                ));
            }
            Received::Vanished(kept) => {
                // Keep what arrived for a resume, with its hash, unless the
                // sender could never resume it.
                match kept {
                    Ok(kept) if !anonymous => {
                        let (file, hasher, _) = *kept;
                        if let Ok(stamp) = Stamp::of(&file) {
                            self.prefixes.put(part_path, stamp, hasher);
                        }
                    }
                    _ => self.discard(part_path),
                }
                return Err(Error::new(
                    ErrorKind::Io,
                    "the sender disconnected mid-file",
                ));
            }
        };
        let (file, hasher, written_now) = *written;
        let total = offset.saturating_add(written_now);
        let hash = hasher.finalize().to_hex().to_string();
        let verdict = verify(&incoming.offer, &end, total, &hash);
        if let Some(message) = verdict {
            self.discard(part_path);
            info!(%peer, name = %name.escape_debug(), %message, "transfer failed verification");
            refuse(wire, Refusal::Mismatch, message).await;
            return Ok(());
        }
        self.prefixes.forget(part_path);
        let (dir, part_path, mode, overwrite) = (
            self.policy.dir.clone(),
            part_path.clone(),
            incoming
                .offer
                .mode
                .map(|mode| store::allowed_mode(mode, self.umask)),
            self.policy.overwrite,
        );
        let stored_name = name.clone();
        let committed = tokio::task::spawn_blocking(move || {
            store::commit(&part_path, &file, &dir, &stored_name, mode, overwrite)
        })
        .await;
        let failed = match committed {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(Refused::Store {
                name: name.clone(),
                error,
            }),
            Err(error) => Some(Refused::Task(error)),
        };
        if let Some(refused) = failed {
            refuse(wire, refused.kind(), refused.to_string()).await;
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

    /// Removes a part file that will not be resumed (the caller holds its
    /// lock, so no other transfer is using it).
    fn discard(&self, part: &Path) {
        self.prefixes.forget(part);
        let _ = std::fs::remove_file(part);
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
    resume: Option<&PrefixCache>,
) -> std::result::Result<Incoming, Refused> {
    let target = dir.join(&offer.name);
    if !overwrite && std::fs::symlink_metadata(&target).is_ok() {
        return Err(Refused::Exists { name: offer.name });
    }
    let io = |error: std::io::Error| Refused::Io {
        name: offer.name.clone(),
        error,
    };
    // A sender that may not resume gets a part of its own: sharing the
    // resumable one would let it truncate what an authenticated sender
    // left to resume. (NUL never appears in a file name, so no name maps
    // to the same part.)
    let part_key = match resume {
        Some(_) => offer.name.clone(),
        None => format!("\0no-resume\0{}", offer.name),
    };
    let mut part = Part::open(&dir, &part_key).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Refused::Busy {
                name: offer.name.clone(),
            }
        } else {
            io(e)
        }
    })?;
    let stamp = Stamp::of(&part.file).map_err(io)?;
    let mut held = if resume.is_some() { stamp.len() } else { 0 };
    if offer.size.is_some_and(|size| held > size) {
        held = 0;
    }
    if let Some(size) = offer.size {
        let free = store::free_space(&dir).map_err(io)?;
        let needed = size - held;
        if needed > free {
            return Err(Refused::NoRoom { needed, free });
        }
    }
    let prefix = match resume {
        Some(cache) if held > 0 => match cache.get(&part.path, stamp) {
            Some(hasher) => hasher,
            None => {
                let hasher = store::hash_prefix(&mut part.file, held).map_err(io)?;
                cache.put(&part.path, stamp, hasher.clone());
                hasher
            }
        },
        _ => blake3::Hasher::new(),
    };
    Ok(Incoming {
        offer,
        part,
        held,
        prefix,
    })
}

/// What the data phase holds the bytes to as they arrive.
struct Limits<'a> {
    /// The size offered, if any.
    offered: Option<u64>,
    /// The receiver's per-file limit.
    max_size: Option<u64>,
    /// Where the file goes (whose free space is measured).
    dir: &'a Path,
}

impl Limits<'_> {
    /// Why a transfer that has `received` bytes so far must stop for lack
    /// of space, if it must: a file of known size that can no longer fit,
    /// or one of unknown size that would leave less than
    /// [`FREE_SPACE_RESERVE`]. A failed measurement stops nothing (a full
    /// disk still fails the write).
    async fn space_problem(&self, received: u64) -> Option<Refused> {
        let dir = self.dir.to_path_buf();
        let free = tokio::task::spawn_blocking(move || store::free_space(&dir))
            .await
            .ok()?
            .ok()?;
        match self.offered {
            Some(size) => {
                let remaining = size.saturating_sub(received);
                (free < remaining).then_some(Refused::RanOutOfRoom { remaining, free })
            }
            None => (free < FREE_SPACE_RESERVE).then_some(Refused::NearlyFull { received, free }),
        }
    }
}

/// How the data phase ended.
enum Received {
    Complete {
        end: Digest,
        /// The file, the hash of all of it, and the bytes written now
        /// (boxed: the hasher state is large).
        written: Box<(std::fs::File, blake3::Hasher, u64)>,
    },
    /// The data arrived but could not be kept.
    Refused(Refused),
    /// A limit stopped the transfer mid-file; the sender is still sending.
    Stopped(Refused),
    /// The sender disconnected mid-file: what the writer kept (boxed as
    /// above).
    Vanished(std::result::Result<Box<(std::fs::File, blake3::Hasher, u64)>, store::WriteError>),
    /// The sender sent more than it offered and is still sending: after
    /// the refusal the stream cannot be resynchronised, so it ends.
    Overrun(String),
}

/// Moves `FILE_DATA` into the writer until `END`, holding every byte to the
/// limits as it arrives. A sender that sends more than it offered is stopped
/// at once (the connection then closes: the stream cannot be
/// resynchronised); one over `--max-size` or the free space is stopped too;
/// a full disk is reported after `END`.
async fn receive_data(
    wire: &mut Wire<'_>,
    writer: Writer,
    offset: u64,
    limits: &Limits<'_>,
    watch: &Watch<'_>,
) -> Result<Received> {
    let mut received = offset;
    let mut next_space_check = offset.saturating_add(FREE_SPACE_STEP);
    let mut writer_alive = true;
    let end: Digest = loop {
        let frame = match wire.next().await {
            Some(frame) => frame?,
            None => return Ok(Received::Vanished(writer.finish().await.map(Box::new))),
        };
        match frame.kind {
            FrameType::FILE_DATA => {
                received = received.saturating_add(frame.body.len() as u64);
                if let Some(size) = limits.offered.filter(|size| received > *size) {
                    let _ = writer.finish().await;
                    let message = format!("more bytes than the {size} offered");
                    return Ok(Received::Overrun(message));
                }
                if let Some(max) = limits.max_size.filter(|max| received > *max) {
                    let _ = writer.finish().await;
                    return Ok(Received::Stopped(Refused::ArrivedTooLarge { max }));
                }
                if received >= next_space_check {
                    next_space_check = received.saturating_add(FREE_SPACE_STEP);
                    if let Some(refused) = limits.space_problem(received).await {
                        let _ = writer.finish().await;
                        return Ok(Received::Stopped(refused));
                    }
                }
                watch.advanced(frame.body.len() as u64);
                if writer_alive {
                    writer_alive = writer.write(frame.body).await;
                }
            }
            FrameType::END => break frame.parse()?,
            kind => return Err(FrameError::Unexpected { kind }.into()),
        }
    };
    match writer.finish().await {
        Ok(written) => Ok(Received::Complete {
            end,
            written: Box::new(written),
        }),
        Err(store::WriteError::Io(error)) if error.raw_os_error() == Some(libc::ENOSPC) => {
            Ok(Received::Refused(Refused::DiskFull(error)))
        }
        Err(error) => Ok(Received::Refused(Refused::WriteFailed(error))),
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

/// After a refusal mid-file: discards the sender's `FILE_DATA` up to its
/// `END` (a sender that has seen the `ERROR` sends `END` at once), so the
/// connection can carry the next offer. Past [`DRAIN_LIMIT`] the connection
/// ends.
async fn drain_to_end(wire: &mut Wire<'_>) -> Result<()> {
    let mut discarded = 0u64;
    while let Some(frame) = wire.next().await {
        let frame = frame?;
        match frame.kind {
            FrameType::FILE_DATA => {
                discarded = discarded.saturating_add(frame.body.len() as u64);
                if discarded > DRAIN_LIMIT {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("the sender went on for {discarded} bytes after the refusal"),
                    ));
                }
            }
            FrameType::END => return Ok(()),
            kind => return Err(FrameError::Unexpected { kind }.into()),
        }
    }
    Ok(())
}

async fn expect_control<T: serde::de::DeserializeOwned>(
    wire: &mut Wire<'_>,
    kind: FrameType,
) -> Result<T> {
    match wire.next().await {
        Some(frame) => {
            let frame = frame?;
            if frame.kind != kind {
                return Err(FrameError::Unexpected { kind: frame.kind }.into());
            }
            Ok(frame.parse()?)
        }
        None => Err(Error::new(ErrorKind::Io, "the sender disconnected")),
    }
}

impl StreamHandler for Recv {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
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
        let anonymous = self.policy.auth.requirement(&proof).is_none();
        let identity = match opening.run(&mut wire, &proof, &peer).await {
            Ok(Some(identity)) => identity,
            Ok(None) => return Ok(()),
            Err(error) => return answer_protocol_error(&mut wire, error).await,
        };
        while let Some(frame) = wire.next().await {
            let outcome = match frame {
                Ok(frame) if frame.kind == FrameType::OFFER => match frame.parse::<Offer>() {
                    Ok(offer) => {
                        self.receive(&mut wire, offer, &peer, &identity, anonymous)
                            .await
                    }
                    Err(problem) => Err(problem.into()),
                },
                Ok(frame) => Err(FrameError::Unexpected { kind: frame.kind }.into()),
                Err(error) => Err(error.into()),
            };
            if let Err(error) = outcome {
                return answer_protocol_error(&mut wire, error).await;
            }
        }
        Ok(())
    }
}
