//! Endpoints: parsing the address syntax users type and resolving it.
//!
//! One syntax serves both servers and clients, and [`Endpoint`]'s `Display`
//! writes it back with its scheme, so `listening on tcp://127.0.0.1:40123`
//! can be pasted into a client unchanged:
//!
//! | text | meaning |
//! |---|---|
//! | `HOST:PORT`, `tcp://HOST:PORT` | TCP; HOST is an IPv4 literal or a name |
//! | `[V6]:PORT` | TCP on an IPv6 literal |
//! | `:PORT` | every interface, IPv4 and IPv6, one shared port |
//! | `PORT` | TCP on 127.0.0.1 (loopback is the safe default) |
//! | `udp://HOST:PORT` | UDP |
//! | `tls://HOST:PORT` | TLS over TCP |
//! | `unix:PATH` | Unix stream socket |
//! | `unixgram:PATH` | Unix datagram socket |
//!
//! Resolution follows getaddrinfo(AF_UNSPEC): a server binds every address a
//! name gives ([`resolve_bind`]); a client gets the list to race
//! ([`resolve_connect`]). This module does no socket work of its own.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};

/// Where to listen or connect: a transport and its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A TCP stream socket.
    Tcp(HostPort),
    /// A UDP datagram socket.
    Udp(HostPort),
    /// TLS over TCP.
    Tls(HostPort),
    /// A Unix-domain stream socket at a filesystem path.
    Unix(PathBuf),
    /// A Unix-domain datagram socket at a filesystem path.
    UnixDatagram(PathBuf),
}

/// Whether an endpoint carries a byte stream or separate datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// Connection-oriented byte stream (TCP, Unix stream).
    Stream,
    /// Message-oriented datagrams (UDP, Unix datagram).
    Datagram,
}

/// An internet host and port, before resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host part.
    pub host: Host,
    /// The port; 0 asks the system for a free one.
    pub port: u16,
}

/// The host part of a [`HostPort`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// Written as an empty host (`:PORT`): every interface, both families.
    Any,
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A name to resolve.
    Name(String),
}

impl Endpoint {
    /// The endpoint of an internet socket address of the given kind.
    pub fn from_socket_addr(kind: SocketKind, addr: SocketAddr) -> Endpoint {
        let host_port = HostPort {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        };
        match kind {
            SocketKind::Stream => Endpoint::Tcp(host_port),
            SocketKind::Datagram => Endpoint::Udp(host_port),
        }
    }

    /// The same endpoint (scheme kept) at another internet address: how a
    /// bound socket reports the port it really got.
    pub fn at(&self, addr: SocketAddr) -> Endpoint {
        let host_port = HostPort {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        };
        match self {
            Endpoint::Tls(_) => Endpoint::Tls(host_port),
            endpoint => Endpoint::from_socket_addr(endpoint.kind(), addr),
        }
    }

    /// The host and port of an internet endpoint.
    pub fn host_port(&self) -> Option<&HostPort> {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Udp(hp) | Endpoint::Tls(hp) => Some(hp),
            Endpoint::Unix(_) | Endpoint::UnixDatagram(_) => None,
        }
    }

    /// Stream or datagram.
    pub fn kind(&self) -> SocketKind {
        match self {
            Endpoint::Tcp(_) | Endpoint::Tls(_) | Endpoint::Unix(_) => SocketKind::Stream,
            Endpoint::Udp(_) | Endpoint::UnixDatagram(_) => SocketKind::Datagram,
        }
    }
}

impl Host {
    /// Whether the host is this machine's loopback (a loopback literal or
    /// `localhost`). The wildcard is not: a server binding it is reachable
    /// from every interface.
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(name) => name == "localhost",
            Host::Any => false,
        }
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(text: &str) -> Result<Endpoint> {
        let invalid = |why: &str| invalid_address(text, why);
        if let Some(path) = text.strip_prefix("unixgram:") {
            return unix_path(path)
                .map(Endpoint::UnixDatagram)
                .ok_or_else(|| invalid("empty path"));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            return unix_path(path)
                .map(Endpoint::Unix)
                .ok_or_else(|| invalid("empty path"));
        }
        match text.split_once("://") {
            Some(("tcp", rest)) => Ok(Endpoint::Tcp(parse_host_port(text, rest)?)),
            Some(("udp", rest)) => Ok(Endpoint::Udp(parse_host_port(text, rest)?)),
            Some(("tls", rest)) => Ok(Endpoint::Tls(parse_host_port(text, rest)?)),
            Some((scheme, _)) => Err(invalid(&format!(
                "unknown scheme '{scheme}' (expected tcp://, udp://, tls://, unix: or unixgram:)"
            ))),
            None => Ok(Endpoint::Tcp(parse_host_port(text, text)?)),
        }
    }
}

