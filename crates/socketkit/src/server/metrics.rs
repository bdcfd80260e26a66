//! A server's live counters: connections open and in total, refusals,
//! datagrams, bytes each way and handler errors. The server core updates
//! them; whoever holds the [`Metrics`] (say, a Prometheus endpoint) reads a
//! [`MetricsSnapshot`] at any time. The exposition format is not this
//! module's business.
//!
//! Cheap on the hot path: relaxed atomics touched a few times per
//! connection, never per read or write. A connection's bytes are added when
//! it closes (its own counters live in its [`Connection`](super::Connection)),
//! so the byte totals lag the connections still open.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one server, shared with readers through an `Arc`: hand one to
/// [`ServerConfig::metrics`](super::ServerConfig::metrics) and read it with
/// [`Metrics::snapshot`] while the server runs. Several servers given the
/// same `Metrics` add up into it.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicU64,
    closed: AtomicU64,
    datagrams: AtomicU64,
    aborted: AtomicU64,
    refused: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    handler_errors: AtomicU64,
}

/// The counters at one moment. Counters only grow; `connections_open` is
/// the connections accepted and not yet closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Connections accepted, admitted and handed to a handler, in total.
    pub connections_total: u64,
    /// Connections handed to a handler and not yet closed.
    pub connections_open: u64,
    /// Datagrams handled.
    pub datagrams: u64,
    /// Connections cut off at the drain deadline.
    pub aborted: u64,
    /// Connections closed and datagrams dropped because the access list
    /// refused their peer.
    pub refused: u64,
    /// Bytes read from peers on closed connections (datagrams included as
    /// they arrive).
    pub bytes_in: u64,
    /// Bytes written to peers on closed connections (datagram replies
    /// included as they are sent).
    pub bytes_out: u64,
    /// Connections whose handler failed (not counting a peer gone, a
    /// timeout or the drain deadline's abort) and datagrams whose handler
    /// failed.
    pub handler_errors: u64,
}

impl Metrics {
    /// Reads every counter (each atomically, not all at one instant).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let connections_total = load(&self.connections);
        MetricsSnapshot {
            connections_total,
            // `closed` is bumped after `connections`, so it never passes it;
            // saturating all the same for a reader racing both.
            connections_open: connections_total.saturating_sub(load(&self.closed)),
            datagrams: load(&self.datagrams),
            aborted: load(&self.aborted),
            refused: load(&self.refused),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            handler_errors: load(&self.handler_errors),
        }
    }

    /// A connection starts; returns its number (from 0).
    pub(crate) fn opened(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed)
    }

    /// A connection ended, with its byte counts and whether its handler
    /// failed.
    pub(crate) fn closed(&self, bytes_in: u64, bytes_out: u64, failed: bool) {
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        if failed {
            self.handler_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A datagram was handled: `len` bytes in, `reply` bytes out if
    /// answered.
    pub(crate) fn datagram(&self, len: usize, reply: Option<usize>, failed: bool) {
        self.datagrams.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
        if let Some(reply) = reply {
            self.bytes_out.fetch_add(reply as u64, Ordering::Relaxed);
        }
        if failed {
            self.handler_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn aborted(&self) {
        self.aborted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts a connection closed when dropped, so one whose TLS handshake
/// failed, or whose task was cut short, still leaves the open gauge.
pub(crate) struct OpenConnection<'a> {
    pub(crate) metrics: &'a Metrics,
    pub(crate) bytes: (u64, u64),
    pub(crate) failed: bool,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.metrics.closed(self.bytes.0, self.bytes.1, self.failed);
    }
}
