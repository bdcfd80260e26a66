//! One accepted connection as a handler sees it: a byte stream with its
//! addresses, byte counters, an idle deadline and a way to stop the server;
//! and its two halves ([`Connection::split`], [`Connection::lines`]), which
//! keep the counters and the idle deadline of the whole.

use std::future::{poll_fn, Future as _};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::{Lease, ServerHandle};
use crate::addr::Endpoint;
use crate::codec::LineReader;
#[cfg(feature = "tls")]
use crate::tls::Fingerprint;
use crate::transport::{self, BlockingRead, SocketAddress, Stream};

/// After the handler is done, how long the peer gets to read our last bytes
/// and close its side before we drop the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Read size while discarding the peer's leftovers at close.
const CLOSE_SCRATCH: usize = 4096;

/// An accepted connection: read and write it with tokio's `AsyncReadExt` /
/// `AsyncWriteExt`, or hand it to a codec.
///
/// Reads, writes and flushes fail with `TimedOut` once the connection has
/// been idle (no byte moved either way) for the server's idle timeout.
#[derive(Debug)]
pub struct Connection {
    io: Metered,
    peer: SocketAddress,
    local: Endpoint,
    server: ServerHandle,
    max_line_length: usize,
    /// The proxy's own address, under the PROXY protocol.
    proxy: Option<SocketAddress>,
}

impl Connection {
    pub(crate) fn new(
        stream: Stream,
        peer: SocketAddress,
        local: Endpoint,
        server: ServerHandle,
        idle_timeout: Option<Duration>,
        max_line_length: usize,
    ) -> Connection {
        Connection {
            io: Metered::new(stream, idle_timeout),
            peer,
            local,
            server,
            max_line_length,
            proxy: None,
        }
    }

    pub(crate) fn set_proxy_addr(&mut self, proxy: Option<SocketAddress>) {
        self.proxy = proxy;
    }

    /// The client's address: under the PROXY protocol, the one the
    /// proxy's header gives (the proxy's own when it gives none).
    pub fn peer_addr(&self) -> &SocketAddress {
        &self.peer
    }

    /// The proxy's own address, when the connection came through the PROXY
    /// protocol ([`super::ServerConfig::proxy_protocol`]).
    pub fn proxy_addr(&self) -> Option<&SocketAddress> {
        self.proxy.as_ref()
    }

    /// The listener this connection arrived on.
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// This end's address (for a listener on every interface, the one the
    /// peer reached).
    pub fn local_addr(&self) -> io::Result<SocketAddress> {
        self.io.inner.local_addr()
    }

    /// The server, to ask it to shut down or to see whether it is.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The longest line a line-based service should accept (server config).
    pub fn max_line_length(&self) -> usize {
        self.max_line_length
    }

