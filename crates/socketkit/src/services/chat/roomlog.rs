//! A room's shared log: every event said in a room, appended once and read
//! by each member's writer from its own cursor.
//!
//! This is what makes a busy room cheap. Delivering a line to a thousand
//! members used to mean a thousand pushes under the hub lock (a lock, a
//! reference count bump and a cache miss each); now it is one append, and
//! each writer copies everything new since its cursor in one pass under a
//! shared read lock, touching no reference counts. Sequence numbers are
//! positions in the log; the log forgets entries every member has read, and
//! past its bounds (the per-member queue limits) it forgets the oldest
//! anyway: a member whose cursor falls behind what is kept is too slow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use tokio::sync::Notify;

use super::event::Event;

/// Appends between two attempts to forget what every member has read.
pub(crate) const TRIM_EVERY: u64 = 256;

#[derive(Debug)]
pub(crate) struct RoomLog {
    entries: RwLock<Entries>,
    /// Position of the next append (readable without the lock, for stamps).
    head: AtomicU64,
    /// Position at the last trim attempt.
    trimmed_at: AtomicU64,
    appended: Notify,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Entries {
    /// Position of `entries[0]`.
    base: u64,
    entries: VecDeque<Entry>,
    /// Text of the kept entries.
    bytes: usize,
    /// The entries' text lines, back to back, so that a reader copies a run
    /// of consecutive lines with one `memcpy` (copying line by line was a
    /// fifth of a busy server's time). Offsets are counted from the first
    /// byte ever appended; `text[0]` is at `text_start`.
    text: Vec<u8>,
    text_start: u64,
}

#[derive(Debug)]
struct Entry {
    /// The member whose line this is (0 for nobody), so it can be skipped
    /// in the author's own copy.
    author: u64,
    event: Arc<Event>,
    /// Where its text line starts and ends in `Entries::text`.
    start: u64,
    end: u64,
}

/// What a reader found at its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Everything up to the returned position was handed over.
    Upto(u64),
    /// The cursor is older than anything kept: the reader fell too far
    /// behind.
    Lost,
}

impl RoomLog {
    /// A log keeping at most `max_entries` events and `max_bytes` of text
    /// for members that have not read them.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> RoomLog {
        RoomLog {
            entries: RwLock::default(),
            head: AtomicU64::new(0),
            trimmed_at: AtomicU64::new(0),
            appended: Notify::new(),
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Position of the next event to be appended.
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Appends `event` by `author` without waiting for any reader; past the
    /// bounds the oldest entries are forgotten. Readers are not woken:
    /// call [`RoomLog::wake`] once the caller's locks are released.
    pub(crate) fn append(&self, author: u64, event: Arc<Event>) {
        let mut log = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let line = event.text();
        let start = log.text_start + log.text.len() as u64;
        let end = start + line.len() as u64;
        log.bytes += line.len();
        log.text.extend_from_slice(line);
        log.entries.push_back(Entry {
            author,
            event,
            start,
            end,
        });
        // The newest entry stays even if it alone passes the byte bound:
        // otherwise one big event would leave every member behind.
        while log.entries.len() > 1
            && (log.entries.len() > self.max_entries || log.bytes > self.max_bytes)
        {
            log.pop_front();
        }
        self.head
            .store(log.base + log.entries.len() as u64, Ordering::Release);
    }

    /// Wakes every reader waiting in [`RoomLog::appended`].
    pub(crate) fn wake(&self) {
        self.appended.notify_waiters();
    }

    /// Resolves after the next [`RoomLog::wake`]. Create it before looking
    /// at the log: a wake in between still resolves it.
    pub(crate) fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.appended.notified()
    }

    /// Whether enough was appended since the last trim to try again.
    pub(crate) fn wants_trim(&self) -> bool {
        self.head() - self.trimmed_at.load(Ordering::Relaxed) >= TRIM_EVERY
    }

    /// Forgets the entries before `position` (what every member has read).
    pub(crate) fn trim_to(&self, position: u64) {
        let mut log = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        while log.base < position && !log.entries.is_empty() {
            log.pop_front();
        }
        self.trimmed_at
            .store(log.base + log.entries.len() as u64, Ordering::Relaxed);
    }

