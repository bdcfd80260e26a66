//! Load generator for chat servers (`bench/chat/run.sh` runs it against
//! `socketkit serve chat` and `ncat --chat` in one go).
//!
//! Joins N clients to one room, lets the join storm settle, then has S of
//! them send M numbered, timestamped lines each, at most W in flight per
//! sender (a line counts as landed once one observing client got it: the
//! same closed loop for any server, so neither is flooded beyond what it
//! can take). Every client reads everything; reported are the deliveries
//! per second and the delivery latency (send to receipt) percentiles.
//!
//! ```text
//! cargo run --release -p socketkit --example chat_bench -- 127.0.0.1:7000 --nick
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

/// One client in this many records delivery latencies (the observer always
/// does); all count their lines.
const LATENCY_SAMPLE: usize = 10;

/// Longest the whole run may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Options {
    addr: String,
    label: String,
    clients: usize,
    senders: usize,
    messages: u64,
    window: usize,
    /// Answer the nickname prompt (socketkit); ncat names clients itself.
    nick: bool,
    /// The server's process id, to report its CPU time during the send
    /// phase only (not the join storm).
    pid: Option<u32>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        addr: args.next().ok_or("usage: chat_bench ADDR [--label L] [--clients N] [--senders S] [--messages M] [--window W] [--nick]")?,
        label: "server".into(),
        clients: 1000,
        senders: 50,
        messages: 200,
        window: 8,
        nick: false,
        pid: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--label" => options.label = value()?,
            "--clients" => options.clients = value()?.parse().map_err(|e| format!("{e}"))?,
            "--senders" => options.senders = value()?.parse().map_err(|e| format!("{e}"))?,
            "--messages" => options.messages = value()?.parse().map_err(|e| format!("{e}"))?,
            "--window" => options.window = value()?.parse().map_err(|e| format!("{e}"))?,
            "--nick" => options.nick = true,
            "--pid" => options.pid = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.senders + 2 > options.clients {
        return Err("need at least two more clients than senders".into());
    }
    Ok(options)
}

/// What the reader tasks share.
struct Shared {
    start: Instant,
    /// Clients that saw the ready marker: everyone has joined.
    ready: Marker,
    /// Clients that saw the go marker, said once after ready: nothing but
    /// benchmark lines follow it.
    go: Marker,
    delivered: AtomicU64,
    /// Delivery latencies of every client, in microseconds. One histogram,
    /// locked once per read (uncontended: one thread): a thousand private
    /// ones cost more in cache misses than everything else the client does.
    latency: Mutex<Histogram<u64>>,
    /// Per sender, lines it may still put in flight.
    windows: Vec<Semaphore>,
    observer: usize,
}

/// Prints progress to stderr every few seconds, so a stall shows where.
async fn watchdog(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        eprintln!(
            "chat_bench: {} clients ready, {} lines delivered so far",
            shared.ready.seen.load(Ordering::Relaxed),
            shared.delivered.load(Ordering::Relaxed)
        );
    }
}

/// One thread: the load generator takes one core and leaves the other to
/// the server, whichever server it is.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("chat_bench: {message}");
            std::process::exit(2);
        }
    };
    match tokio::time::timeout(DEADLINE, run(options)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            eprintln!("chat_bench: {error}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("chat_bench: gave up after {DEADLINE:?}");
            std::process::exit(1);
        }
    }
}

