//! `connect`: relaying a terminal or a pipe to a socket and back.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::codec::{Line, LineReader};
use crate::error::{Error, ErrorKind, Result};
use crate::server::Lease;
use crate::transport::DatagramSocket;

/// Longest input line in line mode and for datagrams: a UDP payload fits.
pub(crate) const MAX_INPUT_LINE: usize = 64 * 1024;

/// Options of [`relay`]. Default: bytes as they come, no timeouts, the
/// relay ends at the peer's close.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RelayOptions {
    /// Send line endings as CRLF (for line protocols such as SMTP or HTTP).
    pub crlf: bool,
    /// Give up when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// The textbook client: send input line by line, skip empty lines, and
    /// end (as at end of input) on a line `exit` or `bye`.
    pub line_mode: bool,
    /// When the peer closes first, input is still sent while it keeps
    /// coming, so the peer's FIN never cuts a file short; the relay ends
    /// when the input ends or has been quiet this long (a terminal nobody
    /// types into). Zero ends the relay at the peer's close, as nc does.
    pub input_grace: Duration,
}

/// What a relay moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayReport {
    /// Bytes sent to the peer.
    pub sent: u64,
    /// Bytes received from the peer.
    pub received: u64,
}

/// Relays `input` to the stream and the stream to `output`, both ways at
/// once, binary-safe. The stream is any byte stream: a connected
/// [`Stream`](crate::transport::Stream), an accepted
/// [`Connection`](crate::server::Connection), or either wrapped (say in a
/// [`Tapped`](crate::hexdump::Tapped)). At end of input the stream is
/// half-closed and the peer's data is still copied until it closes. If the
/// peer closes first, input still flows until it ends or goes quiet for
/// [`RelayOptions::input_grace`].
/// A peer that stops reading our input does not fail the relay: its reply is
/// still delivered.
pub async fn relay<S, I, O>(
    stream: S,
    input: I,
    output: O,
    options: &RelayOptions,
) -> Result<RelayReport>
where
    S: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (reader, writer) = tokio::io::split(stream);
    let upload = upload(input, writer, options, &activity);
    let download = download(reader, output, &activity);
    tokio::pin!(upload, download);
    let idle = activity.watch(options.idle_timeout);
    tokio::pin!(idle);
    let (sent, received) = tokio::select! {
        received = &mut download => {
            let received = received?;
            // The peer's FIN ends only its direction: input that keeps
            // coming still goes out (a half-closing peer reads on); input
            // that stays quiet for the grace (a terminal) ends the relay.
            let quiet = activity.watch(Some(options.input_grace));
            tokio::select! {
                sent = &mut upload => match sent {
                    Ok(sent) => (sent, received),
                    Err(e) if is_peer_gone(&e) => (0, received),
                    Err(e) => return Err(e.into()),
                },
                _ = quiet => (0, received),
                error = &mut idle => return Err(error),
            }
        }
        sent = &mut upload => {
            let sent = match sent {
                Ok(sent) => sent,
                Err(e) if is_peer_gone(&e) => 0,
                Err(e) => return Err(e.into()),
            };
            tokio::select! {
                received = &mut download => (sent, received?),
                error = &mut idle => return Err(error),
            }
        }
        error = &mut idle => return Err(error),
    };
    Ok(RelayReport { sent, received })
}

fn is_peer_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

async fn upload<I, W>(
    input: I,
    mut writer: W,
    options: &RelayOptions,
    activity: &Activity,
) -> io::Result<u64>
where
    I: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut sent = 0;
    if options.line_mode {
        let mut lines = LineReader::new(input, MAX_INPUT_LINE);
        let ending: &[u8] = if options.crlf { b"\r\n" } else { b"\n" };
        while let Some(line) = lines.next_line().await? {
            let Line::Text(line) = line else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("input line longer than {MAX_INPUT_LINE} bytes"),
                ));
            };
            if line.is_empty() {
                continue;
            }
            writer.write_all(&line).await?;
            writer.write_all(ending).await?;
            sent += (line.len() + ending.len()) as u64;
            activity.touch();
            if matches!(&line[..], b"exit" | b"bye") {
                break;
            }
        }
    } else {
        let mut input = input;
        let mut buf = vec![0u8; 16 * 1024];
        let mut crlf = CrlfWriter::default();
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            sent += if options.crlf {
                crlf.write(&mut writer, &buf[..n]).await?
            } else {
                writer.write_all(&buf[..n]).await?;
                n as u64
            };
            activity.touch();
        }
    }
    writer.shutdown().await?;
    Ok(sent)
}

/// Turns bare `\n` into `\r\n`, leaving existing `\r\n` alone, across chunk
/// boundaries.
#[derive(Default)]
struct CrlfWriter {
    last_was_cr: bool,
    out: Vec<u8>,
}

