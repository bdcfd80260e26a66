//! Which transports may carry the services that act on the server (exec,
//! recv, cmd): the rule lives here, in the library, so a program built on
//! socketkit refuses what the `socketkit` command refuses.
//!
//! The services' own checks ([`ExecPolicy::check_endpoints`],
//! [`RecvPolicy::check_endpoints`], [`check_exposure`]) take the endpoints
//! and the [`Guards`] in front of them (client certificates required, an
//! access list that admits only some peers) and return an
//! [`UnsafeTransport`] saying what is wrong. Call them before binding; exec
//! and recv also apply them to every connection, so a server started without
//! the check still never runs a command for, or stores a file from, a peer
//! that came through a transport the rule refuses.
//!
//! This module decides about transports only; who a client is, is
//! [`auth`](super::auth)'s job.
//!
//! [`ExecPolicy::check_endpoints`]: super::exec::ExecPolicy::check_endpoints
//! [`RecvPolicy::check_endpoints`]: super::recv::RecvPolicy::check_endpoints
//! [`check_exposure`]: super::cmd::check_exposure

use std::fmt;

use super::auth::AuthPolicy;
use crate::addr::Endpoint;
use crate::error::{Error, ErrorKind};
use crate::server::{Connection, ServerConfig};

/// What guards a server's endpoints besides the service's own
/// authentication. Default: nothing (no client certificates, no access
/// list), the assumption that refuses the most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Guards {
    client_certificates: bool,
    access_restricted: bool,
}

impl Guards {
    /// No guards.
    pub fn new() -> Guards {
        Guards::default()
    }

    /// The guards `config` sets up: client certificates when its TLS
    /// requires them, an access list when it admits only some peers.
    pub fn of(config: &ServerConfig) -> Guards {
        #[cfg(feature = "tls")]
        let client_certificates = config
            .tls
            .as_ref()
            .is_some_and(|tls| tls.requires_client_certificates());
        #[cfg(not(feature = "tls"))]
        let client_certificates = false;
        Guards {
            client_certificates,
            access_restricted: config.access.restricts(),
        }
    }

    /// `tls://` endpoints require a client certificate the handshake
    /// verified (mutual TLS).
    pub fn client_certificates(mut self, required: bool) -> Guards {
        self.client_certificates = required;
        self
    }

    /// An access list admits only some peers (it has allow rules).
    pub fn access_restricted(mut self, restricted: bool) -> Guards {
        self.access_restricted = restricted;
        self
    }
}

/// Why a service refuses to be served on an endpoint. Converts into an
/// [`Error`] of kind [`ErrorKind::Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsafeTransport {
    /// Plain TCP for exec, not allowed by the policy
    /// ([`ExecPolicy::insecure_plaintext`](super::exec::ExecPolicy::insecure_plaintext)):
    /// commands and their output would cross the network unencrypted.
    Plaintext {
        /// The endpoint refused.
        endpoint: Endpoint,
    },
    /// Plain TCP for exec is allowed for tests and demos, on loopback only.
    PlaintextOffLoopback {
        /// The endpoint refused.
        endpoint: Endpoint,
    },
    /// Plain TCP for exec needs a token: exec never runs for an
    /// unauthenticated peer.
    PlaintextWithoutToken {
        /// The endpoint refused.
        endpoint: Endpoint,
    },
    /// A `tls://` endpoint with no way to authenticate clients: neither
    /// client certificates nor a token.
    Unauthenticated {
        /// The service refusing.
        service: &'static str,
        /// The endpoint refused.
        endpoint: Endpoint,
    },
    /// An endpoint reachable from the network without TLS.
    NetworkWithoutTls {
        /// The service refusing.
        service: &'static str,
        /// The endpoint refused.
        endpoint: Endpoint,
    },
    /// Anonymous clients admitted on an endpoint reachable from the network
    /// (or, for exec, on any internet endpoint).
    Anonymous {
        /// The service refusing.
        service: &'static str,
        /// The endpoint refused.
        endpoint: Endpoint,
    },
    /// A command served where anyone who can reach the endpoint could run
    /// it: not loopback, no access list that admits only some peers, no
    /// client certificates.
    Unrestricted {
        /// The endpoint refused.
        endpoint: Endpoint,
    },
}

impl UnsafeTransport {
    /// The endpoint refused.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            UnsafeTransport::Plaintext { endpoint }
            | UnsafeTransport::PlaintextOffLoopback { endpoint }
            | UnsafeTransport::PlaintextWithoutToken { endpoint }
            | UnsafeTransport::Unauthenticated { endpoint, .. }
            | UnsafeTransport::NetworkWithoutTls { endpoint, .. }
            | UnsafeTransport::Anonymous { endpoint, .. }
            | UnsafeTransport::Unrestricted { endpoint } => endpoint,
        }
    }
}

