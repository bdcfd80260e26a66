//! `socketkit bench`: load an echo server and report what it sustained, as
//! a summary table or one JSON line, with live progress on a terminal.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use socketkit::client::{self, BenchOptions, BenchReport, Progress, Workload};
use socketkit::transport::ConnectOptions;
use socketkit::Endpoint;

use crate::args::{duration_text, parse_duration, parse_endpoint, ProxyArgs};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The echo server to load (tcp://, udp://, unix:, unixgram:).
    #[arg(value_name = "ADDR", value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// What each connection does.
    #[arg(long, value_enum, default_value_t = BenchMode::PingPong)]
    pub mode: BenchMode,
    /// Connections (datagram flows; churn: concurrent connect loops), all
    /// opened before the clock starts.
    #[arg(short, long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub conns: u32,
    /// Bytes per message (e.g. 64, 4KiB).
    #[arg(short, long, value_name = "BYTES", default_value = "64", value_parser = parse_size)]
    pub size: u64,
    /// Messages in flight per stream connection, written at once.
    #[arg(short = 'P', long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pipeline: u32,
    /// Measurement window; the run also stops at --count or --bytes.
    #[arg(short, long, value_name = "DURATION", default_value = duration_text(client::BenchOptions::DEFAULT_DURATION), value_parser = parse_duration)]
    pub duration: Duration,
    /// Per connection, stop after this many round trips (churn: connections).
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// Bulk, per connection: stop after this many bytes (e.g. 1GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub bytes: Option<u64>,
    /// Client threads; 1 runs everything on one thread (round-robin, the
    /// steadiest latency).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Connect timeout per connection.
    #[arg(long, value_name = "DURATION", default_value = duration_text(ConnectOptions::DEFAULT_TIMEOUT), value_parser = parse_duration)]
    pub timeout: Duration,
    /// Datagrams: a reply not back within this long counts as lost.
    #[arg(long, value_name = "DURATION", default_value = duration_text(client::BenchOptions::DEFAULT_REPLY_TIMEOUT), value_parser = parse_duration)]
    pub reply_timeout: Duration,
    /// One JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchMode {
    /// Write --pipeline messages, read them all back, verify, repeat.
    PingPong,
    /// Stream both ways at once as fast as possible (streams only).
    Bulk,
    /// Connect, one round trip, close, repeat: connections per second.
    Churn,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let options = options(&args)?;
    let progress = Progress::default();
    let bar = progress_bar(&args);
    let report = {
        let measuring = client::bench(&args.addr, &options, &progress);
        tokio::pin!(measuring);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                report = &mut measuring => break report,
                _ = tick.tick() => show(&bar, &progress, &args),
            }
        }
    };
    bar.finish_and_clear();
    let report = report.with_context(|| format!("benchmark of {}", args.addr))?;
    print(&report, args.json).context("cannot write to stdout")?;
    verdict(&report)
}

fn options(args: &BenchArgs) -> anyhow::Result<BenchOptions> {
    let workload = match args.mode {
        BenchMode::PingPong => Workload::PingPong,
        BenchMode::Bulk => Workload::Bulk,
        BenchMode::Churn => Workload::Churn,
    };
    let size = usize::try_from(args.size).context("--size is too large")?;
    raise_descriptor_limit(u64::from(args.conns));
    let mut options = BenchOptions::default();
    options.workload = workload;
    options.connections = args.conns as usize;
    options.size = size;
    options.pipeline = args.pipeline as usize;
    options.duration = args.duration;
    options.messages = args.count;
    options.bulk_bytes = args.bytes;
    options.connect.timeout = args.timeout;
    options.connect.proxy = args.proxy.proxy.clone();
    options.reply_timeout = args.reply_timeout;
    Ok(options)
}

