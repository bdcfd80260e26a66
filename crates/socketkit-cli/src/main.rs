//! The `socketkit` command: parses arguments, calls the library, prints
//! results and maps errors to one line and an exit status. No networking
//! logic lives here.
//!
//! Exit status: 0 success (also when stdout is a closed pipe, but not when
//! a socket's peer is: that is an error); 1 a runtime
//! failure or, for `check`, a target that is not open; 2 a usage error;
//! 130 a second SIGINT/SIGTERM during a graceful shutdown, or `get`
//! interrupted. `exec` exits with the remote command's status and uses 255
//! for its own failures, like ssh.

mod args;
mod bench;
mod chat;
mod check;
mod connect;
mod docs;
mod exec;
mod forward;
mod get;
mod hexdump;
mod hint;
mod listen;
mod metrics;
mod pki;
mod progress;
mod proxy;
mod proxy_protocol;
mod send;
mod serve;
mod stdout;
mod tls;
mod token;

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use args::{Command, LogArgs, PkiCommand};

fn main() -> ExitCode {
    let cli = docs::parse();
    let runtime = match &cli.command {
        // Servers use every core unless told otherwise; clients are one
        // connection and start faster on the current thread.
        Command::Serve(serve) => runtime(serve.service.common().threads),
        Command::Bench(args) => runtime(Some(args.threads)),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            return report(
                anyhow::Error::new(e).context("cannot start the async runtime"),
                ExitCode::FAILURE,
            )
        }
    };
    // exec, like ssh, keeps 1..=254 for the remote command's own status.
    let failure = match cli.command {
        Command::Exec(_) => ExitCode::from(255),
        _ => ExitCode::FAILURE,
    };
    // Servers log each start and stop; clients only what went wrong.
    let (level, json) = match &cli.command {
        Command::Serve(serve) => ("info", serve.service.common().json),
        _ => ("warn", false),
    };
    init_logging(&cli.log, level, json);
    progress::set_quiet(cli.log.quiet);
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(serve) => serve::run(serve.service).await.map(|()| ExitCode::SUCCESS),
            Command::Connect(args) => connect::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Listen(args) => listen::run(args).await,
            Command::Check(args) => check::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Exec(args) => exec::run(args).await.map(ExitCode::from),
            Command::Send(args) => send::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Get(args) => get::run(args).await,
            Command::Pki(PkiCommand::Init(args)) => pki::init(&args).map(|()| ExitCode::SUCCESS),
            Command::Bench(args) => bench::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Completions(args) => docs::completions(args.shell).map(|()| ExitCode::SUCCESS),
            Command::Man(args) => docs::man_pages(&args.dir).map(|()| ExitCode::SUCCESS),
            Command::Passwd(args) => proxy::passwd(&args).map(|()| ExitCode::SUCCESS),
        }
    });
    // A blocking stdin read may still be pending (the peer closed first);
    // do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(10));
    match result {
        Ok(code) => code,
        Err(error) => report(error, failure),
    }
}

/// `None`: one worker per CPU. One thread runs the current-thread runtime:
/// a single FIFO queue, no cross-thread wakeups. For `bench` that matters
/// most: a one-worker multi-thread runtime overflows its local queue at
/// ~1000 connections and inflates p99 several times over (which would be
/// blamed on the server).
fn runtime(threads: Option<u16>) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(n));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// Diagnostics go to stderr; stdout is for data and results. RUST_LOG, when
/// set, overrides the level chosen by -v/-q.
fn init_logging(log: &LogArgs, default_level: &str, json: bool) {
    let level = match (log.quiet, log.verbose) {
        (true, _) => "error",
        (false, 0) => default_level,
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Prints an error as one line with its causes and a hint. A closed
/// stdout means our reader (say `head`) has what it wanted: that is
/// success. Any other broken pipe (a peer's, on a socket) is an error.
fn report(error: anyhow::Error, failure: ExitCode) -> ExitCode {
    if stdout::closed(&error) {
        return ExitCode::SUCCESS;
    }
    let attached = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<hint::Hinted>())
        .map(hint::Hinted::hint);
    match attached.or_else(|| {
        error
            .chain()
            .find_map(|cause| cause.downcast_ref::<socketkit::Error>())
            .and_then(hint)
    }) {
        Some(hint) => eprintln!("socketkit: {error:#} (hint: {hint})"),
        None => eprintln!("socketkit: {error:#}"),
    }
    failure
}

fn hint(error: &socketkit::Error) -> Option<&'static str> {
    if error.is_address_in_use() {
        Some("another program holds this address; stop it, pick another port, or use port 0 for a free one")
    } else if error.is_permission_denied() {
        Some("ports below 1024 need root or CAP_NET_BIND_SERVICE, so use a port of 1024 or above; for unix: paths, check the directory's permissions")
    } else if error.is_connection_refused() {
        Some("nothing is listening there; is the server running, and on this address and port?")
    } else if error.is_unresolved() {
        Some("check the host name's spelling, or use an IP address")
    } else if error.is_tls() {
        Some("check the certificate: --ca FILE for a private CA, --pin sha256:… for a self-signed server")
    } else if error.is_timeout() {
        Some("the other end did not answer in time; check the address and any firewall, or raise --timeout")
    } else {
        None
    }
}
