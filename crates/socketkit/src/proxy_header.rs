//! The PROXY protocol header (HAProxy's spec, version 1 text and version 2
//! binary): the decoder a server runs on the first bytes of a connection
//! from a trusted proxy, and the encoders `serve forward --send-proxy` uses.
//!
//! [`decode`] is a pure function on the bytes seen so far, in the shape of
//! tokio-util's `Decoder` contract: [`Decoded::Incomplete`] asks for more
//! bytes, an error is final, and [`Decoded::Header`] says exactly how many
//! bytes the header took, so a reader can consume those and not one byte of
//! the application data behind them (the server peeks, see
//! `server/proxy.rs`). It is bounded: a version 1 line is at most
//! [`V1_MAX_LEN`] bytes, a version 2 header at most the caller's cap
//! (default [`DEFAULT_MAX_LEN`], never above [`V2_MAX_LEN`]); the cap is
//! checked on the 16-byte fixed part, before anything else is needed.
//!
//! What is accepted: v1 `TCP4`, `TCP6` and `UNKNOWN`; v2 commands `LOCAL`
//! and `PROXY`, families `AF_UNSPEC`, `AF_INET`, `AF_INET6`, `AF_UNIX`,
//! transports unspecified, `STREAM` and `DGRAM`. Version 2 TLVs are walked
//! (each must fit in the header) and skipped. `LOCAL`, `UNKNOWN` and
//! `AF_UNSPEC` carry no usable address: the connection's own addresses
//! stand ([`ProxyHeader::source`] is `None`).
//!
//! This module owns the bytes only; trusting a proxy, the deadline and
//! which address a handler sees belong to the server.

// Every length here comes from a peer: arithmetic on them is checked, and
// an operation that cannot overflow says why.
#![deny(clippy::arithmetic_side_effects)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::transport::SocketAddress;

/// Longest version 1 header, `\r\n` included (the spec's worst case, a
/// `TCP6` line with the longest addresses and ports).
pub const V1_MAX_LEN: usize = 107;

/// Longest version 2 header the format can express: the 16-byte fixed part
/// and a 16-bit length.
pub const V2_MAX_LEN: usize = 16 + 65535;

/// Default cap on a version 2 header: 4 KiB holds any address block (216
/// bytes for `AF_UNIX`) and the TLVs load balancers add, while a peer still
/// cannot make a connection buffer 64 KiB before it is even admitted.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// The smallest cap [`decode`] honours: the fixed part and a `AF_UNIX`
/// address block, so every family fits.
pub const MIN_MAX_LEN: usize = V2_FIXED + UNIX_BLOCK;

/// The version 2 signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The version 1 prefix.
const V1_PREFIX: &[u8] = b"PROXY ";

/// Signature, version/command, family/transport, 16-bit length.
const V2_FIXED: usize = 16;
/// Address block sizes per family: two addresses and two ports, or two
/// 108-byte Unix paths.
const INET_BLOCK: usize = 12;
const INET6_BLOCK: usize = 36;
const UNIX_BLOCK: usize = 216;
const UNIX_PATH: usize = 108;

/// Which version of the protocol a header is (or is to be) written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The text line: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header with its 12-byte signature.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// What the proxy says about the connection (version 2's command; a
/// version 1 header is always `Proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The proxy opened the connection on its own account (a health
    /// check): the connection's own addresses stand.
    Local,
    /// The connection carries a client's: the addresses are the client's.
    Proxy,
}

/// The original connection's transport (version 2 only; version 1 is
/// always `Stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Not given (`UNSPEC`).
    Unspecified,
    /// A stream: TCP or a Unix stream socket.
    Stream,
    /// Datagrams: UDP or a Unix datagram socket.
    Datagram,
}

/// The addresses a header carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// None (`LOCAL`, v1 `UNKNOWN`, v2 `AF_UNSPEC`): the connection's own
    /// addresses stand.
    Unspecified,
    /// The client's address and the one it connected to.
    Inet {
        /// The client.
        source: SocketAddr,
        /// Where the client connected (the proxy's front).
        destination: SocketAddr,
    },
    /// Unix socket paths (`None`: unnamed, or an abstract name).
    Unix {
        /// The client's socket.
        source: Option<PathBuf>,
        /// The socket the client connected to.
        destination: Option<PathBuf>,
    },
}