impl CrlfWriter {
    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        chunk: &[u8],
    ) -> io::Result<u64> {
        self.out.clear();
        for &byte in chunk {
            if byte == b'\n' && !self.last_was_cr {
                self.out.push(b'\r');
            }
            self.out.push(byte);
            self.last_was_cr = byte == b'\r';
        }
        writer.write_all(&self.out).await?;
        Ok(self.out.len() as u64)
    }
}

async fn download<R, O>(mut reader: R, mut output: O, activity: &Activity) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut received = 0;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            output.flush().await?;
            return Ok(received);
        }
        output.write_all(&buf[..n]).await?;
        output.flush().await?;
        received += n as u64;
        activity.touch();
    }
}

/// The last time a byte moved, shared by both directions of a relay.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes with a timeout error once nothing moved for `limit`; never
    /// completes without a limit.
    async fn watch(&self, limit: Option<Duration>) -> Error {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if last + limit <= Instant::now() {
                return Error::new(
                    ErrorKind::Timeout,
                    format!("no data either way for {limit:?}"),
                );
            }
            tokio::time::sleep_until(last + limit).await;
        }
    }
}

/// Options of [`exchange_datagrams`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DatagramOptions {
    /// After the input ends, how long to wait for replies still owed. The
    /// exchange ends earlier once every datagram sent got a reply.
    /// Default 2 s.
    pub wait: Duration,
    /// The textbook client: skip empty lines; `exit` or `bye` (sent) ends.
    pub line_mode: bool,
}

impl Default for DatagramOptions {
    fn default() -> DatagramOptions {
        DatagramOptions {
            wait: DatagramOptions::DEFAULT_WAIT,
            line_mode: false,
        }
    }
}

impl DatagramOptions {
    /// Default of [`wait`](DatagramOptions::wait): 2 s.
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);
}

/// Sends each input line (without its line ending) as one datagram and
/// writes each reply to `output` on a line of its own.
pub async fn exchange_datagrams<I, O>(
    socket: &DatagramSocket,
    input: I,
    mut output: O,
    options: &DatagramOptions,
) -> Result<RelayReport>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let mut lines = LineReader::new(input, MAX_INPUT_LINE);
    let mut buf = vec![0u8; MAX_INPUT_LINE + 1];
    let mut report = RelayReport::default();
    let (mut outstanding, mut input_done) = (0u64, false);
    let mut deadline = Instant::now();
    let failed = |e: io::Error| {
        let kind = match e.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::Connect,
            _ => ErrorKind::Io,
        };
        Error::with_source(kind, "datagram exchange failed", e)
    };
    loop {
        tokio::select! {
            line = lines.next_line(), if !input_done => match line.map_err(failed)? {
                Some(Line::Text(line)) if options.line_mode && line.is_empty() => {}
                Some(Line::Text(line)) => {
                    socket.send(&line).await.map_err(failed)?;
                    report.sent += line.len() as u64;
                    outstanding += 1;
                    if options.line_mode && matches!(&line[..], b"exit" | b"bye") {
                        input_done = true;
                        deadline = Instant::now() + options.wait;
                    }
                }
                Some(Line::TooLong) => return Err(Error::new(
                    ErrorKind::Io,
                    format!("input line longer than a datagram ({MAX_INPUT_LINE} bytes)"),
                )),
                None => {
                    input_done = true;
                    deadline = Instant::now() + options.wait;
                }
            },
            received = socket.recv(&mut buf) => {
                let n = received.map_err(failed)?;
                write_reply(&mut output, &buf[..n]).await.map_err(failed)?;
                report.received += n as u64;
                outstanding = outstanding.saturating_sub(1);
                deadline = Instant::now() + options.wait;
            }
            () = tokio::time::sleep_until(deadline), if input_done => break,
        }
        if input_done && outstanding == 0 {
            break;
        }
    }
    Ok(report)
}

/// Writes one datagram's payload to `output` on a line of its own.
pub(crate) async fn write_reply<O: AsyncWrite + Unpin>(
    output: &mut O,
    reply: &[u8],
) -> io::Result<()> {
    output.write_all(reply).await?;
    if reply.last() != Some(&b'\n') {
        output.write_all(b"\n").await?;
    }
    output.flush().await
}

/// Options of [`both_ways`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BothWaysOptions {
    /// Give up when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// Buffer per direction while bytes are in flight (default 16 KiB:
    /// 8–32 KiB move the most, see BENCHMARKS.md); an idle direction holds
    /// none.
    pub buffer_size: usize,
}

impl Default for BothWaysOptions {
    fn default() -> BothWaysOptions {
        BothWaysOptions {
            idle_timeout: None,
            buffer_size: BothWaysOptions::DEFAULT_BUFFER_SIZE,
        }
    }
}

