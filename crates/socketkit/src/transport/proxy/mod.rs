//! Proxy clients: reaching a TCP destination through a SOCKS5 or HTTP
//! `CONNECT` proxy, as part of opening a stream.
//!
//! This module owns the proxy URL ([`ProxyUrl`]: `socks5://`, `socks5h://`,
//! `http://`, with `user:password@` credentials that are never printed),
//! the two client handshakes (`socks5.rs` and `http.rs`, each a small bounded
//! decoder of the proxy's reply) and their typed failures ([`ProxyError`]).
//! [`connect`](super::connect) calls `open` when
//! [`ConnectOptions::proxy`](super::ConnectOptions::proxy) is set, and puts
//! TLS on top of the tunnel exactly as on a direct TCP connection, so every
//! client (`connect`, `exec`, `send`, `get`, `bench`, the forward service)
//! gets proxies from the one connector. What a proxy is *chosen* for (curl's
//! `*_proxy` variables) is `get`'s business, not this module's.

mod http;
mod socks5;

pub use http::{MAX_CONNECT_HEAD, MAX_CONNECT_HEADERS};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use tokio::net::TcpStream;

use super::connect::{candidates, race, race_connects};
use super::ConnectOptions;
use crate::addr::{self, Endpoint, Host, HostPort};
use crate::error::{Error, ErrorKind, Result};

/// The port a proxy URL without one means: 1080, as curl assumes for every
/// proxy scheme.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// Which protocol a proxy speaks, and who resolves the destination's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyScheme {
    /// `socks5://`: SOCKS5 (RFC 1928); this host resolves the destination
    /// and asks the proxy for an IP address.
    Socks5,
    /// `socks5h://`: SOCKS5 with the destination's name sent to the proxy,
    /// which resolves it (names only the proxy's network knows work).
    Socks5h,
    /// `http://`: an HTTP/1.1 proxy, asked with `CONNECT host:port`.
    Http,
}

impl ProxyScheme {
    fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
            ProxyScheme::Http => "http",
        }
    }
}

/// Credentials for the proxy, percent-decoded. `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Credentials {
    /// The user as written in the URL (still percent-encoded), for display.
    shown_user: String,
    user: Vec<u8>,
    password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.shown_user)
            .field("password", &"***")
            .finish()
    }
}

/// A proxy to connect through: `socks5://`, `socks5h://` or `http://`,
/// `[user:password@]HOST[:PORT]` (port 1080 by default, as curl's), an
/// optional trailing `/`. Text without a scheme is an HTTP proxy, as in
/// curl and the `http_proxy` variables. The user and password are
/// percent-decoded (`%40` for `@`, `%3A` for `:`); `Display` and `Debug`
/// show `***` for the password, so a proxy URL can be logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    scheme: ProxyScheme,
    host_port: HostPort,
    credentials: Option<Credentials>,
}

impl ProxyUrl {
    /// The protocol.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// The proxy's own host and port.
    pub fn host_port(&self) -> &HostPort {
        &self.host_port
    }

    /// Whether the URL carries a user and password.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The `Proxy-Authorization` value for an HTTP proxy's credentials.
    pub(crate) fn basic_auth(&self) -> Option<String> {
        use base64::Engine;
        let credentials = self.credentials.as_ref()?;
        let mut pair = credentials.user.clone();
        pair.push(b':');
        pair.extend_from_slice(&credentials.password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        Some(format!("Basic {encoded}"))
    }
}

impl FromStr for ProxyUrl {
    type Err = Error;

