//! Federation: several chat servers share rooms through Redis pub/sub.
//!
//! Every server publishes what happens to its members ([`Wire`] events, each
//! stamped with the server's node id, a sequence number and the time) on one
//! channel and applies what the others publish, skipping its own. Presence
//! is one signed snapshot per node (`nick → room`), written with its expiry
//! in the same command (`SET … EX`), so a crashed node's members vanish on
//! their own even if it dies right after a join.
//!
//! The bus is input like any socket: whoever can write to Redis can publish.
//! So every payload passes [`decode`] — a size cap before parsing, then the
//! same sanitizer, nickname and room rules as local input — and, with a
//! [`BusSecret`], must carry a valid HMAC-SHA256, be fresh (30 s) and not
//! be a replay of a message already seen. What fails is dropped and counted.
//! Nothing here is on the local path: the hub hands events over with a
//! non-blocking `try_send`, and if Redis goes away local rooms keep working
//! while this task tells members, retries with back-off, and announces the
//! link when it is back.

// The bus is input from other nodes: arithmetic is checked, and an
// operation that cannot overflow says why (issue 11).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use redis::aio::{MultiplexedConnection, PubSub};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::hub::{Hub, Presence};
use super::text::{check_nick, check_room, clean};
use crate::error::{Error, ErrorKind, Result};
use crate::server::ServerHandle;

const CHANNEL: &str = "socketkit:chat:events";
const PRESENCE_PREFIX: &str = "socketkit:chat:presence:";
/// How often a node rewrites its presence and reads everyone else's.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// Presence outlives two missed heartbeats, not a dead node: with one more
/// heartbeat for the others to notice, a crashed node's members are gone
/// within 10 s.
const PRESENCE_TTL_SECS: u64 = 7;
/// Any one Redis operation; past this the link counts as down.
const REDIS_DEADLINE: Duration = Duration::from_secs(3);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Events waiting for the bus; past this they are dropped, not queued.
pub(crate) const QUEUE: usize = 16 * 1024;

/// Largest event on the channel, checked before parsing: a chat line is at
/// most `--max-message` (4 KiB by default) plus names and JSON.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Largest presence snapshot read from Redis (read with `GETRANGE`, so a
/// bigger value is never loaded whole).
pub const MAX_PRESENCE_BYTES: usize = 1024 * 1024;
/// Most members one linked node may announce.
pub const MAX_NODE_MEMBERS: usize = 16 * 1024;
/// Most linked nodes whose presence is read.
pub const MAX_NODES: usize = 64;
/// Signed messages whose time is further than this from ours are stale.
const MAX_SKEW: Duration = Duration::from_secs(30);
/// Shortest accepted secret: HMAC needs entropy, not a password.
const MIN_SECRET_BYTES: usize = 16;
/// What a signed payload starts with, before the base64 MAC and a `:`.
const SIGNED: &[u8] = b"hmac-sha256:";
/// The MAC's base64 length (32 bytes).
const MAC_B64: usize = 44;
/// Rejected messages are logged at most this often (with their count).
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

type HmacSha256 = Hmac<Sha256>;

/// What servers tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Wire {
    Message {
        room: String,
        nick: String,
        text: String,
        action: bool,
    },
    Private {
        from: String,
        to: String,
        text: String,
    },
    Joined {
        room: String,
        nick: String,
    },
    Left {
        room: String,
        nick: String,
        reason: Option<String>,
    },
    Renamed {
        room: String,
        old: String,
        new: String,
    },
    /// A node's whole membership: the value of its presence key, never an
    /// event on the channel.
    Presence {
        members: Vec<Presence>,
    },
}

/// One bus payload: who sent it, its place in that node's sequence, when,
/// and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) node: String,
    pub(crate) seq: u64,
    /// Milliseconds since the Unix epoch, by the sender's clock.
    pub(crate) time: u64,
    #[serde(flatten)]
    pub(crate) wire: Wire,
}

/// A payload that passed [`decode`]: every field checked, the signature (if
/// any) not yet.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub(crate) envelope: Envelope,
    /// The MAC and the bytes it covers, for a signed payload.
    signed: Option<([u8; 32], &'a [u8])>,
}