/// A decoded (or to-be-encoded) PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    /// The version it was written in.
    pub version: Version,
    /// `LOCAL` or `PROXY`.
    pub command: Command,
    /// The original connection's transport.
    pub transport: Transport,
    /// The original connection's addresses.
    pub addresses: Addresses,
}

/// The outcome of [`decode`] on the bytes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole header, which took the first `len` bytes.
    Header {
        /// The header.
        header: ProxyHeader,
        /// How many bytes it took; what follows is application data.
        len: usize,
    },
    /// The bytes so far begin a valid header; at least `at_least` bytes
    /// (in all) are needed to go on.
    Incomplete {
        /// The least total length worth trying again with.
        at_least: usize,
    },
}

/// Why a header was refused. Every error is final: the connection cannot
/// be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The connection does not start with `PROXY ` or the v2 signature.
    Missing,
    /// No `\r\n` within [`V1_MAX_LEN`] bytes.
    V1TooLong,
    /// A version 1 line that does not follow the grammar; says which part.
    V1Malformed(&'static str),
    /// A version 2 header whose version nibble is not 2.
    V2Version(u8),
    /// A version 2 command other than `LOCAL` and `PROXY`.
    V2Command(u8),
    /// A version 2 family/transport byte outside the spec.
    V2Family(u8),
    /// A version 2 header longer than the cap.
    V2TooLong {
        /// Its total length, fixed part included.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A version 2 length too short for its family's addresses.
    V2ShortAddresses,
    /// A version 2 TLV that runs past the end of the header.
    V2Tlv,
}

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyHeaderError::Missing => f.write_str("no PROXY protocol header"),
            ProxyHeaderError::V1TooLong => {
                write!(f, "PROXY v1 header without CRLF in {V1_MAX_LEN} bytes")
            }
            ProxyHeaderError::V1Malformed(what) => write!(f, "malformed PROXY v1 header: {what}"),
            ProxyHeaderError::V2Version(v) => write!(f, "PROXY v2 header of version {v}"),
            ProxyHeaderError::V2Command(c) => write!(f, "PROXY v2 header with command {c:#x}"),
            ProxyHeaderError::V2Family(b) => {
                write!(f, "PROXY v2 header with family/transport {b:#04x}")
            }
            ProxyHeaderError::V2TooLong { len, max } => {
                write!(f, "PROXY v2 header of {len} bytes (limit {max})")
            }
            ProxyHeaderError::V2ShortAddresses => {
                f.write_str("PROXY v2 header too short for its addresses")
            }
            ProxyHeaderError::V2Tlv => f.write_str("PROXY v2 header with a TLV past its end"),
        }
    }
}

impl std::error::Error for ProxyHeaderError {}

/// Decodes a header from the start of `buf`, refusing a version 2 header
/// longer than `max_len` bytes (clamped to [`MIN_MAX_LEN`]..=[`V2_MAX_LEN`]).
/// Never reads past the header and never panics.
pub fn decode(buf: &[u8], max_len: usize) -> Result<Decoded, ProxyHeaderError> {
    let max_len = max_len.clamp(MIN_MAX_LEN, V2_MAX_LEN);
    let Some(&first) = buf.first() else {
        return Ok(Decoded::Incomplete { at_least: 1 });
    };
    match first {
        b'P' => decode_v1(buf),
        b'\r' => decode_v2(buf, max_len),
        _ => Err(ProxyHeaderError::Missing),
    }
}

