//! `bench`: a load generator for echo servers, ours or anyone's.
//!
//! In the spirit of redis-benchmark and tcpkali, [`bench`] opens every
//! connection first, then starts the clock and runs one [`Workload`] on all
//! of them: ping-pong (stream or datagram), bulk full duplex, or connection
//! churn. Every echoed byte is checked against what was sent, and every
//! message has different content, so loss, duplication, reordering or
//! corruption is counted as a mismatch rather than as speed. Latencies go
//! into one HDR histogram. Every run stops by itself: at the deadline, at
//! the per-connection count, or at the hard stop two seconds later,
//! which cuts off connections a server left hanging.
//!
//! Streams connect with [`transport::connect`] and datagram flows with
//! [`transport::connect_datagram`], so every transport they know works here.

mod load;
mod record;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

pub use record::Progress;

use self::load::{Plan, BULK_CHUNK};
use self::record::{Pattern, Recorder, Tally};
use crate::addr::{Endpoint, SocketKind};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{self, ConnectOptions, DatagramSocket, Stream};

/// After the deadline, how long a connection may take to finish its last
/// exchange before it is cut off and counted as stalled.
const STALL_GRACE: Duration = Duration::from_secs(2);

/// Largest payload of one UDP datagram.
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Largest batch (`size × pipeline`) of stream ping-pong: bounds the buffers.
const MAX_BATCH: usize = 64 * 1024 * 1024;
/// Longest latency the histogram can hold (an hour, far past any run).
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workload {
    /// Write `pipeline` messages, read them all back, repeat.
    #[default]
    PingPong,
    /// Stream as fast as possible in both directions at once (streams only).
    Bulk,
    /// Connect, one round trip, close, repeat: connections per second
    /// (streams only).
    Churn,
}

impl Workload {
    /// `ping-pong`, `bulk` or `churn`.
    pub fn label(self) -> &'static str {
        match self {
            Workload::PingPong => "ping-pong",
            Workload::Bulk => "bulk",
            Workload::Churn => "churn",
        }
    }
}

/// Options of [`bench()`].
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// What each connection does. Default ping-pong.
    pub workload: Workload,
    /// Connections (datagram flows; in churn, concurrent connect loops).
    /// Default 1.
    pub connections: usize,
    /// Bytes per message. Default 64.
    pub size: usize,
    /// Messages in flight per stream connection. Default 1.
    pub pipeline: usize,
    /// The measurement window. Default 5 s.
    pub duration: Duration,
    /// Per connection, stop after this many round trips (churn: connections)
    /// even before the window closes. Default: no limit.
    pub messages: Option<u64>,
    /// Bulk, per connection: stop writing after this many bytes even before
    /// the window closes. Default: no limit.
    pub bulk_bytes: Option<u64>,
    /// How each connection is opened (connect timeout). Default
    /// [`ConnectOptions::default`].
    pub connect: ConnectOptions,
    /// Datagrams: a reply not back within this long is lost. Default 200 ms.
    pub reply_timeout: Duration,
}

/// [`BenchOptions::duration`]'s default.
pub const DEFAULT_BENCH_DURATION: Duration = Duration::from_secs(5);
/// [`BenchOptions::reply_timeout`]'s default.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_millis(200);

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            workload: Workload::PingPong,
            connections: 1,
            size: 64,
            pipeline: 1,
            duration: DEFAULT_BENCH_DURATION,
            messages: None,
            bulk_bytes: None,
            connect: ConnectOptions::default(),
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
        }
    }
}

/// Latency percentiles of the messages (churn: connections) measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The slowest.
    pub max: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BenchReport {
    /// The server measured.
    pub target: Endpoint,
    /// What the connections did.
    pub workload: Workload,
    /// Connections asked for.
    pub connections: usize,
    /// Connections established before the clock started (churn: 0).
    pub connected: usize,
    /// Connections that completed at least one verified exchange.
    pub served: usize,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// Time to open every connection, before the window.
    pub connect_time: Duration,
    /// The measurement window, from the common start to the last
    /// connection's end.
    pub elapsed: Duration,
    /// Round trips (churn: whole connections) completed and verified.
    pub messages: u64,
    /// Payload bytes echoed back and verified.
    pub bytes: u64,
    /// Failed connects, I/O errors, early ends, lost datagrams, stalls.
    pub errors: u64,
    /// Echoed messages that differed from what was sent.
    pub mismatches: u64,
    /// Datagram replies that came after their wait expired.
    pub late: u64,
    /// Connections cut off at the hard stop (also counted in `errors`).
    pub stalled: u64,
    /// Per-message latency.
    pub latency: Latency,
}

impl BenchReport {
    /// Verified round trips (churn: connections) per second.
    pub fn messages_per_sec(&self) -> f64 {
        per_second(self.messages as f64, self.elapsed)
    }

    /// Verified payload in millions of bytes per second, counted once
    /// (bulk: the echo coming back).
    pub fn megabytes_per_sec(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.elapsed)
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        amount / elapsed.as_secs_f64()
    }
}

/// A connection, opened before the clock starts.
enum Opened {
    Stream(Stream),
    Datagram(DatagramSocket),
}

