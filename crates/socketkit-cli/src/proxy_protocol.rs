//! The PROXY protocol flags: `serve … --proxy-protocol --proxy-from CIDR`
//! (accept HAProxy's header from trusted proxies, any service) and the
//! version `serve forward --send-proxy` writes. The library does the work
//! (`socketkit::server::ProxyProtocol`, `Forward::with_send_proxy`).

use anyhow::bail;
use clap::{Args, ValueEnum};
use socketkit::addr::SocketKind;
use socketkit::proxy_header::Version;
use socketkit::server::{AccessList, ProxyProtocol, Rule};
use socketkit::Endpoint;

/// Accepting the PROXY protocol; flattened into `serve`'s flags.
#[derive(Debug, Args)]
pub struct ProxyProtocolArgs {
    /// Every stream connection must start with a PROXY protocol header (v1
    /// or v2, as HAProxy's send-proxy writes) within --handshake-timeout;
    /// the client it names is what logs, --allow/--deny and the service see.
    /// Needs --proxy-from.
    #[arg(long, requires = "proxy_from", help_heading = "PROXY protocol")]
    pub proxy_protocol: bool,
    /// With --proxy-protocol: the proxies trusted to send headers (CIDR or
    /// address; repeatable). Connections from anywhere else are refused.
    #[arg(
        long = "proxy-from",
        value_name = "CIDR",
        requires = "proxy_protocol",
        help_heading = "PROXY protocol"
    )]
    pub proxy_from: Vec<String>,
}

/// `--send-proxy`'s version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SendProxy {
    /// The text header (`PROXY TCP4 …`, HAProxy's send-proxy).
    V1,
    /// The binary header (HAProxy's send-proxy-v2).
    V2,
}

impl From<SendProxy> for Version {
    fn from(version: SendProxy) -> Version {
        match version {
            SendProxy::V1 => Version::V1,
            SendProxy::V2 => Version::V2,
        }
    }
}

/// The server's PROXY protocol setting, `None` without --proxy-protocol.
/// A trusted list is required (an open one would let anyone claim any
/// address), and datagram endpoints are refused rather than left
/// unprotected: their datagrams carry no header.
pub fn config(
    args: &ProxyProtocolArgs,
    addrs: &[Endpoint],
) -> anyhow::Result<Option<ProxyProtocol>> {
    if !args.proxy_protocol {
        return Ok(None);
    }
    if args.proxy_from.is_empty() {
        bail!("--proxy-protocol needs --proxy-from CIDR (the proxies allowed to name clients)");
    }
    if let Some(datagram) = addrs.iter().find(|a| a.kind() == SocketKind::Datagram) {
        bail!("--proxy-protocol covers stream endpoints only, not {datagram} (hint: serve datagrams without it, in a second process)");
    }
    let mut trusted = AccessList::new();
    for cidr in &args.proxy_from {
        trusted.add(Rule::Allow, cidr)?;
    }
    Ok(Some(ProxyProtocol::new(trusted)))
}