async fn run(options: Options) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        start: Instant::now(),
        ready: Marker::default(),
        go: Marker::default(),
        delivered: AtomicU64::new(0),
        latency: Mutex::new(latency_histogram()),
        windows: (0..=options.senders)
            .map(|_| Semaphore::new(options.window))
            .collect(),
        observer: options.clients - 1,
    });
    let per_sender = options.messages;
    tokio::spawn(watchdog(shared.clone()));
    // Each client reads from the moment it connects: servers that announce
    // joins must not stall on clients that are still being connected.
    let mut tasks = Vec::with_capacity(options.clients);
    let mut writers = Vec::with_capacity(options.clients);
    for i in 0..options.clients {
        let stream = TcpStream::connect(&options.addr).await?;
        stream.set_nodelay(true)?;
        let (reader, mut writer) = stream.into_split();
        if options.nick {
            writer.write_all(format!("c{i}\n").as_bytes()).await?;
        }
        writers.push(Some(writer));
        let expected = if (1..=options.senders).contains(&i) {
            per_sender * (options.senders as u64 - 1)
        } else {
            per_sender * options.senders as u64
        };
        tasks.push(tokio::spawn(read_all(i, reader, expected, shared.clone())));
    }

    // Client 0 says "ready" after everyone connected; when all others saw
    // it, the join storm is behind every client. Said again until all saw
    // it: a server may still be accepting the last clients when it first
    // arrives. Then "go", once: behind it, every client gets only
    // benchmark lines.
    let others = options.clients - 1;
    while shared.ready.seen.load(Ordering::Acquire) < others {
        writers[0].write_all(b"~ready\n").await?;
        let _ =
            tokio::time::timeout(Duration::from_millis(500), shared.ready.wait_for(others)).await;
    }
    writers[0].write_all(b"~go\n").await?;
    shared.go.wait_for(others).await;

    let cpu_before = options.pid.and_then(cpu_seconds);
    let started = Instant::now();
    let senders: Vec<_> = (1..=options.senders)
        .map(|id| {
            let writer = writers[id].take();
            tokio::spawn(send_all(id, writer, per_sender, shared.clone()))
        })
        .collect();
    // Senders hand their sockets back: dropping a write half would send
    // FIN, and the server would rightly take that as leaving.
    let mut finished_senders = Vec::new();
    for sender in senders {
        finished_senders.push(sender.await??);
    }
    for task in tasks {
        task.await??;
    }
    let latency = shared.latency.lock().expect("not poisoned").clone();
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_before.zip(options.pid.and_then(cpu_seconds));
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let us = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let server_cpu = match cpu {
        Some((before, after)) => format!(
            " server_cpu_s={:.2} server_ns_per_delivery={:.0}",
            after - before,
            (after - before) * 1e9 / delivered as f64
        ),
        None => String::new(),
    };
    println!(
        "{label}: clients={clients} senders={senders} window={window} sent={sent} delivered={delivered} secs={secs:.2} msgs_per_sec={rate:.0} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2}{server_cpu}",
        label = options.label,
        clients = options.clients,
        senders = options.senders,
        window = options.window,
        sent = per_sender * options.senders as u64,
        rate = delivered as f64 / secs,
        p50 = us(0.5),
        p99 = us(0.99),
        max = latency.max() as f64 / 1000.0,
    );
    drop((writers, finished_senders));
    Ok(())
}

trait WriteLine {
    async fn write_all(&mut self, line: &[u8]) -> std::io::Result<()>;
}

impl WriteLine for Option<OwnedWriteHalf> {
    async fn write_all(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Some(writer) => writer.write_all(line).await,
            None => Ok(()),
        }
    }
}

async fn send_all(
    id: usize,
    mut writer: Option<OwnedWriteHalf>,
    count: u64,
    shared: Arc<Shared>,
) -> std::io::Result<Option<OwnedWriteHalf>> {
    for seq in 0..count {
        shared.windows[id]
            .acquire()
            .await
            .expect("never closed")
            .forget();
        let sent_us = shared.start.elapsed().as_micros();
        let line = format!("~b {id} {seq} {sent_us}\n");
        writer.write_all(line.as_bytes()).await?;
    }
    Ok(writer)
}

