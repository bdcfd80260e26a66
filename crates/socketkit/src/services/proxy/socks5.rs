//! The SOCKS5 server (RFC 1928, with RFC 1929 username/password): the
//! wire format (bounded decoders for the greeting, the authentication
//! sub-negotiation, the request and the UDP header, and their encoders),
//! the negotiation under the handshake deadline, CONNECT relayed with
//! [`both_ways`], and UDP ASSOCIATE.
//!
//! What it does not own: users, the destination policy and how a
//! destination is opened are the shared proxy pieces of [`super`];
//! listening, client `--allow/--deny`, the connection limit, idle timeout
//! and drain are the server's. BIND is not implemented (answered 0x07).
//!
//! Decoders read nothing beyond the message they decode: each says how
//! many bytes it needs in total ([`Decoded::Need`]) and the reader reads
//! exactly those, so bytes a client pipelines after its request (RFC 1928
//! allows none before the reply, but clients do) stay in the socket for
//! the relay. The longest message is an RFC 1929 request with a 255-byte
//! name and password: 513 bytes.
//!
//! UDP ASSOCIATE (RFC 1928 §7): the relay socket is bound on the address
//! the client reached the server at; only datagrams from the client's IP
//! (and port, once known) are relayed; fragments (FRAG ≠ 0) are dropped; a
//! destination is checked by the same policy as CONNECT; replies are taken
//! only from destinations the client sent to, and go back with the SOCKS
//! UDP header naming their source. The association ends with its TCP
//! connection, at shutdown, or once both have been idle for the idle
//! timeout.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tracing::{debug, info};

use super::super::exec::audit::escape;
use super::users::Rejection;
use super::{DestFailure, ProxyConfig};
use crate::addr::Host;
use crate::client::{both_ways, BothWaysOptions};
use crate::error::Result;
use crate::server::{Connection, StreamHandler};
use crate::transport::SocketAddress;

/// The protocol version byte of every SOCKS5 message but RFC 1929's.
pub const VERSION: u8 = 5;
/// RFC 1929's sub-negotiation version.
const AUTH_VERSION: u8 = 1;

/// Authentication methods (RFC 1928 §3).
const METHOD_NONE: u8 = 0x00;
const METHOD_PASSWORD: u8 = 0x02;
const METHOD_UNACCEPTABLE: u8 = 0xff;

/// Commands (RFC 1928 §4).
const CMD_CONNECT: u8 = 1;
const CMD_BIND: u8 = 2;
const CMD_UDP_ASSOCIATE: u8 = 3;

/// Address types (RFC 1928 §5).
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// The longest message a client sends: an RFC 1929 request with a
/// 255-byte name and a 255-byte password (a request is at most 262).
pub const MAX_MESSAGE: usize = 2 + 255 + 1 + 255;

/// Largest UDP payload relayed, with room for the SOCKS header.
const MAX_DATAGRAM: usize = 64 * 1024 + MAX_MESSAGE;

/// Destinations one association remembers (resolved and checked, or sent
/// to and so answerable); beyond it the table starts afresh rather than
/// grow.
const MAX_REMEMBERED: usize = 1024;

/// The reply codes of RFC 1928 §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyCode {
    /// 0x00.
    Succeeded,
    /// 0x01 general SOCKS server failure.
    GeneralFailure,
    /// 0x02 connection not allowed by ruleset.
    NotAllowed,
    /// 0x03 network unreachable.
    NetworkUnreachable,
    /// 0x04 host unreachable.
    HostUnreachable,
    /// 0x05 connection refused.
    Refused,
    /// 0x06 TTL expired (what a connect timeout is reported as).
    TtlExpired,
    /// 0x07 command not supported.
    CommandNotSupported,
    /// 0x08 address type not supported.
    AddressTypeNotSupported,
}