/// True while `buf` could still be the start of `prefix`, or starts with it.
fn agrees(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

fn decode_v1(buf: &[u8]) -> Result<Decoded, ProxyHeaderError> {
    if !agrees(buf, V1_PREFIX) {
        return Err(ProxyHeaderError::Missing);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if !window.iter().all(|&b| is_v1_char(b)) {
            return Err(ProxyHeaderError::V1Malformed(
                "a byte that is not printable ASCII",
            ));
        }
        if window.len() >= V1_MAX_LEN {
            return Err(ProxyHeaderError::V1TooLong);
        }
        // Cannot overflow: window.len() < V1_MAX_LEN.
        #[allow(clippy::arithmetic_side_effects)]
        let at_least = window.len() + 1;
        return Ok(Decoded::Incomplete { at_least });
    };
    let line = &window[..cr];
    if !line.iter().all(|&b| is_v1_char(b)) {
        return Err(ProxyHeaderError::V1Malformed(
            "a byte that is not printable ASCII",
        ));
    }
    // cr < window.len() <= V1_MAX_LEN, so neither sum overflows.
    #[allow(clippy::arithmetic_side_effects)]
    let (lf_at, len) = (cr + 1, cr + 2);
    match window.get(lf_at) {
        None if len > V1_MAX_LEN => return Err(ProxyHeaderError::V1TooLong),
        None => return Ok(Decoded::Incomplete { at_least: len }),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyHeaderError::V1Malformed("CR without LF")),
    }
    let header = parse_v1_line(line)?;
    Ok(Decoded::Header { header, len })
}

fn is_v1_char(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

/// `PROXY TCP4 src dst sport dport` (the CRLF already cut off), fields
/// separated by exactly one space.
fn parse_v1_line(line: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    // is_v1_char admitted only ASCII, so this cannot fail.
    let line = std::str::from_utf8(line)
        .map_err(|_| ProxyHeaderError::V1Malformed("a byte that is not printable ASCII"))?;
    let rest = line
        .strip_prefix("PROXY ")
        .ok_or(ProxyHeaderError::Missing)?;
    let unknown = ProxyHeader {
        version: Version::V1,
        command: Command::Proxy,
        transport: Transport::Stream,
        addresses: Addresses::Unspecified,
    };
    // UNKNOWN: whatever follows up to the CRLF is to be ignored.
    if rest == "UNKNOWN" || rest.starts_with("UNKNOWN ") {
        return Ok(unknown);
    }
    let mut fields = rest.split(' ');
    let protocol = fields.next().unwrap_or_default();
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyHeaderError::V1Malformed(
            "expected PROXY TCP4|TCP6 SRC DST SPORT DPORT",
        ));
    };
    let (source, destination): (IpAddr, IpAddr) = match protocol {
        "TCP4" => (
            IpAddr::V4(v1_ip::<Ipv4Addr>(src)?),
            IpAddr::V4(v1_ip::<Ipv4Addr>(dst)?),
        ),
        "TCP6" => (
            IpAddr::V6(v1_ip::<Ipv6Addr>(src)?),
            IpAddr::V6(v1_ip::<Ipv6Addr>(dst)?),
        ),
        _ => {
            return Err(ProxyHeaderError::V1Malformed(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    Ok(ProxyHeader {
        addresses: Addresses::Inet {
            source: SocketAddr::new(source, v1_port(sport)?),
            destination: SocketAddr::new(destination, v1_port(dport)?),
        },
        ..unknown
    })
}

fn v1_ip<T: std::str::FromStr>(text: &str) -> Result<T, ProxyHeaderError> {
    text.parse()
        .map_err(|_| ProxyHeaderError::V1Malformed("an address of the wrong form"))
}

/// A port: 1 to 5 decimal digits (no sign, which `u16::from_str` would
/// take), at most 65535.
fn v1_port(text: &str) -> Result<u16, ProxyHeaderError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProxyHeaderError::V1Malformed("a port that is not 0-65535"));
    }
    text.parse()
        .map_err(|_| ProxyHeaderError::V1Malformed("a port that is not 0-65535"))
}

