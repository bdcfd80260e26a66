//! `socketkit check`: port checks, as text lines or JSON lines.

use std::io::Write;

use anyhow::Context;
use socketkit::client::{self, CheckOptions, CheckResult, CheckStatus};

use crate::args::CheckArgs;

pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let mut options = CheckOptions::default();
    options.timeout = args.timeout;
    options.concurrency = args.concurrency;
    options.family = args.family.family();
    let targets: Vec<_> = args.addrs.into_iter().flat_map(|t| t.0).collect();
    let results = client::check(&targets, &options).await;
    let mut stdout = crate::stdout::Marked(std::io::stdout().lock());
    let shown = results
        .iter()
        .filter(|r| !args.open || r.status == CheckStatus::Open);
    for result in shown {
        let line = if args.json {
            json_line(result)
        } else {
            text_line(result)
        };
        writeln!(stdout, "{line}").context("cannot write to stdout")?;
    }
    stdout.flush().context("cannot write to stdout")?;
    let not_open = results
        .iter()
        .filter(|r| r.status != CheckStatus::Open)
        .count();
    if not_open > 0 {
        anyhow::bail!("{not_open} of {} targets not open", results.len());
    }
    Ok(())
}

fn millis(result: &CheckResult) -> f64 {
    result.latency.as_secs_f64() * 1000.0
}

fn text_line(result: &CheckResult) -> String {
    let line = format!(
        "{} {} {:.3}ms",
        result.status.label(),
        result.target,
        millis(result)
    );
    match &result.status {
        CheckStatus::Error(why) => format!("{line} ({why})"),
        _ => line,
    }
}

fn json_line(result: &CheckResult) -> String {
    let error = match &result.status {
        CheckStatus::Error(why) => Some(why.as_str()),
        _ => None,
    };
    serde_json::json!({
        "target": result.target.to_string(),
        "status": result.status.label(),
        "latency_ms": millis(result),
        "address": result.address.as_ref().map(ToString::to_string),
        "error": error,
    })
    .to_string()
}
