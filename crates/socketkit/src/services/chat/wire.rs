//! What linked chat servers tell each other ([`Wire`]), and the bounds on
//! how much of it this server keeps. The hub produces and applies these
//! events whether or not a bus is compiled in; the Redis transport for them
//! is `bus` (the `chat-redis` feature).

use serde::{Deserialize, Serialize};

use super::hub::Presence;

/// Events waiting for the bus; past this they are dropped, not queued.
pub(crate) const QUEUE: usize = 16 * 1024;

/// Most members one linked node may announce.
pub const MAX_NODE_MEMBERS: usize = 16 * 1024;
/// Most linked nodes whose presence is read.
pub const MAX_NODES: usize = 64;

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
