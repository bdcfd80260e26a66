//! The PROXY protocol on the server side: which peers are trusted to speak
//! for their clients ([`ProxyProtocol`]), and reading their header off a
//! fresh connection before TLS or the handler sees a byte.
//!
//! The header is read by peeking (`recv` with `MSG_PEEK`) until
//! [`decode`] finds a whole one, then consuming exactly its bytes: the
//! application data behind it stays in the kernel for whoever reads next
//! (the TLS handshake, the handler), so nothing has to be handed on and
//! [`Connection`](super::Connection) keeps its plain socket. A peek that finds no new
//! bytes clears the socket's readiness, so waiting for the rest of a
//! header sleeps until more arrives instead of spinning.
//!
//! The bytes belong to `proxy_header`; the server decides what
//! a header means for the connection (`Shared::drive` in `server/mod.rs`).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use tokio::io::{AsyncReadExt, Interest};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::AccessList;
use crate::addr::Endpoint;
use crate::proxy_header::{decode, Decoded, ProxyHeader, ProxyHeaderError};
use crate::proxy_header::{DEFAULT_MAX_LEN, V1_MAX_LEN};
use crate::transport::{SocketAddress, Stream};

/// The first peek's size: any version 1 header, and a version 2 header with
/// IPv6 addresses and some TLVs, without growing the buffer.
const FIRST_PEEK: usize = 256;

/// Accepting the PROXY protocol (HAProxy's, versions 1 and 2) from trusted
/// proxies, for [`ServerConfig::proxy_protocol`](super::ServerConfig::proxy_protocol).
///
/// Every stream connection must then come from a trusted peer and begin
/// with a header, within the server's handshake deadline; any other is
/// closed. The header's client address becomes the connection's
/// [`peer_addr`](super::Connection::peer_addr), which the access list and
/// handlers see; the proxy's own is
/// [`proxy_addr`](super::Connection::proxy_addr). Unix peers are not IP
/// peers: the trusted list, like any [`AccessList`], always admits them (the
/// socket file's permissions decide who connects). Datagram sockets are
/// not affected.
#[derive(Debug, Clone)]
pub struct ProxyProtocol {
    trusted: AccessList,
    max_header_len: usize,
}

impl ProxyProtocol {
    /// Trusts the peers `trusted` admits (its allow rules; an open list
    /// trusts every peer, which suits only a listener nothing but the proxy
    /// can reach).
    pub fn new(trusted: AccessList) -> ProxyProtocol {
        ProxyProtocol {
            trusted,
            max_header_len: DEFAULT_MAX_LEN,
        }
    }

    /// Longest version 2 header accepted, fixed part and TLVs included.
    /// Default [`DEFAULT_MAX_LEN`] (4 KiB); raised to fit any address
    /// family and capped at the format's 16 + 65535. A version 1 header is
    /// at most 107 bytes whatever this says.
    pub fn max_header_len(mut self, max: usize) -> ProxyProtocol {
        self.max_header_len = max;
        self
    }

    /// Whether `peer` may send a header (and so connect at all).
    pub fn trusts(&self, peer: &SocketAddress) -> bool {
        self.trusted.permits(peer)
    }
}

/// Why a connection from a trusted proxy was closed before its handler.
#[derive(Debug)]
enum Failure {
    Invalid(ProxyHeaderError),
    Closed { after: usize },
    TimedOut(Duration),
    Io(io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Invalid(e) => write!(f, "{e}"),
            Failure::Closed { after: 0 } => f.write_str("closed before a PROXY header"),
            Failure::Closed { after } => {
                write!(f, "closed inside a PROXY header, after {after} bytes")
            }
            Failure::TimedOut(limit) => write!(f, "no whole PROXY header within {limit:?}"),
            Failure::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

/// Reads the header of a connection from the trusted `proxy`, within
/// `deadline` (and until `abort`). The client's address if the header gives
/// one, else the proxy's own (`LOCAL`, `UNKNOWN`, `AF_UNSPEC`); `None` when
/// the connection must close, which is logged here.
pub(super) async fn accept_header(
    config: &ProxyProtocol,
    stream: &mut Stream,
    proxy: &SocketAddress,
    local: &Endpoint,
    deadline: Duration,
    abort: &CancellationToken,
) -> Option<SocketAddress> {
    let read = async {
        let (header, len) = peek_header(stream, config.max_header_len).await?;
        consume(stream, len).await.map_err(Failure::Io)?;
        Ok(header)
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(deadline, read) => outcome,
        () = abort.cancelled() => return None,
    };
    match outcome.unwrap_or(Err(Failure::TimedOut(deadline))) {
        Ok(header) => {
            let client = header.source().unwrap_or_else(|| proxy.clone());
            debug!(%client, %proxy, %local, version = %header.version, command = ?header.command, "PROXY header accepted");
            Some(client)
        }
        Err(error) => {
            warn!(%proxy, %local, %error, "PROXY protocol header refused; connection closed");
            None
        }
    }
}

/// Peeks until the bytes queued on `stream` hold a whole header (or prove
/// there is none); returns it and its length. Consumes nothing.
async fn peek_header(stream: &Stream, max_len: usize) -> Result<(ProxyHeader, usize), Failure> {
    let mut buf = vec![0u8; FIRST_PEEK.max(V1_MAX_LEN)];
    let mut seen = 0;
    loop {
        let ready = match stream {
            Stream::Tcp(s) => s.ready(Interest::READABLE).await,
            Stream::Unix(s) => s.ready(Interest::READABLE).await,
            // The server reads the header before any TLS handshake.
            #[cfg(feature = "tls")]
            Stream::Tls(_) => return Err(Failure::Io(io::ErrorKind::Unsupported.into())),
        }
        .map_err(Failure::Io)?;
        let peeked = match stream {
            Stream::Tcp(s) => s.try_io(Interest::READABLE, || peek_more(s.as_fd(), &mut buf, seen)),
            Stream::Unix(s) => {
                s.try_io(Interest::READABLE, || peek_more(s.as_fd(), &mut buf, seen))
            }
            #[cfg(feature = "tls")]
            Stream::Tls(_) => return Err(Failure::Io(io::ErrorKind::Unsupported.into())),
        };
        match peeked {
            Ok(n) => seen = n,
            // Nothing new. The end of the stream is never "cleared" from
            // the readiness, so it is seen here rather than waited for.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if ready.is_read_closed() {
                    return Err(Failure::Closed { after: seen });
                }
                continue;
            }
            Err(e) => return Err(Failure::Io(e)),
        }
        match decode(&buf[..seen], max_len).map_err(Failure::Invalid)? {
            Decoded::Header { header, len } => return Ok((header, len)),
            // at_least is bounded by the cap (decode checked it), so this
            // grows at most to 16 + 65535 bytes.
            Decoded::Incomplete { at_least } if at_least > buf.len() => buf.resize(at_least, 0),
            Decoded::Incomplete { .. } => {}
        }
    }
}

