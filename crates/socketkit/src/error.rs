//! The library's one error type.
//!
//! Like hyper's, [`Error`] is opaque: callers ask it questions
//! ([`Error::is_address_in_use`], [`Error::is_timeout`], …) instead of matching
//! on its insides, so new failure kinds can be added without breaking anyone.
//! `Display` prints only this level ("cannot bind tcp://127.0.0.1:80"); the
//! cause is the [`std::error::Error::source`], a boxed error of any type (the
//! operating system's `io::Error`, a rustls or hyper error, a
//! [`FrameError`](crate::protocol::FrameError), a service's refusal), so a
//! caller printing the chain (anyhow's `{:#}`) gets one line with all of it.
//! The predicates walk that chain: a timeout three causes down is a timeout.
//! Hints naming command-line flags are the CLI's, keyed on these predicates
//! and on the typed causes; no message here names a flag.

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

/// A boxed cause: any error, from any crate, that may cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error type of every fallible operation in this crate.
pub struct Error {
    kind: ErrorKind,
    /// What was being done, naming the address: "cannot bind tcp://127.0.0.1:80".
    context: String,
    /// What caused it: an `io::Error`, a rustls, hyper or join error, a
    /// [`FrameError`](crate::protocol::FrameError), another [`Error`], …
    source: Option<BoxError>,
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

    /// An error of `kind` described by `context`, caused by `source` (any
    /// error type; a `String` or `&str` becomes a plain message).
    pub fn with_source(
        kind: ErrorKind,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Error {
        Error {
            kind,
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The kind of operation that failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The causes, nearest first, for the predicates. An `io::Error`
    /// carrying another error yields that error next (its own `source()`
    /// skips it, printing it as its own message), so a rustls error inside
    /// tokio-rustls's `io::Error` is found too.
    fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let mut next = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        std::iter::from_fn(move || {
            let current = next?;
            next = match current
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
            {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => current.source(),
            };
            Some(current)
        })
    }

    /// The nearest cause of type `T` in the chain, if there is one.
    pub fn find_source<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.causes().find_map(|e| e.downcast_ref::<T>())
    }

    /// Whether this error or one of its causes is of `kind`.
    fn has_kind(&self, kind: ErrorKind) -> bool {
        self.kind == kind
            || self
                .causes()
                .any(|e| e.downcast_ref::<Error>().is_some_and(|e| e.kind == kind))
    }

    /// The operating system's error kind underneath (the nearest
    /// `io::Error` in the chain), if there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        self.find_source::<io::Error>().map(io::Error::kind)
    }

    /// The address was malformed.
    pub fn is_invalid_address(&self) -> bool {
        self.kind == ErrorKind::InvalidAddress
    }

    /// A name did not resolve.
    pub fn is_unresolved(&self) -> bool {
        self.has_kind(ErrorKind::Resolve)
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

    /// A deadline passed (connect timeout, idle timeout), here or anywhere
    /// down the chain.
    pub fn is_timeout(&self) -> bool {
        self.has_kind(ErrorKind::Timeout)
            || self
                .causes()
                .filter_map(|e| e.downcast_ref::<io::Error>())
                .any(|e| e.kind() == io::ErrorKind::TimedOut)
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
        self.has_kind(ErrorKind::Tls)
    }

    /// The peer broke its protocol (a bad frame, a malformed response).
    pub fn is_protocol(&self) -> bool {
        self.has_kind(ErrorKind::Protocol)
    }

    /// Authentication failed or the request was not permitted.
    pub fn is_auth(&self) -> bool {
        self.has_kind(ErrorKind::Auth)
    }

    /// The error's own description, without its cause.
    pub fn context(&self) -> &str {
        &self.context
    }
}

/// `{}` prints this level only; `{:#}` adds the causes, `: `-separated,
/// as anyhow does.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if f.alternate() {
            let mut cause = std::error::Error::source(self);
            while let Some(error) = cause {
                write!(f, ": {error}")?;
                cause = error.source();
            }
        }
        Ok(())
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
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Handlers read and write with tokio's I/O traits and propagate with `?`.
impl From<io::Error> for Error {
    fn from(source: io::Error) -> Error {
        #[cfg(feature = "tls")]
        let is_tls = source
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>());
        #[cfg(not(feature = "tls"))]
        let is_tls = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A foreign error carrying a cause, as hyper's does.
    #[derive(Debug)]
    struct Wrapper(io::Error);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapper")
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn predicates_walk_the_chain() {
        let deep = Wrapper(io::Error::new(io::ErrorKind::TimedOut, "slow"));
        let error = Error::with_source(ErrorKind::Io, "request failed", deep);
        assert!(error.is_timeout());
        assert_eq!(error.io_kind(), Some(io::ErrorKind::TimedOut));
        assert!(error.find_source::<Wrapper>().is_some());

        let inner = Error::new(ErrorKind::Tls, "handshake failed");
        let outer = Error::with_source(ErrorKind::Connect, "cannot connect", inner);
        assert!(outer.is_tls() && !outer.is_timeout());
    }

    #[test]
    fn an_io_error_carrying_another_error_is_looked_into() {
        // tokio-rustls's shape: the error inside an io::Error, whose own
        // `source()` would skip it.
        let reset = Wrapper(io::Error::from(io::ErrorKind::ConnectionReset));
        let error = Error::from(io::Error::other(reset));
        assert!(error.find_source::<Wrapper>().is_some());
        assert!(!error.is_tls());
    }

    #[test]
    fn alternate_display_prints_the_chain_once() {
        let source = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::with_source(ErrorKind::Connect, "cannot connect to tcp://x:1", source);
        assert_eq!(error.to_string(), "cannot connect to tcp://x:1");
        assert_eq!(format!("{error:#}"), "cannot connect to tcp://x:1: refused");
        let message = Error::with_source(ErrorKind::Config, "bad setting", "why");
        assert_eq!(format!("{message:#}"), "bad setting: why");
    }
}
