//! The workloads, one connection (or flow) each: stream and datagram
//! ping-pong, bulk full duplex, and connection churn. Each checks every
//! echoed byte and stops by itself at the plan's deadline; whatever is still
//! blocked at the hard stop is cut off and counted as stalled.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::record::{Pattern, Recorder, Tally};
use crate::addr::Endpoint;
use crate::transport::{self, ConnectOptions, DatagramSocket, Stream};

/// Bulk mode writes and reads in chunks of this size: big enough that
/// system calls do not dominate.
pub(super) const BULK_CHUNK: usize = 64 * 1024;

/// A datagram reply that arrives within this many messages of its own is
/// recognised as late rather than as corrupt.
const LATE_WINDOW: u64 = 8;

/// What every connection of one run shares.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) target: Endpoint,
    pub(super) connect: ConnectOptions,
    pub(super) size: usize,
    pub(super) pipeline: usize,
    /// Per connection: stop after this many round trips (or churn cycles).
    pub(super) messages: u64,
    /// Bulk, per connection: stop writing after this many bytes.
    pub(super) bulk_bytes: u64,
    pub(super) reply_timeout: Duration,
    pub(super) pattern: Pattern,
    /// No new round trip starts after this.
    pub(super) deadline: Instant,
    /// Whatever is still running now is cut off.
    pub(super) hard_stop: Instant,
}

impl Plan {
    fn more(&self, done: u64) -> bool {
        done < self.messages && Instant::now() < self.deadline
    }

    fn batch_len(&self) -> usize {
        self.size * self.pipeline
    }

    /// Runs `work` until it ends or the hard stop passes (then it is cut
    /// off and counted as stalled); what it tallied so far is kept either way.
    async fn bounded(&self, work: impl std::future::Future<Output = ()>) -> Option<()> {
        let hard_stop = tokio::time::Instant::from_std(self.hard_stop);
        tokio::time::timeout_at(hard_stop, work).await.ok()
    }
}

/// Why one exchange failed.
enum Failure {
    Io,
    /// `n` messages came back different from what was sent.
    Mismatch(u64),
}

impl From<io::Error> for Failure {
    fn from(_: io::Error) -> Failure {
        Failure::Io
    }
}

impl Failure {
    fn count(self, tally: &mut Tally, recorder: &Recorder) {
        match self {
            Failure::Io => {
                tally.errors += 1;
                recorder.error();
            }
            Failure::Mismatch(n) => tally.mismatches += n,
        }
    }
}

/// Counts one single-message exchange (a datagram, a churn connection)
/// that began at `started`.
fn book(
    outcome: Result<(), Failure>,
    started: Instant,
    sent: &[u8],
    tally: &mut Tally,
    recorder: &mut Recorder,
) {
    match outcome {
        Ok(()) => {
            recorder.latency(started.elapsed());
            recorder.verified(1, sent.len() as u64);
            tally.messages += 1;
            tally.bytes += sent.len() as u64;
        }
        Err(failure) => failure.count(tally, recorder),
    }
}

/// Stream ping-pong: write `pipeline` messages at once, read them all back,
/// compare, repeat. A mismatch ends the connection: the stream is out of
/// step after it.
pub(super) async fn ping_pong(
    mut stream: Stream,
    id: usize,
    plan: Arc<Plan>,
    mut recorder: Recorder,
) -> Tally {
    let mut tally = Tally::default();
    // One spare byte: a complete reply leaves the buffer short, so tokio
    // knows the socket is drained without a failing read per round trip,
    // and an excess echoed byte lands there to be caught.
    let mut reply = vec![0u8; plan.batch_len() + 1];
    let work = async {
        let mut seq = 0;
        while plan.more(seq) {
            let sent = plan.pattern.batch(id, seq, plan.batch_len());
            match exchange(&mut stream, sent, &mut reply, &plan, &mut recorder).await {
                Ok(()) => {
                    let messages = plan.pipeline as u64;
                    tally.messages += messages;
                    tally.bytes += sent.len() as u64;
                    recorder.verified(messages, sent.len() as u64);
                    seq += messages;
                }
                Err(failure) => return failure.count(&mut tally, &recorder),
            }
        }
    };
    if plan.bounded(work).await.is_none() {
        tally.stall();
    }
    tally
}

/// Writes `sent` and reads back as many bytes, recording each message's
/// latency as its last byte arrives.
async fn exchange(
    stream: &mut Stream,
    sent: &[u8],
    reply: &mut [u8],
    plan: &Plan,
    recorder: &mut Recorder,
) -> Result<(), Failure> {
    let started = Instant::now();
    stream.write_all(sent).await?;
    let mut got = 0;
    while got < sent.len() {
        let n = stream.read(&mut reply[got..]).await?;
        if n == 0 {
            return Err(Failure::Io);
        }
        let (before, after) = (got / plan.size, (got + n).min(sent.len()) / plan.size);
        if after > before {
            let latency = started.elapsed();
            (before..after).for_each(|_| recorder.latency(latency));
        }
        got += n;
    }
    if got > sent.len() || reply[..got] != *sent {
        let differing = sent
            .chunks(plan.size)
            .zip(reply[..sent.len()].chunks(plan.size))
            .filter(|(out, back)| out != back)
            .count();
        return Err(Failure::Mismatch(differing.max(1) as u64));
    }
    Ok(())
}