impl BothWaysOptions {
    /// Default of [`buffer_size`](BothWaysOptions::buffer_size): 16 KiB.
    pub const DEFAULT_BUFFER_SIZE: usize = crate::server::RELAY_BUFFER;
}

/// What [`both_ways`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BothWaysReport {
    /// Bytes read from `a` and written to `b`.
    pub a_to_b: u64,
    /// Bytes read from `b` and written to `a`.
    pub b_to_a: u64,
}

/// Relays two duplex streams into each other, symmetrically: each side's end
/// of stream is passed on as a shutdown of the other side's write half, on
/// its own, so a half-close works through the relay; it ends when both
/// directions have ended. Fails on an error either way, or with a timeout
/// once no byte moved either way for `idle_timeout` (one timer for both).
///
/// The copying is tokio's `copy_bidirectional` done again for one reason:
/// memory. A direction takes its buffer (a `Lease`) only for a read that
/// finds bytes and gives it back once they are written, so an idle relay
/// holds no buffer at all and a busy thread reuses one.
pub async fn both_ways<A, B>(
    mut a: A,
    mut b: B,
    options: &BothWaysOptions,
) -> Result<BothWaysReport>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let size = options.buffer_size.max(1);
    let (mut a_to_b, mut b_to_a) = (Direction::new(size), Direction::new(size));
    let copy = std::future::poll_fn(|cx| {
        let there = a_to_b.poll(cx, &mut a, &mut b, &activity)?;
        let back = b_to_a.poll(cx, &mut b, &mut a, &activity)?;
        match (there, back) {
            (Poll::Ready(()), Poll::Ready(())) => Poll::Ready(io::Result::Ok(())),
            _ => Poll::Pending,
        }
    });
    let idle = activity.watch(options.idle_timeout);
    tokio::select! {
        copied = copy => {
            copied.map_err(|e| Error::with_source(ErrorKind::Io, "relay failed", e))?;
            Ok(BothWaysReport { a_to_b: a_to_b.moved, b_to_a: b_to_a.moved })
        }
        error = idle => Err(error),
    }
}

/// One direction of [`both_ways`]: read, write it all, repeat; at end of
/// stream shut the writer down.
struct Direction {
    size: usize,
    /// Bytes read and not yet all written, and how many are written.
    pending: Option<(Lease, usize)>,
    /// Written bytes not yet flushed (TLS may hold them in a record).
    unflushed: bool,
    state: State,
    moved: u64,
}

#[derive(PartialEq, Eq)]
enum State {
    Copying,
    ShuttingDown,
    Done,
}

impl Direction {
    fn new(size: usize) -> Direction {
        Direction {
            size,
            pending: None,
            unflushed: false,
            state: State::Copying,
            moved: 0,
        }
    }

    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
        activity: &Activity,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            match self.state {
                State::Done => return Poll::Ready(Ok(())),
                State::ShuttingDown => {
                    ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                    self.state = State::Done;
                }
                State::Copying => {
                    if let Some((buf, written)) = &mut self.pending {
                        while *written < buf.0.len() {
                            let n =
                                ready!(Pin::new(&mut *writer).poll_write(cx, &buf.0[*written..]))?;
                            if n == 0 {
                                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                            }
                            *written += n;
                            // A slow reader still draining is not idle.
                            activity.touch();
                            self.unflushed = true;
                        }
                        // All written: the buffer goes back before the next read.
                        self.pending = None;
                    }
                    match Lease::poll_read(reader, cx, self.size) {
                        Poll::Pending => {
                            // Nothing to read: flush what was written (the
                            // buffer is already back in the pool).
                            if self.unflushed {
                                ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                                self.unflushed = false;
                            }
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(None)) => self.state = State::ShuttingDown,
                        Poll::Ready(Ok(Some(buf))) => {
                            self.moved += buf.0.len() as u64;
                            activity.touch();
                            self.pending = Some((buf, 0));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod both_ways_tests {
    use super::*;

    #[tokio::test]
    async fn half_close_passes_each_way_on_its_own() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let relay = tokio::spawn(async move { both_ways(a, b, &BothWaysOptions::default()).await });
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
        // The other direction still flows after the first one ended.
        server.write_all(b"pong!").await.unwrap();
        server.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong!");
        let report = relay.await.unwrap().unwrap();
        assert_eq!((report.a_to_b, report.b_to_a), (4, 5));
    }

    #[tokio::test]
    async fn idle_both_ways_times_out() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, _server) = tokio::io::duplex(64);
        let options = BothWaysOptions {
            idle_timeout: Some(Duration::from_millis(200)),
            ..BothWaysOptions::default()
        };
        let relay = tokio::spawn(async move { both_ways(a, b, &options).await });
        client.write_all(b"x").await.unwrap();
        let error = relay.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
    }
}
