//! `socketkit get`: flags into the library's HTTP client, the body into
//! stdout or a file, headers, progress and metadata out. The HTTP and the
//! socket are the library's (`socketkit::client::http`).

mod output;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use indicatif::ProgressBar;
use serde_json::json;
use socketkit::client::http::{self, GetOptions, ProxyRules, Response, WireCopy};
use tokio::signal::unix::{signal, SignalKind};

use crate::args::{optional, ClientTlsArgs, GetArgs};
use crate::{progress, tls};
use output::Output;

pub async fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let options = options(&args)?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install signal handlers")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install signal handlers")?;
    let transfer = transfer(&args, &options);
    let limited = async {
        match optional(args.max_time) {
            Some(limit) => tokio::time::timeout(limit, transfer)
                .await
                .unwrap_or_else(|_| Err(too_slow(&args, limit))),
            None => transfer.await,
        }
    };
    // Dropping the transfer removes an unfinished -o file.
    tokio::select! {
        result = limited => result.map(|()| ExitCode::SUCCESS),
        _ = interrupt.recv() => interrupted(),
        _ = terminate.recv() => interrupted(),
    }
}

fn interrupted() -> anyhow::Result<ExitCode> {
    eprintln!("socketkit: interrupted");
    Ok(ExitCode::from(130))
}

fn too_slow(args: &GetArgs, limit: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "{} did not finish within {} (--max-time)",
        args.url,
        humantime::format_duration(limit)
    )
}

fn options(args: &GetArgs) -> anyhow::Result<GetOptions> {
    let mut options = GetOptions::default();
    options.head = args.head;
    options.follow_redirects = args.follow;
    options.max_redirects = args.max_redirs;
    options.connect.timeout = args.timeout;
    options.connect.tls = tls_flags_given(&args.tls)
        .then(|| tls::client(&args.tls))
        .transpose()?;
    options.connect.server_name = args.tls.servername.clone();
    // The environment is read here; which variable wins is the library's rule.
    options.proxy = ProxyRules::new(args.proxy.as_deref(), args.noproxy.as_deref(), |name| {
        std::env::var(name).ok()
    })?;
    options.wire = args.raw.then(|| {
        Arc::new(Mutex::new(WireCopy {
            sent: Box::new(io::stderr()),
            received: Box::new(crate::stdout::std()),
        }))
    });
    for line in &args.headers {
        options.add_header(line)?;
    }
    Ok(options)
}

/// Without TLS flags the library verifies against the system roots, and
/// loads them only if some hop is https://.
fn tls_flags_given(tls: &ClientTlsArgs) -> bool {
    tls.ca.is_some() || tls.pin.is_some() || tls.insecure || tls.client_cert.is_some()
}

async fn transfer(args: &GetArgs, options: &GetOptions) -> anyhow::Result<()> {
    // The destination first: a path that cannot be written fails before
    // anything is downloaded.
    let file = args.output.as_deref().map(Output::file).transpose()?;
    let mut response = http::get(&args.url, options).await?;
    if args.fail && response.head().is_error() {
        anyhow::bail!("{} returned {}", response.url(), response.head());
    }
    let mut stdout = Output::stdout()?;
    if args.include || args.head {
        let mut heads = Vec::new();
        for head in response.history().iter().chain([response.head()]) {
            head.write_to(&mut heads)?;
        }
        stdout.write(&heads)?;
    }
    let mut body = match (file, args.raw || args.head) {
        (Some(file), _) => {
            stdout.finish()?;
            file
        }
        // The tap already wrote every byte; HEAD has no body.
        (None, true) => Output::Discard,
        (None, false) => stdout,
    };
    let bar = match body.file_name() {
        Some(name) if progress::wanted() => {
            progress::bar(&name, response.head().content_length(), 0)
        }
        _ => ProgressBar::hidden(),
    };
    let copied = match copy(&mut response, &mut body, &bar).await {
        Ok(()) => body.finish(),
        Err(e) => Err(e),
    };
    bar.abandon();
    if !bar.is_hidden() {
        // The bar stays on its line as a record; what follows starts below.
        eprintln!();
    }
    copied?;
    if args.json {
        report(args, &response)?;
    }
    Ok(())
}

async fn copy(response: &mut Response, body: &mut Output, bar: &ProgressBar) -> anyhow::Result<()> {
    while let Some(chunk) = response.chunk().await? {
        body.write(&chunk)?;
        bar.inc(chunk.len() as u64);
    }
    Ok(())
}

/// The `-w/--json` object, like curl's `-w` variables.
fn report(args: &GetArgs, response: &Response) -> anyhow::Result<()> {
    let timings = response.timings();
    let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
    let to_file = args.output.as_ref().is_some_and(|p| p.as_os_str() != "-");
    let object = json!({
        "url": response.url().to_string(),
        "status": response.head().status(),
        "http_version": response.head().version(),
        "remote_address": timings.connection.remote.as_ref().map(ToString::to_string),
        "connect_ms": ms(timings.connection.connect),
        "tls_ms": timings.connection.tls.map(ms),
        "first_byte_ms": ms(timings.first_byte),
        "total_ms": ms(timings.started.elapsed()),
        "bytes": response.received(),
        "content_length": response.head().content_length(),
        "content_type": response.head().header("content-type"),
        "redirects": timings.redirects,
        "reused_connection": timings.reused,
        "output": args.output.as_ref().map(|p| p.display().to_string()),
    });
    let line = format!("{object}\n");
    if to_file {
        crate::stdout::std().write_all(line.as_bytes())?;
    } else {
        io::stderr().write_all(line.as_bytes())?;
    }
    Ok(())
}
