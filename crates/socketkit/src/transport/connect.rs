//! Connecting: name resolution, Happy Eyeballs (RFC 8305) and the connect
//! timeout for streams; a connected socket for datagrams. Both honour a
//! family restriction (`-4`/`-6`) and a source address bound before
//! connecting. A stream may go through a proxy ([`super::proxy`]); TLS then
//! runs inside the tunnel.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream, UdpSocket, UnixDatagram, UnixStream};
use tokio::task::JoinSet;

use super::listen::UnixSocketFile;
#[cfg(feature = "proxy-client")]
use super::proxy::{self, ProxyUrl};
use super::{DatagramSocket, Stream};
#[cfg(feature = "tls")]
use rustls::pki_types::ServerName;
#[cfg(feature = "tls")]
use tokio_rustls::TlsConnector;

#[cfg(feature = "tls")]
use crate::addr::Host;
use crate::addr::{self, Endpoint, Family, HostPort, SocketKind, SourceAddress};
use crate::error::{BoxError, Error, ErrorKind, Result};
#[cfg(feature = "tls")]
use crate::tls::{self, ClientTls, Verification};

/// How a client connects. The defaults follow RFC 8305 and common tools.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Limit on resolution plus every connection attempt. Default 10 s.
    pub timeout: Duration,
    /// Happy Eyeballs "connection attempt delay": how long one attempt runs
    /// alone before the next address is tried in parallel. Default 250 ms,
    /// RFC 8305's recommendation.
    pub attempt_delay: Duration,
    /// TCP_NODELAY, so small interactive writes leave at once. Default on.
    pub nodelay: bool,
    /// How `tls://` endpoints verify the server (and which client
    /// certificate to present). `None` verifies against the system roots.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<ClientTls>,
    /// The name to verify the server certificate against and send as SNI,
    /// instead of the host of the endpoint.
    pub server_name: Option<String>,
    /// Bind this local address and/or port before connecting (nc `-s`,
    /// `-p`). Only addresses of the source's family are tried. Default:
    /// the system chooses.
    pub source: Option<SourceAddress>,
    /// Try only addresses of this family. Default: both.
    pub family: Option<Family>,
    /// Reach `tcp://` and `tls://` endpoints through this proxy (the
    /// source address and family then apply to the proxy's connection,
    /// and the family also to a `socks5://` destination this host
    /// resolves). Datagram and Unix endpoints refuse a proxy. Default none.
    #[cfg(feature = "proxy-client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proxy-client")))]
    pub proxy: Option<ProxyUrl>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            timeout: ConnectOptions::DEFAULT_TIMEOUT,
            attempt_delay: ConnectOptions::DEFAULT_ATTEMPT_DELAY,
            nodelay: true,
            #[cfg(feature = "tls")]
            tls: None,
            server_name: None,
            source: None,
            family: None,
            #[cfg(feature = "proxy-client")]
            proxy: None,
        }
    }
}

impl ConnectOptions {
    /// Default of [`timeout`](ConnectOptions::timeout): 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`attempt_delay`](ConnectOptions::attempt_delay): 250 ms
    /// (RFC 8305).
    pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

    /// Whether a proxy is set (always false without `proxy-client`).
    fn proxied(&self) -> bool {
        #[cfg(feature = "proxy-client")]
        return self.proxy.is_some();
        #[cfg(not(feature = "proxy-client"))]
        false
    }
}