fn unix_path(path: &str) -> Option<PathBuf> {
    (!path.is_empty()).then(|| PathBuf::from(path))
}

fn invalid_address(text: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidAddress,
        format!("invalid address '{text}': {why}"),
    )
}

/// Parses `HOST:PORT`, `[V6]:PORT`, `:PORT` or a bare `PORT`; `whole` is the
/// full text, quoted in errors.
fn parse_host_port(whole: &str, text: &str) -> Result<HostPort> {
    let invalid = |why: &str| invalid_address(whole, why);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(HostPort {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: parse_port(whole, text)?,
        });
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (literal, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid("missing ']' after IPv6 address"))?;
        let ip: Ipv6Addr = literal
            .parse()
            .map_err(|_| invalid(&format!("'{literal}' is not an IPv6 address")))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid("expected ':PORT' after ']'"))?;
        return Ok(HostPort {
            host: Host::Ip(IpAddr::V6(ip)),
            port: parse_port(whole, port)?,
        });
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected HOST:PORT, [IPV6]:PORT or :PORT"))?;
    if host.contains(':') {
        return Err(invalid("write IPv6 addresses in brackets, like [::1]:7007"));
    }
    let port = parse_port(whole, port)?;
    let host = if host.is_empty() {
        Host::Any
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Host::Ip(IpAddr::V4(ip))
    } else if is_valid_hostname(host) {
        Host::Name(host.to_owned())
    } else {
        return Err(invalid(&format!("'{host}' is not a valid host name")));
    };
    Ok(HostPort { host, port })
}

fn parse_port(whole: &str, port: &str) -> Result<u16> {
    port.parse().map_err(|_| {
        invalid_address(
            whole,
            &format!("port '{port}' is not a number from 0 to 65535"),
        )
    })
}

/// Letters, digits, '-', '_' and '.', as DNS labels and /etc/hosts names use.
fn is_valid_hostname(name: &str) -> bool {
    name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Any => write!(f, ":{}", self.port),
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(hp) => write!(f, "tcp://{hp}"),
            Endpoint::Udp(hp) => write!(f, "udp://{hp}"),
            Endpoint::Tls(hp) => write!(f, "tls://{hp}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::UnixDatagram(path) => write!(f, "unixgram:{}", path.display()),
        }
    }
}

/// The addresses a server binds for `host_port`, like getaddrinfo with
/// AI_PASSIVE: both wildcards for [`Host::Any`] (IPv6 first), every address of
/// a name, the literal itself otherwise. Duplicates are removed.
pub async fn resolve_bind(host_port: &HostPort) -> Result<Vec<SocketAddr>> {
    let port = host_port.port;
    match &host_port.host {
        Host::Any => Ok(vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ]),
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => lookup(name, port).await,
    }
}

/// The addresses a client tries for `host_port`, in resolver order. An empty
/// host means this machine: both loopback addresses.
pub async fn resolve_connect(host_port: &HostPort) -> Result<Vec<SocketAddr>> {
    let port = host_port.port;
    match &host_port.host {
        Host::Any => Ok(vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        ]),
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => lookup(name, port).await,
    }
}

async fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let unresolved = |source| {
        Error::with_source(
            ErrorKind::Resolve,
            format!("cannot resolve host name '{name}'"),
            source,
        )
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in tokio::net::lookup_host((name, port))
        .await
        .map_err(unresolved)?
    {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(Error::new(
            ErrorKind::Resolve,
            format!("host name '{name}' has no addresses"),
        ));
    }
    Ok(addrs)
}

