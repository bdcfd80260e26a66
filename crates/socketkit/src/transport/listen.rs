//! Binding: listeners and datagram sockets for every endpoint form.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram, UnixListener};

use super::{SocketAddress, Stream};
use crate::addr::{self, Endpoint, Family, SocketKind};
use crate::error::{Error, ErrorKind, Result};

/// Socket options applied when binding. The defaults suit a server that
/// should come back up on the same port right after a restart.
#[derive(Debug, Clone)]
pub struct BindOptions {
    /// Listen backlog: how many completed connections the kernel queues
    /// before `accept()`. Default 1024; std's and tokio's 128 make a burst of
    /// 1000 connects wait for SYN retransmits.
    pub backlog: u32,
    /// SO_REUSEADDR, so a restart does not wait out TIME_WAIT. Default on.
    pub reuse_address: bool,
    /// SO_REUSEPORT, so several processes can share one port and the kernel
    /// spreads connections over them. Default off: it lets any process of the
    /// same user steal a share of the traffic.
    pub reuse_port: bool,
    /// Permission bits for Unix socket files (e.g. 0o600 so only the owner
    /// may connect). Default: left to the umask.
    pub unix_mode: Option<u32>,
    /// Bind only the addresses of one family (nc's `-4`/`-6`): `:PORT`
    /// then means `0.0.0.0` or `[::]` alone, and a name only its A or AAAA
    /// records. Default: both. Unix paths are not affected.
    pub family: Option<Family>,
}

impl Default for BindOptions {
    fn default() -> BindOptions {
        BindOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            unix_mode: None,
            family: None,
        }
    }
}

/// A socket that is bound and ready to serve.
#[derive(Debug)]
pub enum BoundSocket {
    /// A listening stream socket.
    Stream(Listener),
    /// A bound datagram socket.
    Datagram(DatagramSocket),
}

impl BoundSocket {
    /// The address actually bound, port 0 replaced by the real port.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            BoundSocket::Stream(l) => l.endpoint(),
            BoundSocket::Datagram(d) => d.endpoint(),
        }
    }

    /// The socket's own address (`getsockname`).
    pub fn local_addr(&self) -> io::Result<SocketAddress> {
        match self {
            BoundSocket::Stream(l) => l.local_addr(),
            BoundSocket::Datagram(d) => d.local_addr(),
        }
    }
}

/// Binds every socket `endpoint` stands for: one per resolved address for
/// internet endpoints (all sharing one port, even when the port asked for is
/// 0), one for a Unix path.
pub async fn bind(endpoint: &Endpoint, options: &BindOptions) -> Result<Vec<BoundSocket>> {
    match endpoint {
        Endpoint::Tcp(hp) | Endpoint::Udp(hp) | Endpoint::Tls(hp) => {
            let mut addrs = addr::resolve_bind(hp).await?;
            if let Some(family) = options.family {
                addrs.retain(|a| family.includes(a));
                if addrs.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidAddress,
                        format!("{endpoint} has no {family} address to bind"),
                    ));
                }
            }
            bind_inet(endpoint, &addrs, options)
        }
        Endpoint::Unix(path) => {
            let listener =
                bind_unix_listener(path, options).map_err(|e| bind_error(endpoint, e))?;
            Ok(vec![BoundSocket::Stream(listener)])
        }
        Endpoint::UnixDatagram(path) => {
            let socket = bind_unix_datagram(path).map_err(|e| bind_error(endpoint, e))?;
            Ok(vec![BoundSocket::Datagram(socket)])
        }
    }
}

fn bind_error(endpoint: &Endpoint, source: io::Error) -> Error {
    Error::with_source(ErrorKind::Bind, format!("cannot bind {endpoint}"), source)
}

/// How many times to pick a fresh port when port 0 was asked for and the
/// port the first family got is taken in the other family.
const SHARED_PORT_ATTEMPTS: usize = 16;

fn bind_inet(
    endpoint: &Endpoint,
    addrs: &[SocketAddr],
    options: &BindOptions,
) -> Result<Vec<BoundSocket>> {
    let wants_any_port = addrs.iter().all(|a| a.port() == 0);
    let mut last_error = None;
    for _ in 0..SHARED_PORT_ATTEMPTS {
        match bind_all_on_one_port(endpoint, addrs, options) {
            Ok(sockets) => return Ok(sockets),
            Err((error, partial)) => {
                let retry = wants_any_port && partial && error.kind() == io::ErrorKind::AddrInUse;
                last_error = Some(error);
                if !retry {
                    break;
                }
            }
        }
    }
    let error = last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable));
    Err(bind_error(endpoint, error))
}