/// Why a bus payload was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejected {
    /// Larger than the cap for its kind (not parsed).
    TooLarge,
    /// Not a bus payload (bad JSON, bad signature framing).
    Malformed,
    /// A field broke the rules local input follows (nickname, room, text).
    Invalid,
    /// A secret is set and the payload is not signed.
    Unsigned,
    /// The signature does not match.
    BadSignature,
    /// Signed too long ago (or in the future): a possible replay.
    Stale,
    /// Seen before.
    Replayed,
    /// Not what belongs where it was found (presence on the channel, an
    /// event in a presence key, another node's presence).
    Misplaced,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejected::TooLarge => "too large",
            Rejected::Malformed => "malformed",
            Rejected::Invalid => "a field breaks the chat's rules",
            Rejected::Unsigned => "unsigned",
            Rejected::BadSignature => "bad signature",
            Rejected::Stale => "stale",
            Rejected::Replayed => "replayed",
            Rejected::Misplaced => "misplaced",
        })
    }
}

impl std::error::Error for Rejected {}

/// Parses and checks one bus payload (a channel message or a presence
/// value), without any key: the size cap (1 MiB) before
/// parsing, then the signature framing, then every field by the rules local
/// input follows (the text sanitizer, nickname and room rules). Pure, for
/// fuzzing; signatures are checked later against the secret.
pub fn decode(bytes: &[u8]) -> std::result::Result<Decoded<'_>, Rejected> {
    if bytes.len() > MAX_PRESENCE_BYTES {
        return Err(Rejected::TooLarge);
    }
    let (signed, body) = match bytes.strip_prefix(SIGNED) {
        Some(rest) => {
            let (mac, body) = rest.split_at_checked(MAC_B64).ok_or(Rejected::Malformed)?;
            let body = body.strip_prefix(b":").ok_or(Rejected::Malformed)?;
            let mac = base64::engine::general_purpose::STANDARD
                .decode(mac)
                .ok()
                .and_then(|mac| <[u8; 32]>::try_from(mac).ok())
                .ok_or(Rejected::Malformed)?;
            (Some((mac, body)), body)
        }
        None => (None, bytes),
    };
    let envelope: Envelope = serde_json::from_slice(body).map_err(|_| Rejected::Malformed)?;
    let envelope = envelope.checked()?;
    Ok(Decoded { envelope, signed })
}

impl Envelope {
    /// The envelope with every field checked as local input is: rooms and
    /// nicknames by their rules (rooms lose their `#`), text through the
    /// sanitizer (nothing left: invalid).
    fn checked(self) -> std::result::Result<Envelope, Rejected> {
        let node_ok = !self.node.is_empty()
            && self.node.len() <= 64
            && self
                .node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !node_ok {
            return Err(Rejected::Invalid);
        }
        let room = |room: &str| {
            check_room(room)
                .map(str::to_owned)
                .map_err(|_| Rejected::Invalid)
        };
        let nick = |nick: String| {
            check_nick(&nick)
                .map(|()| nick)
                .map_err(|_| Rejected::Invalid)
        };
        let text = |text: &str| clean(text).ok_or(Rejected::Invalid);
        let wire = match self.wire {
            Wire::Message {
                room: r,
                nick: n,
                text: t,
                action,
            } => Wire::Message {
                room: room(&r)?,
                nick: nick(n)?,
                text: text(&t)?,
                action,
            },
            Wire::Private { from, to, text: t } => Wire::Private {
                from: nick(from)?,
                to: nick(to)?,
                text: text(&t)?,
            },
            Wire::Joined { room: r, nick: n } => Wire::Joined {
                room: room(&r)?,
                nick: nick(n)?,
            },
            Wire::Left {
                room: r,
                nick: n,
                reason,
            } => Wire::Left {
                room: room(&r)?,
                nick: nick(n)?,
                reason: reason.as_deref().and_then(clean),
            },
            Wire::Renamed { room: r, old, new } => Wire::Renamed {
                room: room(&r)?,
                old: nick(old)?,
                new: nick(new)?,
            },
            Wire::Presence { members } => {
                if members.len() > MAX_NODE_MEMBERS {
                    return Err(Rejected::TooLarge);
                }
                let members = members
                    .into_iter()
                    .map(|p| {
                        Ok(Presence {
                            room: room(&p.room)?,
                            nick: nick(p.nick)?,
                        })
                    })
                    .collect::<std::result::Result<_, Rejected>>()?;
                Wire::Presence { members }
            }
        };
        Ok(Envelope { wire, ..self })
    }
}