/// Datagram ping-pong: one datagram, one reply, on a connected socket. A
/// reply not back within `reply_timeout` is lost (an error) and the flow
/// goes on; a reply to an earlier datagram is late, not a mismatch.
pub(super) async fn ping_pong_datagram(
    socket: DatagramSocket,
    id: usize,
    plan: Arc<Plan>,
    mut recorder: Recorder,
) -> Tally {
    let mut tally = Tally::default();
    let mut reply = vec![0u8; plan.size + 1];
    let work = async {
        let mut seq = 0;
        while plan.more(seq) {
            let sent = plan.pattern.batch(id, seq, plan.size);
            let started = Instant::now();
            let outcome = match socket.send(sent).await {
                Ok(_) => await_reply(&socket, (id, seq), &mut reply, &plan, &mut tally).await,
                Err(_) => Err(Failure::Io),
            };
            book(outcome, started, sent, &mut tally, &mut recorder);
            seq += 1;
        }
    };
    if plan.bounded(work).await.is_none() {
        tally.stall();
    }
    tally
}

/// Waits for the echo of datagram `seq`, skipping (and counting) late
/// replies to earlier ones.
async fn await_reply(
    socket: &DatagramSocket,
    (id, seq): (usize, u64),
    reply: &mut [u8],
    plan: &Plan,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let sent = plan.pattern.batch(id, seq, plan.size);
    let give_up = tokio::time::Instant::now() + plan.reply_timeout;
    loop {
        let n = tokio::time::timeout_at(give_up, socket.recv(reply))
            .await
            .map_err(|_lost| Failure::Io)??;
        if reply[..n] == *sent {
            return Ok(());
        }
        if !is_late(&reply[..n], (id, seq), plan) {
            return Err(Failure::Mismatch(1));
        }
        tally.late += 1;
    }
}

fn is_late(reply: &[u8], (id, seq): (usize, u64), plan: &Plan) -> bool {
    (1..=LATE_WINDOW.min(seq)).any(|back| reply == plan.pattern.batch(id, seq - back, plan.size))
}

/// Bulk: a writer streams the pattern while a reader checks the echo
/// against its position, concurrently. At the byte limit or the deadline the
/// writer half-closes; the echo is complete when the server closes too.
pub(super) async fn bulk(stream: Stream, plan: Arc<Plan>, recorder: Recorder) -> Tally {
    let mut tally = Tally::default();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (mut sent, mut echoed) = (0u64, 0u64);
    let send = async {
        while sent < plan.bulk_bytes && Instant::now() < plan.deadline {
            let len = (plan.bulk_bytes - sent).min(BULK_CHUNK as u64) as usize;
            writer.write_all(plan.pattern.stream(sent, len)).await?;
            sent += len as u64;
        }
        writer.shutdown().await.map_err(Failure::from)
    };
    let receive = verify_stream(&mut reader, &plan.pattern, &mut echoed, &recorder);
    let work = async {
        let outcome = tokio::try_join!(send, receive);
        if let Err(failure) = outcome {
            failure.count(&mut tally, &recorder);
        }
    };
    if plan.bounded(work).await.is_none() {
        tally.stall();
    }
    if echoed < sent && tally.errors + tally.mismatches == 0 {
        tally.errors += 1;
    }
    tally.bytes = echoed;
    tally
}

/// Reads to the end of the stream, checking each byte against the pattern
/// at its position.
async fn verify_stream<R: AsyncRead + Unpin>(
    reader: &mut R,
    pattern: &Pattern,
    echoed: &mut u64,
    recorder: &Recorder,
) -> Result<(), Failure> {
    let mut buf = vec![0u8; BULK_CHUNK];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n] != *pattern.stream(*echoed, n) {
            return Err(Failure::Mismatch(1));
        }
        *echoed += n as u64;
        recorder.verified(0, n as u64);
    }
}

/// Churn: connect, one round trip, half-close, wait for the server's end
/// of stream, repeat. A "message" is one whole connection; its latency runs
/// from the connect to the verified reply.
pub(super) async fn churn(id: usize, plan: Arc<Plan>, mut recorder: Recorder) -> Tally {
    let mut tally = Tally::default();
    let mut reply = vec![0u8; plan.size + 1];
    let work = async {
        let mut seq = 0;
        while plan.more(seq) {
            let sent = plan.pattern.batch(id, seq, plan.size);
            let started = Instant::now();
            let outcome = one_connection(sent, &mut reply, &plan).await;
            book(outcome, started, sent, &mut tally, &mut recorder);
            seq += 1;
        }
    };
    if plan.bounded(work).await.is_none() {
        tally.stall();
    }
    tally
}

async fn one_connection(sent: &[u8], reply: &mut [u8], plan: &Plan) -> Result<(), Failure> {
    let mut stream = transport::connect(&plan.target, &plan.connect)
        .await
        .map_err(|_| Failure::Io)?;
    stream.write_all(sent).await?;
    stream.read_exact(&mut reply[..sent.len()]).await?;
    if reply[..sent.len()] != *sent {
        return Err(Failure::Mismatch(1));
    }
    stream.shutdown().await?;
    match stream.read(reply).await? {
        0 => Ok(()),
        _ => Err(Failure::Mismatch(1)),
    }
}