impl ReplyCode {
    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            ReplyCode::Succeeded => 0,
            ReplyCode::GeneralFailure => 1,
            ReplyCode::NotAllowed => 2,
            ReplyCode::NetworkUnreachable => 3,
            ReplyCode::HostUnreachable => 4,
            ReplyCode::Refused => 5,
            ReplyCode::TtlExpired => 6,
            ReplyCode::CommandNotSupported => 7,
            ReplyCode::AddressTypeNotSupported => 8,
        }
    }

    fn for_failure(failure: DestFailure) -> ReplyCode {
        match failure {
            DestFailure::Denied => ReplyCode::NotAllowed,
            DestFailure::NetworkUnreachable => ReplyCode::NetworkUnreachable,
            DestFailure::Unresolved | DestFailure::HostUnreachable => ReplyCode::HostUnreachable,
            DestFailure::Refused => ReplyCode::Refused,
            DestFailure::TimedOut => ReplyCode::TtlExpired,
            _ => ReplyCode::GeneralFailure,
        }
    }
}

/// A decoder's answer: more bytes needed, or a message and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// At least this many bytes in total (always more than were given, and
    /// at most [`MAX_MESSAGE`]).
    Need(usize),
    /// The message, and how many bytes it took.
    Done(T, usize),
}

/// Bytes that are not SOCKS5.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The version byte was not 5 (or 1 for RFC 1929).
    Version(u8),
    /// A greeting offering no method at all.
    NoMethods,
    /// A reserved byte that must be 0 was not.
    Reserved(u8),
    /// An address type other than IPv4, name and IPv6 (reply 0x08).
    AddressType(u8),
    /// A name that is empty or not printable text (reply 0x04).
    BadName,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Version(v) => write!(f, "version byte {v:#04x}, not SOCKS5"),
            WireError::NoMethods => f.write_str("a greeting with no methods"),
            WireError::Reserved(b) => write!(f, "reserved byte {b:#04x} is not 0"),
            WireError::AddressType(t) => write!(f, "address type {t:#04x} is not supported"),
            WireError::BadName => f.write_str("the destination name is empty or not text"),
        }
    }
}

impl std::error::Error for WireError {}

/// A client's greeting: the methods it offers that this server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// 0x00, no authentication.
    pub no_auth: bool,
    /// 0x02, username/password.
    pub password: bool,
}

/// An RFC 1929 username/password request.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name's bytes.
    pub name: Vec<u8>,
    /// The password's bytes.
    pub password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A destination as a client names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// An address, or a name for the server to resolve.
    pub host: Host,
    /// The port.
    pub port: u16,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
            // Client-chosen text: escaped so it cannot forge a log line.
            Host::Name(name) => write!(f, "{}:{}", escape(name), self.port),
            Host::Any => write!(f, "*:{}", self.port),
        }
    }
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command byte (1 CONNECT, 2 BIND, 3 UDP ASSOCIATE, or any other,
    /// which is answered 0x07).
    pub command: u8,
    /// Where to.
    pub destination: Destination,
}

/// A datagram from a client to relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket {
    /// The fragment number; anything but 0 is dropped.
    pub fragment: u8,
    /// Where it goes.
    pub destination: Destination,
    /// Where the payload starts in the datagram.
    pub payload_at: usize,
}

/// Decodes a greeting: VER, NMETHODS, METHODS.
pub fn decode_greeting(buf: &[u8]) -> Result<Decoded<Greeting>, WireError> {
    let [version, count, ..] = *buf else {
        return Ok(Decoded::Need(2));
    };
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    if count == 0 {
        return Err(WireError::NoMethods);
    }
    let total = 2 + usize::from(count);
    let Some(methods) = buf.get(2..total) else {
        return Ok(Decoded::Need(total));
    };
    let greeting = Greeting {
        no_auth: methods.contains(&METHOD_NONE),
        password: methods.contains(&METHOD_PASSWORD),
    };
    Ok(Decoded::Done(greeting, total))
}

/// Decodes an RFC 1929 request: VER 1, ULEN, UNAME, PLEN, PASSWD.
pub fn decode_credentials(buf: &[u8]) -> Result<Decoded<Credentials>, WireError> {
    let [version, name_len, ..] = *buf else {
        return Ok(Decoded::Need(2));
    };
    if version != AUTH_VERSION {
        return Err(WireError::Version(version));
    }
    let name_end = 2 + usize::from(name_len);
    let Some(&password_len) = buf.get(name_end) else {
        return Ok(Decoded::Need(name_end + 1));
    };
    let total = name_end + 1 + usize::from(password_len);
    let Some(password) = buf.get(name_end + 1..total) else {
        return Ok(Decoded::Need(total));
    };
    let credentials = Credentials {
        name: buf[2..name_end].to_vec(),
        password: password.to_vec(),
    };
    Ok(Decoded::Done(credentials, total))
}

