//! Chat limits and defaults: every one named, with the reason for its value.

use std::time::Duration;

/// Limits of a [`Chat`](super::Chat) server, built by chaining on the
/// default: `ChatConfig::default().history(50).rate_limit(None)`.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub(crate) history: usize,
    pub(crate) max_message: usize,
    pub(crate) queue_messages: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) rate: Option<RateLimit>,
    pub(crate) max_rooms: usize,
}

/// A per-client message rate: a token bucket of `burst` messages refilled
/// at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: f64,
    /// Messages that may be sent at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// `rate` messages a second with bursts of twice that (at least 1).
    pub fn per_second(rate: f64) -> RateLimit {
        RateLimit {
            per_second: rate,
            // Saturating: `as` clamps a float to the integer's range.
            burst: (rate * 2.0).ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
        }
    }
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            history: ChatConfig::DEFAULT_HISTORY,
            max_message: ChatConfig::DEFAULT_MAX_MESSAGE,
            // A join storm of a thousand clients queues a thousand
            // announcements per member; a client further behind than this
            // is not reading.
            queue_messages: ChatConfig::DEFAULT_QUEUE_MESSAGES,
            queue_bytes: ChatConfig::DEFAULT_QUEUE_BYTES,
            write_timeout: ChatConfig::DEFAULT_WRITE_TIMEOUT,
            rate: Some(ChatConfig::DEFAULT_RATE),
            max_rooms: ChatConfig::DEFAULT_MAX_ROOMS,
        }
    }
}

impl RateLimit {
    /// `per_second` messages sustained, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }
}

impl ChatConfig {
    /// Default of [`history`](ChatConfig::history).
    pub const DEFAULT_HISTORY: usize = 20;
    /// Default of [`max_message`](ChatConfig::max_message): 4 KiB.
    pub const DEFAULT_MAX_MESSAGE: usize = 4 * 1024;
    /// Default of the queue's message count, [`queue_limits`](ChatConfig::queue_limits).
    pub const DEFAULT_QUEUE_MESSAGES: usize = 4096;
    /// Default of the queue's byte count, [`queue_limits`](ChatConfig::queue_limits): 1 MiB.
    pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;
    /// Default of [`write_timeout`](ChatConfig::write_timeout): 10 s.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`rate_limit`](ChatConfig::rate_limit): 10 messages a
    /// second, bursts of 20.
    pub const DEFAULT_RATE: RateLimit = RateLimit {
        per_second: 10.0,
        burst: 20,
    };
    /// Default of [`max_rooms`](ChatConfig::max_rooms).
    pub const DEFAULT_MAX_ROOMS: usize = 1024;

    /// Messages of a room replayed to whoever joins it. Default 20.
    pub fn history(mut self, messages: usize) -> ChatConfig {
        self.history = messages;
        self
    }

    /// Longest line a client may send, in bytes. Default 4 KiB; a longer
    /// line is refused with an error and the connection stays.
    pub fn max_message(mut self, bytes: usize) -> ChatConfig {
        self.max_message = bytes.max(1);
        self
    }

    /// How far each client may fall behind, in messages and in bytes
    /// (default 4096 and 1 MiB): the most a room's log keeps for its
    /// slowest reader, and the bound of each client's private queue. A
    /// client further behind is too slow to keep up and is disconnected,
    /// so the sender never waits for it.
    pub fn queue_limits(mut self, messages: usize, bytes: usize) -> ChatConfig {
        self.queue_messages = messages.max(1);
        self.queue_bytes = bytes.max(1);
        self
    }

    /// How long one write to a client may take before the client is
    /// disconnected as too slow. Default 10 s.
    pub fn write_timeout(mut self, timeout: Duration) -> ChatConfig {
        self.write_timeout = timeout;
        self
    }

    /// Per-client message rate; `None` disables it. Default 10 a second,
    /// bursts of 20. A client over its rate is told so and its further lines
    /// are read more slowly: nothing is lost, the flood is paced.
    pub fn rate_limit(mut self, rate: Option<RateLimit>) -> ChatConfig {
        self.rate = rate.filter(|r| r.per_second > 0.0);
        self
    }

    /// Most rooms kept at once (rooms hold history after their last member
    /// leaves; the oldest empty ones are forgotten past this). Default 1024.
    pub fn max_rooms(mut self, rooms: usize) -> ChatConfig {
        self.max_rooms = rooms.max(1);
        self
    }
}