fn decode_v2(buf: &[u8], max_len: usize) -> Result<Decoded, ProxyHeaderError> {
    if !agrees(buf, &V2_SIGNATURE) {
        return Err(ProxyHeaderError::Missing);
    }
    let Some(fixed) = buf.get(..V2_FIXED) else {
        // Checked here already, not only once all 16 bytes are in: a peer
        // that sends the signature and stalls is cut off by the deadline,
        // one that sends a bad version byte is not waited for.
        if let Some(&version_command) = buf.get(12) {
            check_version_command(version_command)?;
        }
        if let Some(&family) = buf.get(13) {
            check_family(family)?;
        }
        return Ok(Decoded::Incomplete { at_least: V2_FIXED });
    };
    let command = check_version_command(fixed[12])?;
    let (family, transport) = check_family(fixed[13])?;
    let body_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    // Cannot overflow: body_len <= 65535.
    #[allow(clippy::arithmetic_side_effects)]
    let len = V2_FIXED + body_len;
    if len > max_len {
        return Err(ProxyHeaderError::V2TooLong { len, max: max_len });
    }
    let Some(body) = buf.get(V2_FIXED..len) else {
        return Ok(Decoded::Incomplete { at_least: len });
    };
    let header = ProxyHeader {
        version: Version::V2,
        command,
        transport,
        addresses: Addresses::Unspecified,
    };
    // LOCAL: "discard the protocol block including the family".
    if command == Command::Local {
        return Ok(Decoded::Header { header, len });
    }
    let (addresses, block) = match family {
        Family::Unspecified => (Addresses::Unspecified, body.len()),
        Family::Inet => {
            let b = body
                .get(..INET_BLOCK)
                .ok_or(ProxyHeaderError::V2ShortAddresses)?;
            let addresses = Addresses::Inet {
                source: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                    u16::from_be_bytes([b[8], b[9]]),
                ),
                destination: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
                    u16::from_be_bytes([b[10], b[11]]),
                ),
            };
            (addresses, INET_BLOCK)
        }
        Family::Inet6 => {
            let b = body
                .get(..INET6_BLOCK)
                .ok_or(ProxyHeaderError::V2ShortAddresses)?;
            let ip = |octets: &[u8]| {
                <[u8; 16]>::try_from(octets)
                    .map(|o| IpAddr::V6(Ipv6Addr::from(o)))
                    .map_err(|_| ProxyHeaderError::V2ShortAddresses)
            };
            let addresses = Addresses::Inet {
                source: SocketAddr::new(ip(&b[0..16])?, u16::from_be_bytes([b[32], b[33]])),
                destination: SocketAddr::new(ip(&b[16..32])?, u16::from_be_bytes([b[34], b[35]])),
            };
            (addresses, INET6_BLOCK)
        }
        Family::Unix => {
            let b = body
                .get(..UNIX_BLOCK)
                .ok_or(ProxyHeaderError::V2ShortAddresses)?;
            let (source, destination) = b.split_at(UNIX_PATH);
            let addresses = Addresses::Unix {
                source: unix_path(source),
                destination: unix_path(destination),
            };
            (addresses, UNIX_BLOCK)
        }
    };
    // block <= body.len() (each arm took that many bytes or the whole body).
    skip_tlvs(&body[block..])?;
    Ok(Decoded::Header {
        header: ProxyHeader {
            addresses,
            ..header
        },
        len,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Unspecified,
    Inet,
    Inet6,
    Unix,
}

fn check_version_command(byte: u8) -> Result<Command, ProxyHeaderError> {
    if byte >> 4 != 2 {
        return Err(ProxyHeaderError::V2Version(byte >> 4));
    }
    match byte & 0x0f {
        0 => Ok(Command::Local),
        1 => Ok(Command::Proxy),
        other => Err(ProxyHeaderError::V2Command(other)),
    }
}

/// The family and transport nibbles; the spec has receivers reject any
/// other value.
fn check_family(byte: u8) -> Result<(Family, Transport), ProxyHeaderError> {
    let family = match byte >> 4 {
        0 => Family::Unspecified,
        1 => Family::Inet,
        2 => Family::Inet6,
        3 => Family::Unix,
        _ => return Err(ProxyHeaderError::V2Family(byte)),
    };
    let transport = match byte & 0x0f {
        0 => Transport::Unspecified,
        1 => Transport::Stream,
        2 => Transport::Datagram,
        _ => return Err(ProxyHeaderError::V2Family(byte)),
    };
    Ok((family, transport))
}

/// A 108-byte, NUL-padded path; `None` when empty (an unnamed socket, or
/// an abstract name, which starts with NUL).
fn unix_path(bytes: &[u8]) -> Option<PathBuf> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let path = &bytes[..end];
    (!path.is_empty()).then(|| PathBuf::from(std::ffi::OsString::from_vec(path.to_vec())))
}