/// Decodes a request: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
pub fn decode_request(buf: &[u8]) -> Result<Decoded<Request>, WireError> {
    let [version, command, reserved, ..] = *buf else {
        return Ok(Decoded::Need(3));
    };
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    if reserved != 0 {
        return Err(WireError::Reserved(reserved));
    }
    Ok(match decode_address(&buf[3..])? {
        Decoded::Need(n) => Decoded::Need(3 + n),
        Decoded::Done(destination, used) => Decoded::Done(
            Request {
                command,
                destination,
            },
            3 + used,
        ),
    })
}

/// Decodes a whole datagram from a client: RSV (2), FRAG, ATYP, DST.ADDR,
/// DST.PORT, DATA. `None` for anything short or malformed.
pub fn decode_udp(datagram: &[u8]) -> Result<UdpPacket, WireError> {
    let [r1, r2, fragment, ..] = *datagram else {
        return Err(WireError::Reserved(0));
    };
    if r1 != 0 || r2 != 0 {
        return Err(WireError::Reserved(r1 | r2));
    }
    match decode_address(&datagram[3..])? {
        Decoded::Done(destination, used) => Ok(UdpPacket {
            fragment,
            destination,
            payload_at: 3 + used,
        }),
        // A datagram is complete: a short header is malformed.
        Decoded::Need(_) => Err(WireError::BadName),
    }
}

/// ATYP, DST.ADDR, DST.PORT.
fn decode_address(buf: &[u8]) -> Result<Decoded<Destination>, WireError> {
    let Some(&kind) = buf.first() else {
        return Ok(Decoded::Need(1));
    };
    let (address_len, at) = match kind {
        ATYP_IPV4 => (4, 1),
        ATYP_IPV6 => (16, 1),
        ATYP_DOMAIN => match buf.get(1) {
            Some(&len) => (usize::from(len), 2),
            None => return Ok(Decoded::Need(2)),
        },
        other => return Err(WireError::AddressType(other)),
    };
    let total = at + address_len + 2;
    let Some(bytes) = buf.get(at..total) else {
        return Ok(Decoded::Need(total));
    };
    let (address, port) = bytes.split_at(address_len);
    let port = u16::from_be_bytes([port[0], port[1]]);
    let host = match kind {
        ATYP_IPV4 => Host::Ip(IpAddr::V4(Ipv4Addr::new(
            address[0], address[1], address[2], address[3],
        ))),
        ATYP_IPV6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(address);
            Host::Ip(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => name_host(address)?,
    };
    Ok(Decoded::Done(Destination { host, port }, total))
}

/// A name from the wire: printable ASCII, not empty. An address written
/// as a name (`"127.0.0.1"`) is that address, so the policy sees an IP.
fn name_host(bytes: &[u8]) -> Result<Host, WireError> {
    if bytes.is_empty() || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(WireError::BadName);
    }
    let name = String::from_utf8_lossy(bytes).into_owned();
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    Ok(match literal.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(name),
    })
}

/// A reply: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT.
pub fn encode_reply(code: ReplyCode, bound: SocketAddr) -> Vec<u8> {
    let mut reply = vec![VERSION, code.byte(), 0];
    push_address(&mut reply, bound);
    reply
}

/// The header a relayed reply datagram carries: RSV, FRAG 0, and where it
/// came from.
pub fn encode_udp_header(source: SocketAddr) -> Vec<u8> {
    let mut header = vec![0, 0, 0];
    push_address(&mut header, source);
    header
}

