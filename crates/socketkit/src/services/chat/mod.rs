//! Chat: multi-room chat that `nc` users, a web page and a bot share, and
//! that several servers can federate over Redis — ncat's `--chat`, done
//! properly.
//!
//! The pieces, one concern each:
//!
//! - `hub`: who is here, rooms, history; delivery that never waits;
//! - `roomlog`: each room's shared log, appended once per event and read
//!   by every member from its own cursor;
//! - `outbox`: what one member is still to be told (its room's log merged
//!   with a bounded private queue), and when it is too slow;
//! - [`Participant`] / [`Inbox`]: one member's voice and ears, the API every
//!   front end drives (`participant`), with commands (`command`) and the
//!   text sanitizer (`text`);
//! - front ends: terminals over any stream socket (`terminal`, the
//!   [`StreamHandler`](crate::server::StreamHandler) impl of [`Chat`]), the
//!   browser over WebSocket ([`WebServer`]), and the built-in [`Bot`];
//! - `bus`: federation through Redis pub/sub.
//!
//! Try it from three terminals:
//!
//! ```text
//! socketkit serve chat 127.0.0.1:7000 --bot --web 127.0.0.1:8080
//! nc 127.0.0.1 7000        # then type a nickname, then chat
//! open http://127.0.0.1:8080/
//! ```

mod bot;
pub(crate) mod bus;
pub(crate) mod command;
mod config;
mod event;
pub(crate) mod hub;
mod outbox;
pub(crate) mod participant;
mod roomlog;
mod terminal;
pub mod text;
mod web;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use bot::Bot;
pub use bus::{decode as decode_bus_message, Bus, BusSecret, Decoded, Rejected};
pub use config::{
    ChatConfig, RateLimit, DEFAULT_HISTORY, DEFAULT_MAX_MESSAGE, DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_MESSAGES, DEFAULT_RATE, DEFAULT_WRITE_TIMEOUT,
};
pub use event::{Event, EventKind, RoomInfo};
pub use participant::{Flow, Inbox, Participant, TooSlow};
pub use web::{WebConfig, WebServer};

use crate::addr::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::server::ServerHandle;
use hub::Hub;

/// A chat server's shared state; cheap to clone (every clone is the same
/// chat). Serve it on stream sockets with `Server::serve(chat)`, add a web
/// page with [`Chat::bind_web`], link servers with [`Chat::link`].
///
/// On connect a terminal client is asked for a nickname (an empty line
/// gives `guest-N`), lands in `#lobby` and sees its history and who is
/// there. Lines are messages; `/help` lists the commands.
#[derive(Debug, Clone)]
pub struct Chat {
    hub: Arc<Hub>,
}

impl Default for Chat {
    fn default() -> Chat {
        Chat::new(ChatConfig::default())
    }
}

impl Chat {
    /// A chat with no members yet.
    pub fn new(config: ChatConfig) -> Chat {
        Chat {
            hub: Arc::new(Hub::new(config)),
        }
    }

    /// Enters the chat as a new member: `nick` if valid and free, else a
    /// guest name (and an error event saying why). The member starts in
    /// `#lobby`; the [`Inbox`] already holds the welcome, the room's history
    /// and who is there. With `echo_own`, the member's own room messages
    /// come back to it too (a page that draws everything from events).
    pub fn join(&self, nick: Option<&str>, echo_own: bool) -> (Participant, Inbox) {
        let member = self.hub.join(nick, echo_own);
        Participant::new(self.hub.clone(), member)
    }

    /// Binds the web page and its WebSocket endpoint, on a server of its
    /// own with `config`'s limits; serve it with [`WebServer::serve`].
    pub async fn bind_web(&self, endpoint: &Endpoint, config: WebConfig) -> Result<WebServer> {
        WebServer::bind(self.clone(), endpoint, config).await
    }

    /// Links this chat to others through the Redis [`Bus`] until
    /// `shutdown`. Returns at once: the link runs in the background and
    /// reconnects on its own. Fails only for a second link.
    pub fn link(&self, bus: Bus, shutdown: ServerHandle) -> Result<()> {
        let (sender, receiver) = mpsc::channel(bus::QUEUE);
        if !self.hub.attach_bus(sender) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "this chat is already linked to a bus",
            ));
        }
        tokio::spawn(bus::run(self.hub.clone(), bus, receiver, shutdown));
        Ok(())
    }
}