/// Opens a stream to `endpoint`, trying every resolved address Happy
/// Eyeballs style, all within `options.timeout`.
pub async fn connect(endpoint: &Endpoint, options: &ConnectOptions) -> Result<Stream> {
    let attempt = async {
        match endpoint {
            Endpoint::Tcp(hp) => Ok(Stream::Tcp(connect_tcp(endpoint, hp, options).await?)),
            #[cfg(feature = "tls")]
            Endpoint::Tls(hp) => {
                let tcp = connect_tcp(endpoint, hp, options).await?;
                tls_handshake(endpoint, hp, tcp, options).await
            }
            #[cfg(not(feature = "tls"))]
            Endpoint::Tls(_) => Err(super::tls_unsupported(endpoint)),
            Endpoint::Unix(_) | Endpoint::UnixDatagram(_) | Endpoint::Udp(_)
                if options.proxied() =>
            {
                Err(proxy_unsupported(endpoint))
            }
            Endpoint::Unix(_) if options.source.is_some() => Err(unix_source_error(endpoint)),
            Endpoint::Unix(path) => UnixStream::connect(path)
                .await
                .map(Stream::Unix)
                .map_err(|e| connect_error(endpoint, e)),
            Endpoint::Udp(_) | Endpoint::UnixDatagram(_) => Err(Error::new(
                ErrorKind::Unsupported,
                format!("{endpoint} is a datagram endpoint, not a stream"),
            )),
        }
    };
    tokio::time::timeout(options.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(timeout_error(endpoint, options.timeout)))
}

/// A TCP connection to `hp`, directly or through the proxy, with
/// TCP_NODELAY set as asked.
async fn connect_tcp(
    endpoint: &Endpoint,
    hp: &HostPort,
    options: &ConnectOptions,
) -> Result<TcpStream> {
    #[cfg(feature = "proxy-client")]
    if let Some(proxy) = &options.proxy {
        let stream = proxy::open(proxy, hp, options).await?;
        stream
            .set_nodelay(options.nodelay)
            .map_err(|e| connect_error(endpoint, e))?;
        return Ok(stream);
    }
    let addrs = candidates(endpoint, hp, options).await?;
    let stream = race_connects(addrs, options)
        .await
        .map_err(|e| connect_error(endpoint, e))?;
    stream
        .set_nodelay(options.nodelay)
        .map_err(|e| connect_error(endpoint, e))?;
    Ok(stream)
}

/// A proxy tunnels TCP only; saying so beats connecting around it.
fn proxy_unsupported(endpoint: &Endpoint) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("a proxy carries tcp:// and tls:// connections, not {endpoint}"),
    )
}

/// Upgrades a TCP stream opened by [`connect`] to TLS, verifying the server
/// for `host_port` exactly as `connect` does for a `tls://` endpoint, within
/// `options.timeout`. Callers that time the TCP connect and the handshake
/// apart (`get`'s timings) connect to the `tcp://` endpoint, then call this.
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub async fn start_tls(
    stream: Stream,
    host_port: &HostPort,
    options: &ConnectOptions,
) -> Result<Stream> {
    let endpoint = Endpoint::Tls(host_port.clone());
    let Stream::Tcp(tcp) = stream else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("TLS to {endpoint} needs a TCP stream"),
        ));
    };
    tokio::time::timeout(
        options.timeout,
        tls_handshake(&endpoint, host_port, tcp, options),
    )
    .await
    .unwrap_or_else(|_| Err(timeout_error(&endpoint, options.timeout)))
}

#[cfg(feature = "tls")]
async fn tls_handshake(
    endpoint: &Endpoint,
    hp: &HostPort,
    tcp: TcpStream,
    options: &ConnectOptions,
) -> Result<Stream> {
    let name = server_name(options.server_name.as_deref(), hp)?;
    let client = match &options.tls {
        Some(client) => client.clone(),
        None => ClientTls::new(&Verification::SystemRoots, None)?,
    };
    let tls = TlsConnector::from(client.config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls::handshake_error(format!("TLS handshake with {endpoint} failed"), e))?;
    Ok(Stream::Tls(Box::new(tls.into())))
}

/// The name a TLS client checks the certificate against: an override, the
/// host name, or the IP literal (an empty host means this machine).
#[cfg(feature = "tls")]
fn server_name(overridden: Option<&str>, hp: &HostPort) -> Result<ServerName<'static>> {
    let text = match (overridden, &hp.host) {
        (Some(name), _) => name.to_owned(),
        (None, Host::Name(name)) => name.clone(),
        (None, Host::Ip(ip)) => ip.to_string(),
        (None, Host::Any) => "localhost".to_owned(),
    };
    ServerName::try_from(text.clone()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidAddress,
            format!("'{text}' is not a valid TLS server name"),
        )
    })
}

/// A source address is an IP address and port: silently ignoring it on a
/// Unix socket would hide a mistake.
fn unix_source_error(endpoint: &Endpoint) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("a source address applies to tcp://, tls:// and udp://, not {endpoint}"),
    )
}