fn push_address(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip().to_canonical() {
        IpAddr::V4(v4) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The SOCKS5 service.
#[derive(Debug, Clone)]
pub struct Socks5 {
    config: Arc<ProxyConfig>,
}

impl Socks5 {
    /// A SOCKS5 server under `config` (pass it through
    /// [`ProxyConfig::check_start`] with the endpoints first).
    pub fn new(config: ProxyConfig) -> Socks5 {
        Socks5 {
            config: Arc::new(config),
        }
    }
}

/// How a negotiation ended without a request to carry out.
enum Stop {
    /// Refused, and the client told (or nothing could be told).
    Refused,
    /// The client broke the protocol or went away.
    Failed(String),
}

impl From<io::Error> for Stop {
    fn from(error: io::Error) -> Stop {
        Stop::Failed(error.to_string())
    }
}

/// What the negotiation settled.
struct Negotiated {
    request: Request,
    /// The authenticated user, or `-`.
    user: String,
}

impl StreamHandler for Socks5 {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let peer = conn.peer_addr().clone();
        let deadline = self.config.handshake_timeout;
        let negotiated = match tokio::time::timeout(deadline, self.negotiate(conn)).await {
            Ok(Ok(negotiated)) => negotiated,
            Ok(Err(Stop::Refused)) => return Ok(()),
            Ok(Err(Stop::Failed(why))) => {
                debug!(client = %peer, why = %escape(&why), "SOCKS5 negotiation failed");
                return Ok(());
            }
            Err(_) => {
                info!(client = %peer, after = ?deadline, "SOCKS5 negotiation timed out");
                return Ok(());
            }
        };
        let Negotiated { request, user } = negotiated;
        match request.command {
            CMD_CONNECT => self.connect(conn, &request.destination, &user).await,
            CMD_UDP_ASSOCIATE => self.associate(conn, &request.destination, &user).await,
            command => {
                // BIND (2) is optional in practice and not implemented.
                let what = if command == CMD_BIND {
                    "BIND"
                } else {
                    "unknown"
                };
                info!(client = %peer, user = %escape(&user), command, "SOCKS5 {what} command refused (0x07)");
                reply(conn, ReplyCode::CommandNotSupported).await;
                Ok(())
            }
        }
    }
}

impl Socks5 {
    /// Greeting, authentication and request, within the handshake deadline
    /// (the caller's).
    async fn negotiate(&self, conn: &mut Connection) -> Result<Negotiated, Stop> {
        let peer = conn.peer_addr().clone();
        let users = self.config.users.as_deref();
        // Connections authenticating at once are capped per source and in
        // total (exec's MaxStartups): password guessers cannot fill the
        // server. Released when the negotiation ends.
        let _slot = match users {
            Some(users) => match users.enter(&peer) {
                Some(slot) => Some(slot),
                None => {
                    info!(client = %peer, "SOCKS5 client refused: too many connections authenticating");
                    return Err(Stop::Refused);
                }
            },
            None => None,
        };
        let mut buf = Vec::with_capacity(MAX_MESSAGE);
        let greeting = read_message(conn, &mut buf, decode_greeting).await?;
        let method = if greeting.no_auth && self.config.anonymous_allowed(conn) {
            METHOD_NONE
        } else if greeting.password && users.is_some() {
            METHOD_PASSWORD
        } else {
            METHOD_UNACCEPTABLE
        };
        conn.write_all(&[VERSION, method]).await?;
        let mut user = "-".to_owned();
        match (method, users) {
            (METHOD_PASSWORD, Some(users)) => {
                let credentials = read_message(conn, &mut buf, decode_credentials).await?;
                let name = String::from_utf8_lossy(&credentials.name).into_owned();
                // A name that is not UTF-8 cannot be in the file; it is
                // still checked (against the dummy) so it costs the same.
                let checked = if std::str::from_utf8(&credentials.name).is_ok() {
                    users.check(&peer, &name, &credentials.password).await
                } else {
                    users.check(&peer, "", &credentials.password).await
                };
                let status = u8::from(checked.is_err());
                conn.write_all(&[AUTH_VERSION, status]).await?;
                if let Err(rejection) = checked {
                    if rejection == Rejection::Penalised {
                        debug!(client = %peer, "SOCKS5 client refused while penalised");
                    }
                    return Err(Stop::Refused);
                }
                user = name;
            }
            (METHOD_NONE, _) => {}
            _ => {
                info!(client = %peer, offered_no_auth = greeting.no_auth, offered_password = greeting.password, "SOCKS5 client refused: no acceptable authentication method");
                return Err(Stop::Refused);
            }
        }
        let request = read_message(conn, &mut buf, decode_request).await?;
        Ok(Negotiated { request, user })
    }

    async fn connect(
        &self,
        conn: &mut Connection,
        destination: &Destination,
        user: &str,
    ) -> Result<()> {
        let started = Instant::now();
        let client = conn.peer_addr().clone();
        let (upstream, reached) = match self
            .config
            .connect(&destination.host, destination.port)
            .await
        {
            Ok(opened) => opened,
            Err(error) => {
                let code = ReplyCode::for_failure(error.failure);
                info!(%client, user = %escape(user), %destination, reply = code.byte(), reason = %error, "SOCKS5 CONNECT refused");
                reply(conn, code).await;
                return Ok(());
            }
        };
        let bound = match upstream.local_addr() {
            Ok(SocketAddress::Inet(addr)) => addr,
            _ => unspecified(),
        };
        conn.write_all(&encode_reply(ReplyCode::Succeeded, bound))
            .await?;
        let relay = BothWaysOptions {
            idle_timeout: conn.idle_timeout(),
            buffer_size: crate::services::forward::FORWARD_BUFFER,
        };
        let relayed = both_ways(&mut *conn, upstream, &relay).await;
        let (up, down) = relayed
            .as_ref()
            .map_or((0, 0), |report| (report.a_to_b, report.b_to_a));
        debug!(
            %client,
            user = %escape(user),
            %destination,
            %reached,
            to_destination = up,
            to_client = down,
            secs = started.elapsed().as_secs_f64(),
            "SOCKS5 CONNECT ended"
        );
        relayed.map(|_| ())
    }

    async fn associate(
        &self,
        conn: &mut Connection,
        requested: &Destination,
        user: &str,
    ) -> Result<()> {
        let started = Instant::now();
        let client = conn.peer_addr().clone();
        // Datagrams are accepted from the TCP client's address only; a Unix
        // client has none a UDP datagram could come from.
        let (Some(client_addr), Ok(SocketAddress::Inet(local))) =
            (client.as_inet(), conn.local_addr())
        else {
            info!(%client, "SOCKS5 UDP ASSOCIATE refused: not over TCP (0x07)");
            reply(conn, ReplyCode::CommandNotSupported).await;
            return Ok(());
        };
        let sockets = async {
            let relay = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await?;
            let outbound = outbound_socket().await?;
            io::Result::Ok((relay, outbound))
        };
        let (relay, outbound) = match sockets.await {
            Ok(sockets) => sockets,
            Err(error) => {
                info!(%client, %error, "SOCKS5 UDP ASSOCIATE failed: cannot bind a relay socket");
                reply(conn, ReplyCode::GeneralFailure).await;
                return Ok(());
            }
        };
        let bound = relay.local_addr()?;
        conn.write_all(&encode_reply(ReplyCode::Succeeded, bound))
            .await?;
        let mut association = Association {
            config: &self.config,
            client_ip: client_addr.ip().to_canonical(),
            // RFC 1928: the port the client will send from, or 0 if it
            // does not know yet; then its first datagram fixes it.
            client_port: (requested.port != 0).then_some(requested.port),
            relay,
            outbound,
            resolved: HashMap::new(),
            answerable: HashSet::new(),
            counts: Counts::default(),
            last_datagram: tokio::time::Instant::now(),
        };
        let ended = association.run(conn).await;
        let counts = association.counts;
        debug!(
            %client,
            user = %escape(user),
            relay = %bound,
            to_destinations = counts.sent,
            to_client = counts.returned,
            bytes_to_destinations = counts.sent_bytes,
            bytes_to_client = counts.returned_bytes,
            dropped = counts.dropped,
            secs = started.elapsed().as_secs_f64(),
            why = ended,
            "SOCKS5 UDP ASSOCIATE ended"
        );
        Ok(())
    }
}

/// Datagrams and bytes an association moved, and how many it dropped.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sent: u64,
    sent_bytes: u64,
    returned: u64,
    returned_bytes: u64,
    dropped: u64,
}