/// The shared secret that signs every bus message (`--bus-secret-file`).
#[derive(Clone)]
pub struct BusSecret {
    /// HMAC keyed once; each use starts from a clone.
    keyed: HmacSha256,
}

impl BusSecret {
    /// A secret of at least 16 bytes (surrounding whitespace, such as a
    /// file's last newline, is not part of it).
    pub fn new(secret: &[u8]) -> Result<BusSecret> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "a bus secret needs at least {MIN_SECRET_BYTES} bytes (hint: head -c 32 /dev/urandom | base64)"
                ),
            ));
        }
        let keyed = <HmacSha256 as Mac>::new_from_slice(secret)
            .map_err(|e| Error::new(ErrorKind::Auth, format!("unusable bus secret: {e}")))?;
        Ok(BusSecret { keyed })
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    /// `hmac-sha256:MAC:BODY`.
    fn sign(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(body);
        let tag = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        // A hint only: saturating can at worst under-reserve.
        let capacity = SIGNED
            .len()
            .saturating_add(tag.len())
            .saturating_add(1)
            .saturating_add(body.len());
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(SIGNED);
        out.extend_from_slice(tag.as_bytes());
        out.push(b':');
        out.extend_from_slice(body);
        out
    }

    /// Constant-time check of a MAC over `body`.
    fn verify(&self, tag: &[u8; 32], body: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for BusSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BusSecret(<redacted>)")
    }
}

/// Where the bus is and how to trust it: `redis://[USER:PASS@]HOST:PORT[/DB]`
/// or `rediss://…` (TLS, verified against the system roots or the CAs of
/// [`Bus::ca_file`]), optionally with a [`BusSecret`].
#[derive(Clone)]
pub struct Bus {
    client: redis::Client,
    /// The URL without its password, for logs and errors.
    shown: String,
    tls: bool,
    secret: Option<BusSecret>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.shown)
            .field("secret", &self.secret)
            .finish()
    }
}

impl Bus {
    /// Checks a bus URL without connecting. A password in the URL is sent
    /// with Redis `AUTH`; `rediss://` verifies the server's certificate
    /// (`#insecure`, which would not, is refused).
    pub fn new(url: &str) -> Result<Bus> {
        let parsed = url::Url::parse(url).map_err(|e| invalid(&redact(url), e))?;
        let shown = redact(url);
        let tls = parsed.scheme() == "rediss";
        if parsed.fragment() == Some("insecure") {
            return Err(Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid bus address {shown}: #insecure would not verify the server; trust a private CA instead"),
            ));
        }
        let client = redis::Client::open(url).map_err(|e| invalid(&shown, e))?;
        Ok(Bus {
            client,
            shown,
            tls,
            secret: None,
        })
    }

    /// For `rediss://`: trust only the CAs in this PEM file instead of the
    /// system roots.
    pub fn ca_file(mut self, path: &Path) -> Result<Bus> {
        if !self.tls {
            return Err(Error::new(
                ErrorKind::InvalidAddress,
                format!("a bus CA needs a rediss:// address, not {}", self.shown),
            ));
        }
        // The same loader and checks as every client's --ca.
        let certificates = crate::tls::load_certificates(path)?;
        let mut pem = Vec::new();
        for certificate in &certificates {
            let b64 = base64::engine::general_purpose::STANDARD.encode(certificate);
            pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.extend_from_slice(line);
                pem.push(b'\n');
            }
            pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
        }
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        self.client =
            redis::Client::build_with_tls(self.client.get_connection_info().clone(), certificates)
                .map_err(|e| invalid(&self.shown, e))?;
        Ok(self)
    }

    /// Signs every message with `secret` and drops every message not signed
    /// with it.
    pub fn secret(mut self, secret: BusSecret) -> Bus {
        self.secret = Some(secret);
        self
    }

    /// The address without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

fn invalid(shown: &str, error: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidAddress,
        format!("invalid bus address {shown}: {error}"),
    )
}