/// Peeks into `buf`; `WouldBlock` when no more than the `seen` bytes already
/// examined are queued, so `try_io` clears the readiness and the next wait
/// sleeps until something new arrives.
fn peek_more(fd: BorrowedFd<'_>, buf: &mut [u8], seen: usize) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and recv
    // writes at most that many; MSG_DONTWAIT keeps it from blocking.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n <= seen {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

/// Reads and drops the header's `len` bytes, which a peek has shown are
/// queued: the next read starts at the application data.
async fn consume(stream: &mut Stream, len: usize) -> io::Result<()> {
    let mut header = vec![0u8; len];
    stream.read_exact(&mut header).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_header::{ProxyHeader, Version};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream, UnixStream};

    async fn pair() -> (TcpStream, Stream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, Stream::Tcp(server))
    }

    fn header() -> Vec<u8> {
        ProxyHeader::proxied(
            &SocketAddress::Inet("192.0.2.7:4242".parse().unwrap()),
            &SocketAddress::Inet("198.51.100.1:443".parse().unwrap()),
        )
        .encode(Version::V2)
    }

    #[tokio::test]
    async fn a_header_in_pieces_is_waited_for_and_the_data_behind_it_stays() {
        let (mut client, mut server) = pair().await;
        let bytes = header();
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(5) {
                client.write_all(piece).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            client.write_all(b"hello").await.unwrap();
            client
        });
        let (decoded, len) = peek_header(&server, DEFAULT_MAX_LEN).await.unwrap();
        consume(&mut server, len).await.unwrap();
        assert_eq!(
            decoded.source(),
            Some(SocketAddress::Inet("192.0.2.7:4242".parse().unwrap()))
        );
        let _client = writer.await.unwrap();
        let mut rest = [0u8; 5];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"hello");
    }

    #[tokio::test]
    async fn a_header_cut_short_by_the_peer_is_closed_not_waited_for() {
        let (mut client, server) = pair().await;
        client.write_all(&header()[..20]).await.unwrap();
        client.shutdown().await.unwrap();
        let failure = peek_header(&server, DEFAULT_MAX_LEN).await.unwrap_err();
        assert!(
            matches!(failure, Failure::Closed { after: 20 }),
            "{failure}"
        );
        let (client, server) = pair().await;
        drop(client);
        let failure = peek_header(&server, DEFAULT_MAX_LEN).await.unwrap_err();
        assert!(matches!(failure, Failure::Closed { after: 0 }), "{failure}");
    }

    #[tokio::test]
    async fn a_v1_header_over_a_unix_socket() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let mut server = Stream::Unix(server);
        client
            .write_all(b"PROXY TCP4 10.1.2.3 10.0.0.1 5000 80\r\nbody")
            .await
            .unwrap();
        let (decoded, len) = peek_header(&server, DEFAULT_MAX_LEN).await.unwrap();
        consume(&mut server, len).await.unwrap();
        assert_eq!(
            decoded.source(),
            Some(SocketAddress::Inet("10.1.2.3:5000".parse().unwrap()))
        );
        let mut rest = [0u8; 4];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"body");
    }

    #[tokio::test]
    async fn garbage_is_refused_at_once() {
        let (mut client, server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let failure = peek_header(&server, DEFAULT_MAX_LEN).await.unwrap_err();
        assert!(
            matches!(failure, Failure::Invalid(ProxyHeaderError::Missing)),
            "{failure}"
        );
    }

    #[tokio::test]
    async fn a_stalled_header_hits_the_deadline() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"PROXY TCP4 ").await.unwrap();
        let config = ProxyProtocol::new(AccessList::new());
        let proxy = server.peer_addr().unwrap();
        let local: Endpoint = "tcp://127.0.0.1:1".parse().unwrap();
        let accepted = accept_header(
            &config,
            &mut server,
            &proxy,
            &local,
            // Short and real: what is checked is that it ends, and how.
            Duration::from_millis(200),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(accepted, None);
    }
}