/// One UDP association's state.
struct Association<'a> {
    config: &'a ProxyConfig,
    client_ip: IpAddr,
    client_port: Option<u16>,
    /// Faces the client.
    relay: UdpSocket,
    /// Faces the destinations.
    outbound: UdpSocket,
    /// Destinations resolved and allowed, so a stream of datagrams to one
    /// does not resolve and check each time.
    resolved: HashMap<Destination, SocketAddr>,
    /// Addresses the client sent to: only their datagrams come back.
    answerable: HashSet<SocketAddr>,
    counts: Counts,
    /// When a datagram last moved either way.
    last_datagram: tokio::time::Instant,
}

impl Association<'_> {
    /// Relays until the TCP connection ends; returns why it ended.
    async fn run(&mut self, conn: &mut Connection) -> &'static str {
        let mut from_client = vec![0u8; MAX_DATAGRAM];
        let mut from_world = vec![0u8; MAX_DATAGRAM];
        let mut scratch = [0u8; 512];
        let server = conn.server().clone();
        loop {
            tokio::select! {
                // The TCP connection carries nothing after the reply: read
                // only to see it end. (Not `readable()`: readiness left over
                // from the negotiation's exact reads would report it ready
                // while a read would wait, and starve the datagrams.)
                read = conn.read(&mut scratch) => match read {
                    Ok(0) => return "the client closed the TCP connection",
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                        // Idle on TCP is normal while datagrams flow: the
                        // association is idle only when they stop too.
                        let limit = conn.idle_timeout().unwrap_or_default();
                        if self.last_datagram.elapsed() >= limit {
                            return "idle";
                        }
                        // An empty write moves the connection's idle clock.
                        if conn.write(&[]).await.is_err() {
                            return "the TCP connection failed";
                        }
                    }
                    Err(_) => return "the TCP connection failed",
                },
                received = self.relay.recv_from(&mut from_client) => {
                    if let Ok((n, source)) = received {
                        self.relay_out(&from_client[..n], source).await;
                    }
                }
                received = self.outbound.recv_from(&mut from_world) => {
                    if let Ok((n, source)) = received {
                        self.relay_back(&from_world, n, source).await;
                    }
                }
                () = server.shutdown_requested() => return "the server is shutting down",
            }
        }
    }

    async fn relay_out(&mut self, datagram: &[u8], source: SocketAddr) {
        let source_ip = source.ip().to_canonical();
        let port_ok = self.client_port.is_none_or(|port| port == source.port());
        if source_ip != self.client_ip || !port_ok {
            self.counts.dropped += 1;
            return;
        }
        self.client_port = Some(source.port());
        let packet = match decode_udp(datagram) {
            Ok(packet) if packet.fragment == 0 => packet,
            _ => {
                self.counts.dropped += 1;
                return;
            }
        };
        let Some(target) = self.target(&packet.destination).await else {
            self.counts.dropped += 1;
            return;
        };
        let payload = datagram.get(packet.payload_at..).unwrap_or_default();
        if self.answerable.len() >= MAX_REMEMBERED {
            self.answerable.clear();
        }
        self.answerable.insert(target);
        match self
            .outbound
            .send_to(payload, for_socket(&self.outbound, target))
            .await
        {
            Ok(_) => {
                self.counts.sent += 1;
                self.counts.sent_bytes += payload.len() as u64;
                self.last_datagram = tokio::time::Instant::now();
            }
            Err(error) => {
                debug!(%target, %error, "SOCKS5 UDP datagram not sent");
                self.counts.dropped += 1;
            }
        }
    }

    /// Where a datagram to `destination` goes, if the policy allows it.
    async fn target(&mut self, destination: &Destination) -> Option<SocketAddr> {
        if let Some(target) = self.resolved.get(destination) {
            return Some(*target);
        }
        let resolved = self
            .config
            .resolve(&destination.host, destination.port)
            .await;
        let target = match resolved {
            Ok(addrs) => addrs.first().copied()?,
            Err(error) => {
                debug!(%destination, reason = %error, "SOCKS5 UDP datagram dropped");
                return None;
            }
        };
        if self.resolved.len() >= MAX_REMEMBERED {
            self.resolved.clear();
        }
        self.resolved.insert(destination.clone(), target);
        Some(target)
    }

    /// A datagram from a destination: back to the client with the header
    /// naming its source, if the client sent there.
    async fn relay_back(&mut self, buf: &[u8], n: usize, source: SocketAddr) {
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        let (Some(port), true) = (self.client_port, self.answerable.contains(&source)) else {
            self.counts.dropped += 1;
            return;
        };
        let mut datagram = encode_udp_header(source);
        datagram.extend_from_slice(buf.get(..n).unwrap_or_default());
        let client = SocketAddr::new(self.client_ip, port);
        match self
            .relay
            .send_to(&datagram, for_socket(&self.relay, client))
            .await
        {
            Ok(_) => {
                self.counts.returned += 1;
                self.counts.returned_bytes += n as u64;
                self.last_datagram = tokio::time::Instant::now();
            }
            Err(_) => self.counts.dropped += 1,
        }
    }
}