    /// The fingerprint of the client's certificate, on a mutual-TLS
    /// connection.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn peer_certificate(&self) -> Option<Fingerprint> {
        self.io.inner.peer_certificate()
    }

    /// The client's user id on a Unix socket (SO_PEERCRED). `None` under
    /// the PROXY protocol: the socket's credentials are the proxy's, and
    /// taking them for the client's would let anyone through the proxy pass
    /// as its user.
    pub fn peer_uid(&self) -> Option<u32> {
        if self.proxy.is_some() {
            return None;
        }
        self.io.inner.peer_uid()
    }

    /// The server's idle timeout for this connection, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.io.idle.as_ref().map(|idle| idle.clock.limit)
    }

    /// Threads mode's fast path: the socket is read with blocking system
    /// calls (one per message instead of the event loop's wait and read),
    /// reads and writes bounded by the idle timeout. Once `cut` is set (the
    /// drain deadline's abort, which also shuts the socket down to wake a
    /// blocked read), reads fail with `ConnectionAborted` rather than
    /// report the shutdown as the peer's end of stream. Only for a handler
    /// that waits on nothing but this connection (see
    /// [`StreamHandler::blocking_reads`](super::StreamHandler::blocking_reads)).
    pub(crate) fn block_reads(&mut self, cut: Arc<AtomicBool>) -> io::Result<()> {
        self.io.inner.set_blocking(self.idle_timeout())?;
        self.io.blocking = Some(cut);
        Ok(())
    }

    /// Back to the event loop after [`Connection::block_reads`]. A socket
    /// that cannot go back is shut down (by `set_nonblocking`), so no later
    /// read can block on it.
    pub(crate) fn unblock_reads(&mut self) -> io::Result<()> {
        self.io.blocking = None;
        self.io.inner.set_nonblocking()
    }

    /// The socket's descriptor (`None` under TLS), for the server to shut
    /// a blocked read down at the drain deadline.
    pub(crate) fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.io.inner.raw_fd()
    }

    /// Bytes read from the peer so far.
    pub fn bytes_read(&self) -> u64 {
        self.io.read
    }

    /// Bytes written to the peer so far.
    pub fn bytes_written(&self) -> u64 {
        self.io.written
    }

    /// Waits until the peer has sent something (or closed), holding no
    /// buffer meanwhile: services read into a buffer they take only then.
    /// Fails with `TimedOut` like a read once the idle timeout passes.
    pub async fn readable(&mut self) -> io::Result<()> {
        let Metered { inner, idle, .. } = &mut self.io;
        until_idle(idle.as_mut().map(IdleTimer::parts), inner.readable()).await
    }

    /// A read half and a write half that can be used at once (reading in
    /// one branch of a `select!` while writing in another) and that still
    /// count bytes and share the idle deadline: a connection is idle only
    /// when neither half moves a byte. TCP and Unix streams split without
    /// a lock; a TLS session is one state both directions update, so its
    /// halves take turns on it.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        let Metered {
            inner,
            read,
            written,
            idle,
            blocking,
        } = &mut self.io;
        let (reader, writer) = inner.split();
        let (read_idle, write_idle) = match idle {
            Some(idle) => {
                // The write half gets its own timer (the read half keeps
                // the connection's): each waits on its own, both stamp
                // the one activity clock.
                let deadline = idle.clock.deadline();
                let clock = &idle.clock;
                let write_timer = Box::pin(tokio::time::sleep_until(deadline));
                (
                    Some((clock, HalfTimer::Borrowed(&mut idle.timer))),
                    Some((clock, HalfTimer::Owned(write_timer))),
                )
            }
            None => (None, None),
        };
        (
            ReadHalf {
                inner: reader,
                count: read,
                idle: read_idle,
                blocking: blocking.as_deref(),
            },
            WriteHalf {
                inner: writer,
                count: written,
                idle: write_idle,
            },
        )
    }

    /// Lines from the peer, each at most [`Connection::max_line_length`]
    /// bytes (a longer one is [`Line::TooLong`](crate::codec::Line), and the
    /// connection goes on), and the write half to answer them:
    ///
    /// ```no_run
    /// # use socketkit::codec::Line;
    /// # use tokio::io::AsyncWriteExt;
    /// # async fn f(conn: &mut socketkit::server::Connection) -> socketkit::Result<()> {
    /// let (mut lines, mut out) = conn.lines();
    /// while let Some(Line::Text(line)) = lines.next_line().await? {
    ///     out.write_all(&line).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lines(&mut self) -> (LineReader<ReadHalf<'_>>, WriteHalf<'_>) {
        let limit = self.max_line_length;
        let (reader, writer) = self.split();
        (LineReader::new(reader, limit), writer)
    }

    /// Ends the connection without losing data in flight: flush, send FIN,
    /// then read and discard until the peer closes too (bounded by
    /// [`CLOSE_LINGER`] and by `abort`). Closing with unread bytes in the
    /// receive queue would make the kernel send a reset, which can destroy
    /// our last reply before the peer reads it.
    pub(crate) async fn close(&mut self, abort: &CancellationToken) {
        let goodbye = async {
            self.io.flush().await?;
            self.io.shutdown().await?;
            // The thread's relay buffer, lent for each read: an array here
            // would sit in every connection's task for its whole life, and
            // a fresh one would be an allocation per connection.
            while poll_fn(|cx| Lease::poll_read(&mut self.io, cx, CLOSE_SCRATCH))
                .await?
                .is_some()
            {}
            io::Result::Ok(())
        };
        let mut goodbye = std::pin::pin!(goodbye);
        // Most peers have closed their side by now (the handler saw their
        // end of stream): then the goodbye is done at its first poll, and
        // no linger timer is armed for it.
        if poll_fn(|cx| Poll::Ready(goodbye.as_mut().poll(cx)))
            .await
            .is_ready()
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::timeout(CLOSE_LINGER, goodbye) => {}
            () = abort.cancelled() => {}
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The read half of a [`Connection`] (see [`Connection::split`]).
#[derive(Debug)]
pub struct ReadHalf<'a> {
    inner: transport::ReadHalf<'a>,
    /// The connection's count of bytes read.
    count: &'a mut u64,
    idle: Option<(&'a IdleClock, HalfTimer<'a>)>,
    /// The connection reads in blocking mode: its cut flag.
    blocking: Option<&'a AtomicBool>,
}