/// A bar of the measurement window on a terminal; nothing otherwise, so
/// logs and pipes stay clean.
fn progress_bar(args: &BenchArgs) -> ProgressBar {
    if args.json || !crate::progress::wanted() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(args.duration.as_millis() as u64);
    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn show(bar: &ProgressBar, progress: &Progress, args: &BenchArgs) {
    let Some(started) = progress.started() else {
        bar.set_message(format!(
            "connecting {}/{}",
            progress.connected(),
            args.conns
        ));
        return;
    };
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    bar.set_position(started.elapsed().as_millis() as u64);
    bar.set_message(format!(
        "{} msgs/s  {:.1} MB/s  {} errors",
        si(progress.messages() as f64 / secs),
        progress.bytes() as f64 / secs / 1e6,
        progress.errors()
    ));
}

fn print(report: &BenchReport, json: bool) -> std::io::Result<()> {
    let mut stdout = crate::stdout::Marked(std::io::stdout().lock());
    if json {
        writeln!(stdout, "{}", json_line(report))?;
    } else {
        write!(stdout, "{}", table(report))?;
    }
    stdout.flush()
}

/// A run whose content did not match, or that measured nothing, fails;
/// errors alone are results (a server that refuses some connections).
fn verdict(report: &BenchReport) -> anyhow::Result<()> {
    if report.mismatches > 0 {
        bail!(
            "{} echoed messages differed from what was sent: {} is not a faithful echo",
            report.mismatches,
            report.target
        );
    }
    if report.messages == 0 && report.bytes == 0 {
        bail!(
            "nothing was echoed by {} ({} errors)",
            report.target,
            report.errors
        );
    }
    if report.errors > 0 {
        tracing::warn!(
            errors = report.errors,
            "some connections or exchanges failed"
        );
    }
    Ok(())
}

fn micros(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e7).round() / 10.0
}

fn json_line(report: &BenchReport) -> String {
    serde_json::json!({
        "target": report.target.to_string(),
        "mode": report.workload.label(),
        "conns": report.connections,
        "connected": report.connected,
        "served": report.served,
        "size": report.size,
        "pipeline": report.pipeline,
        "secs": report.elapsed.as_secs_f64(),
        "connect_ms": report.connect_time.as_secs_f64() * 1e3,
        "msgs": report.messages,
        "msgs_per_s": report.messages_per_sec(),
        "bytes": report.bytes,
        "mbytes_per_s": report.megabytes_per_sec(),
        "p50_us": micros(report.latency.p50),
        "p99_us": micros(report.latency.p99),
        "p999_us": micros(report.latency.p999),
        "max_us": micros(report.latency.max),
        "errors": report.errors,
        "mismatches": report.mismatches,
        "late": report.late,
        "stalled": report.stalled,
    })
    .to_string()
}

fn table(report: &BenchReport) -> String {
    let unit = match report.workload {
        Workload::Churn => "conns",
        Workload::PingPong | Workload::Bulk => "msgs",
    };
    let lat = &report.latency;
    let mut rows = vec![
        ("target", report.target.to_string()),
        (
            "workload",
            format!(
                "{}, {} connections ({} served), {} B messages, pipeline {}",
                report.workload.label(),
                report.connections,
                report.served,
                report.size,
                report.pipeline
            ),
        ),
        ("window", format!("{:.2} s", report.elapsed.as_secs_f64())),
        (
            "rate",
            format!("{} {unit}/s", si(report.messages_per_sec())),
        ),
        (
            "throughput",
            format!("{:.2} MB/s", report.megabytes_per_sec()),
        ),
    ];
    if report.messages > 0 {
        rows.push((
            "latency",
            format!(
                "p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
                lat.p50, lat.p99, lat.p999, lat.max
            ),
        ));
    }
    rows.push((
        "errors",
        format!(
            "{} (stalled {}, late {})  mismatches {}",
            report.errors, report.stalled, report.late, report.mismatches
        ),
    ));
    rows.iter()
        .map(|(name, value)| format!("{name:<11} {value}\n"))
        .collect()
}

/// `123.4 k`-style numbers.
fn si(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.1}"),
    }
}

/// Every connection is a descriptor: raise the soft limit toward the hard
/// one (as Go programs do at start) so `--conns 10000` needs no `ulimit`
/// first. If it cannot be raised, the excess connects fail and are counted.
fn raise_descriptor_limit(connections: u64) {
    let wanted = connections + 64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Bytes as a plain number or with a binary suffix: 64, 4KiB, 1GiB (K, M, G
/// and KB, MB, GB mean the same powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let multiplier: u64 = match &text[digits.len()..].to_ascii_lowercase()[..] {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        suffix => {
            return Err(format!(
                "'{text}': unknown unit '{suffix}' (try 64, 4KiB or 1GiB)"
            ))
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a byte count (try 64, 4KiB or 1GiB)"))?;
    match number.checked_mul(multiplier) {
        Some(0) => Err("must be at least 1 byte".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("'{text}' is too large")),
    }
}