fn connect_error(endpoint: &Endpoint, source: impl Into<BoxError>) -> Error {
    Error::with_source(
        ErrorKind::Connect,
        format!("cannot connect to {endpoint}"),
        source,
    )
}

fn timeout_error(endpoint: &Endpoint, after: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("timed out connecting to {endpoint} after {after:?}"),
    )
}

/// The resolved addresses of `hp` that `options` lets us try: of the
/// requested family, and of the source address's family when one is bound.
/// None left is a resolution error naming why.
pub(super) async fn candidates(
    endpoint: &Endpoint,
    hp: &HostPort,
    options: &ConnectOptions,
) -> Result<Vec<SocketAddr>> {
    let mut addrs = addr::resolve_connect(hp).await?;
    let source_family = options.source.and_then(|s| s.ip).map(Family::of);
    for (family, why) in [
        (options.family, String::new()),
        (
            source_family,
            options
                .source
                .map(|s| format!(" for source {s}"))
                .unwrap_or_default(),
        ),
    ] {
        if let Some(family) = family {
            addrs.retain(|a| family.includes(a));
            if addrs.is_empty() {
                return Err(Error::new(
                    ErrorKind::Resolve,
                    format!("{endpoint} has no {family} address{why}"),
                ));
            }
        }
    }
    Ok(addrs)
}

/// Opens a TCP stream to one of `addrs`, already resolved (and vetted, by
/// a proxy's destination policy), Happy Eyeballs style as [`connect`]
/// does, within `options.timeout`. The error keeps the operating system's
/// reason (refused, unreachable, timed out) for the caller to map.
#[cfg(feature = "proxy")]
pub(crate) async fn connect_resolved(
    addrs: Vec<SocketAddr>,
    options: &ConnectOptions,
) -> io::Result<Stream> {
    let attempt = async {
        let stream = race_connects(addrs, options).await?;
        stream.set_nodelay(options.nodelay)?;
        Ok(Stream::Tcp(stream))
    };
    tokio::time::timeout(options.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut)))
}

/// Races direct TCP connections to `addrs` ([`race`]).
pub(crate) async fn race_connects(
    addrs: Vec<SocketAddr>,
    options: &ConnectOptions,
) -> io::Result<TcpStream> {
    if let [only] = addrs[..] {
        // Nothing to race: no task and no timer (a port scan makes
        // thousands of these).
        return connect_from(only, options.source).await;
    }
    let source = options.source;
    race(addrs, options.attempt_delay, move |addr| {
        connect_from(addr, source)
    })
    .await
    .map_err(|last| {
        last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to connect to")
        })
    })
}

/// RFC 8305: attempts go out in interleaved family order; each new attempt
/// starts when the previous one failed or after `attempt_delay`, whichever is
/// first; the first to succeed wins and the rest are dropped (aborted). An
/// attempt is a TCP connect, or (through a `socks5://` proxy) a connection
/// to the proxy plus its handshake for one address. All failing gives the
/// last error (`None` when there was no address).
pub(super) async fn race<T, E, F, Fut>(
    addrs: Vec<SocketAddr>,
    attempt_delay: Duration,
    attempt: F,
) -> std::result::Result<T, Option<E>>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: From<io::Error> + Send + 'static,
{
    let mut waiting = interleave_families(addrs).into_iter();
    let mut attempts = JoinSet::new();
    let mut last_error = None;
    loop {
        if let Some(addr) = waiting.next() {
            attempts.spawn(attempt(addr));
        }
        let delay = tokio::time::sleep(attempt_delay);
        tokio::pin!(delay);
        loop {
            tokio::select! {
                Some(joined) = attempts.join_next() => match joined {
                    Ok(Ok(stream)) => return Ok(stream),
                    Ok(Err(e)) => {
                        last_error = Some(e);
                        break;
                    }
                    Err(join_error) => last_error = Some(E::from(io::Error::other(join_error))),
                },
                () = &mut delay, if waiting.len() > 0 => break,
                else => return Err(last_error),
            }
        }
    }
}

