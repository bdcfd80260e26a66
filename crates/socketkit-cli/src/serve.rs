//! `socketkit serve`: configure a server, print where it listens, run it
//! until a signal.

use std::io::Write;

use anyhow::{bail, Context};
use socketkit::addr::SocketKind;
use socketkit::server::{
    DatagramHandler, Handlers, Server, ServerConfig, ServerHandle, StreamHandler,
};
use socketkit::services::{Daytime, Discard, Echo, Hello, Upper};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use crate::args::{optional, Mode, ServeArgs, Service};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::chat::reject_outside_chat(&args)?;
    match args.service {
        Service::Echo => serve(args, Handlers::both(Echo)).await,
        Service::Upper => serve(args, Handlers::both(Upper)).await,
        Service::Hello => serve(args, Handlers::stream(Hello::default())).await,
        Service::Discard => serve(args, Handlers::both(Discard)).await,
        Service::Daytime => serve(args, Handlers::both(Daytime)).await,
        Service::Chat => crate::chat::run(args).await,
    }
}

fn config(args: &ServeArgs) -> ServerConfig {
    let mode = match args.mode {
        Mode::Tasks => socketkit::server::Mode::Tasks,
        Mode::Threads => socketkit::server::Mode::Threads,
        Mode::Sequential => socketkit::server::Mode::Sequential,
    };
    ServerConfig::default()
        .mode(mode)
        .max_connections(args.max_conns)
        .idle_timeout(optional(args.idle_timeout))
        .drain_timeout(args.drain_timeout)
        .max_line_length(args.max_line)
        .backlog(args.backlog)
        .reuse_port(args.reuse_port)
}

async fn serve<S: StreamHandler, D: DatagramHandler>(
    args: ServeArgs,
    handlers: Handlers<S, D>,
) -> anyhow::Result<()> {
    serve_with(args, handlers, ServerHandle::default(), &[]).await
}

/// Serves under `handle` (which the caller may share with companions such
/// as the chat's web page); `also_listening` are printed after the sockets.
pub(crate) async fn serve_with<S: StreamHandler, D: DatagramHandler>(
    args: ServeArgs,
    handlers: Handlers<S, D>,
    handle: ServerHandle,
    also_listening: &[String],
) -> anyhow::Result<()> {
    let name = service_name(args.service);
    for endpoint in &args.addrs {
        if !handlers.supports(endpoint.kind()) {
            let kind = match endpoint.kind() {
                SocketKind::Stream => "stream",
                SocketKind::Datagram => "datagram",
            };
            bail!("the {name} service does not serve {kind} endpoints such as {endpoint} (hint: use tcp:// or unix:)");
        }
    }
    // Handlers go in before anything is printed: a script may signal us as
    // soon as it reads the first `listening on` line.
    let signals = Signals::install().context("cannot install signal handlers")?;
    let server = Server::bind(&args.addrs, config(&args))
        .await?
        .with_handle(handle);
    print_listening(&server, also_listening).context("cannot write to stdout")?;
    tokio::spawn(signals.shut_down(server.handle()));
    let summary = if args.once {
        server.handle_request(handlers).await?
    } else {
        server.serve(handlers).await?
    };
    info!(
        connections = summary.connections,
        datagrams = summary.datagrams,
        aborted = summary.aborted,
        "server stopped"
    );
    Ok(())
}

fn service_name(service: Service) -> &'static str {
    match service {
        Service::Echo => "echo",
        Service::Upper => "upper",
        Service::Hello => "hello",
        Service::Discard => "discard",
        Service::Daytime => "daytime",
        Service::Chat => "chat",
    }
}

fn print_listening(server: &Server, also: &[String]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for endpoint in server.endpoints() {
        writeln!(stdout, "listening on {endpoint}")?;
    }
    for address in also {
        writeln!(stdout, "listening on {address}")?;
    }
    stdout.flush()
}

/// SIGINT and SIGTERM: the first starts a graceful shutdown, the second
/// exits at once.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    async fn shut_down(mut self, server: ServerHandle) {
        self.next().await;
        info!("shutting down: listeners closed, open connections finishing (signal again to exit now)");
        server.shutdown();
        self.next().await;
        warn!("second signal: exiting without waiting");
        std::process::exit(130);
    }
}
