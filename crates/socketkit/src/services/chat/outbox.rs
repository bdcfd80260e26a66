//! Everything one member is to be told, in order: its room's shared
//! [`RoomLog`] read from the member's own cursor, merged with a small
//! bounded queue of events for this member alone (welcome, history,
//! replies to commands, private messages).
//!
//! This is what keeps one slow reader from stalling a room. Nothing here
//! waits on the member: pushes and room appends never block, a member
//! whose private queue overflows or whose cursor falls behind what its
//! room's log keeps is closed as too slow, and its writer tells the client
//! and ends the connection. Each private event is stamped with the room
//! log's position when it was queued, so the merge hands over both in the
//! order the hub produced them. Draining everything pending at once lets a
//! busy writer send many lines per system call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::event::Event;
use super::roomlog::{Read, Reader, RoomLog, Sink};

/// Why a member stopped getting events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The member fell too far behind.
    TooSlow,
}

/// What one pass over the outbox found.
pub(crate) enum Drained {
    /// Events were handed over.
    Some,
    /// Nothing pending.
    Nothing,
    /// The member is in another room than the caller was waiting on.
    Moved(Option<Arc<RoomLog>>),
}

#[derive(Debug)]
pub(crate) struct Outbox {
    /// Room entries by this member are skipped (`None`: none are).
    skip_author: Option<u64>,
    queue: Mutex<Queue>,
    ready: Notify,
    /// The cursor, readable without the lock: the room trims its log up to
    /// the smallest of its members'.
    read_up_to: AtomicU64,
    max_messages: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Queue {
    events: Vec<Stamped>,
    bytes: usize,
    closed: Option<Closed>,
    room: Option<Arc<RoomLog>>,
    /// The next position to read in `room`'s log.
    cursor: u64,
}

/// A private event and the room log's position when it was queued: room
/// entries before that position come first.
#[derive(Debug)]
struct Stamped {
    at: u64,
    event: Arc<Event>,
}

impl Outbox {
    /// An outbox for member `owner`; with `echo_own` the member also gets
    /// its own room messages.
    pub(crate) fn new(owner: u64, echo_own: bool, max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox {
            skip_author: (!echo_own).then_some(owner),
            queue: Mutex::default(),
            ready: Notify::new(),
            read_up_to: AtomicU64::new(0),
            max_messages,
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a private event without waiting. Past either bound the
    /// member is closed as [`Closed::TooSlow`] and later pushes are ignored.
    pub(crate) fn push(&self, event: &Arc<Event>) {
        let size = event.text().len();
        let wake = {
            let mut queue = self.lock();
            if queue.closed.is_some() {
                return;
            }
            // One event alone is always taken, however big: the bound is
            // on falling behind, not on what the hub may say.
            let full = queue.events.len() >= self.max_messages
                || (!queue.events.is_empty() && queue.bytes + size > self.max_bytes);
            if full {
                queue.close(Closed::TooSlow);
                true
            } else {
                let at = queue.room.as_ref().map_or(0, |room| room.head());
                queue.events.push(Stamped {
                    at,
                    event: event.clone(),
                });
                queue.bytes += size;
                // The writer only sleeps with nothing queued; otherwise a
                // wake-up is pending already.
                queue.events.len() == 1
            }
        };
        if wake {
            self.ready.notify_one();
        }
    }

    /// Moves the member to `room`'s log (or out of any room), from its
    /// current end. What it had not read of the old room is kept, in order,
    /// ahead of anything later.
    pub(crate) fn move_to(&self, room: Option<Arc<RoomLog>>) {
        let mut queue = self.lock();
        let mut pending: Vec<Arc<Event>> = Vec::new();
        if queue.drain(self.skip_author, &mut pending).is_err() {
            return;
        }
        let at = room.as_ref().map_or(0, |room| room.head());
        queue.bytes = pending.iter().map(|e| e.text().len()).sum();
        queue.events = pending
            .into_iter()
            .map(|event| Stamped { at, event })
            .collect();
        queue.room = room;
        queue.cursor = at;
        self.read_up_to.store(at, Ordering::Relaxed);
        self.ready.notify_one();
    }

    /// The member's read position in its room's log.
    pub(crate) fn read_up_to(&self) -> u64 {
        self.read_up_to.load(Ordering::Relaxed)
    }

    /// Hands everything pending to `sink`, oldest first, if the member is
    /// still in `room` (else reports where it is now). Never waits.
    pub(crate) fn drain(
        &self,
        room: Option<&Arc<RoomLog>>,
        sink: &mut impl Sink,
    ) -> Result<Drained, Closed> {
        let mut queue = self.lock();
        if let Some(closed) = queue.closed {
            return Err(closed);
        }
        if !same_room(queue.room.as_ref(), room) {
            return Ok(Drained::Moved(queue.room.clone()));
        }
        let handed = queue.drain(self.skip_author, sink)?;
        self.read_up_to.store(queue.cursor, Ordering::Relaxed);
        Ok(if handed {
            Drained::Some
        } else {
            Drained::Nothing
        })
    }

    /// Resolves after a private push (or a move) following the last drain.
    pub(crate) async fn pushed(&self) {
        self.ready.notified().await;
    }

    /// Marks the member too slow (its write deadline passed).
    pub(crate) fn close(&self, why: Closed) {
        self.lock().close(why);
    }
}

impl Queue {
    fn close(&mut self, why: Closed) {
        self.closed.get_or_insert(why);
        self.events = Vec::new();
        self.bytes = 0;
        self.room = None;
    }

    /// Hands the room entries and private events to `sink` in order and
    /// advances the cursor; true if anything was handed.
    fn drain(&mut self, skip_author: Option<u64>, sink: &mut impl Sink) -> Result<bool, Closed> {
        let before = sink.len();
        // The read lock only when the log has something new for us.
        let reader = self
            .room
            .as_deref()
            .filter(|room| room.head() > self.cursor)
            .map(RoomLog::reader);
        let mut log = LogCursor {
            reader,
            cursor: &mut self.cursor,
            skip_author,
        };
        let merged = merge(&mut self.events, &mut log, sink);
        drop(log);
        self.bytes = 0;
        match merged {
            Ok(()) => Ok(sink.len() > before),
            Err(closed) => {
                self.close(closed);
                Err(closed)
            }
        }
    }
}

/// Hands `sink` each private event after the room entries that came
/// before it, then the rest of the room's entries.
fn merge(
    events: &mut Vec<Stamped>,
    log: &mut LogCursor<'_>,
    sink: &mut impl Sink,
) -> Result<(), Closed> {
    for stamped in events.drain(..) {
        log.read(stamped.at, sink)?;
        sink.event(&stamped.event);
    }
    log.read(u64::MAX, sink)
}

/// A member's place in its room's log during one drain.
struct LogCursor<'a> {
    /// `None` when there is no room or nothing new in it.
    reader: Option<Reader<'a>>,
    cursor: &'a mut u64,
    skip_author: Option<u64>,
}

impl LogCursor<'_> {
    /// Hands `sink` the room entries from the cursor up to `until` and
    /// moves the cursor past them.
    fn read(&mut self, until: u64, sink: &mut impl Sink) -> Result<(), Closed> {
        let Some(reader) = &self.reader else {
            return Ok(());
        };
        match sink.read_log(reader, *self.cursor, until, self.skip_author) {
            Read::Upto(position) => {
                *self.cursor = position;
                Ok(())
            }
            Read::Lost => Err(Closed::TooSlow),
        }
    }
}

fn same_room(a: Option<&Arc<RoomLog>>, b: Option<&Arc<RoomLog>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::EventKind;
    use super::*;

    fn notice(text: &str) -> Arc<Event> {
        Arc::new(Event::new(EventKind::Notice { text: text.into() }))
    }

    fn drain(outbox: &Outbox, room: Option<&Arc<RoomLog>>) -> Result<Vec<String>, Closed> {
        let mut events: Vec<Arc<Event>> = Vec::new();
        outbox.drain(room, &mut events)?;
        let mut text: Vec<u8> = Vec::new();
        for event in &events {
            text.extend_from_slice(event.text());
        }
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .map(|line| line.trim().to_owned())
            .collect())
    }