    fn from_str(text: &str) -> Result<ProxyUrl> {
        let invalid = |why: &str| {
            // Never echo the text: it may hold a password.
            Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid proxy URL: {why}"),
            )
        };
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = match scheme.to_ascii_lowercase().as_str() {
                    "socks5" => ProxyScheme::Socks5,
                    "socks5h" => ProxyScheme::Socks5h,
                    "http" => ProxyScheme::Http,
                    other => {
                        return Err(invalid(&format!(
                        "unsupported scheme '{other}' (expected socks5://, socks5h:// or http://)"
                    )))
                    }
                };
                (scheme, rest)
            }
            None => (ProxyScheme::Http, text),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(invalid(
                "a proxy URL has no path (expected SCHEME://[USER:PASSWORD@]HOST[:PORT])",
            ));
        }
        // The last '@': a password with a literal '@' in it still parses.
        let (credentials, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => (Some(credentials(userinfo, invalid)?), authority),
            None => (None, rest),
        };
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => authority.contains(':'),
        };
        let with_port = if has_port {
            format!("tcp://{authority}")
        } else {
            format!("tcp://{authority}:{DEFAULT_PROXY_PORT}")
        };
        let host_port = match with_port.parse::<Endpoint>() {
            Ok(Endpoint::Tcp(hp)) if hp.host != Host::Any => hp,
            Ok(_) => return Err(invalid("no host")),
            Err(e) => {
                let why = e
                    .context()
                    .rsplit_once(": ")
                    .map_or(e.context(), |(_, why)| why);
                return Err(invalid(&format!("'{authority}': {why}")));
            }
        };
        Ok(ProxyUrl {
            scheme,
            host_port,
            credentials,
        })
    }
}

/// `user:password` from a URL, percent-decoded, each 1 to 255 bytes as
/// RFC 1929 allows (the same bound serves HTTP's Basic scheme).
fn credentials(userinfo: &str, invalid: impl Fn(&str) -> Error) -> Result<Credentials> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |text: &str| percent_decode_str(text).collect::<Vec<u8>>();
    let credentials = Credentials {
        shown_user: user.to_owned(),
        user: decode(user),
        password: decode(password),
    };
    if credentials.user.is_empty() || credentials.user.len() > 255 {
        return Err(invalid("the user name must be 1 to 255 bytes"));
    }
    if credentials.password.len() > 255 {
        return Err(invalid("the password must be at most 255 bytes"));
    }
    if !user.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "percent-encode spaces and control characters in the user name",
        ));
    }
    Ok(credentials)
}

/// The URL as typed, the password replaced by `***`.
impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if let Some(credentials) = &self.credentials {
            write!(f, "{}:***@", credentials.shown_user)?;
        }
        write!(f, "{}", self.host_port)
    }
}

/// Why a proxy did not open the tunnel. Every variant's text names the
/// reason only; the [`Error`] around it names the proxy and destination.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyError {
    /// The SOCKS5 proxy answered the `CONNECT` with a failure reply code
    /// (RFC 1928 section 6: 0x01 general failure ... 0x08 address type).
    SocksReply(u8),
    /// The SOCKS5 proxy accepts none of the authentication methods
    /// offered (no authentication, and username/password when the URL has
    /// credentials).
    NoAcceptableMethod {
        /// Whether username/password was among the methods offered.
        offered_password: bool,
    },
    /// The proxy rejected the user name or password (SOCKS5 RFC 1929
    /// status other than 0).
    AuthFailed,
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx; its
    /// status line, control characters escaped.
    HttpStatus {
        /// The status code.
        status: u16,
        /// The status line as received (`HTTP/1.1 403 Forbidden`).
        line: String,
    },
    /// The reply broke the protocol (wrong version, unknown address type,
    /// an unparsable HTTP head).
    Malformed(String),
    /// The HTTP proxy's response head passed [`MAX_CONNECT_HEAD`].
    HeadTooLarge,
    /// The proxy closed the connection before its reply was complete.
    Closed {
        /// What we were waiting for ("greeting reply", "CONNECT reply").
        during: &'static str,
    },
    /// Reading from or writing to the proxy failed.
    Io(io::Error),
}

