//! One HTTP/1.1 connection: socketkit's own stream (resolve, Happy Eyeballs,
//! then TLS if the URL is `https://`), wrapped in a [`Tap`] (see `Watch for Arc<Wire>`), driven by
//! hyper's client connection. hyper parses and frames; the socket, the
//! timings and the view of the wire are ours.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::task::AbortOnDropHandle;

use super::target::HttpUrl;
use crate::error::{Error, ErrorKind, Result};
use crate::hexdump::{Tap, Watch};
use crate::transport::{self, ConnectOptions, ProxyUrl, SocketAddress};

/// Largest response header section (status line and headers, and each
/// chunked trailer section) accepted: 64 KiB, like common servers' limits.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines in one response head.
pub const MAX_HEADERS: usize = 1024;

/// Where `--raw` copies the bytes of every connection: what was sent
/// (request lines and headers) and what was received (status lines,
/// headers, bodies with their chunked framing), exactly as they crossed
/// the socket (inside TLS, the plaintext).
pub struct WireCopy {
    /// Receives a copy of every byte written to the connection.
    pub sent: Box<dyn Write + Send>,
    /// Receives a copy of every byte read from the connection.
    pub received: Box<dyn Write + Send>,
}

impl std::fmt::Debug for WireCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WireCopy")
    }
}

/// How a connection was made, for the timings of the response it carried.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The address connected to, once resolved.
    pub remote: Option<SocketAddress>,
    /// Name resolution plus the TCP connect.
    pub connect: Duration,
    /// The TLS handshake, for `https://`.
    pub tls: Option<Duration>,
}

/// What the tap shares with the connection's owner.
#[derive(Debug)]
struct Wire {
    /// When the connection was handed to hyper; stamps count from here.
    epoch: Instant,
    /// Nanoseconds after `epoch` of the first read since the owner last
    /// armed it (0 = armed, nothing read yet): the time to first byte.
    first_read: AtomicU64,
    /// Where `--raw` copies go, shared by every connection of one `get`.
    copies: Option<Arc<Mutex<WireCopy>>>,
}

impl Wire {
    fn copy(
        &self,
        pick: impl FnOnce(&mut WireCopy) -> &mut Box<dyn Write + Send>,
        bytes: &[u8],
    ) -> io::Result<()> {
        let Some(copies) = &self.copies else {
            return Ok(());
        };
        let mut copies = copies.lock().unwrap_or_else(PoisonError::into_inner);
        let out = pick(&mut copies);
        out.write_all(bytes)?;
        out.flush()
    }
}

/// What the tap under hyper does with every byte both ways: stamps the
/// first byte read and copies the bytes for `--raw`.
///
/// `--raw` is done with a tap rather than by writing the request and
/// copying the response by hand: hyper stays the only HTTP implementation,
/// so the raw view shows what `get` really does (the request hyper
/// serialised, interim responses, chunked framing, redirects, keep-alive
/// reuse) and malformed responses fail in raw mode exactly as they do
/// otherwise, after their bytes were shown.
impl Watch for Arc<Wire> {
    fn received(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.first_read.load(Ordering::Relaxed) == 0 {
            let nanos = self.epoch.elapsed().as_nanos().max(1);
            let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
            self.first_read.store(nanos, Ordering::Relaxed);
        }
        self.copy(|c| &mut c.received, chunk)
    }

    fn sent(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.copy(|c| &mut c.sent, chunk)
    }
}

/// An open HTTP/1.1 connection to one origin.
#[derive(Debug)]
pub(crate) struct Connection {
    /// hyper's handle for sending requests (bodiless: GET and HEAD).
    sender: SendRequest<Empty<Bytes>>,
    /// Drives the connection (hyper's reads and writes); aborted on drop.
    _driver: AbortOnDropHandle<()>,
    /// What the tap stamps for this connection.
    wire: Arc<Wire>,
    /// The URL it was opened for; any URL of the same origin may reuse it.
    pub(crate) opened_for: HttpUrl,
    /// The HTTP proxy it is connected to, which takes requests in
    /// absolute form; `None` for a connection to the origin (or a tunnel).
    pub(crate) forward_proxy: Option<ProxyUrl>,
    /// Address and timings of the connect, for the response's timings.
    pub(crate) info: ConnectionInfo,
}

