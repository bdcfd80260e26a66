//! Transports: the sockets of each family, and nothing above them.
//!
//! This layer turns an [`Endpoint`](crate::addr::Endpoint) into bound
//! listeners and datagram sockets ([`bind`]) or into a connected stream
//! ([`connect`]), sets socket options through socket2 (backlog, SO_REUSEADDR,
//! SO_REUSEPORT, IPV6_V6ONLY, TCP_NODELAY) and hides the TCP/Unix difference
//! behind [`Stream`]. A stream may be opened through a SOCKS5 or HTTP
//! proxy ([`proxy`]). It knows nothing of handlers, limits or shutdown; the
//! server layer drives it.

mod connect;
mod listen;
#[cfg(feature = "proxy-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-client")))]
pub mod proxy;

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::SockRef;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
#[cfg(feature = "tls")]
use tokio_rustls::TlsStream;

#[cfg(feature = "tls")]
use crate::tls::Fingerprint;

#[cfg(feature = "proxy")]
pub(crate) use connect::connect_resolved;
#[cfg(feature = "tls")]
pub use connect::start_tls;
pub use connect::{connect, connect_datagram, ConnectOptions};
pub use listen::{bind, BindOptions, BoundSocket, DatagramSocket, Listener};
#[cfg(feature = "proxy-client")]
pub use proxy::{ProxyError, ProxyScheme, ProxyUrl};

/// The error for a `tls://` endpoint in a build without the `tls` feature:
/// the address parses (it is valid), but this build cannot serve or reach it.
#[cfg(not(feature = "tls"))]
pub(crate) fn tls_unsupported(endpoint: &crate::addr::Endpoint) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::Unsupported,
        format!("{endpoint}: this build of socketkit has no TLS (the `tls` feature is off)"),
    )
}

/// The address of one end of a connection or datagram: an internet address or
/// a Unix socket path (Unix clients are often unnamed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    /// An IPv4 or IPv6 socket address.
    Inet(SocketAddr),
    /// A Unix-domain socket, `None` when the socket is unnamed.
    Unix(Option<PathBuf>),
}

impl SocketAddress {
    fn from_unix(addr: &tokio::net::unix::SocketAddr) -> SocketAddress {
        SocketAddress::Unix(addr.as_pathname().map(Path::to_path_buf))
    }

    /// The internet address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            SocketAddress::Inet(addr) => Some(*addr),
            SocketAddress::Unix(_) => None,
        }
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Inet(addr) => write!(f, "{addr}"),
            // A client picks its own socket's path: a newline or an escape
            // in it must not forge or garble a log line.
            SocketAddress::Unix(Some(path)) => {
                f.write_str("unix:")?;
                for c in path.display().to_string().chars() {
                    if c.is_control() {
                        write!(f, "{}", c.escape_default())?;
                    } else {
                        write!(f, "{c}")?;
                    }
                }
                Ok(())
            }
            SocketAddress::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// A connected byte stream of any stream transport.
///
/// An enum rather than a boxed trait object: dispatch is a predictable branch
/// on the data path, and the type stays `Debug` and `Unpin`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A TLS session over TCP, client or server side (boxed: it carries
    /// the session state, kilobytes of it).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    Tls(Box<TlsStream<TcpStream>>),
    /// A Unix-domain stream connection.
    Unix(UnixStream),
}