/// Binds each address on the port the first one got. An address whose family
/// this host lacks is skipped when others remain (getaddrinfo's behaviour).
/// On failure also says whether some sockets had already been bound.
fn bind_all_on_one_port(
    endpoint: &Endpoint,
    addrs: &[SocketAddr],
    options: &BindOptions,
) -> std::result::Result<Vec<BoundSocket>, (io::Error, bool)> {
    let mut port = addrs.first().map_or(0, SocketAddr::port);
    let mut sockets = Vec::new();
    let mut skipped = None;
    for addr in addrs {
        let addr = SocketAddr::new(addr.ip(), port);
        match bind_inet_socket(endpoint, addr, options) {
            Ok(socket) => {
                if let Some(hp) = socket.endpoint().host_port() {
                    port = hp.port;
                }
                sockets.push(socket);
            }
            Err(e) if addrs.len() > 1 && is_family_unavailable(&e) => skipped = Some(e),
            Err(e) => return Err((e, !sockets.is_empty())),
        }
    }
    match skipped {
        Some(e) if sockets.is_empty() => Err((e, false)),
        _ => Ok(sockets),
    }
}

fn is_family_unavailable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

/// Binds one socket for `endpoint`'s transport at `addr`.
fn bind_inet_socket(
    endpoint: &Endpoint,
    addr: SocketAddr,
    options: &BindOptions,
) -> io::Result<BoundSocket> {
    let kind = endpoint.kind();
    let (socket_type, protocol) = match kind {
        SocketKind::Stream => (Type::STREAM, Protocol::TCP),
        SocketKind::Datagram => (Type::DGRAM, Protocol::UDP),
    };
    let socket = Socket::new(Domain::for_address(addr), socket_type, Some(protocol))?;
    if addr.is_ipv6() {
        // `:PORT` binds IPv4 and IPv6 as two sockets; a dual-stack IPv6
        // socket would collide with the IPv4 one.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(options.reuse_address)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound socket has no internet address"))?;
    let endpoint = endpoint.at(local);
    Ok(match kind {
        SocketKind::Stream => {
            socket.listen(backlog(options))?;
            let listener = TcpListener::from_std(socket.into())?;
            BoundSocket::Stream(Listener {
                inner: ListenerInner::Tcp(listener),
                endpoint,
            })
        }
        SocketKind::Datagram => {
            let socket = UdpSocket::from_std(socket.into())?;
            BoundSocket::Datagram(DatagramSocket {
                inner: DatagramInner::Udp(socket),
                endpoint,
            })
        }
    })
}

fn backlog(options: &BindOptions) -> i32 {
    i32::try_from(options.backlog).unwrap_or(i32::MAX)
}

fn bind_unix_listener(path: &Path, options: &BindOptions) -> io::Result<Listener> {
    replace_stale_socket_file(path, SocketKind::Stream)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    let file = UnixSocketFile::claim(path)?;
    if let Some(mode) = options.unix_mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    socket.listen(backlog(options))?;
    socket.set_nonblocking(true)?;
    let listener = UnixListener::from_std(socket.into())?;
    Ok(Listener {
        inner: ListenerInner::Unix {
            listener,
            _file: file,
        },
        endpoint: Endpoint::Unix(path.to_path_buf()),
    })
}

fn bind_unix_datagram(path: &Path) -> io::Result<DatagramSocket> {
    replace_stale_socket_file(path, SocketKind::Datagram)?;
    let socket = UnixDatagram::bind(path)?;
    let file = UnixSocketFile::claim(path)?;
    Ok(DatagramSocket {
        inner: DatagramInner::Unix {
            socket,
            _file: Some(file),
        },
        endpoint: Endpoint::UnixDatagram(path.to_path_buf()),
    })
}

/// A socket file left behind by a process that died is removed; one that
/// somebody still listens on, or anything that is not a socket, is left alone
/// and reported as in use.
fn replace_stale_socket_file(path: &Path, kind: SocketKind) -> io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let in_use = |why: &str| {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} {why}", path.display()),
        )
    };
    if !metadata.file_type().is_socket() {
        return Err(in_use("exists and is not a socket; not replacing it"));
    }
    let probe = match kind {
        SocketKind::Stream => std::os::unix::net::UnixStream::connect(path).map(drop),
        SocketKind::Datagram => std::os::unix::net::UnixDatagram::unbound()?.connect(path),
    };
    match probe {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) if e.raw_os_error() != Some(libc::EPROTOTYPE) => Err(e),
        _ => Err(in_use("is a live socket another process is serving")),
    }
}