    #[test]
    fn merges_room_entries_and_private_events_in_order() {
        let room = Arc::new(RoomLog::new(100, 4096));
        let outbox = Outbox::new(7, false, 10, 1024);
        outbox.move_to(Some(room.clone()));
        room.append(1, notice("a"));
        outbox.push(&notice("private"));
        room.append(7, notice("mine"));
        room.append(2, notice("b"));
        assert_eq!(
            drain(&outbox, Some(&room)).unwrap(),
            ["*** a", "*** private", "*** b"]
        );
        assert_eq!(outbox.read_up_to(), 3);
        assert!(drain(&outbox, Some(&room)).unwrap().is_empty());
    }

    #[test]
    fn moving_keeps_what_was_unread_ahead_of_the_new_room() {
        let (first, second) = (
            Arc::new(RoomLog::new(100, 4096)),
            Arc::new(RoomLog::new(100, 4096)),
        );
        second.append(0, notice("before"));
        let outbox = Outbox::new(7, false, 10, 1024);
        outbox.move_to(Some(first.clone()));
        first.append(1, notice("old"));
        outbox.move_to(Some(second.clone()));
        second.append(1, notice("new"));
        assert!(matches!(
            outbox.drain(Some(&first), &mut Vec::<Arc<Event>>::new()),
            Ok(Drained::Moved(Some(_)))
        ));
        assert_eq!(
            drain(&outbox, Some(&second)).unwrap(),
            ["*** old", "*** new"]
        );
    }

    #[test]
    fn closes_past_the_private_bounds_and_behind_the_log() {
        let outbox = Outbox::new(7, false, 2, 1024);
        for text in ["a", "b", "c"] {
            outbox.push(&notice(text));
        }
        assert_eq!(drain(&outbox, None), Err(Closed::TooSlow));
        let bytes = Outbox::new(7, false, 100, 20);
        bytes.push(&notice("0123456789"));
        bytes.push(&notice("0123456789"));
        assert_eq!(drain(&bytes, None), Err(Closed::TooSlow));
        let big = Outbox::new(7, false, 100, 10);
        big.push(&notice("bigger than the bound"));
        assert_eq!(drain(&big, None).unwrap(), ["*** bigger than the bound"]);
        let room = Arc::new(RoomLog::new(2, 4096));
        let behind = Outbox::new(7, false, 100, 1024);
        behind.move_to(Some(room.clone()));
        for text in ["a", "b", "c"] {
            room.append(1, notice(text));
        }
        assert_eq!(drain(&behind, Some(&room)), Err(Closed::TooSlow));
    }
}