/// The write half of a [`Connection`] (see [`Connection::split`]);
/// `shutdown` sends FIN and leaves the read half open.
#[derive(Debug)]
pub struct WriteHalf<'a> {
    inner: transport::WriteHalf<'a>,
    /// The connection's count of bytes written.
    count: &'a mut u64,
    idle: Option<(&'a IdleClock, HalfTimer<'a>)>,
}

/// A half's idle timer: the read half borrows the connection's, the write
/// half has its own.
#[derive(Debug)]
enum HalfTimer<'a> {
    Borrowed(&'a mut Pin<Box<Sleep>>),
    Owned(Pin<Box<Sleep>>),
}

impl HalfTimer<'_> {
    fn get(&mut self) -> &mut Pin<Box<Sleep>> {
        match self {
            HalfTimer::Borrowed(timer) => timer,
            HalfTimer::Owned(timer) => timer,
        }
    }
}

/// The idle view of one half: its clock and its timer.
fn half_parts<'b>(
    idle: &'b mut Option<(&IdleClock, HalfTimer<'_>)>,
) -> Option<(&'b IdleClock, &'b mut Pin<Box<Sleep>>)> {
    idle.as_mut().map(|(clock, timer)| (&**clock, timer.get()))
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let idle = half_parts(&mut this.idle);
        poll_read_metered(&mut this.inner, this.count, idle, this.blocking, cx, buf)
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let idle = half_parts(&mut this.idle);
        poll_write_metered(&mut this.inner, this.count, idle, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        unless_idle(flushed, half_parts(&mut this.idle), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let shut = Pin::new(&mut this.inner).poll_shutdown(cx);
        unless_idle(shut, half_parts(&mut this.idle), cx)
    }
}

/// A stream that counts bytes and enforces the idle timeout.
///
/// Hand-written rather than tokio-io-timeout because it also counts, and
/// because it re-arms its timer lazily: progress only stamps `last_activity`;
/// the timer is reset when it fires early. Resetting a tokio timer on every
/// read would touch the timer wheel once per read.
#[derive(Debug)]
struct Metered {
    inner: Stream,
    read: u64,
    written: u64,
    idle: Option<IdleTimer>,
    /// The socket is in blocking mode, with its cut flag (see
    /// [`Connection::block_reads`]).
    blocking: Option<Arc<AtomicBool>>,
}

#[derive(Debug)]
struct IdleTimer {
    clock: IdleClock,
    timer: Pin<Box<Sleep>>,
}

impl IdleTimer {
    fn parts(&mut self) -> (&IdleClock, &mut Pin<Box<Sleep>>) {
        (&self.clock, &mut self.timer)
    }
}

/// When a byte last moved. An atomic offset from `start` rather than an
/// `Instant`, so the two halves of a split connection can both stamp it
/// through shared references, without a lock.
#[derive(Debug)]
struct IdleClock {
    limit: Duration,
    start: Instant,
    /// Nanoseconds from `start` to the last activity.
    last_activity: AtomicU64,
}

impl IdleClock {
    fn touch(&self) {
        // Saturating: u64 nanoseconds last 584 years.
        let since = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_activity.store(since, Ordering::Relaxed);
    }

    /// When the connection will have been idle for `limit`.
    fn deadline(&self) -> Instant {
        let since = Duration::from_nanos(self.last_activity.load(Ordering::Relaxed));
        self.start + since + self.limit
    }
}

impl Metered {
    fn new(inner: Stream, idle_timeout: Option<Duration>) -> Metered {
        let idle = idle_timeout.map(|limit| {
            let now = Instant::now();
            IdleTimer {
                clock: IdleClock {
                    limit,
                    start: now,
                    last_activity: AtomicU64::new(0),
                },
                timer: Box::pin(tokio::time::sleep_until(now + limit)),
            }
        });
        Metered {
            inner,
            read: 0,
            written: 0,
            idle,
            blocking: None,
        }
    }
}

/// Waits for `ready` (a readiness future of the stream) unless the
/// connection has been idle too long, which fails with `TimedOut`.
async fn until_idle(
    mut idle: Option<(&IdleClock, &mut Pin<Box<Sleep>>)>,
    ready: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    tokio::pin!(ready);
    poll_fn(|cx| match ready.as_mut().poll(cx) {
        Poll::Pending => poll_idle(idle.as_mut().map(|(c, t)| (&**c, &mut **t)), cx).map(Err),
        done => done,
    })
    .await
}

/// Called when the stream is not ready: `Ready` with an error once the
/// connection has been idle too long.
fn poll_idle(
    idle: Option<(&IdleClock, &mut Pin<Box<Sleep>>)>,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    let Some((clock, timer)) = idle else {
        return Poll::Pending;
    };
    loop {
        ready!(timer.as_mut().poll(cx));
        let deadline = clock.deadline();
        if deadline <= timer.deadline() {
            return Poll::Ready(idle_error(clock.limit));
        }
        timer.as_mut().reset(deadline);
    }
}

fn aborted_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "aborted at the drain deadline",
    )
}

