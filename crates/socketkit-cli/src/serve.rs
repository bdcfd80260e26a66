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
use socketkit::services::exposure::{self, Guards, UnsafeTransport};
use socketkit::services::proxy::{HttpProxy, Socks5};
use socketkit::services::recv::{Recv, RecvPolicy};
use socketkit::services::{Daytime, Discard, Echo, Hello, Upper};
use socketkit::tls::{Fingerprint, ServerTls};
use socketkit::Endpoint;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use crate::args::{
    optional, AccessArgs, CmdServeArgs, ExecServeArgs, Mode, RecvServeArgs, ServeArgs, Service,
};
use crate::hint::hint_if;
use crate::progress::{self, ReceiveBars};
use crate::{metrics, tls, token};

/// Where services listen when no address is given: loopback, never every
/// interface.
pub(crate) const DEFAULT_ADDR: &str = "tcp://127.0.0.1:7007";

/// SOCKS5's conventional port, on loopback.
const SOCKS5_DEFAULT_ADDR: &str = "tcp://127.0.0.1:1080";

/// An HTTP proxy's conventional port (Squid's), on loopback.
const HTTP_PROXY_DEFAULT_ADDR: &str = "tcp://127.0.0.1:3128";

/// The one dispatch from a service's flags to its handler.
pub async fn run(service: Service) -> anyhow::Result<()> {
    match service {
        Service::Echo(args) => Serve::new("echo", args).run(Handlers::both(Echo)).await,
        Service::Upper(args) => Serve::new("upper", args).run(Handlers::both(Upper)).await,
        Service::Hello(args) => {
            let hello = Handlers::stream(Hello::default());
            Serve::new("hello", args).run(hello).await
        }
        Service::Discard(args) => {
            Serve::new("discard", args)
                .run(Handlers::both(Discard))
                .await
        }
        Service::Daytime(args) => {
            Serve::new("daytime", args)
                .run(Handlers::both(Daytime))
                .await
        }
        Service::Exec(args) => {
            let mut args = *args;
            if args.common.addrs.is_empty() {
                let socket = exec::prepare_default_socket()?;
                args.common.addrs = vec![Endpoint::Unix(socket)];
            }
            let policy = exec_policy(&args)?;
            // Checked first: a refused start creates no cgroup.
            check_exec_transports(&args, &policy)?;
            let containment = Containment::new(args.process.containment.into())?;
            // A command may run silently for its whole time limit; the idle
            // timeout must not cut it short.
            let idle_floor = args.cmd_timeout + std::time::Duration::from_secs(10);
            let exec = Handlers::stream(Exec::new(policy, containment));
            let mut serve = Serve::new("exec", args.common).runs_commands();
            serve.tls13_only = true;
            serve.idle_floor = Some(idle_floor);
            serve.run(exec).await
        }
        Service::Recv(args) => {
            let mut args = *args;
            default_addrs(&mut args.common)?;
            let policy = recv_policy(&args)?;
            check_recv_transports(&args, &policy)?;
            let mut receiver = Recv::new(policy)?;
            if progress::wanted() {
                receiver = receiver.with_observer(Arc::new(ReceiveBars::default()));
            }
            Serve::new("recv", args.common)
                .run(Handlers::stream(receiver))
                .await
        }
        Service::Chat(args) => {
            let mut args = *args;
            default_addrs(&mut args.common)?;
            crate::chat::run(args).await
        }
        Service::Cmd(args) => {
            let mut args = *args;
            default_addrs(&mut args.common)?;
            let service = cmd_service(&args)?;
            Serve::new("cmd", args.common)
                .runs_commands()
                .run(Handlers::stream(service))
                .await
        }
        Service::Forward(args) => {
            let mut args = *args;
            default_addrs(&mut args.common)?;
            let forward = crate::forward::service(&args)?;
            Serve::new("forward", args.common)
                .run(Handlers::both(forward))
                .await
        }
        Service::Socks5(args) => {
            let mut args = *args;
            if args.common.addrs.is_empty() {
                args.common.addrs = vec![SOCKS5_DEFAULT_ADDR.parse()?];
            }
            let config = crate::proxy::config(&args, "SOCKS5")?;
            Serve::new("socks5", args.common)
                .run(Handlers::stream(Socks5::new(config)))
                .await
        }
        Service::HttpProxy(args) => {
            let mut args = *args;
            if args.common.addrs.is_empty() {
                args.common.addrs = vec![HTTP_PROXY_DEFAULT_ADDR.parse()?];
            }
            let config = crate::proxy::config(&args, "HTTP")?;
            Serve::new("http-proxy", args.common)
                .run(Handlers::stream(HttpProxy::new(config)))
                .await
        }
    }
}

