//! `socketkit connect`: stdin and stdout to a socket.

use std::time::Duration;

use anyhow::Context;
use socketkit::addr::SocketKind;
use socketkit::client::{self, DatagramOptions, RelayOptions};
use socketkit::hexdump::Tapped;
use socketkit::transport::{self, ConnectOptions};
use socketkit::Endpoint;
use tracing::{debug, info};

use crate::args::{optional, ConnectArgs};
use crate::tls;

/// After the peer closes, how long stdin may stay quiet before the relay
/// ends: a file or pipe still being read is sent in full, a terminal nobody
/// types into does not hold the command open.
pub(crate) const INPUT_GRACE: Duration = Duration::from_secs(1);

pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let tls = match args.addr {
        Endpoint::Tls(_) => Some(tls::client(&args.tls)?),
        _ => None,
    };
    let mut options = ConnectOptions::default();
    options.timeout = args.timeout;
    options.tls = tls;
    options.server_name = args.tls.servername.clone();
    options.source = args.source;
    options.family = args.family.family();
    options.proxy = args.proxy.proxy.clone();
    let (stdin, stdout) = (tokio::io::stdin(), crate::stdout::tokio());
    let report = match args.addr.kind() {
        SocketKind::Stream => {
            let stream = transport::connect(&args.addr, &options).await?;
            if let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) {
                info!(%peer, %local, "connected");
            }
            let mut relay = RelayOptions::default();
            relay.crlf = args.crlf;
            relay.idle_timeout = optional(args.idle_timeout);
            relay.line_mode = args.line_mode;
            relay.input_grace = INPUT_GRACE;
            match crate::hexdump::open(&args.hexdump)? {
                Some(dump) => {
                    let tapped = Tapped::dumped(stream, dump, args.addr.to_string());
                    client::relay(tapped, stdin, stdout, &relay).await
                }
                None => client::relay(stream, stdin, stdout, &relay).await,
            }
        }
        SocketKind::Datagram => {
            let socket = transport::connect_datagram(&args.addr, &options).await?;
            info!(peer = %args.addr, local = %socket.endpoint(), "datagram socket ready");
            let mut exchange = DatagramOptions::default();
            exchange.wait = args.wait;
            exchange.line_mode = args.line_mode;
            client::exchange_datagrams(&socket, stdin, stdout, &exchange).await
        }
    }
    .with_context(|| format!("connection to {}", args.addr))?;
    debug!(sent = report.sent, received = report.received, "done");
    Ok(())
}