/// What a SOCKS5 reply code means (RFC 1928 section 6).
pub fn socks5_reply_meaning(code: u8) -> &'static str {
    match code {
        0x00 => "succeeded",
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned reply code",
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::SocksReply(code) => write!(
                f,
                "{} (SOCKS5 reply {code:#04x})",
                socks5_reply_meaning(*code)
            ),
            ProxyError::NoAcceptableMethod {
                offered_password: true,
            } => f.write_str("the proxy accepts neither no authentication nor username/password"),
            ProxyError::NoAcceptableMethod {
                offered_password: false,
            } => f.write_str(
                "the proxy requires authentication (give USER:PASSWORD@ in the proxy URL)",
            ),
            ProxyError::AuthFailed => f.write_str("the proxy rejected the user name or password"),
            ProxyError::HttpStatus { line, .. } => f.write_str(line),
            ProxyError::Malformed(why) => write!(f, "malformed reply from the proxy: {why}"),
            ProxyError::HeadTooLarge => write!(
                f,
                "the proxy's response head is longer than {} bytes",
                http::MAX_CONNECT_HEAD
            ),
            ProxyError::Closed { during } => {
                write!(f, "the proxy closed the connection during the {during}")
            }
            ProxyError::Io(_) => f.write_str("the connection to the proxy failed"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl ProxyError {
    /// A read or write error, with the end of the stream named for what
    /// was awaited.
    fn io(error: io::Error, during: &'static str) -> ProxyError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            ProxyError::Closed { during }
        } else {
            ProxyError::Io(error)
        }
    }
}

/// The destination as the proxy is asked for it.
#[derive(Debug, Clone)]
pub(crate) enum Target<'a> {
    /// An address this host resolved (`socks5://`).
    Addr(SocketAddr),
    /// A name (or literal) and port, for the proxy to resolve.
    Name(&'a HostPort),
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(addr) => write!(f, "{addr}"),
            Target::Name(hp) => write!(f, "{hp}"),
        }
    }
}

/// Opens a TCP stream to `destination` through `proxy`: Happy Eyeballs to
/// the proxy, then its handshake. For `socks5://` this host resolves the
/// destination and races one proxy connection per address, as it would
/// race direct connections; `socks5h://` and `http://` send the name. The
/// caller bounds the whole by its connect timeout.
pub(crate) async fn open(
    proxy: &ProxyUrl,
    destination: &HostPort,
    options: &ConnectOptions,
) -> Result<TcpStream> {
    match proxy.scheme {
        ProxyScheme::Socks5 => {
            let mut addrs = addr::resolve_connect(destination).await?;
            if let Some(family) = options.family {
                addrs.retain(|a| family.includes(a));
                if addrs.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Resolve,
                        format!("{destination} has no {family} address"),
                    ));
                }
            }
            let attempt = |addr: SocketAddr| {
                let (proxy, options) = (proxy.clone(), options.clone());
                async move { through(&proxy, &Target::Addr(addr), &options).await }
            };
            race(addrs, options.attempt_delay, attempt)
                .await
                .map_err(|e| e.unwrap_or_else(|| no_address(destination)))
        }
        ProxyScheme::Socks5h | ProxyScheme::Http => {
            through(proxy, &Target::Name(destination), options).await
        }
    }
}

fn no_address(destination: &HostPort) -> Error {
    Error::new(
        ErrorKind::Resolve,
        format!("{destination} has no address to connect to"),
    )
}

/// One connection to the proxy and one handshake asking for `target`.
async fn through(
    proxy: &ProxyUrl,
    target: &Target<'_>,
    options: &ConnectOptions,
) -> Result<TcpStream> {
    let endpoint = Endpoint::Tcp(proxy.host_port.clone());
    let addrs = candidates(&endpoint, &proxy.host_port, options).await?;
    let mut stream = race_connects(addrs, options).await.map_err(|e| {
        Error::with_source(
            ErrorKind::Connect,
            format!("cannot connect to proxy {proxy}"),
            e,
        )
    })?;
    let handshake = match proxy.scheme {
        ProxyScheme::Socks5 | ProxyScheme::Socks5h => {
            socks5::handshake(&mut stream, target, proxy.credentials.as_ref()).await
        }
        ProxyScheme::Http => http::handshake(&mut stream, target, proxy.basic_auth()).await,
    };
    handshake.map_err(|e| {
        let kind = match e {
            ProxyError::Io(_) => ErrorKind::Io,
            _ => ErrorKind::Proxy,
        };
        tracing::debug!(%proxy, %target, error = %e, "proxy handshake failed");
        Error::with_source(
            kind,
            format!("proxy {proxy} could not connect to {target}"),
            io::Error::other(e),
        )
    })?;
    tracing::debug!(%proxy, %target, "tunnel open");
    Ok(stream)
}

