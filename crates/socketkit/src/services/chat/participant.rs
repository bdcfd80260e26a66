//! One member's side of the chat, independent of how it is connected: the
//! terminal handler, the WebSocket session and the bot all drive a
//! [`Participant`] (what the member says) and an [`Inbox`] (what the member
//! is told).

use std::fmt;
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::time::{Duration, Instant};

use super::command::{self, Command};
use super::config::RateLimit;
use super::event::{Event, EventKind};
use super::hub::{Hub, Member};
use super::outbox::{Closed, Drained};
use super::roomlog::{PendingWake, RoomLog, Sink};
use super::text::{clean, ChatRefusal};

/// Most yields a woken member waits for its room's log to stop growing
/// before it drains (see `Inbox::settle`): bounded, so a room that never
/// goes quiet still gets its lines out.
const SETTLE_ROUNDS: usize = 4;

/// What the connection should do after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// The member is over its rate: read nothing more before this instant
    /// (the flood is paced by the socket's own back-pressure; nothing is
    /// dropped).
    PauseUntil(Instant),
    /// The member asked to leave (`/quit`); the farewell is queued.
    Quit,
}

/// The member was disconnected because it could not keep up: its outgoing
/// queue overflowed or a write passed its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow;

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not reading fast enough to keep up with the room")
    }
}

impl std::error::Error for TooSlow {}

/// A member's voice: every line it sends goes through [`Participant::submit`].
/// Dropping it leaves the chat (announced as a plain leave).
#[derive(Debug)]
pub struct Participant {
    hub: Arc<Hub>,
    member: Arc<Member>,
    bucket: Option<Bucket>,
    /// The room told of this member's lines but not yet woken for them.
    wake: PendingWake,
    gone: bool,
}

/// A member's ears: the events queued for it, in order.
#[derive(Debug)]
pub struct Inbox {
    member: Arc<Member>,
    /// The room log last waited on (the member's may have changed since).
    room: Option<Arc<RoomLog>>,
    batch: Vec<Arc<Event>>,
}

impl Participant {
    pub(crate) fn new(hub: Arc<Hub>, member: Arc<Member>) -> (Participant, Inbox) {
        let bucket = hub.config().rate.map(Bucket::new);
        let inbox = Inbox {
            member: member.clone(),
            room: None,
            batch: Vec::new(),
        };
        let participant = Participant {
            hub,
            member,
            bucket,
            wake: PendingWake::default(),
            gone: false,
        };
        (participant, inbox)
    }

    /// The member's current nickname.
    pub fn nick(&self) -> String {
        self.hub.nick(self.member.id).unwrap_or_default()
    }

    /// Handles one line as the user typed it: a message, or a command.
    /// Invalid UTF-8 is refused with an error (never forwarded); control
    /// characters and terminal escapes are removed before anyone sees it.
    pub fn submit(&mut self, line: &[u8]) -> Flow {
        let flow = self.submit_more(line);
        self.flush();
        flow
    }

    /// Like [`Participant::submit`], but the room's readers are woken only
    /// by the next `submit` or [`Participant::flush`] (or when this
    /// participant is dropped): for a front end that has several lines in
    /// hand, so that one wake-up carries them all.
    pub fn submit_more(&mut self, line: &[u8]) -> Flow {
        let Ok(line) = std::str::from_utf8(line) else {
            self.error("that line is not valid UTF-8; it was not sent");
            return Flow::Continue;
        };
        let Some(line) = clean(line) else {
            return Flow::Continue;
        };
        if self.run(command::parse(&line)) {
            return Flow::Quit;
        }
        self.pace()
    }

    /// Wakes the room's readers for the lines given to
    /// [`Participant::submit_more`].
    pub fn flush(&mut self) {
        self.wake.flush();
    }

    /// Tells the member its line was too long (the connection reads on).
    pub fn too_long(&self) {
        let limit = self.hub.config().max_message;
        self.error(&format!(
            "that line is longer than {limit} bytes; it was not sent"
        ));
    }

    /// Runs one command; true when the member quits.
    fn run(&mut self, command: Command<'_>) -> bool {
        let id = self.member.id;
        let result = match command {
            Command::Say(text) => {
                self.hub.say(id, text, false, &mut self.wake);
                Ok(())
            }
            Command::Me(action) => {
                self.hub.say(id, action, true, &mut self.wake);
                Ok(())
            }
            Command::Nick(nick) => self.hub.rename(id, nick),
            Command::Join(room) => self.hub.switch_room(id, room),
            Command::Msg(nick, text) => self.hub.private(id, nick, text),
            Command::Rooms => {
                self.hub.rooms(id);
                Ok(())
            }
            Command::Who => {
                self.hub.who(id);
                Ok(())
            }
            Command::Help => {
                self.help();
                Ok(())
            }
            Command::Usage(usage) => Err(ChatRefusal::Usage(usage.to_string())),
            Command::Unknown(name) => Err(ChatRefusal::UnknownCommand(name.to_string())),
            Command::Quit(message) => {
                self.leave(message.map(str::to_owned), false);
                self.member.tell(EventKind::Notice {
                    text: "Bye!".into(),
                });
                return true;
            }
        };
        if let Err(why) = result {
            self.error(&why.to_string());
        }
        false
    }

    fn help(&self) {
        for line in command::HELP {
            self.member.tell(EventKind::Notice {
                text: (*line).to_owned(),
            });
        }
    }

    fn error(&self, text: &str) {
        self.member.tell(EventKind::Error { text: text.into() });
    }

