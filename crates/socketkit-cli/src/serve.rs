//! `socketkit serve`: configure a server, print where it listens, run it
//! until a signal.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context};
use socketkit::addr::SocketKind;
use socketkit::server::{
    AccessList, DatagramHandler, Handlers, Rule, Server, ServerConfig, ServerHandle, StreamHandler,
};
use socketkit::services::cmd::{self, Cmd, CmdPolicy, Program};
use socketkit::services::exec::{
    self, AuthPolicy, CommandList, Containment, EnvAllowList, Exec, ExecPolicy, Token,
};
use socketkit::services::proxy::{HttpProxy, Socks5};
use socketkit::services::recv::{Recv, RecvPolicy};
use socketkit::services::{Daytime, Discard, Echo, Hello, Upper};
use socketkit::tls::{Fingerprint, ServerTls};
use socketkit::Endpoint;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use crate::args::{optional, AccessArgs, ExecServiceArgs, Mode, ServeArgs, Service};
use crate::progress::{self, ReceiveBars};
use crate::{tls, token};

/// Where services listen when no address is given: loopback, never every
/// interface.
pub(crate) const DEFAULT_ADDR: &str = "tcp://127.0.0.1:7007";

/// SOCKS5's conventional port, on loopback.
const SOCKS5_DEFAULT_ADDR: &str = "tcp://127.0.0.1:1080";

/// An HTTP proxy's conventional port (Squid's), on loopback.
const HTTP_PROXY_DEFAULT_ADDR: &str = "tcp://127.0.0.1:3128";

pub async fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    if args.addrs.is_empty() {
        args.addrs = vec![default_endpoint(args.service)?];
    }
    crate::chat::reject_outside_chat(&args)?;
    let cmd = &args.cmd;
    if !matches!(args.service, Service::Cmd)
        && (!cmd.program.is_empty() || cmd.shell || cmd.stderr_to_peer)
    {
        bail!("a program after --, --shell and --stderr-to-peer belong to serve cmd (hint: socketkit serve cmd ADDR -- PROG [ARGS...])");
    }
    let forward = crate::forward::service(&args)?;
    crate::proxy::reject_outside_proxies(
        &args,
        matches!(args.service, Service::Socks5 | Service::HttpProxy),
    )?;
    match args.service {
        Service::Echo => serve(args, Handlers::both(Echo)).await,
        Service::Upper => serve(args, Handlers::both(Upper)).await,
        Service::Hello => serve(args, Handlers::stream(Hello::default())).await,
        Service::Discard => serve(args, Handlers::both(Discard)).await,
        Service::Daytime => serve(args, Handlers::both(Daytime)).await,
        Service::Exec => {
            let policy = exec_policy(&args)?;
            // Checked first: a refused start creates no cgroup.
            check_exec_transports(&args)?;
            let containment = Containment::new(args.exec.containment.into())?;
            serve(args, Handlers::stream(Exec::new(policy, containment))).await
        }
        Service::Recv => {
            let mut receiver = Recv::new(recv_policy(&args)?)?;
            if progress::wanted() {
                receiver = receiver.with_observer(Arc::new(ReceiveBars::default()));
            }
            serve(args, Handlers::stream(receiver)).await
        }
        Service::Chat => crate::chat::run(args).await,
        Service::Cmd => {
            let service = cmd_service(&args)?;
            serve(args, Handlers::stream(service)).await
        }
        Service::HttpProxy => {
            let config = crate::proxy::config(&args, "HTTP")?;
            serve(args, Handlers::stream(HttpProxy::new(config))).await
        }
        Service::Forward => match forward {
            Some(forward) => serve(args, Handlers::both(forward)).await,
            None => bail!("serve forward needs --to TARGET"),
        },
        Service::Socks5 => {
            let config = crate::proxy::config(&args, "SOCKS5")?;
            serve(args, Handlers::stream(Socks5::new(config))).await
        }
    }
}

fn default_endpoint(service: Service) -> anyhow::Result<Endpoint> {
    match service {
        Service::Exec => Ok(Endpoint::Unix(exec::prepare_default_socket()?)),
        Service::Socks5 => Ok(SOCKS5_DEFAULT_ADDR.parse()?),
        Service::HttpProxy => Ok(HTTP_PROXY_DEFAULT_ADDR.parse()?),
        _ => Ok(DEFAULT_ADDR.parse()?),
    }
}

/// The access list from --allow/--deny and their files; any bad entry is
/// an error before anything is bound.
pub(crate) fn access_list(args: &AccessArgs) -> anyhow::Result<AccessList> {
    let mut list = AccessList::new();
    for (rule, cidrs) in [(Rule::Allow, &args.allow), (Rule::Deny, &args.deny)] {
        for cidr in cidrs {
            list.add(rule, cidr)?;
        }
    }
    for (rule, files) in [
        (Rule::Allow, &args.allow_file),
        (Rule::Deny, &args.deny_file),
    ] {
        for file in files {
            list.add_file(rule, file)?;
        }
    }
    Ok(list)
}