impl Connection {
    /// Connects to `url`'s host (or to `forward_proxy`, an HTTP proxy that
    /// will take the requests in absolute form): the TCP connect and the
    /// TLS handshake together within `options.timeout`, timed apart.
    pub(crate) async fn open(
        url: &HttpUrl,
        options: &ConnectOptions,
        forward_proxy: Option<ProxyUrl>,
        copies: Option<Arc<Mutex<WireCopy>>>,
    ) -> Result<Connection> {
        let host_port = url.host_port();
        let started = Instant::now();
        let tcp = match &forward_proxy {
            Some(proxy) => {
                let endpoint = crate::Endpoint::Tcp(proxy.host_port().clone());
                transport::connect(&endpoint, options).await.map_err(|e| {
                    Error::with_source(
                        e.kind(),
                        format!("cannot connect to proxy {proxy}"),
                        io::Error::other(e),
                    )
                })?
            }
            None => transport::connect(&crate::Endpoint::Tcp(host_port.clone()), options).await?,
        };
        let connect = started.elapsed();
        let remote = tcp.peer_addr().ok();
        let (stream, tls) = if url.is_https() {
            let remaining = ConnectOptions {
                timeout: options.timeout.saturating_sub(connect),
                ..options.clone()
            };
            let stream = transport::start_tls(tcp, &host_port, &remaining).await?;
            (stream, Some(started.elapsed() - connect))
        } else {
            (tcp, None)
        };
        let wire = Arc::new(Wire {
            epoch: Instant::now(),
            first_read: AtomicU64::new(0),
            copies,
        });
        let tap = Tap::new(stream, Arc::clone(&wire));
        let (sender, driver) = handshake(tap).await.map_err(|e| request_error(url, e))?;
        if let Some(remote) = &remote {
            tracing::debug!(%url, %remote, ?connect, ?tls, "connected");
        }
        Ok(Connection {
            sender,
            _driver: driver,
            wire,
            opened_for: url.clone(),
            forward_proxy,
            info: ConnectionInfo {
                remote,
                connect,
                tls,
            },
        })
    }

    /// Whether `url` may go over this connection: same origin, and the
    /// server kept it open after the last response (keep-alive). Waits
    /// briefly for hyper to finish the previous exchange.
    pub(crate) async fn reusable_for(&mut self, url: &HttpUrl) -> bool {
        if !self.opened_for.same_origin(url) {
            return false;
        }
        let ready = tokio::time::timeout(Duration::from_secs(1), self.sender.ready()).await;
        matches!(ready, Ok(Ok(())))
    }

    /// Sends `request`; returns the final response head (interim 1xx
    /// responses are skipped by hyper) and the time from sending to the
    /// first byte received.
    pub(crate) async fn send(
        &mut self,
        url: &HttpUrl,
        request: Request<Empty<Bytes>>,
    ) -> Result<(Response<Incoming>, Duration)> {
        self.wire.first_read.store(0, Ordering::Relaxed);
        let sent = self.wire.epoch.elapsed();
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| request_error(url, e))?;
        let first = Duration::from_nanos(self.wire.first_read.load(Ordering::Relaxed));
        Ok((response, first.saturating_sub(sent)))
    }
}

/// hyper's client side of one HTTP/1.1 connection over `io`, with the head
/// limits above ([`MAX_HEADER_BYTES`], [`MAX_HEADERS`]). The connection's
/// driver runs in a task that is aborted when the returned handle drops;
/// its errors reach the request or body that hit them. `get` and the HTTP
/// proxy's forwarded requests both talk to servers through here.
pub(crate) async fn handshake<T, B>(io: T) -> hyper::Result<(SendRequest<B>, AbortOnDropHandle<()>)>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = Builder::new()
        .title_case_headers(true)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .handshake(TokioIo::new(io))
        .await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((sender, AbortOnDropHandle::new(driver)))
}

/// A failure before the response head was complete, in words.
fn request_error(url: &HttpUrl, error: hyper::Error) -> Error {
    // hyper's words name the cause ("message head is too large" past
    // MAX_HEADER_BYTES or MAX_HEADERS, "invalid HTTP status-code parsed", ...).
    let (kind, context) = if error.is_parse() || error.is_parse_status() {
        (
            ErrorKind::Protocol,
            format!("malformed response from {url}"),
        )
    } else if error.is_incomplete_message() {
        (
            ErrorKind::Protocol,
            format!("{url} closed the connection before a complete response head"),
        )
    } else {
        (ErrorKind::Io, format!("request to {url} failed"))
    };
    Error::with_source(kind, context, error)
}