impl Stream {
    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddress> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(SocketAddress::Inet),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0.peer_addr().map(SocketAddress::Inet),
            Stream::Unix(s) => s.peer_addr().map(|a| SocketAddress::from_unix(&a)),
        }
    }

    /// The fingerprint of the certificate the peer presented over TLS
    /// (always for a server; for a client only under mutual TLS).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn peer_certificate(&self) -> Option<Fingerprint> {
        let Stream::Tls(tls) = self else { return None };
        let certificates = match tls.as_ref() {
            TlsStream::Client(client) => client.get_ref().1.peer_certificates(),
            TlsStream::Server(server) => server.get_ref().1.peer_certificates(),
        };
        certificates?.first().map(|leaf| Fingerprint::of(leaf))
    }

    /// The user id of the process at the other end of a Unix socket
    /// (SO_PEERCRED), which the kernel vouches for.
    pub fn peer_uid(&self) -> Option<u32> {
        match self {
            Stream::Unix(s) => s.peer_cred().ok().map(|cred| cred.uid()),
            _ => None,
        }
    }

    /// The address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddress> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(SocketAddress::Inet),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0.local_addr().map(SocketAddress::Inet),
            Stream::Unix(s) => s.local_addr().map(|a| SocketAddress::from_unix(&a)),
        }
    }

    /// Registers the socket with the current runtime's event loop instead of
    /// the one it was opened on (for a thread that runs its own runtime).
    /// The descriptor is duplicated and the original closed, so nothing
    /// about the connection changes but who is woken when it is ready.
    pub fn move_to_current_runtime(&mut self) -> io::Result<()> {
        *self = match self {
            Stream::Tcp(s) => {
                let fd = s.as_fd().try_clone_to_owned()?;
                Stream::Tcp(TcpStream::from_std(std::net::TcpStream::from(fd))?)
            }
            Stream::Unix(s) => {
                let fd = s.as_fd().try_clone_to_owned()?;
                Stream::Unix(UnixStream::from_std(std::os::unix::net::UnixStream::from(
                    fd,
                ))?)
            }
            // The server moves a connection before its TLS handshake; a
            // session already running stays where it is.
            #[cfg(feature = "tls")]
            Stream::Tls(_) => return Ok(()),
        };
        Ok(())
    }

    /// The socket of a plain TCP or Unix stream; `None` under TLS, whose
    /// bytes go through the session.
    fn socket(&self) -> Option<SockRef<'_>> {
        match self {
            Stream::Tcp(s) => Some(SockRef::from(s)),
            Stream::Unix(s) => Some(SockRef::from(s)),
            #[cfg(feature = "tls")]
            Stream::Tls(_) => None,
        }
    }

    /// The descriptor of a plain TCP or Unix stream (`None` under TLS).
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.socket().map(|s| s.as_raw_fd())
    }

    /// Puts a plain TCP or Unix socket in blocking mode, each read and
    /// write bounded by `timeout` (after which it fails with `WouldBlock`).
    /// For a thread that serves this one connection: a blocking read waits
    /// and reads in one system call where the event loop needs two. Only
    /// [`read_blocking`](BlockingRead::read_blocking) should read a blocking
    /// socket: tokio reads only when its readiness says so, which a blocking
    /// read leaves stale. `Unsupported` under TLS.
    pub(crate) fn set_blocking(&self, timeout: Option<Duration>) -> io::Result<()> {
        let socket = self.socket().ok_or_else(cannot_block)?;
        // A zero timeout means "none" to the kernel; the event loop would
        // time such a connection out at once, and so must this.
        let timeout = timeout.map(|t| t.max(Duration::from_micros(1)));
        socket.set_read_timeout(timeout)?;
        socket.set_write_timeout(timeout)?;
        socket.set_nonblocking(false)
    }

    /// Back to non-blocking mode after [`Stream::set_blocking`]. A socket
    /// that cannot go back is shut down both ways, so that no later read
    /// or write can block on it.
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        let socket = self.socket().ok_or_else(cannot_block)?;
        socket.set_nonblocking(true).inspect_err(|_| {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        })
    }

    /// Waits until a read would find bytes (or the end of the stream)
    /// without holding a buffer, so an idle connection needs none. It may
    /// wake spuriously; a stream that buffers internally (as TLS will)
    /// returns at once and its next read waits instead.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
            // TLS may hold decrypted bytes already: let the read wait.
            #[cfg(feature = "tls")]
            Stream::Tls(_) => Ok(()),
        }
    }

    /// Borrowed read and write halves that can be polled independently
    /// (say, one in each branch of a `select!`). TCP and Unix streams split
    /// without a lock; a TLS session is one state machine both directions
    /// update, so its halves take turns on it through tokio's `split`.
    pub(crate) fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(s.as_mut());
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// The read half of a split [`Stream`].
#[derive(Debug)]
pub(crate) enum ReadHalf<'a> {
    Tcp(tokio::net::tcp::ReadHalf<'a>),
    Unix(tokio::net::unix::ReadHalf<'a>),
    #[cfg(feature = "tls")]
    Tls(tokio::io::ReadHalf<&'a mut TlsStream<TcpStream>>),
}

/// A read straight from the socket, bypassing the event loop, for a
/// stream put in blocking mode by [`Stream::set_blocking`]: it waits in the
/// kernel until bytes come, the peer closes, or the socket's timeout
/// passes (`WouldBlock`).
pub(crate) trait BlockingRead {
    fn read_blocking(&self, buf: &mut ReadBuf<'_>) -> io::Result<()>;
}

impl BlockingRead for Stream {
    fn read_blocking(&self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        read_socket(self.socket(), buf)
    }
}

impl BlockingRead for ReadHalf<'_> {
    fn read_blocking(&self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let socket = match self {
            ReadHalf::Tcp(s) => Some(SockRef::from(s.as_ref())),
            ReadHalf::Unix(s) => Some(SockRef::from(s.as_ref())),
            #[cfg(feature = "tls")]
            ReadHalf::Tls(_) => None,
        };
        read_socket(socket, buf)
    }
}

fn cannot_block() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a TLS stream cannot read in blocking mode",
    )
}