/// The URL with any password replaced, so it can be logged.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// A node id unique enough to tell servers apart: random bits from the
/// standard library's hasher keys, mixed with the time and process id.
fn node_id() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    format!("{:016x}", hasher.finish())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Keeps this server linked until shutdown, reconnecting with back-off.
pub(crate) async fn run(
    hub: Arc<Hub>,
    bus: Bus,
    mut outgoing: mpsc::Receiver<Wire>,
    shutdown: ServerHandle,
) {
    let mut me = Sender {
        node: node_id(),
        seq: 0,
        secret: bus.secret.clone(),
    };
    let mut gate = Gate::new(bus.secret.clone());
    info!(
        node = %me.node,
        bus = %bus.shown,
        signed = bus.secret.is_some(),
        "chat bus starting"
    );
    let mut backoff = BACKOFF_START;
    let mut logged_down = false;
    while !shutdown.is_shutting_down() {
        let connected = tokio::select! {
            () = shutdown.shutdown_requested() => break,
            connected = connect(&bus.client) => connected,
        };
        match connected {
            Ok((conn, pubsub)) => {
                info!(node = %me.node, "chat bus linked");
                backoff = BACKOFF_START;
                logged_down = false;
                let mut link = Link {
                    hub: &hub,
                    me: &mut me,
                    gate: &mut gate,
                    conn,
                };
                hub.set_link(true);
                let lost = link.serve(pubsub, &mut outgoing, &shutdown).await;
                hub.set_link(false);
                if let Some(error) = lost {
                    warn!(%error, "chat bus link lost; local rooms keep working, retrying");
                }
            }
            Err(error) if !logged_down => {
                warn!(%error, bus = %bus.shown, "cannot reach the chat bus; retrying with back-off");
                logged_down = true;
            }
            Err(error) => debug!(%error, "chat bus still unreachable"),
        }
        // Events from while the link was down are stale: drop them.
        while outgoing.try_recv().is_ok() {}
        tokio::select! {
            () = shutdown.shutdown_requested() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    }
    info!(
        rejected = gate.rejected_total,
        "chat bus stopped; {} bus messages were rejected in all", gate.rejected_total
    );
}

async fn connect(client: &redis::Client) -> redis::RedisResult<(MultiplexedConnection, PubSub)> {
    let connecting = async {
        let conn = client.get_multiplexed_async_connection().await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(CHANNEL).await?;
        Ok((conn, pubsub))
    };
    deadline(connecting).await
}

async fn deadline<T>(
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_DEADLINE, op).await {
        Ok(result) => result,
        Err(_elapsed) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "Redis did not answer in time",
        ))),
    }
}

/// This node as a sender: its id, its sequence, its secret.
struct Sender {
    node: String,
    seq: u64,
    secret: Option<BusSecret>,
}

impl Sender {
    /// The payload for `wire`: JSON, signed when there is a secret.
    fn seal(&mut self, wire: Wire) -> Vec<u8> {
        self.seq = self.seq.saturating_add(1);
        let envelope = Envelope {
            node: self.node.clone(),
            seq: self.seq,
            time: now_ms(),
            wire,
        };
        // Serializing a plain struct of strings cannot fail.
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        match &self.secret {
            Some(secret) => secret.sign(&body),
            None => body,
        }
    }

    fn presence_key(&self) -> String {
        format!("{PRESENCE_PREFIX}{}", self.node)
    }
}

/// What lets a payload in: signature, freshness and replay checks, and the
/// count (and rate-limited log) of what was rejected.
struct Gate {
    secret: Option<BusSecret>,
    /// Node → highest sequence number seen and when: a signed message at
    /// or below it is a replay. Forgotten once older than twice the skew
    /// (by then a replay is stale anyway); at most [`MAX_NODES`] × 4.
    seen: HashMap<String, (u64, Instant)>,
    rejected_total: u64,
    rejected_since_log: u64,
    last_log: Option<Instant>,
}

impl Gate {
    fn new(secret: Option<BusSecret>) -> Gate {
        Gate {
            secret,
            seen: HashMap::new(),
            rejected_total: 0,
            rejected_since_log: 0,
            last_log: None,
        }
    }

    /// A channel message from another node, or `None` (own, or rejected).
    fn event(&mut self, payload: &[u8], own: &str) -> Option<Envelope> {
        match self.check_event(payload, own) {
            Ok(envelope) => envelope,
            Err(why) => {
                self.reject(why, "channel");
                None
            }
        }
    }

