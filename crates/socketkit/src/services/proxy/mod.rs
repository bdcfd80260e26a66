//! The proxy servers (`serve socks5`, `serve http-proxy`) and what they
//! share: who may use them ([`users`]: the `--users` file and the checked,
//! penalised credentials), where they may connect ([`policy`]: the
//! destination policy, the SSRF guard and the start-up rule against an open
//! proxy), and [`ProxyConfig::connect`], the one way a proxy opens a
//! destination: policy on the name, resolution, policy on every address,
//! then Happy Eyeballs over exactly the addresses that passed.
//!
//! The server layer still owns listening, client `--allow/--deny`, limits
//! and drain; the relay is [`both_ways`](crate::client::both_ways). Each
//! protocol module owns only its wire format and its mapping of
//! [`DestFailure`] to its own error replies.

pub mod http;
pub mod policy;
pub mod socks5;
pub mod users;

pub use http::HttpProxy;
pub use socks5::Socks5;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use self::policy::{Denial, DestPolicy};
use self::users::Users;
use crate::addr::{Endpoint, Host, HostPort};
use crate::server::{AccessList, Connection};
use crate::transport::{connect_resolved, ConnectOptions, SocketAddress, Stream};

/// What a proxy server is configured with, shared by its protocols.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Username/password clients (`--users`). With users, every client
    /// authenticates, wherever it connects from.
    pub users: Option<Arc<Users>>,
    /// Where clients may go.
    pub dest: DestPolicy,
    /// The server's client `--allow/--deny` list: when it restricts who
    /// may connect, clients it admitted may use the proxy without a
    /// password (the server refuses the others before any byte).
    pub access: AccessList,
    /// How destinations are connected: the timeout (SOCKS5 reply 0x06,
    /// HTTP 504) covers resolution and every attempt; default 10 s.
    pub connect: ConnectOptions,
    /// The negotiation's deadline (SOCKS5 greeting, authentication and
    /// request; an HTTP proxy request's head), from the connection's start.
    /// Default 10 s, the server's handshake timeout.
    pub handshake_timeout: Duration,
}

impl ProxyConfig {
    /// A proxy with no users, no destination rules and default timeouts:
    /// fit for loopback only (see [`ProxyConfig::check_start`]).
    pub fn new() -> ProxyConfig {
        ProxyConfig {
            users: None,
            dest: DestPolicy::new(),
            access: AccessList::new(),
            connect: ConnectOptions::default(),
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// The start-up rule for `service` ("SOCKS5", "HTTP") on `endpoints`
    /// (see [`policy::check_exposure`]); also turns the destination guard
    /// on when any of them is reachable off this host. Call it with the
    /// endpoints the server will bind.
    pub fn check_start(mut self, service: &str, endpoints: &[Endpoint]) -> crate::Result<Self> {
        policy::check_exposure(service, endpoints, self.users.is_some(), &self.access)?;
        self.dest = self.dest.guard_for(endpoints);
        Ok(self)
    }

    /// Whether `conn`'s client may use the proxy without credentials: never
    /// when there are users; otherwise on loopback and Unix listeners, and
    /// elsewhere when `--allow` admitted it.
    pub fn anonymous_allowed(&self, conn: &Connection) -> bool {
        if self.users.is_some() {
            return false;
        }
        let local = conn
            .local_endpoint()
            .host_port()
            .is_none_or(|hp| hp.host.is_loopback());
        local || (self.access.restricts() && self.access.permits(conn.peer_addr()))
    }

    /// Opens a stream to `host`:`port` for a client: the policy is checked
    /// on the name and on every resolved address, then the addresses that
    /// passed are raced (Happy Eyeballs), all within the connect timeout.
    /// Returns the stream and the address it reached.
    pub async fn connect(&self, host: &Host, port: u16) -> Result<(Stream, SocketAddr), DestError> {
        let started = tokio::time::Instant::now();
        let addrs = self.resolve(host, port).await?;
        let remaining = self.connect.timeout.saturating_sub(started.elapsed());
        let options = ConnectOptions {
            timeout: remaining,
            ..self.connect.clone()
        };
        let stream = connect_resolved(addrs, &options)
            .await
            .map_err(|e| DestError::from_io(host, port, &e))?;
        let reached = match stream.peer_addr() {
            Ok(SocketAddress::Inet(addr)) => addr,
            _ => SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0),
        };
        Ok((stream, reached))
    }

    /// `host`'s addresses for `port`, every one allowed by the policy (a
    /// name is checked before it is resolved, too). Also what a datagram
    /// relay uses before it sends.
    pub async fn resolve(&self, host: &Host, port: u16) -> Result<Vec<SocketAddr>, DestError> {
        let denied = |denial: Denial| DestError {
            failure: DestFailure::Denied,
            detail: denial.to_string(),
        };
        let name = match host {
            Host::Name(name) => {
                self.dest.check_name(name).map_err(denied)?;
                Some(name.as_str())
            }
            _ => None,
        };
        let host_port = HostPort {
            host: host.clone(),
            port,
        };
        let resolving = crate::addr::resolve_connect(&host_port);
        let addrs = match tokio::time::timeout(self.connect.timeout, resolving).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(error)) => {
                return Err(DestError {
                    failure: DestFailure::Unresolved,
                    detail: error.to_string(),
                })
            }
            Err(_) => {
                return Err(DestError {
                    failure: DestFailure::TimedOut,
                    detail: format!("resolving {} timed out", HostDisplay(host)),
                })
            }
        };
        let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
        self.dest.check(name, &ips).map_err(denied)?;
        Ok(addrs)
    }
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig::new()
    }
}