    /// Rate limiting: after each line, when may the next one be read.
    fn pace(&mut self) -> Flow {
        let Some(bucket) = &mut self.bucket else {
            return Flow::Continue;
        };
        match bucket.take(Instant::now()) {
            Pace::Go => Flow::Continue,
            Pace::Wait { until, first } => {
                if first {
                    let rate = bucket.rate.per_second;
                    self.member.tell(EventKind::Notice {
                        text: format!("Slow down: at most {rate} messages a second; your lines are being held back"),
                    });
                }
                Flow::PauseUntil(until)
            }
        }
    }

    /// Leaves the chat with `reason` shown to the room (`quiet`: not shown
    /// here, only to linked servers; for server shutdown).
    pub fn leave(&mut self, reason: Option<String>, quiet: bool) {
        self.flush();
        if !std::mem::replace(&mut self.gone, true) {
            self.hub.leave(self.member.id, reason, quiet);
        }
    }

    /// Leaves because the server is shutting down, and queues the goodbye.
    pub fn shutdown(&mut self) {
        self.leave(None, true);
        self.member.tell(EventKind::Shutdown);
    }

    /// Leaves because the member could not keep up.
    pub fn too_slow(&mut self) {
        self.member.outbox.close(Closed::TooSlow);
        self.leave(Some("too slow: disconnected".into()), false);
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.leave(None, false);
    }
}

impl Inbox {
    /// Waits for events and returns all pending so far, oldest first; or
    /// [`TooSlow`] once the member fell too far behind. Cancel-safe.
    pub async fn recv(&mut self) -> Result<&[Arc<Event>], TooSlow> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        let received = self.recv_with(&mut batch).await;
        self.batch = batch;
        received.map(|()| &self.batch[..])
    }

    /// Like [`Inbox::recv`], but appends the events' text lines (what a
    /// terminal shows) to `out`: the cheap way to feed a byte stream, as
    /// no event changes hands and consecutive room lines are copied in one
    /// go. Cancel-safe: `out` grows only when this returns.
    pub async fn recv_text(&mut self, out: &mut Vec<u8>) -> Result<(), TooSlow> {
        self.recv_with(out).await
    }

    async fn recv_with(&mut self, sink: &mut impl Sink) -> Result<(), TooSlow> {
        loop {
            // Under load something is pending: take it without arming any
            // wake-up.
            if self.drain(sink)? {
                return Ok(());
            }
            let moved = {
                // Both wake-ups are armed before looking again, so an append
                // or a push after the look is not missed.
                let appended = self.room.as_deref().map(RoomLog::appended);
                let pushed = self.member.outbox.pushed();
                match self.member.outbox.drain(self.room.as_ref(), sink) {
                    Err(Closed::TooSlow) => return Err(TooSlow),
                    Ok(Drained::Some) => return Ok(()),
                    Ok(Drained::Moved(room)) => Some(room),
                    Ok(Drained::Nothing) => {
                        tokio::select! {
                            () = wait(appended) => {}
                            () = pushed => {}
                        }
                        None
                    }
                }
            };
            match moved {
                Some(room) => self.room = room,
                None => self.settle().await,
            }
        }
    }

    /// After a wake-up, lets the appends already runnable happen first, so
    /// that one wake-up carries many events and a write many lines: yields
    /// while the room's log keeps growing, at most [`SETTLE_ROUNDS`] times.
    /// On one thread a single yield lets every runnable sender append; on
    /// a multi-threaded runtime the other workers append meanwhile, and
    /// one yield would have each member write a burst in several pieces
    /// (measured with `bench/chat/run.sh 1000 50 200 32`: 2.4 times the
    /// writes of one thread).
    async fn settle(&self) {
        let Some(room) = self.room.as_deref() else {
            return tokio::task::yield_now().await;
        };
        for _ in 0..SETTLE_ROUNDS {
            let head = room.head();
            tokio::task::yield_now().await;
            if room.head() == head {
                return;
            }
        }
    }

    /// Hands `sink` whatever is pending; false if nothing was. Follows the
    /// member into another room (whose log is then waited on).
    fn drain(&mut self, sink: &mut impl Sink) -> Result<bool, TooSlow> {
        loop {
            match self.member.outbox.drain(self.room.as_ref(), sink) {
                Err(Closed::TooSlow) => return Err(TooSlow),
                Ok(Drained::Some) => return Ok(true),
                Ok(Drained::Nothing) => return Ok(false),
                Ok(Drained::Moved(room)) => self.room = room,
            }
        }
    }

    /// Whatever is pending right now, without waiting (after leaving, to
    /// flush the last events).
    pub fn take_now(&mut self) -> &[Arc<Event>] {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        // Too slow or not, whatever was handed over goes out.
        let _ = self.drain(&mut batch);
        self.batch = batch;
        &self.batch
    }
}

async fn wait(appended: Option<Notified<'_>>) {
    match appended {
        Some(appended) => appended.await,
        None => std::future::pending().await,
    }
}

/// A token bucket.
#[derive(Debug)]
struct Bucket {
    rate: RateLimit,
    tokens: f64,
    last: Instant,
    /// Whether the member has been told to slow down in this episode.
    warned: bool,
}

enum Pace {
    Go,
    Wait { until: Instant, first: bool },
}

impl Bucket {
    fn new(rate: RateLimit) -> Bucket {
        Bucket {
            rate,
            tokens: f64::from(rate.burst.max(1)),
            last: Instant::now(),
            warned: false,
        }
    }

    fn take(&mut self, now: Instant) -> Pace {
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate.per_second;
        self.tokens = (self.tokens + refill).min(f64::from(self.rate.burst.max(1)));
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            self.warned = false;
            return Pace::Go;
        }
        let wait = Duration::from_secs_f64(-self.tokens / self.rate.per_second);
        let first = !std::mem::replace(&mut self.warned, true);
        Pace::Wait {
            until: now + wait,
            first,
        }
    }
}
