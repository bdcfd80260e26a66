//! Each member's outgoing queue: bounded in messages and bytes, pushed to
//! without ever waiting, drained in batches by the member's writer.
//!
//! This is what keeps one slow reader from stalling a room. The hub pushes
//! under its lock and never awaits; a push that would pass either bound
//! closes the queue instead (the member is too slow), drops what it held,
//! and wakes the writer, which tells the client and ends the connection.
//! Draining everything queued at once lets a busy writer send many lines
//! per system call.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::event::Event;

/// Why a queue stopped taking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The member fell too far behind.
    TooSlow,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    max_messages: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Queue {
    events: Vec<Arc<Event>>,
    bytes: usize,
    closed: Option<Closed>,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox {
            queue: Mutex::default(),
            ready: Notify::new(),
            max_messages,
            max_bytes,
        }
    }

    /// Queues `event` without waiting. Past either bound the queue closes
    /// as [`Closed::TooSlow`] and later pushes are ignored.
    pub(crate) fn push(&self, event: &Arc<Event>) {
        let size = event.text().len();
        let wake = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.closed.is_some() {
                return;
            }
            if queue.events.len() >= self.max_messages || queue.bytes + size > self.max_bytes {
                queue.closed = Some(Closed::TooSlow);
                queue.events = Vec::new();
                queue.bytes = 0;
                true
            } else {
                queue.events.push(event.clone());
                queue.bytes += size;
                // The writer only sleeps on an empty queue; a non-empty
                // one has a wake-up pending already.
                queue.events.len() == 1
            }
        };
        if wake {
            self.ready.notify_one();
        }
    }

    /// Waits until something is queued and moves all of it into `batch`
    /// (in order), or reports why the queue closed. Cancel-safe: nothing is
    /// taken unless this returns.
    pub(crate) async fn recv(&self, batch: &mut Vec<Arc<Event>>) -> Result<(), Closed> {
        loop {
            {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(closed) = queue.closed {
                    return Err(closed);
                }
                if !queue.events.is_empty() {
                    take_all(&mut queue, batch);
                    return Ok(());
                }
            }
            // A push between the unlock and this await leaves a permit, so
            // the wake-up is not lost.
            self.ready.notified().await;
            // Let the pushes already runnable happen first: one wake-up
            // then carries many events, and a write many lines.
            tokio::task::yield_now().await;
        }
    }

    /// Moves whatever is queued into `batch` without waiting.
    pub(crate) fn take(&self, batch: &mut Vec<Arc<Event>>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        take_all(&mut queue, batch);
    }

    /// Marks the member too slow (its write deadline passed).
    pub(crate) fn close(&self, why: Closed) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.closed.get_or_insert(why);
        queue.events.clear();
    }
}

/// Moves the queue into `batch` by swapping vectors (the caller's emptied
/// one becomes the new queue), so draining copies nothing.
fn take_all(queue: &mut Queue, batch: &mut Vec<Arc<Event>>) {
    if batch.is_empty() {
        std::mem::swap(&mut queue.events, batch);
    } else {
        batch.append(&mut queue.events);
    }
    queue.bytes = 0;
}

#[cfg(test)]
mod tests {
    use super::super::event::EventKind;
    use super::*;

    fn notice(text: &str) -> Arc<Event> {
        Arc::new(Event::new(EventKind::Notice { text: text.into() }))
    }

    #[tokio::test]
    async fn drains_in_order_and_closes_past_the_count_bound() {
        let outbox = Outbox::new(2, 1024);
        outbox.push(&notice("a"));
        outbox.push(&notice("b"));
        let mut batch = Vec::new();
        outbox.recv(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(&batch[1].text()[..], b"*** b\r\n");
        for text in ["c", "d", "e"] {
            outbox.push(&notice(text));
        }
        assert_eq!(outbox.recv(&mut batch).await, Err(Closed::TooSlow));
    }

    #[tokio::test]
    async fn closes_past_the_byte_bound() {
        let outbox = Outbox::new(100, 10);
        outbox.push(&notice("0123456789"));
        assert_eq!(outbox.recv(&mut Vec::new()).await, Err(Closed::TooSlow));
    }
}