/// Why a destination could not be reached, in the classes both proxy
/// protocols answer differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestFailure {
    /// The destination policy refused it (SOCKS5 0x02, HTTP 403).
    Denied,
    /// The name did not resolve (SOCKS5 0x04, HTTP 502).
    Unresolved,
    /// No route to its network (SOCKS5 0x03, HTTP 502).
    NetworkUnreachable,
    /// No route to the host (SOCKS5 0x04, HTTP 502).
    HostUnreachable,
    /// It refused the connection (SOCKS5 0x05, HTTP 502).
    Refused,
    /// The connect timeout passed (SOCKS5 0x06, HTTP 504).
    TimedOut,
    /// Anything else (SOCKS5 0x01, HTTP 502).
    Failed,
}

/// A destination that could not be reached: the class and a line for the
/// log (which names the destination or the rule, never credentials).
#[derive(Debug, Clone)]
pub struct DestError {
    /// The class of failure.
    pub failure: DestFailure,
    /// What happened.
    pub detail: String,
}

impl DestError {
    fn from_io(host: &Host, port: u16, error: &std::io::Error) -> DestError {
        use std::io::ErrorKind as K;
        let failure = match error.kind() {
            K::ConnectionRefused => DestFailure::Refused,
            K::NetworkUnreachable => DestFailure::NetworkUnreachable,
            K::HostUnreachable => DestFailure::HostUnreachable,
            K::TimedOut => DestFailure::TimedOut,
            _ => DestFailure::Failed,
        };
        DestError {
            failure,
            detail: format!("cannot connect to {}:{port}: {error}", HostDisplay(host)),
        }
    }
}

impl fmt::Display for DestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for DestError {}

/// A host as a log shows it; IPv6 in brackets so `:port` can follow.
struct HostDisplay<'a>(&'a Host);

impl fmt::Display for HostDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => write!(f, "{:?}", name),
            Host::Any => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Rule;

    #[tokio::test]
    async fn connect_checks_the_policy_and_maps_failures() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = ProxyConfig::new();
        let loopback = Host::Ip("127.0.0.1".parse().unwrap());
        let (_stream, reached) = open.connect(&loopback, port).await.unwrap();
        assert_eq!(reached, listener.local_addr().unwrap());
        drop(listener);
        let refused = open.connect(&loopback, port).await.unwrap_err();
        assert_eq!(refused.failure, DestFailure::Refused, "{refused}");

        let mut denying = ProxyConfig::new();
        denying.dest.add(Rule::Deny, "127.0.0.0/8").unwrap();
        let denied = denying.connect(&loopback, port).await.unwrap_err();
        assert_eq!(denied.failure, DestFailure::Denied, "{denied}");
        let by_name = denying
            .connect(&Host::Name("localhost".to_owned()), port)
            .await
            .unwrap_err();
        assert_eq!(
            by_name.failure,
            DestFailure::Denied,
            "checked after resolving"
        );
    }

    #[test]
    fn an_exposed_proxy_needs_users_or_an_allow_list_and_is_guarded() {
        let any: Endpoint = "tcp://0.0.0.0:1080".parse().unwrap();
        assert!(ProxyConfig::new()
            .check_start("SOCKS5", std::slice::from_ref(&any))
            .is_err());
        let mut allowed = ProxyConfig::new();
        allowed.access.add(Rule::Allow, "10.0.0.0/8").unwrap();
        let started = allowed.check_start("SOCKS5", &[any]).unwrap();
        assert!(started.dest.guarded());
    }
}