/// Walks the TLVs (type, 16-bit length, value) that fill the rest of the
/// header: each must end inside it. Their contents are not used.
fn skip_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyHeaderError> {
    while !tlvs.is_empty() {
        let Some(&[_kind, high, low]) = tlvs.get(..3) else {
            return Err(ProxyHeaderError::V2Tlv);
        };
        let value_len = usize::from(u16::from_be_bytes([high, low]));
        // Cannot overflow: value_len <= 65535.
        #[allow(clippy::arithmetic_side_effects)]
        let end = 3 + value_len;
        tlvs = tlvs.get(end..).ok_or(ProxyHeaderError::V2Tlv)?;
    }
    Ok(())
}

impl ProxyHeader {
    /// A `LOCAL` header: the sender's own connection (a health check).
    pub fn local() -> ProxyHeader {
        ProxyHeader {
            version: Version::V2,
            command: Command::Local,
            transport: Transport::Unspecified,
            addresses: Addresses::Unspecified,
        }
    }

    /// A `PROXY` header for a stream from `source` that arrived at
    /// `destination`. Mixed IPv4/IPv6 addresses are written as IPv6 (the
    /// IPv4 one mapped); a Unix client of a TCP listener, or the reverse,
    /// has no common family and is sent as unspecified.
    pub fn proxied(source: &SocketAddress, destination: &SocketAddress) -> ProxyHeader {
        let addresses = match (source, destination) {
            (SocketAddress::Inet(source), SocketAddress::Inet(destination)) => {
                let (source, destination) = same_family(*source, *destination);
                Addresses::Inet {
                    source,
                    destination,
                }
            }
            (SocketAddress::Unix(source), SocketAddress::Unix(destination)) => Addresses::Unix {
                source: source.clone(),
                destination: destination.clone(),
            },
            _ => Addresses::Unspecified,
        };
        ProxyHeader {
            version: Version::V2,
            command: Command::Proxy,
            transport: Transport::Stream,
            addresses,
        }
    }

    /// The client's address, when the header gives one (`PROXY` with an
    /// `AF_INET`, `AF_INET6` or `AF_UNIX` address, or v1 `TCP4`/`TCP6`).
    pub fn source(&self) -> Option<SocketAddress> {
        match (&self.command, &self.addresses) {
            (Command::Local, _) | (_, Addresses::Unspecified) => None,
            (Command::Proxy, Addresses::Inet { source, .. }) => Some(SocketAddress::Inet(*source)),
            (Command::Proxy, Addresses::Unix { source, .. }) => {
                Some(SocketAddress::Unix(source.clone()))
            }
        }
    }

    /// Where the client connected, when the header gives it.
    pub fn destination(&self) -> Option<SocketAddress> {
        match (&self.command, &self.addresses) {
            (Command::Local, _) | (_, Addresses::Unspecified) => None,
            (Command::Proxy, Addresses::Inet { destination, .. }) => {
                Some(SocketAddress::Inet(*destination))
            }
            (Command::Proxy, Addresses::Unix { destination, .. }) => {
                Some(SocketAddress::Unix(destination.clone()))
            }
        }
    }

    /// The header in `version`'s wire form (its own `version` field is not
    /// consulted). Version 1 has no `LOCAL` and no Unix family: both are
    /// written as `PROXY UNKNOWN`. A Unix path longer than the 108 bytes
    /// version 2 has room for is written as unspecified.
    pub fn encode(&self, version: Version) -> Vec<u8> {
        match version {
            Version::V1 => self.encode_v1().into_bytes(),
            Version::V2 => self.encode_v2(),
        }
    }

    fn encode_v1(&self) -> String {
        match (&self.command, &self.addresses) {
            (
                Command::Proxy,
                Addresses::Inet {
                    source,
                    destination,
                },
            ) => {
                let (source, destination) = same_family(*source, *destination);
                let protocol = if source.is_ipv4() { "TCP4" } else { "TCP6" };
                format!(
                    "PROXY {protocol} {} {} {} {}\r\n",
                    source.ip(),
                    destination.ip(),
                    source.port(),
                    destination.port()
                )
            }
            _ => "PROXY UNKNOWN\r\n".to_owned(),
        }
    }