fn idle_error(limit: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("idle for {limit:?}"))
}

impl AsyncRead for Metered {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let idle = this.idle.as_mut().map(IdleTimer::parts);
        poll_read_metered(
            &mut this.inner,
            &mut this.read,
            idle,
            this.blocking.as_deref(),
            cx,
            buf,
        )
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let idle = this.idle.as_mut().map(IdleTimer::parts);
        poll_write_metered(&mut this.inner, &mut this.written, idle, cx, buf)
    }

    // A TLS stream's flush writes the records it has buffered: a peer that
    // stops reading stalls it exactly like a write, so it is bounded by the
    // same idle deadline (and so is shutdown, which flushes too).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        unless_idle(flushed, this.idle.as_mut().map(IdleTimer::parts), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let shut = Pin::new(&mut this.inner).poll_shutdown(cx);
        unless_idle(shut, this.idle.as_mut().map(IdleTimer::parts), cx)
    }
}

/// A read that counts its bytes and stamps the activity clock; while the
/// stream is not ready, the idle deadline may end it with `TimedOut`. One
/// body for the whole connection and its read half.
///
/// In blocking mode the read waits in the kernel; the socket's timeout is
/// the idle limit, and a read starts after the last byte moved, so its
/// timing out is the idle deadline passing (later by whatever a handler
/// spent between its last write and this read). Once the connection is cut
/// at the drain deadline, every read fails with `ConnectionAborted`, even
/// one that found bytes the peer had queued: nothing is served after it.
fn poll_read_metered(
    inner: &mut (impl AsyncRead + BlockingRead + Unpin),
    count: &mut u64,
    idle: Option<(&IdleClock, &mut Pin<Box<Sleep>>)>,
    blocking: Option<&AtomicBool>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    let read = match blocking {
        Some(cut) => {
            // A cut socket is shut down, so this returns at once; the flag,
            // checked after, decides what the read means.
            let read = inner.read_blocking(buf);
            if cut.load(Ordering::Acquire) {
                buf.set_filled(before);
                return Poll::Ready(Err(aborted_error()));
            }
            Poll::Ready(read.map_err(|e| match (&idle, e.kind()) {
                (Some((clock, _)), io::ErrorKind::WouldBlock) => idle_error(clock.limit),
                _ => e,
            }))
        }
        None => Pin::new(inner).poll_read(cx, buf),
    };
    if let Poll::Ready(Ok(())) = read {
        *count += (buf.filled().len() - before) as u64;
        if let Some((clock, _)) = idle {
            clock.touch();
        }
        return read;
    }
    unless_idle(read, idle, cx)
}

/// [`poll_read_metered`] for writes.
fn poll_write_metered(
    inner: &mut (impl AsyncWrite + Unpin),
    count: &mut u64,
    idle: Option<(&IdleClock, &mut Pin<Box<Sleep>>)>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let written = Pin::new(inner).poll_write(cx, buf);
    if let Poll::Ready(Ok(n)) = written {
        *count += n as u64;
        if let Some((clock, _)) = idle {
            clock.touch();
        }
        return written;
    }
    unless_idle(written, idle, cx)
}

/// A stream operation's result, except that one still pending fails with
/// `TimedOut` once the idle deadline has passed.
fn unless_idle<T>(
    poll: Poll<io::Result<T>>,
    idle: Option<(&IdleClock, &mut Pin<Box<Sleep>>)>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    match poll {
        Poll::Pending => poll_idle(idle, cx).map(Err),
        done => done,
    }
}
