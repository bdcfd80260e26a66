//! The `socketkit` command: parses arguments, calls the library, prints
//! results and maps errors to one line and an exit status. No networking
//! logic lives here.
//!
//! Exit status: 0 success (also when stdout is a closed pipe); 1 a runtime
//! failure or, for `check`, a target that is not open; 2 a usage error;
//! 130 a second SIGINT/SIGTERM during a graceful shutdown, or `get`
//! interrupted. `exec` exits with the remote command's status and uses 255
//! for its own failures, like ssh.

mod args;
mod bench;
mod chat;
mod check;
mod connect;
mod exec;
mod forward;
mod get;
mod hexdump;
mod listen;
mod pki;
mod progress;
mod proxy;
mod send;
mod serve;
mod tls;
mod token;

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, LogArgs, PkiCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match &cli.command {
        // Servers use every core unless told otherwise; clients are one
        // connection and start faster on the current thread.
        Command::Serve(args) => runtime(args.threads),
        Command::Connect(_)
        | Command::Listen(_)
        | Command::Check(_)
        | Command::Exec(_)
        | Command::Send(_)
        | Command::Get(_)
        | Command::Pki(_)
        | Command::Passwd(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Command::Bench(args) => runtime(Some(args.threads)),
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                init_logging(&args.log, "info", args.json);
                serve::run(*args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Connect(args) => {
                init_logging(&args.log, "warn", false);
                connect::run(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Listen(args) => {
                init_logging(&args.log, "warn", false);
                listen::run(args).await
            }
            Command::Check(args) => {
                init_logging(&args.log, "warn", false);
                check::run(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Exec(args) => {
                init_logging(&args.log, "warn", false);
                exec::run(args).await.map(ExitCode::from)
            }
            Command::Send(args) => {
                init_logging(&args.log, "warn", false);
                send::run(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Get(args) => {
                init_logging(&args.log, "warn", false);
                get::run(args).await
            }
            Command::Pki(PkiCommand::Init(args)) => {
                init_logging(&args.log, "warn", false);
                pki::init(&args).map(|()| ExitCode::SUCCESS)
            }
            Command::Bench(args) => {
                init_logging(&args.log, "warn", false);
                bench::run(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Passwd(args) => {
                init_logging(&args.log, "warn", false);
                proxy::passwd(&args).map(|()| ExitCode::SUCCESS)
            }
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

/// Prints an error as one line with its causes and a hint. A broken pipe
/// means our reader (say `head`) has what it wanted: that is success.
fn report(error: anyhow::Error, failure: ExitCode) -> ExitCode {
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    match error
        .chain()
        .find_map(|cause| cause.downcast_ref::<socketkit::Error>())
        .and_then(hint)
    {
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