/// An address family a client may be restricted to (`-4`, `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl Family {
    /// Whether `addr` belongs to this family.
    pub fn includes(self, addr: &SocketAddr) -> bool {
        match self {
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }

    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The local end a client binds before connecting (nc's `-s` and `-p` in
/// one): an address, a port, or both. Written `127.0.0.2`, `::1`, `:40000`,
/// `127.0.0.2:40000` or `[::1]:40000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SourceAddress {
    /// The local IP address; `None` lets the system choose per route.
    pub ip: Option<IpAddr>,
    /// The local port; 0 lets the system choose.
    pub port: u16,
}

impl SourceAddress {
    /// The socket address to bind for a connection to `peer`: the given IP
    /// (or the unspecified address of `peer`'s family) and port.
    pub fn bind_addr_for(&self, peer: &SocketAddr) -> SocketAddr {
        let ip = self.ip.unwrap_or(if peer.is_ipv6() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        SocketAddr::new(ip, self.port)
    }
}

impl FromStr for SourceAddress {
    type Err = Error;

    fn from_str(text: &str) -> Result<SourceAddress> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid source address '{text}': {why}"),
            )
        };
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(SourceAddress {
                ip: Some(ip),
                port: 0,
            });
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(SourceAddress {
                ip: Some(addr.ip()),
                port: addr.port(),
            });
        }
        if let Some(port) = text.strip_prefix(':') {
            let port = port
                .parse()
                .map_err(|_| invalid(&format!("port '{port}' is not a number from 0 to 65535")))?;
            return Ok(SourceAddress { ip: None, port });
        }
        Err(invalid(
            "expected ADDRESS, :PORT or ADDRESS:PORT (IPv6 as [ADDRESS]:PORT), like 127.0.0.2:40000",
        ))
    }
}

impl fmt::Display for SourceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (Some(ip), 0) => write!(f, "{ip}"),
            (Some(ip), port) => write!(f, "{}", SocketAddr::new(ip, port)),
            (None, port) => write!(f, ":{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Endpoint {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn round_trips_every_form_with_its_scheme() {
        for (text, shown) in [
            ("127.0.0.1:7007", "tcp://127.0.0.1:7007"),
            ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"),
            ("[::1]:7", "tcp://[::1]:7"),
            ("udp://[::1]:7", "udp://[::1]:7"),
            ("tls://localhost:443", "tls://localhost:443"),
            (":8080", "tcp://:8080"),
            ("udp://:0", "udp://:0"),
            ("localhost:80", "tcp://localhost:80"),
            ("9000", "tcp://127.0.0.1:9000"),
            ("unix:/tmp/s.sock", "unix:/tmp/s.sock"),
            ("unixgram:/tmp/d.sock", "unixgram:/tmp/d.sock"),
        ] {
            assert_eq!(parse(text).to_string(), shown, "{text}");
            assert_eq!(parse(shown).to_string(), shown, "{shown}");
        }
    }

    #[test]
    fn rejects_bad_syntax_with_a_reason() {
        for (text, reason) in [
            ("", "expected HOST:PORT"),
            ("host", "expected HOST:PORT"),
            ("::1:80", "brackets"),
            ("[::1]80", "expected ':PORT'"),
            ("[::1:80", "missing ']'"),
            ("[x]:80", "not an IPv6 address"),
            ("127.0.0.1:65536", "0 to 65535"),
            ("127.0.0.1:http", "0 to 65535"),
            ("sctp://1.2.3.4:5", "unknown scheme 'sctp'"),
            ("unix:", "empty path"),
            ("bad host:80", "not a valid host name"),
        ] {
            let err = text.parse::<Endpoint>().unwrap_err();
            assert!(err.is_invalid_address(), "{text}");
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn source_addresses_take_an_address_a_port_or_both() {
        for (text, shown) in [
            ("127.0.0.2", "127.0.0.2"),
            (":40000", ":40000"),
            ("127.0.0.2:40000", "127.0.0.2:40000"),
            ("::1", "::1"),
            ("[::1]:40000", "[::1]:40000"),
        ] {
            let source: SourceAddress = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(source.to_string(), shown);
        }
        for bad in ["", "host", ":", ":70000", "127.0.0.2:", "1.2.3:4"] {
            let err = bad.parse::<SourceAddress>().unwrap_err();
            assert!(err.is_invalid_address(), "{bad}");
        }
        let port_only: SourceAddress = ":5".parse().unwrap();
        let v6_peer: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(port_only.bind_addr_for(&v6_peer).to_string(), "[::]:5");
    }

    #[tokio::test]
    async fn any_host_binds_both_wildcards_on_one_port() {
        let Endpoint::Tcp(hp) = parse(":0") else {
            unreachable!()
        };
        let addrs = resolve_bind(&hp).await.unwrap();
        assert_eq!(addrs.len(), 2);
        assert!(addrs[0].is_ipv6() && addrs[1].is_ipv4());
    }
}