pub(crate) fn config(args: &ServeArgs, tls: Option<ServerTls>, access: AccessList) -> ServerConfig {
    let mode = match args.mode {
        Mode::Tasks => socketkit::server::Mode::Tasks,
        Mode::Threads => socketkit::server::Mode::Threads,
        Mode::Sequential => socketkit::server::Mode::Sequential,
    };
    let mut idle_timeout = optional(args.idle_timeout);
    if let (Service::Exec, Some(idle)) = (args.service, idle_timeout) {
        // A command may run silently for its whole time limit; the idle
        // timeout must not cut it short.
        idle_timeout =
            Some(idle.max(exec_timeout(&args.exec) + std::time::Duration::from_secs(10)));
    }
    let mut config = ServerConfig::default()
        .mode(mode)
        .max_connections(args.max_conns)
        .idle_timeout(idle_timeout)
        .drain_timeout(args.drain_timeout)
        .max_line_length(args.max_line)
        .backlog(args.backlog)
        .reuse_port(args.reuse_port)
        .handshake_timeout(args.tls.handshake_timeout)
        .access(access);
    // Sockets that run commands: their owner only, whatever the umask.
    if let Service::Exec | Service::Cmd = args.service {
        config = config.unix_mode(0o600);
    }
    match tls {
        Some(tls) => config.tls(tls),
        None => config,
    }
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
            bail!("the {name} service does not serve {kind} endpoints such as {endpoint} (hint: use tcp://, tls:// or unix:)");
        }
    }
    if let Service::Recv = args.service {
        check_recv_transports(&args)?;
    }
    // Handlers go in before anything is printed: a script may signal us as
    // soon as it reads the first `listening on` line.
    let access = access_list(&args.access)?;
    let signals = Signals::install().context("cannot install signal handlers")?;
    let tls = tls::server(
        &args.tls,
        &args.addrs,
        matches!(args.service, Service::Exec),
    )?;
    let fingerprint = tls.as_ref().map(ServerTls::fingerprint);
    let server = Server::bind(&args.addrs, config(&args, tls, access))
        .await?
        .with_handle(handle);
    print_listening(std::io::stdout(), &server, fingerprint, also_listening)
        .context("cannot write to stdout")?;
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
        refused = summary.refused,
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
        Service::Exec => "exec",
        Service::Recv => "recv",
        Service::Chat => "chat",
        Service::Cmd => "cmd",
        Service::Forward => "forward",
        Service::Socks5 => "socks5",
        Service::HttpProxy => "http-proxy",
    }
}

