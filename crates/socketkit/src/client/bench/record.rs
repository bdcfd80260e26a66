//! What a benchmark sends and what it keeps: the message content, the
//! per-connection tally, the shared latency histogram and live progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Period of the content pattern. Prime, so neither message sizes nor
/// strides ever line up with it and every message differs from its
/// neighbours: a lost, duplicated, reordered or altered echo is a mismatch.
const PERIOD: usize = 65_521;
/// How far apart consecutive batches of one connection start in the pattern.
const BATCH_STRIDE: u64 = 4_099;
/// How far apart the first batches of two connections start.
const CONNECTION_STRIDE: u64 = 104_729;

/// Pseudo-random bytes (xorshift64*) such that `bytes(offset, len)` is
/// valid for any `offset < PERIOD` and `len <= longest`.
#[derive(Debug)]
pub(super) struct Pattern {
    bytes: Vec<u8>,
}

impl Pattern {
    /// A pattern for slices of up to `longest` bytes.
    pub(super) fn new(longest: usize) -> Pattern {
        let mut state: u64 = 0x853c_49e6_748f_ea9b;
        let period: Vec<u8> = (0..PERIOD)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        let bytes = period
            .iter()
            .cycle()
            .take(PERIOD + longest)
            .copied()
            .collect();
        Pattern { bytes }
    }

    /// Batch `seq` of connection `id`: `len` bytes, different from the
    /// batches around it.
    pub(super) fn batch(&self, id: usize, seq: u64, len: usize) -> &[u8] {
        let start = (id as u64)
            .wrapping_mul(CONNECTION_STRIDE)
            .wrapping_add(seq.wrapping_mul(BATCH_STRIDE))
            % PERIOD as u64;
        let start = start as usize;
        &self.bytes[start..start + len]
    }

    /// The bytes of a continuous stream from `position` on, at most `len`.
    pub(super) fn stream(&self, position: u64, len: usize) -> &[u8] {
        let start = (position % PERIOD as u64) as usize;
        &self.bytes[start..start + len]
    }
}

/// Counts kept by one connection and summed at the end.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    /// Round trips (or, in churn, connections) completed and verified.
    pub(super) messages: u64,
    /// Payload bytes echoed back and verified.
    pub(super) bytes: u64,
    /// Failed connects, I/O errors, early ends, lost datagrams.
    pub(super) errors: u64,
    /// Echoed content that differed from what was sent.
    pub(super) mismatches: u64,
    /// Datagram replies that arrived after their wait had expired.
    pub(super) late: u64,
    /// Connections still blocked at the hard stop (also counted as errors).
    pub(super) stalled: u64,
}

impl Tally {
    pub(super) fn add(&mut self, other: Tally) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.mismatches += other.mismatches;
        self.late += other.late;
        self.stalled += other.stalled;
    }

    /// The connection was cut off at the hard stop.
    pub(super) fn stall(&mut self) {
        self.errors += 1;
        self.stalled += 1;
    }
}

/// Latencies are collected this many at a time before taking the lock on
/// the shared histogram, so the lock is taken once per this many messages.
const LATENCY_BATCH: usize = 128;

/// Records latencies into the run's one histogram and counts messages for
/// live progress. One per connection; it holds only a small batch, so a
/// thousand connections do not each carry a histogram.
#[derive(Debug)]
pub(super) struct Recorder {
    pending: Vec<u64>,
    histogram: Arc<Mutex<Histogram<u64>>>,
    progress: Progress,
}

impl Recorder {
    pub(super) fn new(histogram: Arc<Mutex<Histogram<u64>>>, progress: Progress) -> Recorder {
        Recorder {
            pending: Vec::with_capacity(LATENCY_BATCH),
            histogram,
            progress,
        }
    }

    /// One message took `latency` to come back.
    pub(super) fn latency(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.pending.push(nanos);
        if self.pending.len() == LATENCY_BATCH {
            self.flush();
        }
    }

    /// Messages and payload bytes verified, for the progress display.
    pub(super) fn verified(&self, messages: u64, bytes: u64) {
        self.progress
            .counters
            .messages
            .fetch_add(messages, Ordering::Relaxed);
        self.progress
            .counters
            .bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn error(&self) {
        self.progress
            .counters
            .errors
            .fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&mut self) {
        let mut histogram = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for nanos in self.pending.drain(..) {
            histogram.saturating_record(nanos);
        }
    }
}

impl Drop for Recorder {
    /// A connection cut off at the hard stop still contributes what it saw.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Live counters of a running benchmark, for a progress display. Cheap to
/// clone; every clone sees the same counters.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    connected: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    started: OnceLock<Instant>,
}

impl Progress {
    /// Connections established so far (before the clock starts).
    pub fn connected(&self) -> u64 {
        self.counters.connected.load(Ordering::Relaxed)
    }

    /// Messages echoed and verified so far.
    pub fn messages(&self) -> u64 {
        self.counters.messages.load(Ordering::Relaxed)
    }

    /// Payload bytes echoed and verified so far.
    pub fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }

    /// Errors so far.
    pub fn errors(&self) -> u64 {
        self.counters.errors.load(Ordering::Relaxed)
    }

    /// When the measurement window opened (after every connection attempt
    /// finished); `None` while still connecting.
    pub fn started(&self) -> Option<Instant> {
        self.counters.started.get().copied()
    }

    pub(super) fn add_connected(&self) {
        self.counters.connected.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn start(&self, at: Instant) {
        let _ = self.counters.started.set(at);
    }
}
