//! `connect`: relaying a terminal or a pipe to a socket and back.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::codec::{Line, LineReader};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::DatagramSocket;

/// Longest input line in line mode and for datagrams: a UDP payload fits.
pub(crate) const MAX_INPUT_LINE: usize = 64 * 1024;

/// Options of [`relay`].
#[derive(Debug, Clone, Default)]
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
            wait: Duration::from_secs(2),
            line_mode: false,
        }
    }
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
