//! What members are told: one [`Event`] per thing that happened, shared by
//! every recipient and rendered at most once per form: a text line for
//! terminal clients, a JSON object for the web page.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

/// One thing a member is told. Built once and shared (`Arc`) by every
/// recipient; its renderings are computed on first use and cached, so a
/// message to a thousand members is formatted once.
#[derive(Debug)]
pub struct Event {
    kind: EventKind,
    text: OnceLock<Bytes>,
    json: OnceLock<Bytes>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A line said in a room; `action` for `/me`.
    Message {
        /// The room, without `#`.
        room: String,
        /// Who said it.
        nick: String,
        /// What was said, sanitized.
        text: String,
        /// Said with `/me`.
        action: bool,
        /// When the server received it, in milliseconds since the Unix epoch.
        time: u64,
    },
    /// A private message (`/msg`).
    Private {
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// The text, sanitized.
        text: String,
        /// True in the sender's own copy.
        outgoing: bool,
    },
    /// Someone entered a room.
    Joined {
        /// The room.
        room: String,
        /// Who.
        nick: String,
    },
    /// Someone left a room (or the server).
    Left {
        /// The room.
        room: String,
        /// Who.
        nick: String,
        /// Why, when there is more to say than "left".
        reason: Option<String>,
    },
    /// Someone changed nickname.
    Renamed {
        /// The room they are in.
        room: String,
        /// The old nickname.
        old: String,
        /// The new one.
        new: String,
    },
    /// You are in, and this is your nickname.
    Welcome {
        /// Your nickname.
        nick: String,
    },
    /// You are now in this room (after connecting or `/join`).
    Entered {
        /// The room.
        room: String,
    },
    /// Who is in a room (`/who`, and on joining).
    Members {
        /// The room.
        room: String,
        /// Nicknames, sorted.
        nicks: Vec<String>,
    },
    /// The rooms and how many are in each (`/rooms`).
    Rooms {
        /// Every room with members, sorted by name.
        rooms: Vec<RoomInfo>,
    },
    /// A message from the server.
    Notice {
        /// The notice.
        text: String,
    },
    /// Something you did was refused.
    Error {
        /// What and why.
        text: String,
    },
    /// The link to the other servers (Redis) went down or came back.
    Link {
        /// Whether it is up now.
        up: bool,
    },
    /// The server is shutting down; the connection closes next.
    Shutdown,
}

/// A room in a `/rooms` listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomInfo {
    /// The room, without `#`.
    pub name: String,
    /// Members, on every linked server.
    pub members: usize,
}

impl Event {
    /// An event of `kind`, not yet rendered.
    pub fn new(kind: EventKind) -> Event {
        Event {
            kind,
            text: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// What happened.
    pub fn kind(&self) -> &EventKind {
        &self.kind
    }

    /// The line a terminal client sees, ending in CRLF (telnet's line end,
    /// which nc shows the same).
    pub fn text(&self) -> &Bytes {
        self.text
            .get_or_init(|| Bytes::from(format!("{}\r\n", self.kind.render())))
    }

    /// The JSON object the web page gets.
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| {
            // Serializing a plain enum of strings cannot fail.
            Bytes::from(serde_json::to_vec(&self.kind).unwrap_or_default())
        })
    }
}

impl EventKind {
    /// A room message or action stamped with the current time.
    pub(crate) fn message(room: &str, nick: &str, text: &str, action: bool) -> EventKind {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        EventKind::Message {
            room: room.into(),
            nick: nick.into(),
            text: text.into(),
            action,
            time,
        }
    }

    fn render(&self) -> String {
        match self {
            EventKind::Message {
                nick, text, action, ..
            } => match action {
                true => format!("* {nick} {text}"),
                false => format!("<{nick}> {text}"),
            },
            EventKind::Private {
                from,
                to,
                text,
                outgoing,
            } => match outgoing {
                true => format!("-> *{to}* {text}"),
                false => format!("*{from}* {text}"),
            },
            EventKind::Joined { room, nick } => format!("*** {nick} joined #{room}"),
            EventKind::Left { room, nick, reason } => match reason {
                Some(reason) => format!("*** {nick} left #{room} ({reason})"),
                None => format!("*** {nick} left #{room}"),
            },
            EventKind::Renamed { old, new, .. } => format!("*** {old} is now known as {new}"),
            EventKind::Welcome { nick } => {
                format!("*** Welcome, {nick}! Type /help for commands.")
            }
            EventKind::Entered { room } => format!("*** You are in #{room}"),
            EventKind::Members { room, nicks } => {
                format!("*** In #{room} ({}): {}", nicks.len(), nicks.join(", "))
            }
            EventKind::Rooms { rooms } => {
                let list: Vec<String> = rooms
                    .iter()
                    .map(|r| format!("#{} ({})", r.name, r.members))
                    .collect();
                format!("*** Rooms: {}", list.join(", "))
            }
            EventKind::Notice { text } => format!("*** {text}"),
            EventKind::Error { text } => format!("error: {text}"),
            EventKind::Link { up: true } => "*** The link to the other chat servers is back".into(),
            EventKind::Link { up: false } => {
                "*** The link to the other chat servers is down; this server's rooms keep working"
                    .into()
            }
            EventKind::Shutdown => "*** Server shutting down. Bye!".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_and_json_once() {
        let event = Event::new(EventKind::Joined {
            room: "lobby".into(),
            nick: "alice".into(),
        });
        assert_eq!(&event.text()[..], b"*** alice joined #lobby\r\n");
        assert_eq!(
            &event.json()[..],
            br#"{"type":"joined","room":"lobby","nick":"alice"}"#
        );
        assert!(std::ptr::eq(event.text(), event.text()));
    }
}