/// Runs `options.workload` against the echo server at `target`. Counters
/// in `progress` move while it runs. Fails only when the options do not
/// fit the target or when not a single connection could be opened; every
/// other failure is counted in the report.
pub async fn bench(
    target: &Endpoint,
    options: &BenchOptions,
    progress: &Progress,
) -> Result<BenchReport> {
    check_options(target, options)?;
    let opening = Instant::now();
    let opened = match options.workload {
        Workload::Churn => Vec::new(),
        Workload::PingPong | Workload::Bulk => open_all(target, options, progress).await?,
    };
    let (connect_time, connected) = (opening.elapsed(), opened.len());
    let failed_connects = match options.workload {
        Workload::Churn => 0,
        Workload::PingPong | Workload::Bulk => (options.connections - connected) as u64,
    };
    let started = Instant::now();
    progress.start(started);
    let plan = Arc::new(plan(target, options, started));
    let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .map_err(|e| Error::new(ErrorKind::Unsupported, format!("latency histogram: {e}")))?;
    let histogram = Arc::new(Mutex::new(histogram));
    let recorder = || Recorder::new(histogram.clone(), progress.clone());
    let mut running = JoinSet::new();
    match options.workload {
        Workload::Churn => (0..options.connections).for_each(|id| {
            running.spawn(load::churn(id, plan.clone(), recorder()));
        }),
        Workload::PingPong | Workload::Bulk => {
            for (id, opened) in opened.into_iter().enumerate() {
                running.spawn(run_one(
                    opened,
                    id,
                    options.workload,
                    plan.clone(),
                    recorder(),
                ));
            }
        }
    }
    let (tally, served) = join_all(running).await;
    let latency = latency(&histogram.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(BenchReport {
        target: target.clone(),
        workload: options.workload,
        connections: options.connections,
        connected,
        served,
        size: options.size,
        pipeline: options.pipeline,
        connect_time,
        elapsed: started.elapsed(),
        messages: tally.messages,
        bytes: tally.bytes,
        errors: tally.errors + failed_connects,
        mismatches: tally.mismatches,
        late: tally.late,
        stalled: tally.stalled,
        latency,
    })
}

fn check_options(target: &Endpoint, options: &BenchOptions) -> Result<()> {
    let datagram = target.kind() == SocketKind::Datagram;
    let unsupported = |why: String| Err(Error::new(ErrorKind::Unsupported, why));
    if options.connections == 0 || options.size == 0 || options.pipeline == 0 {
        return unsupported("connections, message size and pipeline must be at least 1".into());
    }
    if datagram && options.workload != Workload::PingPong {
        return unsupported(format!(
            "{} needs a stream; {target} is a datagram endpoint",
            options.workload.label()
        ));
    }
    if datagram && (options.pipeline > 1 || options.size > MAX_UDP_PAYLOAD) {
        return unsupported(format!(
            "datagram ping-pong sends one message of at most {MAX_UDP_PAYLOAD} bytes at a time"
        ));
    }
    if options.size.saturating_mul(options.pipeline) > MAX_BATCH {
        return unsupported(format!(
            "message size × pipeline must be at most {MAX_BATCH} bytes"
        ));
    }
    Ok(())
}

fn plan(target: &Endpoint, options: &BenchOptions, started: Instant) -> Plan {
    let deadline = started + options.duration;
    let longest = (options.size * options.pipeline).max(BULK_CHUNK);
    Plan {
        target: target.clone(),
        connect: options.connect.clone(),
        size: options.size,
        pipeline: options.pipeline,
        messages: options.messages.unwrap_or(u64::MAX),
        bulk_bytes: options.bulk_bytes.unwrap_or(u64::MAX),
        reply_timeout: options.reply_timeout,
        pattern: Pattern::new(longest),
        deadline,
        hard_stop: deadline + STALL_GRACE,
    }
}

/// Opens every connection concurrently; fails only if none could be.
async fn open_all(
    target: &Endpoint,
    options: &BenchOptions,
    progress: &Progress,
) -> Result<Vec<Opened>> {
    let mut attempts = JoinSet::new();
    for _ in 0..options.connections {
        let (target, connect) = (target.clone(), options.connect.clone());
        attempts.spawn(async move {
            match target.kind() {
                SocketKind::Stream => transport::connect(&target, &connect)
                    .await
                    .map(Opened::Stream),
                SocketKind::Datagram => transport::connect_datagram(&target, &connect)
                    .await
                    .map(Opened::Datagram),
            }
        });
    }
    let mut opened = Vec::with_capacity(options.connections);
    let mut first_error = None;
    while let Some(joined) = attempts.join_next().await {
        match joined {
            Ok(Ok(connection)) => {
                progress.add_connected();
                opened.push(connection);
            }
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join_error) => {
                let why = format!("a connection attempt failed: {join_error}");
                first_error.get_or_insert(Error::new(ErrorKind::Connect, why));
            }
        }
    }
    match first_error {
        Some(error) if opened.is_empty() => Err(error),
        _ => Ok(opened),
    }
}

async fn run_one(
    opened: Opened,
    id: usize,
    workload: Workload,
    plan: Arc<Plan>,
    recorder: Recorder,
) -> Tally {
    match (opened, workload) {
        (Opened::Datagram(socket), _) => load::ping_pong_datagram(socket, id, plan, recorder).await,
        (Opened::Stream(stream), Workload::Bulk) => load::bulk(stream, plan, recorder).await,
        (Opened::Stream(stream), _) => load::ping_pong(stream, id, plan, recorder).await,
    }
}

/// Waits for every connection (each bounds itself by the hard stop) and
/// sums their tallies; also counts the connections that were served.
async fn join_all(mut running: JoinSet<Tally>) -> (Tally, usize) {
    let (mut total, mut served) = (Tally::default(), 0);
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(tally) => {
                served += usize::from(tally.messages > 0 || tally.bytes > 0);
                total.add(tally);
            }
            Err(_panicked) => total.errors += 1,
        }
    }
    (total, served)
}

fn latency(histogram: &Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency::default();
    }
    let at = |quantile| Duration::from_nanos(histogram.value_at_quantile(quantile));
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: Duration::from_nanos(histogram.max()),
    }
}
