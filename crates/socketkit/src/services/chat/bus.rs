//! Federation: several chat servers share rooms through Redis pub/sub.
//!
//! Every server publishes what happens to its members ([`Wire`] events, each
//! stamped with the server's node id) on one channel and applies what the
//! others publish, skipping its own. Presence lives in one hash per node
//! (`nick → room`) that expires unless the node refreshes it, so a crashed
//! node's members vanish on their own. Nothing here is on the local path:
//! the hub hands events over with a non-blocking `try_send`, and if Redis
//! goes away local rooms keep working while this task tells members, retries
//! with back-off, and announces the link when it is back.

// The bus is input from other nodes: arithmetic is checked, and an
// operation that cannot overflow says why (issue 11).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSub};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::hub::{Hub, Presence};
use crate::error::{Error, ErrorKind, Result};
use crate::server::ServerHandle;

const CHANNEL: &str = "socketkit:chat:events";
const PRESENCE_PREFIX: &str = "socketkit:chat:presence:";
/// How often a node rewrites its presence and reads everyone else's.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// Presence outlives a few missed heartbeats, not a dead node.
const PRESENCE_TTL_SECS: i64 = 10;
/// Any one Redis operation; past this the link counts as down.
const REDIS_DEADLINE: Duration = Duration::from_secs(3);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Events waiting for the bus; past this they are dropped, not queued.
pub(crate) const QUEUE: usize = 16 * 1024;

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
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    #[serde(flatten)]
    wire: Wire,
}

/// Checks a bus URL (`redis://HOST:PORT[/DB]`) without connecting.
pub(crate) fn client(url: &str) -> Result<redis::Client> {
    redis::Client::open(url).map_err(|e| {
        Error::new(
            ErrorKind::InvalidAddress,
            format!("invalid bus address {url}: {e}"),
        )
    })
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

/// Keeps this server linked until shutdown, reconnecting with back-off.
pub(crate) async fn run(
    hub: Arc<Hub>,
    client: redis::Client,
    mut outgoing: mpsc::Receiver<Wire>,
    shutdown: ServerHandle,
) {
    let node = node_id();
    let mut backoff = BACKOFF_START;
    let mut logged_down = false;
    while !shutdown.is_shutting_down() {
        let connected = tokio::select! {
            () = shutdown.shutdown_requested() => return,
            connected = connect(&client) => connected,
        };
        match connected {
            Ok((conn, pubsub)) => {
                info!(node = %node, "chat bus linked");
                backoff = BACKOFF_START;
                logged_down = false;
                let mut link = Link {
                    hub: &hub,
                    node: &node,
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
                warn!(%error, "cannot reach the chat bus; retrying with back-off");
                logged_down = true;
            }
            Err(error) => debug!(%error, "chat bus still unreachable"),
        }
        // Events from while the link was down are stale: drop them.
        while outgoing.try_recv().is_ok() {}
        tokio::select! {
            () = shutdown.shutdown_requested() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    }
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

/// One live connection to Redis.
struct Link<'a> {
    hub: &'a Hub,
    node: &'a str,
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
                    let key = self.presence_key();
                    let _ = deadline(redis::cmd("DEL").arg(key).query_async::<()>(&mut self.conn)).await;
                    return None;
                }
                message = incoming.next() => match message {
                    Some(message) => {
                        self.receive(&message);
                        Ok(())
                    }
                    None => return Some(lost("the subscription closed")),
                },
                wire = outgoing.recv() => match wire {
                    Some(wire) => self.publish(wire).await,
                    None => return None,
                },
                _ = heartbeat.tick() => self.refresh_presence().await,
            };
            if let Err(error) = step {
                return Some(error);
            }
        }
    }

    fn presence_key(&self) -> String {
        format!("{PRESENCE_PREFIX}{}", self.node)
    }

    fn receive(&self, message: &redis::Msg) {
        receive(self.hub, self.node, message.get_payload_bytes());
    }

    /// Publishes one event; membership changes also update this node's
    /// presence hash first, in the same transaction, so a node that reads
    /// presence after seeing the event sees the change.
    async fn publish(&mut self, wire: Wire) -> redis::RedisResult<()> {
        let key = self.presence_key();
        let mut pipe = redis::pipe();
        pipe.atomic();
        match &wire {
            Wire::Joined { room, nick } => {
                pipe.hset(&key, nick, room).ignore();
            }
            Wire::Left { nick, .. } => {
                pipe.hdel(&key, nick).ignore();
            }
            Wire::Renamed { room, old, new } => {
                pipe.hdel(&key, old).ignore().hset(&key, new, room).ignore();
            }
            Wire::Message { .. } | Wire::Private { .. } => {}
        }
        let envelope = Envelope {
            node: self.node.to_owned(),
            wire,
        };
        let payload = serde_json::to_vec(&envelope).unwrap_or_default();
        pipe.publish(CHANNEL, payload).ignore();
        deadline(pipe.query_async::<()>(&mut self.conn)).await
    }

    /// Rewrites this node's presence (with a fresh expiry) and reads every
    /// other node's.
    async fn refresh_presence(&mut self) -> redis::RedisResult<()> {
        let key = self.presence_key();
        let members = self.hub.local_presence();
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        for member in &members {
            pipe.hset(&key, &member.nick, &member.room).ignore();
        }
        pipe.expire(&key, PRESENCE_TTL_SECS).ignore();
        deadline(pipe.query_async::<()>(&mut self.conn)).await?;

        let mut nodes = HashMap::new();
        for key in self.presence_keys().await? {
            let Some(node) = key.strip_prefix(PRESENCE_PREFIX) else {
                continue;
            };
            if node == self.node {
                continue;
            }
            let members: HashMap<String, String> =
                deadline(redis::cmd("HGETALL").arg(&key).query_async(&mut self.conn)).await?;
            let members = members
                .into_iter()
                .map(|(nick, room)| Presence { nick, room })
                .collect();
            nodes.insert(node.to_owned(), members);
        }
        self.hub.set_remote_presence(nodes);
        Ok(())
    }

    /// Every node's presence key (SCAN, so Redis is never blocked).
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
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

/// Decodes one message from the bus and applies it to `hub` unless `node`
/// (this server) sent it. Everything in `payload` is a peer's: this is the
/// bus's decoder, and what the `chat_bus` fuzz target drives.
pub(crate) fn receive(hub: &Hub, node: &str, payload: &[u8]) {
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            debug!(%error, "ignoring a malformed chat bus message");
            return;
        }
    };
    if envelope.node != node {
        hub.apply_remote(&envelope.node, envelope.wire);
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

    #[test]
    fn envelopes_round_trip_with_the_node_id() {
        let envelope = Envelope {
            node: "n1".into(),
            wire: Wire::Joined {
                room: "lobby".into(),
                nick: "alice".into(),
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"node":"n1","kind":"joined","room":"lobby","nick":"alice"}"#
        );
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back.wire, envelope.wire);
    }
}