/// Exec never runs for an unauthenticated peer: Unix sockets prove the
/// peer's uid, TLS needs client certificates or a token, and plain TCP is
/// refused unless explicitly allowed on loopback with a token.
fn check_exec_transports(args: &ServeArgs) -> anyhow::Result<()> {
    let exec = &args.exec;
    for endpoint in &args.addrs {
        match endpoint {
            Endpoint::Tls(_) if args.tls.client_ca.is_none() && exec.token_file.is_none() => {
                bail!("exec on {endpoint} needs a way to authenticate clients (hint: --client-ca FILE for mutual TLS, or --token-file FILE)")
            }
            Endpoint::Tcp(_) => {
                if !exec.insecure_plaintext {
                    bail!("refusing plain TCP for exec on {endpoint}: commands and their output would cross the network unencrypted (hint: use tls://, or --insecure-plaintext with a loopback address for tests and demos)");
                }
                if !is_loopback(endpoint) {
                    bail!("--insecure-plaintext only serves loopback addresses, not {endpoint}");
                }
                if exec.token_file.is_none() {
                    bail!("--insecure-plaintext needs --token-file: exec never runs for an unauthenticated peer");
                }
                warn!("exec on {endpoint} without TLS: the token and all commands travel unencrypted (tests and demos only)");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Unix sockets and loopback addresses are reachable from this machine only.
fn is_loopback(endpoint: &Endpoint) -> bool {
    endpoint.host_port().is_none_or(|hp| hp.host.is_loopback())
}

/// Off loopback, a receiver needs TLS and a way to authenticate senders
/// (as exec does); on loopback (or a Unix socket) it may run open.
fn check_recv_transports(args: &ServeArgs) -> anyhow::Result<()> {
    if args.recv.dir.is_none() {
        bail!("recv needs --dir DIR: where to store received files");
    }
    let authenticated = args.exec.token_file.is_some() || args.tls.client_ca.is_some();
    for endpoint in args.addrs.iter().filter(|e| !is_loopback(e)) {
        match endpoint {
            Endpoint::Tls(_) if authenticated => {}
            Endpoint::Tls(_) => bail!("recv on {endpoint} is reachable from the network: it needs --token-file FILE or --client-ca FILE"),
            _ => bail!("recv on {endpoint} is reachable from the network: use tls:// with --token-file or --client-ca"),
        }
    }
    Ok(())
}

fn recv_policy(args: &ServeArgs) -> anyhow::Result<RecvPolicy> {
    let dir = args.recv.dir.clone().context("recv needs --dir DIR")?;
    let token = token::read(args.exec.token_file.as_deref())?.map(|t| Token::new(&t));
    let allow_anonymous = token.is_none() && args.addrs.iter().all(is_loopback);
    let auth = AuthPolicy {
        token,
        authorized_certificates: None,
        allow_anonymous,
        startups: args.exec.max_startups,
    };
    Ok(RecvPolicy {
        overwrite: args.recv.overwrite,
        max_size: args.recv.max_size,
        allow_dotfiles: args.recv.allow_dotfiles,
        part_ttl: optional(args.recv.part_ttl),
        handshake_timeout: args.tls.handshake_timeout,
        ..RecvPolicy::new(dir, auth)
    })
}

/// exec's time limit per command: 60 s unless --cmd-timeout says otherwise.
fn exec_timeout(exec: &ExecServiceArgs) -> std::time::Duration {
    exec.cmd_timeout
        .unwrap_or(std::time::Duration::from_secs(60))
}

/// `serve cmd`: refused where the network could reach it unguarded (the
/// library's rule), else the program checked and contained.
fn cmd_service(args: &ServeArgs) -> anyhow::Result<Cmd> {
    let access = access_list(&args.access)?;
    cmd::check_exposure(&args.addrs, &access, args.tls.client_ca.is_some())?;
    let words = args.cmd.program.clone();
    let program = if args.cmd.shell {
        Program::Shell(words.join(" "))
    } else {
        Program::Argv(words)
    };
    let mut policy = CmdPolicy::new(program);
    policy.allow_shell = args.exec.allow_shell;
    policy.stderr_to_peer = args.cmd.stderr_to_peer;
    policy.command_timeout = args.exec.cmd_timeout.and_then(optional);
    policy.cwd = match &args.exec.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot find the current directory")?,
    };
    // Checked first: a refused start sets up no containment.
    policy.argv()?;
    let containment = Containment::new(args.exec.containment.into())?;
    Ok(Cmd::new(policy, containment)?)
}

fn exec_policy(args: &ServeArgs) -> anyhow::Result<ExecPolicy> {
    let exec: &ExecServiceArgs = &args.exec;
    let token = token::read(exec.token_file.as_deref())?.map(|t| Token::new(&t));
    let authorized_certificates = match &exec.authorized_clients {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let clients = exec::parse_authorized_clients(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(clients)
        }
        None => None,
    };
    let cwd = match &exec.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot find the current directory")?,
    };
    Ok(ExecPolicy {
        auth: AuthPolicy {
            token,
            authorized_certificates,
            allow_anonymous: false,
            startups: exec.max_startups,
        },
        allow_shell: exec.allow_shell,
        allowed_commands: match exec.allow_cmd.as_slice() {
            [] => None,
            entries => Some(CommandList::parse(entries).context("--allow-cmd")?),
        },
        allowed_env: EnvAllowList::new(&exec.allow_env).context("--allow-env")?,
        cwd,
        command_timeout: exec_timeout(exec),
        max_output: (exec.max_output > 0).then_some(exec.max_output),
        max_commands: exec.max_commands,
        handshake_timeout: args.tls.handshake_timeout,
        ..ExecPolicy::default()
    })
}

/// One `listening on ADDR` line per bound socket, then, with TLS, one
/// `fingerprint sha256:HEX` line for clients to `--pin`; then companions'
/// addresses (the chat's web page).
/// The `listening on` lines to `out` (stdout; stderr for listen, whose
/// stdout carries data).
pub(crate) fn print_listening(
    mut stdout: impl Write,
    server: &Server,
    fingerprint: Option<Fingerprint>,
    also: &[String],
) -> std::io::Result<()> {
    for endpoint in server.endpoints() {
        writeln!(stdout, "listening on {endpoint}")?;
    }
    if let Some(fingerprint) = fingerprint {
        writeln!(stdout, "fingerprint {fingerprint}")?;
    }
    for address in also {
        writeln!(stdout, "listening on {address}")?;
    }
    stdout.flush()
}

/// SIGINT and SIGTERM: the first starts a graceful shutdown, the second
/// exits at once.
pub(crate) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub(crate) fn install() -> std::io::Result<Signals> {
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

    pub(crate) async fn shut_down(mut self, server: ServerHandle) {
        self.next().await;
        info!("shutting down: listeners closed, open connections finishing (signal again to exit now)");
        server.shutdown();
        self.next().await;
        warn!("second signal: exiting without waiting");
        std::process::exit(130);
    }
}
