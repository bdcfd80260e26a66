//! Command-line definitions (clap derive): every flag, its default and help.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use socketkit::Endpoint;

use crate::bench::BenchArgs;

/// socketkit: ncat/socat-class services and clients, built on a typed
/// socketserver for tokio.
///
/// Addresses: HOST:PORT, [V6]:PORT, :PORT (all interfaces, IPv4 and IPv6),
/// PORT (127.0.0.1), tcp://…, udp://…, unix:PATH, unixgram:PATH.
#[derive(Debug, Parser)]
#[command(name = "socketkit", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a service; prints `listening on ADDR` per bound socket.
    ///
    /// Services: echo (RFC 862), upper (ASCII upper-case), hello (greeting),
    /// discard (RFC 863), daytime (RFC 867). All serve TCP and Unix streams;
    /// all but hello also serve UDP and Unix datagrams.
    /// SIGINT/SIGTERM shut down gracefully; a second signal exits at once.
    Serve(ServeArgs),
    /// Connect stdin/stdout to a socket, like nc.
    ///
    /// Binary-safe and full-duplex. At end of stdin the socket is half-closed
    /// and output continues until the peer closes. With udp:// or unixgram:
    /// each stdin line is sent as one datagram and each reply printed.
    Connect(ConnectArgs),
    /// Check whether ports accept connections (connect_ex).
    ///
    /// Prints `open|closed|timeout|error ADDR LATENCY` per target; exits 0
    /// only if all are open.
    Check(CheckArgs),
    /// Load an echo server and measure it: ping-pong, bulk or connection churn.
    ///
    /// Opens every connection, then starts the clock. Every echoed byte is
    /// checked (each message differs), latency goes into an HDR histogram.
    /// Prints a table or one --json line; exits 1 if any echo differed from
    /// what was sent or nothing was echoed.
    Bench(BenchArgs),
}

/// Verbosity and log format, shared by every command.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// More diagnostics on stderr (-v: each connection's open and close; -vv: everything).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Service {
    /// Every byte back (RFC 862).
    Echo,
    /// ASCII letters upper-cased, other bytes unchanged.
    Upper,
    /// `Welcome!`, then `Hello, NAME!` per message; `exit` closes.
    Hello,
    /// Reads and drops everything (RFC 863).
    Discard,
    /// The date and time, then close (RFC 867).
    Daytime,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// One tokio task per connection.
    Tasks,
    /// One OS thread per connection, for blocking handlers.
    Threads,
    /// One connection at a time.
    Sequential,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    pub service: Service,
    /// Addresses to listen on (several allowed, e.g. TCP and UDP on one port).
    #[arg(value_name = "ADDR", default_value = "tcp://127.0.0.1:7007", value_parser = parse_endpoint)]
    pub addrs: Vec<Endpoint>,
    /// Most connections served at once; more wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_conns: usize,
    /// Close connections idle this long (e.g. 30, 1.5, 500ms, 5m); 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// On shutdown, how long open connections may finish before being aborted.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// How connections are run.
    #[arg(long, value_enum, default_value_t = Mode::Tasks)]
    pub mode: Mode,
    /// Serve exactly one connection or datagram, then exit.
    #[arg(long)]
    pub once: bool,
    /// Longest line line-based services accept, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_line: usize,
    /// Listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub backlog: u32,
    /// Set SO_REUSEPORT so several processes can share the port.
    #[arg(long)]
    pub reuse_port: bool,
    /// Runtime threads (default: one per CPU). 1 runs a single event loop,
    /// like a C epoll server: the lowest latency when the machine is shared
    /// (say, with a load generator).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Write logs as JSON lines on stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Where to connect.
    #[arg(value_name = "ADDR", value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// Connect timeout, covering name resolution and every address tried.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Give up when no data moved either way for this long; 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Send line endings as CRLF.
    #[arg(long)]
    pub crlf: bool,
    /// Datagrams: after stdin ends, wait this long for replies still owed.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub wait: Duration,
    /// The textbook client: send line by line, skip empty lines, `exit` or `bye` ends.
    #[arg(long)]
    pub line_mode: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Targets to check.
    #[arg(value_name = "ADDR", required = true, value_parser = parse_endpoint)]
    pub addrs: Vec<Endpoint>,
    /// Per-target timeout.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Most checks in flight at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// One JSON object per target instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

pub(crate) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse().map_err(|e: socketkit::Error| e.to_string())
}

/// Seconds as a plain number (`30`, `1.5`), or humantime (`500ms`, `5m`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("'{text}': {e}"));
    }
    humantime::parse_duration(text).map_err(|e| format!("'{text}': {e} (try 30, 1.5, 500ms or 5m)"))
}

/// Zero means "no limit" for optional timeouts.
pub fn optional(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}