    fn check_event(
        &mut self,
        payload: &[u8],
        own: &str,
    ) -> std::result::Result<Option<Envelope>, Rejected> {
        if payload.len() > MAX_EVENT_BYTES {
            return Err(Rejected::TooLarge);
        }
        let decoded = decode(payload)?;
        if decoded.envelope.node == own {
            return Ok(None);
        }
        if matches!(decoded.envelope.wire, Wire::Presence { .. }) {
            return Err(Rejected::Misplaced);
        }
        self.authenticate(&decoded)?;
        if self.secret.is_some() {
            self.not_replayed(&decoded.envelope)?;
        }
        Ok(Some(decoded.envelope))
    }

    /// A presence value read from `node`'s key.
    fn presence(&mut self, payload: &[u8], node: &str) -> Option<Vec<Presence>> {
        let checked = decode(payload).and_then(|decoded| {
            self.authenticate(&decoded)?;
            match decoded.envelope {
                Envelope {
                    node: from,
                    wire: Wire::Presence { members },
                    ..
                } if from == node => Ok(members),
                _ => Err(Rejected::Misplaced),
            }
        });
        match checked {
            Ok(members) => Some(members),
            Err(why) => {
                self.reject(why, "presence");
                None
            }
        }
    }

    /// With a secret: signed with it, and fresh.
    fn authenticate(&self, decoded: &Decoded<'_>) -> std::result::Result<(), Rejected> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let (tag, body) = decoded.signed.ok_or(Rejected::Unsigned)?;
        if !secret.verify(&tag, body) {
            return Err(Rejected::BadSignature);
        }
        let skew = now_ms().abs_diff(decoded.envelope.time);
        if u128::from(skew) > MAX_SKEW.as_millis() {
            return Err(Rejected::Stale);
        }
        Ok(())
    }

    /// Each node's sequence only grows (one publisher connection, delivered
    /// in order), so anything at or below the last seen is a replay.
    fn not_replayed(&mut self, envelope: &Envelope) -> std::result::Result<(), Rejected> {
        let now = Instant::now();
        if let Some((last, seen)) = self.seen.get_mut(&envelope.node) {
            if envelope.seq <= *last {
                return Err(Rejected::Replayed);
            }
            *last = envelope.seq;
            *seen = now;
            return Ok(());
        }
        if self.seen.len() >= MAX_NODES * 4 {
            let horizon = MAX_SKEW.saturating_mul(2);
            self.seen
                .retain(|_, (_, seen)| now.duration_since(*seen) < horizon);
        }
        if self.seen.len() >= MAX_NODES * 4 {
            // Only nodes holding the secret get here: more than this many
            // at once is a misconfiguration, and the least recent goes.
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(node, _)| node.clone());
            if let Some(oldest) = oldest {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(envelope.node.clone(), (envelope.seq, now));
        Ok(())
    }

    /// Counts a rejected payload; logs at most every [`REJECT_LOG_EVERY`].
    fn reject(&mut self, why: Rejected, source: &str) {
        self.rejected_total = self.rejected_total.saturating_add(1);
        self.rejected_since_log = self.rejected_since_log.saturating_add(1);
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= REJECT_LOG_EVERY)
        {
            warn!(
                reason = %why,
                source,
                rejected = self.rejected_since_log,
                total = self.rejected_total,
                "dropped chat bus messages ({why}); is someone else writing to the bus?"
            );
            self.last_log = Some(now);
            self.rejected_since_log = 0;
        }
    }
}

/// One live connection to Redis.
struct Link<'a> {
    hub: &'a Hub,
    me: &'a mut Sender,
    gate: &'a mut Gate,
    conn: MultiplexedConnection,
}

