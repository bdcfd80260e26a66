//! `socketkit send`: files to a receiver, with a progress bar on a terminal
//! and a b3sum-style (or JSON) line per file.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use socketkit::client::{Sender, Sent, Source, TransferProgress as Progress};
use socketkit::protocol::exec::Refusal;
use socketkit::transport::{self, ConnectOptions};
use socketkit::Endpoint;
use tracing::warn;

use crate::args::SendArgs;
use crate::hint::{hint_if, refusal, TOKEN_HINT};
use crate::progress;
use crate::{tls, token};

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let stdin_name = args
        .files
        .iter()
        .any(|f| f == Path::new("-"))
        .then(|| args.name.clone());
    if let Some(None) = stdin_name {
        bail!("sending standard input (-) needs --name NAME");
    }
    let token = token::read(args.token_file.as_deref())?;
    let mut options = ConnectOptions::default();
    options.timeout = args.timeout;
    options.server_name = args.tls.servername.clone();
    options.proxy = args.proxy.proxy.clone();
    options.tls = match args.addr {
        Endpoint::Tls(_) => Some(tls::client(&args.tls)?),
        _ => None,
    };
    let stream = transport::connect(&args.addr, &options).await?;
    let tokenless = token.is_none();
    let mut sender = Sender::open(stream, token)
        .await
        .map_err(|e| hint_if(e.is_auth() && tokenless, e, TOKEN_HINT))
        .with_context(|| format!("receiver {}", args.addr))?;
    let mut failures = Vec::new();
    for file in &args.files {
        let (source, name) = if file == Path::new("-") {
            (Source::Stdin, args.name.clone().unwrap_or_default())
        } else {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .with_context(|| format!("{} has no file name", file.display()))?;
            (Source::File(file.clone()), name)
        };
        let mut bar = Bar::new(&name);
        match sender.send(source, &name, &mut |p| bar.update(p)).await {
            Ok(sent) => {
                bar.finish();
                report(&sent, args.json)?;
            }
            Err(error) if error.kind() == socketkit::ErrorKind::Io => {
                bar.finish();
                let dotfile = refusal(&error) == Some(Refusal::Name) && name.starts_with('.');
                failures.push(
                    hint_if(dotfile, error, DOTFILE_HINT)
                        .context(format!("sending {}", file.display())),
                );
            }
            Err(error) => return Err(error).with_context(|| format!("sending {}", file.display())),
        }
    }
    // One failure is the error; several are listed, then summed up.
    match failures.len() {
        0 => Ok(()),
        1 if args.files.len() == 1 => Err(failures.remove(0)),
        count => {
            for failure in &failures {
                eprintln!("socketkit: {failure:#}");
            }
            bail!("{count} of {} files failed", args.files.len())
        }
    }
}

const DOTFILE_HINT: &str =
    "the receiver takes names starting with '.' only when started with --allow-dotfiles";

fn report(sent: &Sent, json: bool) -> anyhow::Result<()> {
    let mut stdout = crate::stdout::Marked(std::io::stdout().lock());
    if json {
        let megabytes_per_second =
            (sent.bytes - sent.resumed_from) as f64 / sent.seconds.max(1e-9) / 1e6;
        let line = serde_json::json!({
            "name": sent.name,
            "bytes": sent.bytes,
            "seconds": sent.seconds,
            "mb_per_s": megabytes_per_second,
            "hash": sent.hash,
            "resumed_from": sent.resumed_from,
        });
        writeln!(stdout, "{line}")?;
    } else {
        writeln!(stdout, "{}  {}", sent.hash, sent.name)?;
    }
    if sent.resumed_from > 0 {
        warn!(name = %sent.name, resumed_from = sent.resumed_from, "resumed an interrupted transfer");
    }
    stdout.flush().context("cannot write to stdout")
}

/// The sender's progress bar, when stderr is a terminal.
struct Bar {
    name: String,
    bar: Option<ProgressBar>,
}

impl Bar {
    fn new(name: &str) -> Bar {
        Bar {
            name: name.to_owned(),
            bar: None,
        }
    }

    fn update(&mut self, update: Progress) {
        match update {
            Progress::Started { total, offset } if progress::wanted() => {
                self.bar = Some(progress::bar(&self.name, total, offset));
            }
            Progress::Advanced(bytes) => {
                if let Some(bar) = &self.bar {
                    bar.inc(bytes);
                }
            }
            Progress::Started { .. } => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