/// Reads until `expected` benchmark lines arrived. Sampled clients (every
/// LATENCY_SAMPLE-th, and the observer) parse every line and record its
/// delivery latency; the others, once past the go marker, only count
/// their lines, so that the load generator, one thread for a thousand
/// clients, is not what limits the rate it measures.
async fn read_all(
    me: usize,
    mut reader: OwnedReadHalf,
    expected: u64,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut got = 0;
    // Client 0 says the markers (and does not hear itself).
    let mut phase = if me == 0 { Phase::Go } else { Phase::Joining };
    let observer = me == shared.observer;
    let sampled = observer || me % LATENCY_SAMPLE == 0;
    while got < expected {
        if reader.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("client {me} disconnected after {got} of {expected} lines"),
            ));
        }
        let before = got;
        if !sampled && phase == Phase::Go {
            if let Some(lines) = count_bench_lines(&mut buf) {
                got += lines;
                shared.delivered.fetch_add(got - before, Ordering::Relaxed);
                continue;
            }
        }
        // One clock reading per read: the lines of one read arrived together.
        let now_us = shared.start.elapsed().as_micros() as u64;
        let mut latency = sampled.then(|| shared.latency.lock().expect("not poisoned"));
        let mut consumed = 0;
        for end in memchr::memchr_iter(b'\n', &buf) {
            let line = &buf[consumed..end];
            consumed = end + 1;
            let Some(body) = body(line) else { continue };
            if let Some(fields) = body.strip_prefix(b"~b ") {
                got += 1;
                let Some(latency) = latency.as_mut() else {
                    continue;
                };
                let Some((sender, sent_us)) = bench_fields(fields) else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "client {me} got a mangled line: {:?}",
                            String::from_utf8_lossy(line)
                        ),
                    ));
                };
                latency.saturating_record(now_us.saturating_sub(sent_us));
                if observer {
                    if let Some(window) = shared.windows.get(sender) {
                        window.add_permits(1);
                    }
                }
            } else if body.starts_with(b"~ready") && phase == Phase::Joining {
                phase = Phase::Ready;
                shared.ready.saw();
            } else if body.starts_with(b"~go") && phase == Phase::Ready {
                phase = Phase::Go;
                shared.go.saw();
            }
        }
        buf.advance(consumed);
        drop(latency);
        // Counted once per read, not per line: a shared counter bumped per
        // line would bounce its cache line between cores millions of times.
        shared.delivered.fetch_add(got - before, Ordering::Relaxed);
    }
    Ok(())
}

/// User plus system CPU seconds process `pid` has used (Linux /proc).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// Microseconds from 1 µs to 10 minutes, 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// The fast path of a client that only counts, past the go marker (every
/// line is a benchmark line): the complete lines in `buf`, consumed. One
/// vectorised pass per read instead of a search per line.
fn count_bench_lines(buf: &mut BytesMut) -> Option<u64> {
    let complete = memchr::memrchr(b'\n', buf)? + 1;
    let lines = count_newlines(&buf[..complete]);
    buf.advance(complete);
    Some(lines)
}

/// Newlines in `bytes`, counted in byte-wide lanes (chunks of at most 255
/// bytes cannot overflow one), which the compiler turns into 16 bytes per
/// instruction; a plain `filter().count()` widens every byte to 64 bits.
fn count_newlines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|chunk| {
            let count = chunk
                .iter()
                .fold(0u8, |n, b| n.wrapping_add(u8::from(*b == b'\n')));
            u64::from(count)
        })
        .sum()
}

/// Where a client is in the start-up handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Joining,
    Ready,
    Go,
}

/// A marker line and how many clients have seen it.
#[derive(Default)]
struct Marker {
    seen: AtomicUsize,
    changed: Notify,
}

impl Marker {
    fn saw(&self) {
        self.seen.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    async fn wait_for(&self, clients: usize) {
        while self.seen.load(Ordering::Acquire) < clients {
            self.changed.notified().await;
        }
    }
}

/// What a chat line carries after the server's `<nick> ` prefix. (ncat
/// prefixes only the first line of each chunk it reads, so the prefix is
/// optional.)
fn body(line: &[u8]) -> Option<&[u8]> {
    match line.first() {
        Some(b'<') => line.get(memchr::memchr(b'>', line)? + 2..),
        _ => Some(line),
    }
}

/// The sender and send time of a benchmark line's `SENDER SEQ SENT_US`.
fn bench_fields(fields: &[u8]) -> Option<(usize, u64)> {
    let mut fields = fields.split(|b| *b == b' ');
    let sender = number(fields.next()?)? as usize;
    let _seq = number(fields.next()?)?;
    let sent_us = number(fields.next()?)?;
    Some((sender, sent_us))
}

fn number(digits: &[u8]) -> Option<u64> {
    let digits = digits.strip_suffix(b"\r").unwrap_or(digits);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}