    fn encode_v2(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(V2_FIXED + UNIX_BLOCK);
        out.extend_from_slice(&V2_SIGNATURE);
        let command: u8 = match self.command {
            Command::Local => 0x20,
            Command::Proxy => 0x21,
        };
        out.push(command);
        let transport: u8 = match self.transport {
            Transport::Unspecified => 0,
            Transport::Stream => 1,
            Transport::Datagram => 2,
        };
        let mut block = Vec::new();
        let family: u8 = match (&self.command, &self.addresses) {
            (Command::Local, _) | (_, Addresses::Unspecified) => 0,
            (
                Command::Proxy,
                Addresses::Inet {
                    source,
                    destination,
                },
            ) => match same_family(*source, *destination) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    block.extend_from_slice(&s.ip().octets());
                    block.extend_from_slice(&d.ip().octets());
                    block.extend_from_slice(&s.port().to_be_bytes());
                    block.extend_from_slice(&d.port().to_be_bytes());
                    1
                }
                (s, d) => {
                    block.extend_from_slice(&v6(s.ip()).octets());
                    block.extend_from_slice(&v6(d.ip()).octets());
                    block.extend_from_slice(&s.port().to_be_bytes());
                    block.extend_from_slice(&d.port().to_be_bytes());
                    2
                }
            },
            (
                Command::Proxy,
                Addresses::Unix {
                    source,
                    destination,
                },
            ) => match (unix_field(source), unix_field(destination)) {
                (Some(s), Some(d)) => {
                    block.extend_from_slice(&s);
                    block.extend_from_slice(&d);
                    3
                }
                _ => 0,
            },
        };
        // Unspecified addresses go with an unspecified transport.
        let transport = if family == 0 { 0 } else { transport };
        out.push(family << 4 | transport);
        // At most UNIX_BLOCK (216) bytes: fits in 16 bits.
        let len = u16::try_from(block.len()).unwrap_or(0);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
        out
    }
}