    /// A reading view of the log, for one pass of a reader.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            log: self.entries.read().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// A room whose readers are still to be woken: lines appended one by one
/// and woken for once, when the caller has nothing more in hand.
#[derive(Debug, Default)]
pub(crate) struct PendingWake(Option<Arc<RoomLog>>);

impl PendingWake {
    /// Notes that `log` has new entries (waking the room noted before, if
    /// it is another).
    pub(crate) fn add(&mut self, log: &Arc<RoomLog>) {
        match &self.0 {
            Some(pending) if Arc::ptr_eq(pending, log) => {}
            _ => {
                self.flush();
                self.0 = Some(log.clone());
            }
        }
    }

    /// Wakes the noted room's readers.
    pub(crate) fn flush(&mut self) {
        if let Some(log) = self.0.take() {
            log.wake();
        }
    }
}

impl Entries {
    fn pop_front(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        self.bytes -= (entry.end - entry.start) as usize;
        self.base += 1;
        // Text before the first kept entry is dead; it is dropped once it
        // is most of the buffer, so each byte moves at most once on average.
        let dead = (entry.end - self.text_start) as usize;
        if self.entries.is_empty() {
            self.text.clear();
            self.text_start = entry.end;
        } else if dead > self.text.len() / 2 {
            self.text.drain(..dead);
            self.text_start = entry.end;
        }
    }

    /// The text between two offsets.
    fn text(&self, start: u64, end: u64) -> &[u8] {
        &self.text[(start - self.text_start) as usize..(end - self.text_start) as usize]
    }
}

/// Where what a reader reads goes: events (the web page, the bot) or the
/// text lines a terminal shows.
pub(crate) trait Sink {
    /// One event, for a member alone.
    fn event(&mut self, event: &Arc<Event>);

    /// The room entries from `cursor` up to `until`.
    fn read_log(&mut self, log: &Reader<'_>, cursor: u64, until: u64, skip: Option<u64>) -> Read;

    /// How much was handed over so far (to tell whether anything was).
    fn len(&self) -> usize;
}

impl Sink for Vec<Arc<Event>> {
    fn event(&mut self, event: &Arc<Event>) {
        self.push(event.clone());
    }