impl Link<'_> {
    /// Runs until the link fails (returns the error) or shutdown (`None`).
    async fn serve(
        &mut self,
        pubsub: PubSub,
        outgoing: &mut mpsc::Receiver<Wire>,
        shutdown: &ServerHandle,
    ) -> Option<redis::RedisError> {
        let mut incoming = pubsub.into_on_message();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            let step = tokio::select! {
                biased;
                () = shutdown.shutdown_requested() => {
                    let key = self.me.presence_key();
                    let _ = deadline(redis::cmd("DEL").arg(key).query_async::<()>(&mut self.conn)).await;
                    return None;
                }
                message = incoming.next() => match message {
                    Some(message) => {
                        if let Some(envelope) = self.gate.event(message.get_payload_bytes(), &self.me.node) {
                            self.hub.apply_remote(&envelope.node, envelope.wire);
                        }
                        Ok(())
                    }
                    None => return Some(lost("the subscription closed")),
                },
                wire = outgoing.recv() => match wire {
                    Some(wire) => self.publish(wire, outgoing).await,
                    None => return None,
                },
                _ = heartbeat.tick() => self.refresh_presence().await,
            };
            if let Err(error) = step {
                return Some(error);
            }
        }
    }

    /// Publishes `first` and whatever else is already queued, in one
    /// transaction; if membership changed, the presence snapshot (with its
    /// expiry) is rewritten first in the same transaction, so a node that
    /// reads presence after seeing the event sees the change, and a crash
    /// at any point leaves a key that expires.
    async fn publish(
        &mut self,
        first: Wire,
        outgoing: &mut mpsc::Receiver<Wire>,
    ) -> redis::RedisResult<()> {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match outgoing.try_recv() {
                Ok(wire) => batch.push(wire),
                Err(_) => break,
            }
        }
        let membership = batch.iter().any(|wire| {
            matches!(
                wire,
                Wire::Joined { .. } | Wire::Left { .. } | Wire::Renamed { .. }
            )
        });
        let mut pipe = redis::pipe();
        pipe.atomic();
        if membership {
            self.write_presence(&mut pipe);
        }
        for wire in batch {
            pipe.publish(CHANNEL, self.me.seal(wire)).ignore();
        }
        deadline(pipe.query_async::<()>(&mut self.conn)).await
    }

    /// `SET key snapshot EX ttl`: the value and its expiry in one command.
    fn write_presence(&mut self, pipe: &mut redis::Pipeline) {
        let members = self.hub.local_presence();
        let key = self.me.presence_key();
        let value = self.me.seal(Wire::Presence { members });
        pipe.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(PRESENCE_TTL_SECS)
            .ignore();
    }

    /// Rewrites this node's presence (with a fresh expiry) and reads every
    /// other node's.
    async fn refresh_presence(&mut self) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        self.write_presence(&mut pipe);
        deadline(pipe.query_async::<()>(&mut self.conn)).await?;

        let mut nodes = HashMap::new();
        for key in self.presence_keys().await? {
            let Some(node) = key.strip_prefix(PRESENCE_PREFIX) else {
                continue;
            };
            if node == self.me.node {
                continue;
            }
            // GETRANGE: an oversized value is never loaded whole.
            let end = i64::try_from(MAX_PRESENCE_BYTES).unwrap_or(i64::MAX);
            let read: redis::RedisResult<Vec<u8>> = deadline(
                redis::cmd("GETRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(end)
                    .query_async(&mut self.conn),
            )
            .await;
            let value = match read {
                Ok(value) => value,
                // An error reply (a key of another type: WRONGTYPE) is
                // someone else's doing, not a broken link.
                Err(e) if !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) => {
                    self.gate.reject(Rejected::Malformed, "presence");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if value.is_empty() {
                continue; // expired between SCAN and GETRANGE
            }
            if value.len() > MAX_PRESENCE_BYTES {
                self.gate.reject(Rejected::TooLarge, "presence");
                continue;
            }
            if let Some(members) = self.gate.presence(&value, node) {
                nodes.insert(node.to_owned(), members);
            }
        }
        self.hub.set_remote_presence(nodes);
        Ok(())
    }

    /// Presence keys (SCAN, so Redis is never blocked), at most
    /// [`MAX_NODES`] besides our own.
    async fn presence_keys(&mut self) -> redis::RedisResult<Vec<String>> {
        let pattern = format!("{PRESENCE_PREFIX}*");
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = deadline(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(256)
                    .query_async(&mut self.conn),
            )
            .await?;
            for key in batch {
                if keys.len() > MAX_NODES {
                    warn!("more than {MAX_NODES} chat nodes on the bus; ignoring the rest");
                    return Ok(keys);
                }
                keys.push(key);
            }
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

fn lost(why: &str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        why.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(secret: Option<&str>) -> Sender {
        Sender {
            node: "n1".into(),
            seq: 0,
            secret: secret.map(|s| BusSecret::new(s.as_bytes()).unwrap()),
        }
    }

    fn joined() -> Wire {
        Wire::Joined {
            room: "lobby".into(),
            nick: "alice".into(),
        }
    }

    #[test]
    fn envelopes_round_trip_with_node_sequence_and_time() {
        let payload = sender(None).seal(joined());
        let json = String::from_utf8(payload.clone()).unwrap();
        assert!(
            json.starts_with(r#"{"node":"n1","seq":1,"time":"#),
            "{json}"
        );
        assert!(json.ends_with(r#","kind":"joined","room":"lobby","nick":"alice"}"#));
        let decoded = decode(&payload).unwrap();
        assert_eq!(decoded.envelope.wire, joined());
        assert!(decoded.signed.is_none());
    }

    #[test]
    fn fields_follow_the_local_rules() {
        let forged = br##"{"node":"x","seq":1,"time":0,"kind":"message","room":"#lobby","nick":"eve","text":"hi\r\n*** Server notice \u001b]0;pwned\u0007\u001b[2J","action":false}"##;
        let decoded = decode(forged).unwrap();
        let Wire::Message { room, text, .. } = decoded.envelope.wire else {
            panic!()
        };
        assert_eq!(room, "lobby");
        assert_eq!(text, "hi*** Server notice");
        for bad in [
            r#"{"node":"x","seq":1,"time":0,"kind":"joined","room":"lobby","nick":"two words"}"#,
            r#"{"node":"x","seq":1,"time":0,"kind":"joined","room":"a b","nick":"eve"}"#,
            r#"{"node":"x y","seq":1,"time":0,"kind":"joined","room":"lobby","nick":"eve"}"#,
            r#"{"node":"x","seq":1,"time":0,"kind":"message","room":"lobby","nick":"eve","text":"\u001b[2J","action":false}"#,
        ] {
            assert_eq!(
                decode(bad.as_bytes()).unwrap_err(),
                Rejected::Invalid,
                "{bad}"
            );
        }
        assert_eq!(decode(b"{").unwrap_err(), Rejected::Malformed);
        assert_eq!(
            decode(&vec![b' '; MAX_PRESENCE_BYTES + 1]).unwrap_err(),
            Rejected::TooLarge
        );
    }

    #[test]
    fn signed_messages_verify_and_replays_and_forgeries_do_not() {
        let secret = "correct horse battery staple";
        let mut alice = sender(Some(secret));
        let mut gate = Gate::new(Some(BusSecret::new(secret.as_bytes()).unwrap()));
        let first = alice.seal(joined());
        assert!(gate.event(&first, "me").is_some());
        assert!(gate.event(&first, "me").is_none(), "replay accepted");
        let second = alice.seal(joined());
        assert_eq!(
            gate.check_event(&second, "me").map(|e| e.is_some()),
            Ok(true)
        );

        let unsigned = sender(None).seal(joined());
        assert_eq!(
            gate.check_event(&unsigned, "me").unwrap_err(),
            Rejected::Unsigned
        );
        let mut other = sender(Some("another secret of 16+ bytes"));
        other.node = "n2".into();
        let forged = other.seal(joined());
        assert_eq!(
            gate.check_event(&forged, "me").unwrap_err(),
            Rejected::BadSignature
        );
        let mut tampered = alice.seal(joined());
        let len = tampered.len();
        tampered[len - 3] = b'X';
        assert!(gate.check_event(&tampered, "me").is_err());
        assert_eq!(gate.rejected_total, 1, "only gate.event counts");
    }

    #[test]
    fn short_secrets_and_insecure_urls_are_refused() {
        assert!(BusSecret::new(b"short\n").is_err());
        assert!(Bus::new("rediss://127.0.0.1:1/#insecure").is_err());
        let bus = Bus::new("redis://user:hunter2@127.0.0.1:6379/0").unwrap();
        assert!(!bus.shown().contains("hunter2"), "{}", bus.shown());
        assert!(!format!("{bus:?}").contains("hunter2"));
        assert!(Bus::new("redis://127.0.0.1:1")
            .unwrap()
            .ca_file(Path::new("/nonexistent"))
            .is_err());
    }
}