/// One attempt, from `source` when given. SO_REUSEADDR because a fixed
/// source port is typically reused right after its last connection, whose
/// TIME_WAIT would otherwise refuse the bind (as `nc -p` does).
async fn connect_from(peer: SocketAddr, source: Option<SourceAddress>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(peer).await;
    };
    let socket = if peer.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    let local = source.bind_addr_for(&peer);
    socket.bind(local).map_err(|e| source_error(local, e))?;
    socket.connect(peer).await
}

/// Names the source address in a bind failure, which would otherwise read
/// as a failure to reach the target.
fn source_error(local: SocketAddr, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("cannot bind source {local}: {error}"))
}

/// Reorders addresses to alternate families, starting with the family of the
/// resolver's first choice (RFC 8305 section 4).
fn interleave_families(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let first_is_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (preferred, other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_is_v6);
    let mut ordered = Vec::with_capacity(preferred.len() + other.len());
    let mut other = other.into_iter();
    for addr in preferred {
        ordered.push(addr);
        ordered.extend(other.next());
    }
    ordered.extend(other);
    ordered
}

/// Opens a datagram socket connected to `endpoint`, so `send`/`recv` talk to
/// that peer only. A Unix datagram client must itself be bound to a path to
/// get replies; it gets a fresh one in the temporary directory, removed when
/// the socket is dropped.
pub async fn connect_datagram(
    endpoint: &Endpoint,
    options: &ConnectOptions,
) -> Result<DatagramSocket> {
    let attempt = async {
        match endpoint {
            Endpoint::Udp(_) | Endpoint::UnixDatagram(_) if options.proxied() => {
                Err(proxy_unsupported(endpoint))
            }
            Endpoint::Udp(hp) => {
                let addrs = candidates(endpoint, hp, options).await?;
                let peer = addrs[0];
                let socket = connected_udp(peer, options.source)
                    .await
                    .map_err(|e| connect_error(endpoint, e))?;
                let local = socket
                    .local_addr()
                    .map_err(|e| connect_error(endpoint, e))?;
                Ok(DatagramSocket::udp(
                    socket,
                    Endpoint::from_socket_addr(SocketKind::Datagram, local),
                ))
            }
            Endpoint::UnixDatagram(_) if options.source.is_some() => {
                Err(unix_source_error(endpoint))
            }
            Endpoint::UnixDatagram(path) => {
                connected_unix_datagram(path).map_err(|e| connect_error(endpoint, e))
            }
            Endpoint::Tcp(_) | Endpoint::Tls(_) | Endpoint::Unix(_) => Err(Error::new(
                ErrorKind::Unsupported,
                format!("{endpoint} is a stream endpoint, not a datagram one"),
            )),
        }
    };
    tokio::time::timeout(options.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(timeout_error(endpoint, options.timeout)))
}

async fn connected_udp(peer: SocketAddr, source: Option<SourceAddress>) -> io::Result<UdpSocket> {
    let local = source.unwrap_or_default().bind_addr_for(&peer);
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| source_error(local, e))?;
    socket.connect(peer).await?;
    Ok(socket)
}

fn connected_unix_datagram(server: &Path) -> io::Result<DatagramSocket> {
    static NEXT_CLIENT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "socketkit-client-{}-{}.sock",
        std::process::id(),
        NEXT_CLIENT.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    let socket = UnixDatagram::bind(&path)?;
    let file = UnixSocketFile::claim(&path)?;
    socket.connect(server)?;
    Ok(DatagramSocket::unix(
        socket,
        file,
        Endpoint::UnixDatagram(path),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn interleaves_families_starting_with_the_first() {
        let v6 = |p| SocketAddr::new(Ipv6Addr::LOCALHOST.into(), p);
        let v4 = |p| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p);
        let ordered = interleave_families(vec![v6(1), v6(2), v6(3), v4(4)]);
        assert_eq!(ordered, vec![v6(1), v4(4), v6(2), v6(3)]);
        let ordered = interleave_families(vec![v4(1), v4(2), v6(3), v6(4), v6(5)]);
        assert_eq!(ordered, vec![v4(1), v6(3), v4(2), v6(4), v6(5)]);
    }
}
