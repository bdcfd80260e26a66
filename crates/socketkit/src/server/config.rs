//! Server configuration: every limit named, with its default and the reason.

use std::sync::Arc;
use std::time::Duration;

use super::{AccessList, Metrics, ProxyProtocol};
#[cfg(feature = "tls")]
use crate::tls::ServerTls;
use crate::transport::BindOptions;

/// How connections are run: the one seam Python's socketserver calls
/// `process_request`, chosen here per server instead of by mixin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each connection is a tokio task (the default): thousands of
    /// connections on a few threads.
    #[default]
    Tasks,
    /// Each connection gets its own OS thread (ThreadingMixIn), so a handler
    /// may block (synchronous file or process I/O) without stalling others.
    /// The connection limit bounds the number of threads. Each thread runs
    /// its own current-thread runtime with the connection's socket on it;
    /// tasks the handler spawns live there and end with the connection. A
    /// handler that waits on nothing but its connection (every
    /// [`MessageHandler`](super::MessageHandler), see
    /// [`StreamHandler::blocking_reads`](super::StreamHandler::blocking_reads))
    /// reads a plain TCP or Unix socket with blocking system calls, as a
    /// hand-written thread-per-connection server does.
    Threads,
    /// One connection at a time, in accept order (plain TCPServer); later
    /// clients wait in the listen backlog.
    Sequential,
}

/// Limits and socket options of a [`Server`](super::Server).
///
/// Built by chaining on the default:
/// `ServerConfig::default().max_connections(64).idle_timeout(Some(Duration::from_secs(30)))`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) mode: Mode,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) drain_timeout: Duration,
    pub(crate) max_line_length: usize,
    pub(crate) nodelay: bool,
    pub(crate) bind: BindOptions,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<ServerTls>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) access: AccessList,
    pub(crate) metrics: Option<Arc<Metrics>>,
    pub(crate) proxy_protocol: Option<ProxyProtocol>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            mode: Mode::Tasks,
            max_connections: ServerConfig::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Some(ServerConfig::DEFAULT_IDLE_TIMEOUT),
            drain_timeout: ServerConfig::DEFAULT_DRAIN_TIMEOUT,
            max_line_length: ServerConfig::DEFAULT_MAX_LINE_LENGTH,
            nodelay: true,
            bind: BindOptions::default(),
            #[cfg(feature = "tls")]
            tls: None,
            handshake_timeout: ServerConfig::DEFAULT_HANDSHAKE_TIMEOUT,
            access: AccessList::default(),
            metrics: None,
            proxy_protocol: None,
        }
    }
}

impl ServerConfig {
    /// Default of [`max_connections`](ServerConfig::max_connections).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    /// Default of [`idle_timeout`](ServerConfig::idle_timeout): 300 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default of [`drain_timeout`](ServerConfig::drain_timeout): 10 s.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`max_line_length`](ServerConfig::max_line_length): 64 KiB.
    pub const DEFAULT_MAX_LINE_LENGTH: usize = 64 * 1024;
    /// Default of [`backlog`](ServerConfig::backlog).
    pub const DEFAULT_BACKLOG: u32 = BindOptions::DEFAULT_BACKLOG;
    /// Default of [`handshake_timeout`](ServerConfig::handshake_timeout):
    /// 10 s.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Concurrency mode. Default [`Mode::Tasks`].
    pub fn mode(mut self, mode: Mode) -> ServerConfig {
        self.mode = mode;
        self
    }

    /// Most connections served at once. Default 1024. The permit is taken
    /// *before* `accept()`, so an excess client is not refused: it waits in
    /// the kernel's listen backlog until a connection closes (or its own
    /// connect times out when the backlog is full). Values below 1 count as 1.
    pub fn max_connections(mut self, max: usize) -> ServerConfig {
        self.max_connections = max.max(1);
        self
    }

    /// Close a connection on which nothing was read or written for this
    /// long. Default 300 s; `None` waits forever.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> ServerConfig {
        self.idle_timeout = timeout;
        self
    }

    /// After shutdown is requested, how long open connections may run on
    /// before they are aborted. Default 10 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> ServerConfig {
        self.drain_timeout = timeout;
        self
    }

    /// Longest line a line-based service accepts. Default 64 KiB.
    pub fn max_line_length(mut self, max: usize) -> ServerConfig {
        self.max_line_length = max.max(1);
        self
    }

    /// TCP_NODELAY on accepted connections, so a reply written in two pieces
    /// does not wait 40 ms for a delayed ACK. Default on.
    pub fn nodelay(mut self, nodelay: bool) -> ServerConfig {
        self.nodelay = nodelay;
        self
    }

    /// Listen backlog. Default 1024.
    pub fn backlog(mut self, backlog: u32) -> ServerConfig {
        self.bind.backlog = backlog;
        self
    }

    /// SO_REUSEADDR. Default on.
    pub fn reuse_address(mut self, reuse: bool) -> ServerConfig {
        self.bind.reuse_address = reuse;
        self
    }

    /// SO_REUSEPORT, to run several server processes on one port. Default off.
    pub fn reuse_port(mut self, reuse: bool) -> ServerConfig {
        self.bind.reuse_port = reuse;
        self
    }

    /// The certificate and settings for `tls://` endpoints. Required when
    /// any endpoint is `tls://`; no default.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: ServerTls) -> ServerConfig {
        self.tls = Some(tls);
        self
    }

    /// How long a client gets to complete the TLS handshake. Default 10 s;
    /// a stalled handshake holds a connection permit, so it must end.
    pub fn handshake_timeout(mut self, timeout: Duration) -> ServerConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// Which IP peers are served. A refused stream peer is closed right
    /// after `accept()`, before TLS or any byte of the handler; a refused
    /// datagram is dropped unanswered. Default: everyone. Unix peers are
    /// not IP peers and are always served.
    pub fn access(mut self, access: AccessList) -> ServerConfig {
        self.access = access;
        self
    }

    /// Stream connections come through proxies that speak the PROXY
    /// protocol: only peers `proxy_protocol` trusts may connect, each must
    /// send a header within [`ServerConfig::handshake_timeout`] (before any
    /// TLS), and the client it names is the connection's peer from then on
    /// (for the access list too). Default: off.
    pub fn proxy_protocol(mut self, proxy_protocol: ProxyProtocol) -> ServerConfig {
        self.proxy_protocol = Some(proxy_protocol);
        self
    }

    /// Bind only IPv4 or only IPv6 addresses of each endpoint (nc's `-4` /
    /// `-6`). Default: every address the endpoint resolves to.
    pub fn family(mut self, family: Option<crate::addr::Family>) -> ServerConfig {
        self.bind.family = family;
        self
    }

    /// Permission bits for Unix socket files, applied right after binding
    /// and before listening. Default: the umask's.
    pub fn unix_mode(mut self, mode: u32) -> ServerConfig {
        self.bind.unix_mode = Some(mode);
        self
    }

    /// Count into `metrics` (connections, refusals, bytes, handler errors),
    /// which the caller reads while the server runs. Default: the server
    /// counts into its own, seen only in the [`Summary`](super::Summary).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> ServerConfig {
        self.metrics = Some(metrics);
        self
    }

    /// The longest line a line-based service should accept.
    pub fn line_limit(&self) -> usize {
        self.max_line_length
    }

    pub(crate) fn permits(&self) -> usize {
        match self.mode {
            Mode::Sequential => 1,
            Mode::Tasks | Mode::Threads => self.max_connections,
        }
    }
}