fn read_socket(socket: Option<SockRef<'_>>, buf: &mut ReadBuf<'_>) -> io::Result<()> {
    let socket = socket.ok_or_else(cannot_block)?;
    // A blocking `recv` of nothing would wait for bytes it cannot take.
    if buf.remaining() == 0 {
        return Ok(());
    }
    loop {
        // SAFETY: `recv` only writes into the slice, never de-initialises
        // it, and what it reports as received has been initialised.
        let unfilled: &mut [MaybeUninit<u8>] = unsafe { buf.unfilled_mut() };
        match socket.recv(unfilled) {
            Ok(n) => {
                // SAFETY: the kernel initialised the `n` bytes it received.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The write half of a split [`Stream`]; shutting it down sends FIN.
#[derive(Debug)]
pub(crate) enum WriteHalf<'a> {
    Tcp(tokio::net::tcp::WriteHalf<'a>),
    Unix(tokio::net::unix::WriteHalf<'a>),
    #[cfg(feature = "tls")]
    Tls(tokio::io::WriteHalf<&'a mut TlsStream<TcpStream>>),
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Unix(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            ReadHalf::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

macro_rules! dispatch_write {
    ($self:ident, $s:ident => $call:expr) => {
        match $self.get_mut() {
            WriteHalf::Tcp($s) => $call,
            WriteHalf::Unix($s) => $call,
            #[cfg(feature = "tls")]
            WriteHalf::Tls($s) => $call,
        }
    };
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        dispatch_write!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch_write!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch_write!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $call,
            #[cfg(feature = "tls")]
            Stream::Tls($s) => $call,
            Stream::Unix($s) => $call,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_flush(cx))
    }

    /// Half-close: sends FIN (shutdown of the write side) and keeps reading open.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::SocketAddress;

    #[test]
    fn a_unix_peer_path_cannot_forge_a_log_line() {
        let path = std::path::PathBuf::from("/tmp/x\n2026-01-01 INFO forged\u{1b}[2J");
        let shown = SocketAddress::Unix(Some(path)).to_string();
        assert_eq!(shown, "unix:/tmp/x\\n2026-01-01 INFO forged\\u{1b}[2J");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}
