//! `socketkit listen`: nc -l. Binds like `serve`, says where on stderr
//! (stdout carries the data), then runs the library's `Listen` service on
//! one connection, or one after another with -k.

use std::process::ExitCode;

use anyhow::{bail, Context};
use socketkit::addr::SocketKind;
use socketkit::client::RelayOptions;
use socketkit::server::{Handlers, Mode, Server, ServerConfig};
use socketkit::services::Listen;
use socketkit::tls::ServerTls;

use crate::args::{optional, ListenArgs};
use crate::serve::{self, Signals};
use crate::tls;

pub async fn run(mut args: ListenArgs) -> anyhow::Result<ExitCode> {
    if args.addrs.is_empty() {
        args.addrs = vec![serve::DEFAULT_ADDR.parse()?];
    }
    // Both kinds at once would have two readers of one stdin.
    let datagrams = args.addrs[0].kind() == SocketKind::Datagram;
    if let Some(other) = args
        .addrs
        .iter()
        .find(|e| (e.kind() == SocketKind::Datagram) != datagrams)
    {
        bail!("listen takes stream (tcp://, tls://, unix:) or datagram (udp://, unixgram:) addresses, not both: {other} differs from {}", args.addrs[0]);
    }
    let access = serve::access_list(&args.access)?;
    let dump = crate::hexdump::open(&args.hexdump)?;
    // Installed before the first line is printed: a script may signal us
    // as soon as it reads `listening on`.
    let signals = Signals::install().context("cannot install signal handlers")?;
    let tls = tls::server(&args.tls, &args.addrs, false)?;
    let fingerprint = tls.as_ref().map(ServerTls::fingerprint);
    // One connection at a time: they share stdin and stdout.
    let mut config = ServerConfig::default()
        .mode(Mode::Sequential)
        .max_connections(1)
        .idle_timeout(None)
        .handshake_timeout(args.tls.handshake_timeout)
        .family(args.family.family())
        .access(access);
    if let Some(tls) = tls {
        config = config.tls(tls);
    }
    let server = Server::bind(&args.addrs, config).await?;
    serve::print_listening(std::io::stderr(), &server, fingerprint, &[])
        .context("cannot write to stderr")?;
    tokio::spawn(signals.shut_down(server.handle()));
    let mut relay = RelayOptions::default();
    relay.idle_timeout = optional(args.idle_timeout);
    relay.input_grace = crate::connect::INPUT_GRACE;
    let mut listen = Listen::new(tokio::io::stdin(), crate::stdout::tokio(), relay);
    if let Some(dump) = dump {
        listen = listen.with_hexdump(dump);
    }
    let failure = listen.failure();
    if datagrams {
        let input = listen.datagram_input();
        tokio::select! {
            served = server.serve(Handlers::both(listen)) => served?,
            // End of stdin only stops sending; datagrams are still printed
            // until a signal.
            Err(error) = input => return Err(error.into()),
        };
    } else if args.keep_open {
        server.serve(Handlers::stream(listen)).await?;
    } else {
        server.handle_request(Handlers::stream(listen)).await?;
    }
    let failed = failure.lock().ok().and_then(|mut slot| slot.take());
    match failed {
        Some(error) => Err(error.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}