impl fmt::Display for UnsafeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsafeTransport::Plaintext { endpoint } => write!(
                f,
                "refusing plain TCP for exec on {endpoint}: commands and their output would cross the network unencrypted"
            ),
            UnsafeTransport::PlaintextOffLoopback { endpoint } => write!(
                f,
                "plain TCP for exec serves loopback addresses only, not {endpoint}"
            ),
            UnsafeTransport::PlaintextWithoutToken { endpoint } => write!(
                f,
                "plain TCP for exec on {endpoint} needs a token: exec never runs for an unauthenticated peer"
            ),
            UnsafeTransport::Unauthenticated { service, endpoint } => write!(
                f,
                "{service} on {endpoint} needs a way to authenticate clients (client certificates or a token)"
            ),
            UnsafeTransport::NetworkWithoutTls { service, endpoint } => write!(
                f,
                "{service} on {endpoint} is reachable from the network: it needs tls:// and a way to authenticate clients"
            ),
            UnsafeTransport::Anonymous { service, endpoint } => write!(
                f,
                "{service} on {endpoint} would admit anonymous clients from the network"
            ),
            UnsafeTransport::Unrestricted { endpoint } => write!(
                f,
                "refusing to serve a command on {endpoint}: anyone who can reach it could run it"
            ),
        }
    }
}

impl std::error::Error for UnsafeTransport {}

impl From<UnsafeTransport> for Error {
    fn from(refusal: UnsafeTransport) -> Error {
        Error::new(ErrorKind::Config, refusal.to_string())
    }
}

/// Reachable from this machine only: a Unix socket or a loopback address
/// (`localhost` included).
pub fn is_local(endpoint: &Endpoint) -> bool {
    endpoint
        .host_port()
        .is_none_or(|host_port| host_port.host.is_loopback())
}

/// The guards a connection shows: a client certificate the handshake
/// verified (which a server that requires them always has).
pub(crate) fn guards_of(conn: &Connection) -> Guards {
    Guards::new().client_certificates(conn.peer_certificate().is_some())
}

/// Exec's rule for `endpoints` (see `ExecPolicy::check_endpoints`).
pub(crate) fn check_exec(
    endpoints: &[Endpoint],
    guards: Guards,
    auth: &AuthPolicy,
    insecure_plaintext: bool,
) -> Result<(), UnsafeTransport> {
    let (token, anonymous) = (auth.token.is_some(), auth.allow_anonymous);
    endpoints
        .iter()
        .try_for_each(|e| exec_rule(e, guards, token, anonymous, insecure_plaintext))
}

/// The receiver's rule for `endpoints` (see `RecvPolicy::check_endpoints`).
#[cfg(feature = "transfer")]
pub(crate) fn check_recv(
    endpoints: &[Endpoint],
    guards: Guards,
    auth: &AuthPolicy,
) -> Result<(), UnsafeTransport> {
    let (token, anonymous) = (auth.token.is_some(), auth.allow_anonymous);
    endpoints
        .iter()
        .try_for_each(|e| recv_rule(e, guards, token, anonymous))
}

/// Exec's rule for one endpoint, given whether a token is configured,
/// anonymous clients are admitted and plaintext TCP is allowed.
fn exec_rule(
    endpoint: &Endpoint,
    guards: Guards,
    token: bool,
    anonymous: bool,
    insecure_plaintext: bool,
) -> Result<(), UnsafeTransport> {
    let endpoint_owned = || endpoint.clone();
    match endpoint {
        Endpoint::Tcp(_) | Endpoint::Tls(_) if anonymous => Err(UnsafeTransport::Anonymous {
            service: "exec",
            endpoint: endpoint_owned(),
        }),
        Endpoint::Tls(_) if !guards.client_certificates && !token => {
            Err(UnsafeTransport::Unauthenticated {
                service: "exec",
                endpoint: endpoint_owned(),
            })
        }
        Endpoint::Tcp(_) if !insecure_plaintext => Err(UnsafeTransport::Plaintext {
            endpoint: endpoint_owned(),
        }),
        Endpoint::Tcp(_) if !is_local(endpoint) => Err(UnsafeTransport::PlaintextOffLoopback {
            endpoint: endpoint_owned(),
        }),
        Endpoint::Tcp(_) if !token => Err(UnsafeTransport::PlaintextWithoutToken {
            endpoint: endpoint_owned(),
        }),
        // Unix sockets prove the peer's uid; datagram endpoints are refused
        // as such when the server starts.
        _ => Ok(()),
    }
}

