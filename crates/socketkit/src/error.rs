//! The library's one error type.
//!
//! Like hyper's, [`Error`] is opaque: callers ask it questions
//! ([`Error::is_address_in_use`], [`Error::is_timeout`], …) instead of matching
//! on its insides, so new failure kinds can be added without breaking anyone.
//! `Display` prints only this level ("cannot bind tcp://127.0.0.1:80"); the
//! operating system's reason is the [`std::error::Error::source`], so a caller
//! printing the chain (anyhow's `{:#}`) gets one line with both.

use std::{fmt, io};

/// What went wrong, at the level of the operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An address could not be parsed (`tcp://host:port`, `unix:PATH`, …).
    InvalidAddress,
    /// A host name did not resolve to any address.
    Resolve,
    /// A socket could not be bound (in use, permission, unavailable address).
    Bind,
    /// A connection could not be established (refused, unreachable).
    Connect,
    /// An operation did not finish before its deadline.
    Timeout,
    /// Reading or writing an established connection or socket failed.
    Io,
    /// The service does not support the transport it was asked to serve on.
    Unsupported,
    /// The connection was cut off because the server's drain deadline passed.
    Aborted,
    /// TLS failed: a certificate or key could not be loaded, or a handshake
    /// (including certificate verification) failed.
    Tls,
    /// The peer broke its protocol: a bad frame or wrong version of the
    /// framed protocol, a malformed or truncated HTTP response.
    Protocol,
    /// Authentication failed or the request is not permitted.
    Auth,
    /// A setting is invalid or unsafe (a malformed limit, an allow-list
    /// entry or environment name the policy refuses); found at start.
    Config,
    /// A proxy between us and the destination refused or broke the
    /// handshake (a SOCKS5 reply code, an HTTP status to `CONNECT`); the
    /// source is a [`ProxyError`](crate::transport::ProxyError).
    Proxy,
}

/// The error type of every fallible operation in this crate.
pub struct Error {
    kind: ErrorKind,
    /// What was being done, naming the address: "cannot bind tcp://127.0.0.1:80".
    context: String,
    source: Option<io::Error>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` described by `context`, with no underlying cause.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Error {
        Error {
            kind,
            context: context.into(),
            source: None,
        }
    }

    /// An error of `kind` described by `context`, caused by `source`.
    pub fn with_source(kind: ErrorKind, context: impl Into<String>, source: io::Error) -> Error {
        Error {
            kind,
            context: context.into(),
            source: Some(source),
        }
    }

    /// The kind of operation that failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operating system's error kind underneath, if there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        self.source.as_ref().map(io::Error::kind)
    }

    /// The address was malformed.
    pub fn is_invalid_address(&self) -> bool {
        self.kind == ErrorKind::InvalidAddress
    }

    /// A name did not resolve.
    pub fn is_unresolved(&self) -> bool {
        self.kind == ErrorKind::Resolve
    }

    /// Binding failed because another socket holds the address.
    pub fn is_address_in_use(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::AddrInUse)
    }

    /// The operating system refused for lack of privilege (ports below 1024).
    pub fn is_permission_denied(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::PermissionDenied)
    }

    /// The peer actively refused the connection.
    pub fn is_connection_refused(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::ConnectionRefused)
    }

    /// A deadline passed (connect timeout, idle timeout).
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout || self.io_kind() == Some(io::ErrorKind::TimedOut)
    }

    /// The connection ended because the peer went away (reset, broken pipe,
    /// unexpected end of stream): routine for a server, not a fault of ours.
    pub fn is_peer_gone(&self) -> bool {
        matches!(
            self.io_kind(),
            Some(
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        )
    }

    /// TLS setup or a handshake failed.
    pub fn is_tls(&self) -> bool {
        self.kind == ErrorKind::Tls
    }

    /// The error's own description, without its cause.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("context", &self.context);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Handlers read and write with tokio's I/O traits and propagate with `?`.
impl From<io::Error> for Error {
    fn from(source: io::Error) -> Error {
        let is_tls = source
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>());
        let (kind, context) = if is_tls {
            (ErrorKind::Tls, "TLS session failed")
        } else if source.kind() == io::ErrorKind::TimedOut {
            (ErrorKind::Timeout, "connection I/O failed")
        } else {
            (ErrorKind::Io, "connection I/O failed")
        };
        Error::with_source(kind, context, source)
    }
}