fn default_addrs(args: &mut ServeArgs) -> anyhow::Result<()> {
    if args.addrs.is_empty() {
        args.addrs = vec![DEFAULT_ADDR.parse()?];
    }
    Ok(())
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

/// The server's limits from the common flags.
pub(crate) fn config(args: &ServeArgs, tls: Option<ServerTls>, access: AccessList) -> ServerConfig {
    let mode = match args.mode {
        Mode::Tasks => socketkit::server::Mode::Tasks,
        Mode::Threads => socketkit::server::Mode::Threads,
        Mode::Sequential => socketkit::server::Mode::Sequential,
    };
    let config = ServerConfig::default()
        .mode(mode)
        .max_connections(args.max_conns)
        .idle_timeout(optional(args.idle_timeout))
        .drain_timeout(args.drain_timeout)
        .max_line_length(args.max_line)
        .backlog(args.backlog)
        .reuse_port(args.reuse_port)
        .handshake_timeout(args.tls.handshake_timeout)
        .access(access);
    match tls {
        Some(tls) => config.tls(tls),
        None => config,
    }
}

/// One service about to be served: its name, the common flags and what the
/// service asks of the server beyond them.
pub(crate) struct Serve {
    name: &'static str,
    args: ServeArgs,
    /// Shared with companions such as the chat's web page.
    handle: ServerHandle,
    /// Printed after the sockets' own `listening on` lines.
    also_listening: Vec<String>,
    /// TLS 1.3 only (exec authenticates clients by certificate).
    tls13_only: bool,
    /// Unix sockets that run commands: their owner only, whatever the umask.
    private_sockets: bool,
    /// The idle timeout, when on, is at least this.
    idle_floor: Option<std::time::Duration>,
}

impl Serve {
    pub(crate) fn new(name: &'static str, args: ServeArgs) -> Serve {
        Serve {
            name,
            args,
            handle: ServerHandle::default(),
            also_listening: Vec::new(),
            tls13_only: false,
            private_sockets: false,
            idle_floor: None,
        }
    }

    pub(crate) fn with_handle(mut self, handle: ServerHandle) -> Serve {
        self.handle = handle;
        self
    }

    pub(crate) fn also_listening(mut self, addresses: Vec<String>) -> Serve {
        self.also_listening = addresses;
        self
    }

    fn runs_commands(mut self) -> Serve {
        self.private_sockets = true;
        self
    }

    /// Binds, prints where it listens, serves until a signal (or, with
    /// --once, one request).
    pub(crate) async fn run<S: StreamHandler, D: DatagramHandler>(
        mut self,
        handlers: Handlers<S, D>,
    ) -> anyhow::Result<()> {
        default_addrs(&mut self.args)?;
        let (name, args) = (self.name, &self.args);
        for endpoint in &args.addrs {
            if !handlers.supports(endpoint.kind()) {
                let kind = match endpoint.kind() {
                    SocketKind::Stream => "stream",
                    SocketKind::Datagram => "datagram",
                };
                bail!("the {name} service does not serve {kind} endpoints such as {endpoint} (hint: use tcp://, tls:// or unix:)");
            }
        }
        // Handlers go in before anything is printed: a script may signal us as
        // soon as it reads the first `listening on` line.
        let access = access_list(&args.access)?;
        let proxy = crate::proxy_protocol::config(&args.proxy, &args.addrs)?;
        let signals = Signals::install().context("cannot install signal handlers")?;
        let tls = tls::server(&args.tls, &args.addrs, self.tls13_only)?;
        let fingerprint = tls.as_ref().map(ServerTls::fingerprint);
        let mut config = config(args, tls, access.clone());
        if let (Some(floor), Some(idle)) = (self.idle_floor, optional(args.idle_timeout)) {
            config = config.idle_timeout(Some(idle.max(floor)));
        }
        if self.private_sockets {
            config = config.unix_mode(0o600);
        }
        if let Some(proxy) = proxy {
            config = config.proxy_protocol(proxy);
        }
        let exposition = match &args.metrics {
            Some(endpoint) => {
                let (page, counters) = metrics::Page::new(name);
                config = config.metrics(counters);
                Some(metrics::bind(endpoint, page, access, &self.handle).await?)
            }
            None => None,
        };
        let server = Server::bind(&args.addrs, config)
            .await?
            .with_handle(self.handle.clone());
        let mut also = self.also_listening;
        if let Some(exposition) = &exposition {
            also.extend(exposition.url());
        }
        print_listening(crate::stdout::std(), &server, fingerprint, &also)
            .context("cannot write to stdout")?;
        tokio::spawn(signals.shut_down(server.handle()));
        let exposition = exposition.map(|e| tokio::spawn(e.serve()));
        let served = if args.once {
            server.handle_request(handlers).await
        } else {
            server.serve(handlers).await
        };
        // The metrics page goes down with the service (also after --once).
        self.handle.shutdown();
        if let Some(exposition) = exposition {
            if let Ok(Err(error)) = exposition.await {
                warn!(error = %error, "the metrics page stopped with an error");
            }
        }
        let summary = served?;
        info!(
            connections = summary.connections,
            datagrams = summary.datagrams,
            aborted = summary.aborted,
            refused = summary.refused,
            "server stopped"
        );
        Ok(())
    }
}

/// The guards in front of the endpoints, as the library's transport rules
/// (exec, recv, cmd) need them.
fn guards(common: &ServeArgs, access: &AccessList) -> Guards {
    Guards::new()
        .client_certificates(common.tls.client_ca.is_some())
        .access_restricted(access.restricts())
}

/// The library's refusal of a transport, with the flags that fix it.
fn refused(refusal: UnsafeTransport) -> anyhow::Error {
    let hint = match &refusal {
        UnsafeTransport::Plaintext { .. } => "use tls://, or --insecure-plaintext with a loopback address for tests and demos",
        UnsafeTransport::PlaintextOffLoopback { .. } => "--insecure-plaintext is for loopback addresses; use tls:// for others",
        UnsafeTransport::PlaintextWithoutToken { .. } => "--insecure-plaintext needs --token-file FILE",
        UnsafeTransport::Unauthenticated { .. } => "--client-ca FILE for mutual TLS, or --token-file FILE",
        UnsafeTransport::NetworkWithoutTls { .. } | UnsafeTransport::Anonymous { .. } => "use tls:// with --token-file or --client-ca",
        UnsafeTransport::Unrestricted { .. } => "--allow CIDR admits only those peers, or serve tls:// with --client-ca FILE; loopback addresses need neither",
        _ => "",
    };
    hint_if(!hint.is_empty(), refusal.into(), hint)
}

/// Exec never runs for an unauthenticated peer (the library's rule, see
/// `ExecPolicy::check_endpoints`).
fn check_exec_transports(args: &ExecServeArgs, policy: &ExecPolicy) -> anyhow::Result<()> {
    let common = &args.common;
    let access = access_list(&common.access)?;
    policy
        .check_endpoints(&common.addrs, guards(common, &access))
        .map_err(refused)?;
    for endpoint in common
        .addrs
        .iter()
        .filter(|e| matches!(e, Endpoint::Tcp(_)))
    {
        warn!("exec on {endpoint} without TLS: the token and all commands travel unencrypted (tests and demos only)");
    }
    Ok(())
}

/// Off loopback, a receiver needs TLS and a way to authenticate senders
/// (the library's rule, see `RecvPolicy::check_endpoints`).
fn check_recv_transports(args: &RecvServeArgs, policy: &RecvPolicy) -> anyhow::Result<()> {
    let common = &args.common;
    let access = access_list(&common.access)?;
    policy
        .check_endpoints(&common.addrs, guards(common, &access))
        .map_err(refused)
}

fn recv_policy(args: &RecvServeArgs) -> anyhow::Result<RecvPolicy> {
    let token = token::read(args.auth.token_file.as_deref())?.map(|t| Token::new(&t));
    let allow_anonymous = token.is_none() && args.common.addrs.iter().all(exposure::is_local);
    let mut auth = AuthPolicy::default();
    auth.token = token;
    auth.allow_anonymous = allow_anonymous;
    auth.startups = args.auth.max_startups;
    let mut policy = RecvPolicy::new(args.dir.clone(), auth);
    policy.overwrite = args.overwrite;
    policy.max_size = args.max_size;
    policy.allow_dotfiles = args.allow_dotfiles;
    policy.part_ttl = optional(args.part_ttl);
    policy.handshake_timeout = args.common.tls.handshake_timeout;
    Ok(policy)
}

/// `serve cmd`: refused where the network could reach it unguarded (the
/// library's rule), else the program checked and contained.
fn cmd_service(args: &CmdServeArgs) -> anyhow::Result<Cmd> {
    let common = &args.common;
    let access = access_list(&common.access)?;
    cmd::check_exposure(&common.addrs, guards(common, &access)).map_err(refused)?;
    let words = args.program.clone();
    let program = if args.shell {
        Program::Shell(words.join(" "))
    } else {
        Program::Argv(words)
    };
    let mut policy = CmdPolicy::new(program);
    policy.allow_shell = args.allow_shell;
    policy.stderr_to_peer = args.stderr_to_peer;
    policy.command_timeout = args.cmd_timeout.and_then(optional);
    policy.cwd = match &args.process.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot find the current directory")?,
    };
    // Checked first: a refused start sets up no containment.
    policy.argv().map_err(|e| match &policy.program {
        Program::Shell(_) if !policy.allow_shell => hint_if(
            true,
            e,
            "a shell line needs --allow-shell (or give the program as argv)",
        ),
        Program::Argv(argv) if argv.is_empty() => {
            hint_if(true, e, "serve cmd ADDR -- PROG [ARGS...]")
        }
        _ => e.into(),
    })?;
    let containment = Containment::new(args.process.containment.into())?;
    Ok(Cmd::new(policy, containment)?)
}

fn exec_policy(exec: &ExecServeArgs) -> anyhow::Result<ExecPolicy> {
    let token = token::read(exec.auth.token_file.as_deref())?.map(|t| Token::new(&t));
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
    let cwd = match &exec.process.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot find the current directory")?,
    };
    let mut policy = ExecPolicy::default();
    policy.auth.token = token;
    policy.auth.authorized_certificates = authorized_certificates;
    policy.auth.startups = exec.auth.max_startups;
    policy.allow_shell = exec.allow_shell;
    policy.allowed_commands = match exec.allow_cmd.as_slice() {
        [] => None,
        entries => Some(CommandList::parse(entries).context("--allow-cmd")?),
    };
    policy.allowed_env = EnvAllowList::new(&exec.allow_env).context("--allow-env")?;
    policy.cwd = cwd;
    policy.command_timeout = exec.cmd_timeout;
    policy.max_output = (exec.max_output > 0).then_some(exec.max_output);
    policy.max_commands = exec.max_commands;
    policy.handshake_timeout = exec.common.tls.handshake_timeout;
    policy.insecure_plaintext = exec.insecure_plaintext;
    Ok(policy)
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