/// The socket datagrams leave through toward destinations: IPv6 with IPv4
/// mapped in (one socket for both families), or IPv4 where IPv6 is off.
async fn outbound_socket() -> io::Result<UdpSocket> {
    let dual = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .and_then(|socket| {
        socket.set_only_v6(false)?;
        socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    });
    match dual {
        Ok(socket) => UdpSocket::from_std(socket.into()),
        Err(_) => UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await,
    }
}

/// `target` in the form `socket` can send to: IPv4 mapped into IPv6 for a
/// dual-stack socket.
fn for_socket(socket: &UdpSocket, target: SocketAddr) -> SocketAddr {
    match (socket.local_addr(), target) {
        (Ok(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => target,
    }
}

/// Reads exactly one message: the decoder says how many bytes it needs,
/// and no byte beyond the message is taken from the socket.
async fn read_message<T>(
    conn: &mut Connection,
    buf: &mut Vec<u8>,
    decode: fn(&[u8]) -> Result<Decoded<T>, WireError>,
) -> Result<T, Stop> {
    buf.clear();
    loop {
        match decode(buf.as_slice()) {
            Ok(Decoded::Done(message, _)) => return Ok(message),
            Ok(Decoded::Need(total)) => {
                let have = buf.len();
                // Decoders never ask for more than MAX_MESSAGE; the bound
                // is kept here too, whatever a decoder says.
                if total <= have || total > MAX_MESSAGE {
                    return Err(Stop::Failed("a decoder asked for no progress".to_owned()));
                }
                buf.resize(total, 0);
                conn.read_exact(&mut buf[have..]).await?;
            }
            Err(error @ WireError::AddressType(_)) => {
                reply(conn, ReplyCode::AddressTypeNotSupported).await;
                return Err(Stop::Failed(error.to_string()));
            }
            Err(error @ WireError::BadName) => {
                reply(conn, ReplyCode::HostUnreachable).await;
                return Err(Stop::Failed(error.to_string()));
            }
            Err(error) => return Err(Stop::Failed(error.to_string())),
        }
    }
}

/// Sends a failure reply; the connection ends after it either way.
async fn reply(conn: &mut Connection, code: ReplyCode) {
    let _ = conn.write_all(&encode_reply(code, unspecified())).await;
}

fn unspecified() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_decode_incrementally() {
        assert_eq!(decode_greeting(&[]), Ok(Decoded::Need(2)));
        assert_eq!(decode_greeting(&[5, 2, 0]), Ok(Decoded::Need(4)));
        assert_eq!(
            decode_greeting(&[5, 2, 0, 2]),
            Ok(Decoded::Done(
                Greeting {
                    no_auth: true,
                    password: true
                },
                4
            ))
        );
        assert_eq!(decode_greeting(&[4, 1, 0]), Err(WireError::Version(4)));
        assert_eq!(decode_greeting(&[5, 0]), Err(WireError::NoMethods));
    }

    #[test]
    fn credentials_decode_incrementally() {
        assert_eq!(decode_credentials(&[1, 3, b'b']), Ok(Decoded::Need(6)));
        assert_eq!(
            decode_credentials(&[1, 3, b'b', b'o', b'b']),
            Ok(Decoded::Need(6))
        );
        let full = [1, 3, b'b', b'o', b'b', 2, b'p', b'w'];
        assert_eq!(decode_credentials(&full[..6]), Ok(Decoded::Need(8)));
        let Ok(Decoded::Done(credentials, 8)) = decode_credentials(&full) else {
            panic!("not decoded");
        };
        assert_eq!(credentials.name, b"bob");
        assert_eq!(credentials.password, b"pw");
        assert!(!format!("{credentials:?}").contains("pw\""));
        // The longest: 255-byte name and password (found by the fuzzer:
        // the bound once was the request's 262 bytes).
        let mut longest = vec![1, 255];
        longest.extend_from_slice(&[b'n'; 255]);
        longest.push(255);
        longest.extend_from_slice(&[b'p'; 255]);
        assert_eq!(
            decode_credentials(&longest[..258]),
            Ok(Decoded::Need(MAX_MESSAGE))
        );
        assert!(matches!(
            decode_credentials(&longest),
            Ok(Decoded::Done(_, MAX_MESSAGE))
        ));
    }

    #[test]
    fn requests_name_ipv4_ipv6_and_names() {
        let v4 = [5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
        assert_eq!(decode_request(&v4[..4]), Ok(Decoded::Need(10)));
        let Ok(Decoded::Done(request, 10)) = decode_request(&v4) else {
            panic!()
        };
        assert_eq!(request.destination.to_string(), "127.0.0.1:8080");
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0, 80]);
        let Ok(Decoded::Done(request, 22)) = decode_request(&v6) else {
            panic!()
        };
        assert_eq!(request.destination.to_string(), "[::1]:80");
        let name = b"\x05\x03\x00\x03\x0bexample.com\x01\xbb";
        assert_eq!(decode_request(&name[..4]), Ok(Decoded::Need(5)));
        assert_eq!(decode_request(&name[..5]), Ok(Decoded::Need(18)));
        let Ok(Decoded::Done(request, 18)) = decode_request(name) else {
            panic!()
        };
        assert_eq!(request.command, CMD_UDP_ASSOCIATE);
        assert_eq!(request.destination.host, Host::Name("example.com".into()));
        assert_eq!(request.destination.port, 443);
        let literal = b"\x05\x01\x00\x03\x09127.0.0.1\x00\x50";
        let Ok(Decoded::Done(request, _)) = decode_request(literal) else {
            panic!()
        };
        assert_eq!(
            request.destination.host,
            Host::Ip(Ipv4Addr::LOCALHOST.into())
        );
        assert_eq!(
            decode_request(&[5, 1, 0, 8, 0]),
            Err(WireError::AddressType(8))
        );
        assert_eq!(
            decode_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(WireError::BadName)
        );
        assert_eq!(
            decode_request(b"\x05\x01\x00\x03\x02a\nx\x00"),
            Err(WireError::BadName)
        );
        assert_eq!(decode_request(&[5, 1, 1]), Err(WireError::Reserved(1)));
    }

    #[test]
    fn udp_headers_round_trip() {
        let source: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        let mut datagram = encode_udp_header(source);
        datagram.extend_from_slice(b"payload");
        let packet = decode_udp(&datagram).unwrap();
        assert_eq!(packet.fragment, 0);
        assert_eq!(packet.destination.to_string(), "[2001:db8::1]:53");
        assert_eq!(&datagram[packet.payload_at..], b"payload");
        assert!(decode_udp(&[0, 0, 0, 1, 1, 2]).is_err(), "short header");
        assert!(decode_udp(&[0, 1, 0, 1, 1, 2, 3, 4, 0, 0]).is_err());
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:7".parse().unwrap();
        assert_eq!(encode_udp_header(mapped)[3], ATYP_IPV4);
    }

    #[test]
    fn failures_map_to_rfc_1928_codes() {
        let codes = [
            (DestFailure::Denied, 2),
            (DestFailure::NetworkUnreachable, 3),
            (DestFailure::HostUnreachable, 4),
            (DestFailure::Unresolved, 4),
            (DestFailure::Refused, 5),
            (DestFailure::TimedOut, 6),
            (DestFailure::Failed, 1),
        ];
        for (failure, byte) in codes {
            assert_eq!(ReplyCode::for_failure(failure).byte(), byte, "{failure:?}");
        }
        assert_eq!(
            encode_reply(ReplyCode::Refused, unspecified()),
            [5, 5, 0, 1, 0, 0, 0, 0, 0, 0]
        );
    }
}