    fn read_log(&mut self, log: &Reader<'_>, cursor: u64, until: u64, skip: Option<u64>) -> Read {
        log.read(cursor, until, skip, |event| self.push(event.clone()))
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl Sink for Vec<u8> {
    fn event(&mut self, event: &Arc<Event>) {
        self.extend_from_slice(event.text());
    }

    fn read_log(&mut self, log: &Reader<'_>, cursor: u64, until: u64, skip: Option<u64>) -> Read {
        log.read_text(cursor, until, skip, self)
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// The log held for reading: hands entries to a reader without copying
/// or counting references.
pub(crate) struct Reader<'a> {
    log: RwLockReadGuard<'a, Entries>,
}

impl Reader<'_> {
    /// The entries from `cursor` up to `until` (or the end), or why not.
    fn range(&self, cursor: u64, until: u64) -> Result<std::ops::Range<usize>, Read> {
        if cursor < self.log.base {
            return Err(Read::Lost);
        }
        let end = until.min(self.log.base + self.log.entries.len() as u64);
        if cursor >= end {
            return Err(Read::Upto(cursor));
        }
        Ok((cursor - self.log.base) as usize..(end - self.log.base) as usize)
    }

    /// Hands `sink` every entry from `cursor` up to `until` (or the end),
    /// skipping those written by `skip_author`.
    pub(crate) fn read(
        &self,
        cursor: u64,
        until: u64,
        skip_author: Option<u64>,
        mut sink: impl FnMut(&Arc<Event>),
    ) -> Read {
        let range = match self.range(cursor, until) {
            Ok(range) => range,
            Err(read) => return read,
        };
        let end = self.log.base + range.end as u64;
        for entry in self.log.entries.range(range) {
            if Some(entry.author) != skip_author {
                sink(&entry.event);
            }
        }
        Read::Upto(end)
    }

    /// Like [`Reader::read`], but appends the entries' text lines to
    /// `out`, a run of consecutive lines at a time.
    pub(crate) fn read_text(
        &self,
        cursor: u64,
        until: u64,
        skip_author: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Read {
        let range = match self.range(cursor, until) {
            Ok(range) => range,
            Err(read) => return read,
        };
        let end = self.log.base + range.end as u64;
        let mut run: Option<(u64, u64)> = None;
        for entry in self.log.entries.range(range) {
            if Some(entry.author) == skip_author {
                if let Some((start, end)) = run.take() {
                    out.extend_from_slice(self.log.text(start, end));
                }
            } else {
                run = Some((run.map_or(entry.start, |(start, _)| start), entry.end));
            }
        }
        if let Some((start, end)) = run {
            out.extend_from_slice(self.log.text(start, end));
        }
        Read::Upto(end)
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::EventKind;
    use super::*;

    fn notice(text: &str) -> Arc<Event> {
        Arc::new(Event::new(EventKind::Notice { text: text.into() }))
    }

    fn texts(log: &RoomLog, cursor: u64, skip: Option<u64>) -> (Read, Vec<String>) {
        let mut seen = Vec::new();
        let read = log.reader().read(cursor, u64::MAX, skip, |event| {
            seen.push(String::from_utf8_lossy(event.text()).trim().to_owned());
        });
        (read, seen)
    }

    #[test]
    fn readers_see_appends_in_order_and_skip_their_own() {
        let log = RoomLog::new(10, 1024);
        log.append(1, notice("a"));
        log.append(2, notice("b"));
        log.append(1, notice("c"));
        assert_eq!(log.head(), 3);
        let (read, seen) = texts(&log, 0, Some(1));
        assert_eq!(read, Read::Upto(3));
        assert_eq!(seen, ["*** b"]);
        assert_eq!(texts(&log, 1, None).1, ["*** b", "*** c"]);
        assert_eq!(texts(&log, 3, None), (Read::Upto(3), Vec::new()));
    }

    #[test]
    fn text_comes_in_runs_around_the_readers_own_lines() {
        let log = RoomLog::new(4, 1024);
        for (author, text) in [
            (1, "gone"),
            (1, "a"),
            (2, "b"),
            (7, "mine"),
            (1, "c"),
            (3, "d"),
        ] {
            log.append(author, notice(text));
        }
        let mut out = Vec::new();
        let read = log.reader().read_text(2, u64::MAX, Some(7), &mut out);
        assert_eq!(read, Read::Upto(6));
        assert_eq!(out, b"*** b\r\n*** c\r\n*** d\r\n");
        out.clear();
        log.reader().read_text(3, 5, None, &mut out);
        assert_eq!(out, b"*** mine\r\n*** c\r\n");
        assert_eq!(
            log.reader().read_text(1, u64::MAX, None, &mut out),
            Read::Lost
        );
    }

    #[test]
    fn a_reader_behind_the_bounds_is_lost() {
        let log = RoomLog::new(2, 1024);
        for text in ["a", "b", "c"] {
            log.append(0, notice(text));
        }
        assert_eq!(texts(&log, 0, None).0, Read::Lost);
        assert_eq!(texts(&log, 1, None).1, ["*** b", "*** c"]);
        let bytes = RoomLog::new(100, 20);
        bytes.append(0, notice("0123456789"));
        bytes.append(0, notice("longer than the bound"));
        assert_eq!(texts(&bytes, 0, None).0, Read::Lost);
        assert_eq!(texts(&bytes, 1, None).1, ["*** longer than the bound"]);
    }

    #[test]
    fn trimming_forgets_only_what_was_read() {
        let log = RoomLog::new(1000, 1 << 20);
        for _ in 0..TRIM_EVERY {
            log.append(0, notice("x"));
        }
        assert!(log.wants_trim());
        log.trim_to(200);
        assert!(!log.wants_trim());
        assert_eq!(texts(&log, 199, None).0, Read::Lost);
        assert_eq!(texts(&log, 200, None).1.len(), TRIM_EVERY as usize - 200);
    }
}