/// Both addresses in one family: IPv4 if both are IPv4 (or IPv4-mapped),
/// otherwise both IPv6.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let (s, d) = (source.ip().to_canonical(), destination.ip().to_canonical());
    if s.is_ipv4() && d.is_ipv4() {
        (
            SocketAddr::new(s, source.port()),
            SocketAddr::new(d, destination.port()),
        )
    } else {
        (
            SocketAddr::new(IpAddr::V6(v6(s)), source.port()),
            SocketAddr::new(IpAddr::V6(v6(d)), destination.port()),
        )
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A path as version 2's 108-byte NUL-padded field; `None` if it does not
/// fit or holds a NUL (which would cut it short on the other side).
fn unix_field(path: &Option<PathBuf>) -> Option<[u8; UNIX_PATH]> {
    let mut field = [0u8; UNIX_PATH];
    if let Some(path) = path {
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() > UNIX_PATH || bytes.contains(&0) {
            return None;
        }
        field[..bytes.len()].copy_from_slice(bytes);
    }
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(source: &str, destination: &str) -> ProxyHeader {
        ProxyHeader::proxied(
            &SocketAddress::Inet(source.parse().unwrap()),
            &SocketAddress::Inet(destination.parse().unwrap()),
        )
    }

    fn whole(buf: &[u8]) -> (ProxyHeader, usize) {
        match decode(buf, DEFAULT_MAX_LEN) {
            Ok(Decoded::Header { header, len }) => (header, len),
            other => panic!("{buf:?}: {other:?}"),
        }
    }

    fn error(buf: &[u8]) -> ProxyHeaderError {
        match decode(buf, DEFAULT_MAX_LEN) {
            Err(e) => e,
            other => panic!("{buf:?}: {other:?}"),
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6_with_data_behind() {
        let (header, len) = whole(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /");
        assert_eq!(len, 45);
        assert_eq!(
            header.source(),
            Some(SocketAddress::Inet("192.0.2.1:56324".parse().unwrap()))
        );
        assert_eq!(
            header.destination(),
            Some(SocketAddress::Inet("198.51.100.2:443".parse().unwrap()))
        );
        let (header, _) = whole(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
        assert_eq!(
            header.source(),
            Some(SocketAddress::Inet("[2001:db8::1]:65535".parse().unwrap()))
        );
    }

    #[test]
    fn v1_unknown_keeps_the_socket_addresses() {
        let (header, len) = whole(b"PROXY UNKNOWN\r\nhi");
        assert_eq!((header.source(), len), (None, 15));
        let (header, _) = whole(b"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n");
        assert_eq!(header.source(), None);
    }

    #[test]
    fn v1_every_prefix_is_incomplete_and_the_whole_is_not() {
        let line = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(line.len(), V1_MAX_LEN, "the spec's longest line");
        for n in 0..line.len() {
            assert!(
                matches!(decode(&line[..n], 0), Ok(Decoded::Incomplete { at_least }) if at_least > n),
                "{n}"
            );
        }
        assert_eq!(whole(line).1, V1_MAX_LEN);
    }

    #[test]
    fn v1_malformed_lines() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY TCP4 1.2.3.4\x00",
            b"PROXY UNKNOWNX\r\n",
        ] {
            assert!(
                matches!(error(bad), ProxyHeaderError::V1Malformed(_)),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                decode(bad, DEFAULT_MAX_LEN)
            );
        }
        assert_eq!(error(&[b'P'; 200]), ProxyHeaderError::Missing);
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN, b'x');
        assert_eq!(error(&long), ProxyHeaderError::V1TooLong);
        long.truncate(V1_MAX_LEN - 1);
        long.push(b'\r');
        assert_eq!(
            error(&long),
            ProxyHeaderError::V1TooLong,
            "LF would be byte 108"
        );
    }

    #[test]
    fn not_a_header_is_refused_at_the_first_byte_that_says_so() {
        assert_eq!(error(b"GET / HTTP/1.1\r\n"), ProxyHeaderError::Missing);
        assert_eq!(error(b"PRX"), ProxyHeaderError::Missing);
        assert_eq!(error(b"\r\n\r\nX"), ProxyHeaderError::Missing);
        assert_eq!(
            decode(b"\r\n\r\n\0", 0),
            Ok(Decoded::Incomplete { at_least: 16 })
        );
    }

    #[test]
    fn v2_round_trips_every_family() {
        let unix = ProxyHeader::proxied(
            &SocketAddress::Unix(Some("/run/client.sock".into())),
            &SocketAddress::Unix(None),
        );
        for header in [
            inet("192.0.2.1:1000", "198.51.100.2:443"),
            inet("[2001:db8::1]:1000", "[::1]:443"),
            inet("192.0.2.1:1000", "[::1]:443"),
            unix,
            ProxyHeader::local(),
        ] {
            let bytes = header.encode(Version::V2);
            let (decoded, len) = whole(&[&bytes[..], b"data"].concat());
            assert_eq!(len, bytes.len());
            let expected = ProxyHeader {
                addresses: match &header.addresses {
                    Addresses::Inet {
                        source,
                        destination,
                    } => {
                        let (source, destination) = same_family(*source, *destination);
                        Addresses::Inet {
                            source,
                            destination,
                        }
                    }
                    other => other.clone(),
                },
                ..header
            };
            assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn v1_round_trips_and_falls_back_to_unknown() {
        for header in [
            inet("192.0.2.1:1000", "198.51.100.2:443"),
            inet("[2001:db8::1]:1000", "[::1]:443"),
        ] {
            let bytes = header.encode(Version::V1);
            let (decoded, len) = whole(&bytes);
            assert_eq!(len, bytes.len());
            assert_eq!(decoded.source(), header.source());
            assert_eq!(decoded.destination(), header.destination());
        }
        let mixed = inet("192.0.2.1:1000", "[::1]:443").encode(Version::V1);
        assert!(mixed.starts_with(b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1000 443\r\n"));
        assert_eq!(
            ProxyHeader::local().encode(Version::V1),
            b"PROXY UNKNOWN\r\n"
        );
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(command);
        out.push(family);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn v2_tlvs_are_skipped_and_must_fit() {
        let mut body = vec![127, 0, 0, 2, 127, 0, 0, 1, 0x30, 0x39, 0, 80];
        body.extend_from_slice(&[0x04, 0, 3, 0, 0, 0]); // NOOP, 3 bytes
        body.extend_from_slice(&[0x01, 0, 2, b'h', b'2']); // ALPN
        let (header, _) = whole(&v2(0x21, 0x11, &body));
        assert_eq!(
            header.source(),
            Some(SocketAddress::Inet("127.0.0.2:12345".parse().unwrap()))
        );
        body.extend_from_slice(&[0x02, 0, 9, b'x']);
        assert_eq!(error(&v2(0x21, 0x11, &body)), ProxyHeaderError::V2Tlv);
        body.truncate(body.len() - 3);
        assert_eq!(error(&v2(0x21, 0x11, &body)), ProxyHeaderError::V2Tlv);
    }

    #[test]
    fn v2_local_and_unspec_keep_the_socket_addresses() {
        // LOCAL ignores the block, whatever its family says.
        let (header, len) = whole(&v2(0x20, 0x11, &[1, 2, 3]));
        assert_eq!(
            (header.command, header.source(), len),
            (Command::Local, None, 19)
        );
        let (header, _) = whole(&v2(0x21, 0x00, &[9; 40]));
        assert_eq!((header.command, header.source()), (Command::Proxy, None));
    }

    #[test]
    fn v2_bad_fields_are_refused_early() {
        assert_eq!(
            error(&v2(0x11, 0x11, &[])[..13]),
            ProxyHeaderError::V2Version(1)
        );
        assert_eq!(error(&v2(0x22, 0x11, &[])), ProxyHeaderError::V2Command(2));
        assert_eq!(
            error(&v2(0x21, 0x41, &[])[..14]),
            ProxyHeaderError::V2Family(0x41)
        );
        assert_eq!(
            error(&v2(0x21, 0x13, &[])),
            ProxyHeaderError::V2Family(0x13)
        );
        assert_eq!(
            error(&v2(0x21, 0x21, &[0; 12])),
            ProxyHeaderError::V2ShortAddresses
        );
        assert_eq!(
            error(&v2(0x21, 0x31, &[0; 215])),
            ProxyHeaderError::V2ShortAddresses
        );
    }

    #[test]
    fn v2_length_is_capped_from_the_fixed_part() {
        let mut head = v2(0x21, 0x11, &[]);
        head[14..16].copy_from_slice(&65535u16.to_be_bytes());
        assert_eq!(
            error(&head),
            ProxyHeaderError::V2TooLong {
                len: V2_MAX_LEN,
                max: DEFAULT_MAX_LEN
            }
        );
        assert_eq!(
            decode(&head, usize::MAX),
            Ok(Decoded::Incomplete {
                at_least: V2_MAX_LEN
            })
        );
        // A cap below an AF_UNIX header is raised to fit one.
        let unix = v2(0x21, 0x31, &[0; UNIX_BLOCK]);
        assert!(matches!(decode(&unix, 0), Ok(Decoded::Header { .. })));
    }

    #[test]
    fn v2_unix_paths_stop_at_nul_and_abstract_names_are_unnamed() {
        let mut body = vec![0u8; UNIX_BLOCK];
        body[..5].copy_from_slice(b"/a/b\0");
        body[UNIX_PATH] = 0;
        body[UNIX_PATH + 1] = b'x'; // abstract: starts with NUL
        let (header, _) = whole(&v2(0x21, 0x31, &body));
        assert_eq!(
            header.addresses,
            Addresses::Unix {
                source: Some("/a/b".into()),
                destination: None
            }
        );
        let long = SocketAddress::Unix(Some(PathBuf::from("/".repeat(109))));
        let header = ProxyHeader::proxied(&long, &long);
        let (decoded, _) = whole(&header.encode(Version::V2));
        assert_eq!(
            decoded.source(),
            None,
            "too long for the field: unspecified"
        );
    }
}