/// The socket file a Unix socket was bound to. Dropping it removes the file,
/// but only if it is still the one we created (same device and inode), so a
/// newer server that replaced it keeps its socket.
#[derive(Debug)]
pub(crate) struct UnixSocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl UnixSocketFile {
    pub(crate) fn claim(path: &Path) -> io::Result<UnixSocketFile> {
        let metadata = std::fs::symlink_metadata(path)?;
        Ok(UnixSocketFile {
            path: path.to_path_buf(),
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        if let Ok(metadata) = std::fs::symlink_metadata(&self.path) {
            if metadata.dev() == self.device && metadata.ino() == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// A listening stream socket (TCP or Unix).
#[derive(Debug)]
pub struct Listener {
    inner: ListenerInner,
    endpoint: Endpoint,
}

#[derive(Debug)]
enum ListenerInner {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        /// Removes the socket file when the listener is dropped.
        _file: UnixSocketFile,
    },
}

impl Listener {
    /// The bound address, with the real port.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The socket's own address (`getsockname`).
    pub fn local_addr(&self) -> io::Result<SocketAddress> {
        match &self.inner {
            ListenerInner::Tcp(l) => l.local_addr().map(SocketAddress::Inet),
            ListenerInner::Unix { listener, .. } => {
                listener.local_addr().map(|a| SocketAddress::from_unix(&a))
            }
        }
    }

    /// Polls for one incoming connection; lets one task wait on several
    /// listeners at once.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Stream, SocketAddress)>> {
        match &self.inner {
            ListenerInner::Tcp(listener) => listener
                .poll_accept(cx)
                .map_ok(|(stream, peer)| (Stream::Tcp(stream), SocketAddress::Inet(peer))),
            ListenerInner::Unix { listener, .. } => listener
                .poll_accept(cx)
                .map_ok(|(stream, peer)| (Stream::Unix(stream), SocketAddress::from_unix(&peer))),
        }
    }

    /// Waits for one incoming connection.
    pub async fn accept(&self) -> io::Result<(Stream, SocketAddress)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }
}

/// A bound datagram socket (UDP or Unix datagram), possibly connected.
#[derive(Debug)]
pub struct DatagramSocket {
    inner: DatagramInner,
    endpoint: Endpoint,
}

#[derive(Debug)]
enum DatagramInner {
    Udp(UdpSocket),
    Unix {
        socket: UnixDatagram,
        /// Removes the socket file when the socket is dropped.
        _file: Option<UnixSocketFile>,
    },
}

impl DatagramSocket {
    pub(crate) fn udp(socket: UdpSocket, endpoint: Endpoint) -> DatagramSocket {
        DatagramSocket {
            inner: DatagramInner::Udp(socket),
            endpoint,
        }
    }

    pub(crate) fn unix(
        socket: UnixDatagram,
        file: UnixSocketFile,
        endpoint: Endpoint,
    ) -> DatagramSocket {
        DatagramSocket {
            inner: DatagramInner::Unix {
                socket,
                _file: Some(file),
            },
            endpoint,
        }
    }

    /// The bound address, with the real port.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The socket's own address (`getsockname`).
    pub fn local_addr(&self) -> io::Result<SocketAddress> {
        match &self.inner {
            DatagramInner::Udp(s) => s.local_addr().map(SocketAddress::Inet),
            DatagramInner::Unix { socket, .. } => {
                socket.local_addr().map(|a| SocketAddress::from_unix(&a))
            }
        }
    }

    /// Receives one datagram and says who sent it.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddress)> {
        match &self.inner {
            DatagramInner::Udp(s) => s
                .recv_from(buf)
                .await
                .map(|(n, a)| (n, SocketAddress::Inet(a))),
            DatagramInner::Unix { socket, .. } => socket
                .recv_from(buf)
                .await
                .map(|(n, a)| (n, SocketAddress::from_unix(&a))),
        }
    }

    /// Waits until a datagram can be received (it may wake spuriously).
    pub async fn readable(&self) -> io::Result<()> {
        match &self.inner {
            DatagramInner::Udp(s) => s.readable().await,
            DatagramInner::Unix { socket, .. } => socket.readable().await,
        }
    }

    /// Receives one datagram if one is queued, without waiting
    /// (`WouldBlock` otherwise).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddress)> {
        match &self.inner {
            DatagramInner::Udp(s) => s
                .try_recv_from(buf)
                .map(|(n, a)| (n, SocketAddress::Inet(a))),
            DatagramInner::Unix { socket, .. } => socket
                .try_recv_from(buf)
                .map(|(n, a)| (n, SocketAddress::from_unix(&a))),
        }
    }

    /// Sends one datagram to `peer`. An unnamed Unix peer cannot be answered.
    pub async fn send_to(&self, buf: &[u8], peer: &SocketAddress) -> io::Result<usize> {
        match (&self.inner, peer) {
            (DatagramInner::Udp(s), SocketAddress::Inet(addr)) => s.send_to(buf, addr).await,
            (DatagramInner::Unix { socket, .. }, SocketAddress::Unix(Some(path))) => {
                socket.send_to(buf, path).await
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot send a datagram to {peer}"),
            )),
        }
    }

    /// Sends one datagram on a connected socket.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.inner {
            DatagramInner::Udp(s) => s.send(buf).await,
            DatagramInner::Unix { socket, .. } => socket.send(buf).await,
        }
    }

    /// Receives one datagram on a connected socket.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            DatagramInner::Udp(s) => s.recv(buf).await,
            DatagramInner::Unix { socket, .. } => socket.recv(buf).await,
        }
    }
}