/// The receiver's rule for one endpoint: off loopback only TLS with a way
/// to authenticate senders, and never anonymous senders.
#[cfg(feature = "transfer")]
fn recv_rule(
    endpoint: &Endpoint,
    guards: Guards,
    token: bool,
    anonymous: bool,
) -> Result<(), UnsafeTransport> {
    // Datagram endpoints are refused as such when the server starts.
    if is_local(endpoint) || endpoint.kind() == crate::addr::SocketKind::Datagram {
        return Ok(());
    }
    let service = "recv";
    let endpoint_owned = || endpoint.clone();
    match endpoint {
        _ if anonymous => Err(UnsafeTransport::Anonymous {
            service,
            endpoint: endpoint_owned(),
        }),
        Endpoint::Tls(_) if guards.client_certificates || token => Ok(()),
        Endpoint::Tls(_) => Err(UnsafeTransport::Unauthenticated {
            service,
            endpoint: endpoint_owned(),
        }),
        _ => Err(UnsafeTransport::NetworkWithoutTls {
            service,
            endpoint: endpoint_owned(),
        }),
    }
}

/// The inetd rule for one endpoint: off loopback, an access list that
/// admits only some peers, or TLS with client certificates.
#[cfg(feature = "cmd")]
pub(crate) fn cmd_rule(endpoint: &Endpoint, guards: Guards) -> Result<(), UnsafeTransport> {
    let certified = matches!(endpoint, Endpoint::Tls(_)) && guards.client_certificates;
    if is_local(endpoint) || certified || guards.access_restricted {
        return Ok(());
    }
    Err(UnsafeTransport::Unrestricted {
        endpoint: endpoint.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> Endpoint {
        text.parse().unwrap()
    }

    #[test]
    fn exec_refuses_plaintext_unless_loopback_with_a_token() {
        let any = endpoint("tcp://0.0.0.0:7000");
        let lo = endpoint("tcp://127.0.0.1:7000");
        let none = Guards::new();
        assert!(matches!(
            exec_rule(&lo, none, true, false, false),
            Err(UnsafeTransport::Plaintext { .. })
        ));
        assert!(matches!(
            exec_rule(&any, none, true, false, true),
            Err(UnsafeTransport::PlaintextOffLoopback { .. })
        ));
        assert!(matches!(
            exec_rule(&lo, none, false, false, true),
            Err(UnsafeTransport::PlaintextWithoutToken { .. })
        ));
        assert_eq!(exec_rule(&lo, none, true, false, true), Ok(()));
        assert_eq!(
            exec_rule(&endpoint("unix:/tmp/x"), none, false, false, false),
            Ok(())
        );
    }

    #[test]
    fn exec_over_tls_needs_certificates_or_a_token_and_never_anonymous() {
        let tls = endpoint("tls://0.0.0.0:7000");
        assert!(matches!(
            exec_rule(&tls, Guards::new(), false, false, false),
            Err(UnsafeTransport::Unauthenticated { .. })
        ));
        let certs = Guards::new().client_certificates(true);
        assert_eq!(exec_rule(&tls, certs, false, false, false), Ok(()));
        assert_eq!(exec_rule(&tls, Guards::new(), true, false, false), Ok(()));
        assert!(matches!(
            exec_rule(&tls, certs, false, true, false),
            Err(UnsafeTransport::Anonymous { .. })
        ));
    }

    #[cfg(feature = "transfer")]
    #[test]
    fn recv_off_loopback_needs_tls_and_authentication() {
        let none = Guards::new();
        assert_eq!(
            recv_rule(&endpoint("tcp://127.0.0.1:1"), none, false, true),
            Ok(())
        );
        assert!(matches!(
            recv_rule(&endpoint("tcp://0.0.0.0:1"), none, true, false),
            Err(UnsafeTransport::NetworkWithoutTls { .. })
        ));
        let tls = endpoint("tls://[::]:1");
        assert!(matches!(
            recv_rule(&tls, none, false, false),
            Err(UnsafeTransport::Unauthenticated { .. })
        ));
        assert!(matches!(
            recv_rule(&tls, none, false, true),
            Err(UnsafeTransport::Anonymous { .. })
        ));
        assert_eq!(recv_rule(&tls, none, true, false), Ok(()));
    }

    #[cfg(feature = "cmd")]
    #[test]
    fn cmd_off_loopback_needs_an_access_list_or_client_certificates() {
        let any = endpoint("tcp://0.0.0.0:1");
        assert!(matches!(
            cmd_rule(&any, Guards::new()),
            Err(UnsafeTransport::Unrestricted { .. })
        ));
        assert_eq!(
            cmd_rule(&any, Guards::new().access_restricted(true)),
            Ok(())
        );
        assert!(cmd_rule(&any, Guards::new().client_certificates(true)).is_err());
        let tls = endpoint("tls://0.0.0.0:1");
        assert_eq!(
            cmd_rule(&tls, Guards::new().client_certificates(true)),
            Ok(())
        );
    }
}
