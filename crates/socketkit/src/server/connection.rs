//! One accepted connection as a handler sees it: a byte stream with its
//! addresses, byte counters, an idle deadline and a way to stop the server.

use std::future::{poll_fn, Future as _};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::ServerHandle;
use crate::addr::Endpoint;
use crate::tls::Fingerprint;
use crate::transport::{SocketAddress, Stream};

/// After the handler is done, how long the peer gets to read our last bytes
/// and close its side before we drop the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

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
        self.io.idle.as_ref().map(|idle| idle.limit)
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
        until_idle(idle, inner.readable()).await
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
            // On the heap, and only now: an array here would sit in every
            // connection's task for its whole life.
            let mut scratch = vec![0u8; 4096];
            while self.io.read(&mut scratch).await? != 0 {}
            io::Result::Ok(())
        };
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
}

#[derive(Debug)]
struct IdleTimer {
    limit: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Metered {
    fn new(inner: Stream, idle_timeout: Option<Duration>) -> Metered {
        let idle = idle_timeout.map(|limit| {
            let now = Instant::now();
            IdleTimer {
                limit,
                last_activity: now,
                timer: Box::pin(tokio::time::sleep_until(now + limit)),
            }
        });
        Metered {
            inner,
            read: 0,
            written: 0,
            idle,
        }
    }

    fn touch(&mut self) {
        if let Some(idle) = &mut self.idle {
            idle.last_activity = Instant::now();
        }
    }
}

/// Waits for `ready` (a readiness future of the stream) unless the
/// connection has been idle too long, which fails with `TimedOut`.
async fn until_idle(
    idle: &mut Option<IdleTimer>,
    ready: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    tokio::pin!(ready);
    poll_fn(|cx| match ready.as_mut().poll(cx) {
        Poll::Pending => poll_idle(idle, cx).map(Err),
        done => done,
    })
    .await
}

/// Called when the stream is not ready: `Ready` with an error once the
/// connection has been idle too long.
fn poll_idle(idle: &mut Option<IdleTimer>, cx: &mut Context<'_>) -> Poll<io::Error> {
    let Some(idle) = idle else {
        return Poll::Pending;
    };
    loop {
        ready!(idle.timer.as_mut().poll(cx));
        let deadline = idle.last_activity + idle.limit;
        if deadline <= idle.timer.deadline() {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("idle for {:?}", idle.limit),
            ));
        }
        idle.timer.as_mut().reset(deadline);
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read += (buf.filled().len() - before) as u64;
                this.touch();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => poll_idle(&mut this.idle, cx).map(Err),
        }
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.written += n as u64;
                this.touch();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => poll_idle(&mut this.idle, cx).map(Err),
        }
    }

    // A TLS stream's flush writes the records it has buffered: a peer that
    // stops reading stalls it exactly like a write, so it is bounded by the
    // same idle deadline (and so is shutdown, which flushes too).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => poll_idle(&mut this.idle, cx).map(Err),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => poll_idle(&mut this.idle, cx).map(Err),
            done => done,
        }
    }
}