/// What the fuzz target drives: both handshakes against a proxy that
/// answers with `reply`, for every combination of credentials and target.
#[cfg(fuzzing)]
pub(crate) async fn fuzz_handshakes(reply: &[u8]) {
    let host_port = HostPort {
        host: Host::Name("example.com".to_owned()),
        port: 443,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 80));
    let with = credentials("user:pass", |_| Error::new(ErrorKind::Config, "")).ok();
    for target in [Target::Addr(addr), Target::Name(&host_port)] {
        for credentials in [None, with.as_ref()] {
            let mut stream = tokio::io::join(reply, tokio::io::sink());
            let _ = socks5::handshake(&mut stream, &target, credentials).await;
            let mut stream = tokio::io::join(reply, tokio::io::sink());
            let auth = credentials.map(|_| "Basic dXNlcjpwYXNz".to_owned());
            if let Err(ProxyError::HttpStatus { line, .. }) =
                http::handshake(&mut stream, &target, auth).await
            {
                assert!(!line.chars().any(char::is_control), "{line:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ProxyUrl {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn schemes_default_port_and_credentials() {
        let p = parse("socks5h://al%20ice:s%3Acr%40t@proxy.example:1081");
        assert_eq!(p.scheme(), ProxyScheme::Socks5h);
        assert_eq!(p.host_port().to_string(), "proxy.example:1081");
        let c = p.credentials.as_ref().unwrap();
        assert_eq!(c.user, b"al ice");
        assert_eq!(c.password, b"s:cr@t");
        assert_eq!(p.to_string(), "socks5h://al%20ice:***@proxy.example:1081");
        assert_eq!(parse("socks5://127.0.0.1").host_port().port, 1080);
        assert_eq!(parse("http://[::1]:3128/").to_string(), "http://[::1]:3128");
        assert_eq!(parse("localhost:3128").scheme(), ProxyScheme::Http);
        assert_eq!(parse("HTTP://[::1]").to_string(), "http://[::1]:1080");
        // A raw '@' in the password: the last '@' ends the credentials.
        let raw = parse("http://u:p@ss@h:1");
        assert_eq!(raw.credentials.as_ref().unwrap().password, b"p@ss");
        assert_eq!(
            raw.basic_auth().unwrap(),
            format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "u:p@ss")
            )
        );
    }

    #[test]
    fn the_password_never_shows() {
        let p = parse("socks5://user:hunter2@127.0.0.1:1080");
        assert!(!p.to_string().contains("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
        for bad in [
            "socks5://user:hunter2@",
            "socks5://user:hunter2@host:99999",
            "https://user:hunter2@host:1",
            "socks5://user:hunter2@host:1/path",
        ] {
            let err = bad.parse::<ProxyUrl>().unwrap_err();
            assert!(err.is_invalid_address(), "{bad}");
            assert!(!err.to_string().contains("hunter2"), "{bad}: {err}");
        }
    }

    #[test]
    fn rejects_what_cannot_be_sent() {
        for (bad, why) in [
            ("socks4://h:1", "unsupported scheme 'socks4'"),
            ("socks5://:pw@h:1", "1 to 255 bytes"),
            ("socks5://:1080", "no host"),
            ("socks5://h:x", "not a number"),
            ("socks5://bad host:1", "not a valid host name"),
        ] {
            let err = bad.parse::<ProxyUrl>().unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
        let long = format!("socks5://u:{}@h:1", "p".repeat(256));
        assert!(long.parse::<ProxyUrl>().is_err());
    }

    #[test]
    fn reply_codes_read_as_rfc_1928_says() {
        assert_eq!(
            ProxyError::SocksReply(5).to_string(),
            "connection refused (SOCKS5 reply 0x05)"
        );
        assert_eq!(
            ProxyError::SocksReply(0x2a).to_string(),
            "unassigned reply code (SOCKS5 reply 0x2a)"
        );
    }
}
