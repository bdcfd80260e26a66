//! `socketkit exec`: run commands on an exec server, like `ssh host cmd`.

use anyhow::{bail, Context};
use socketkit::addr::Host;
use socketkit::client::ExecClient;
use socketkit::codec::{Line, LineReader};
use socketkit::protocol::exec::{Exit, Refusal, Run};
use socketkit::services::exec::{is_interpreter, locate_default_socket};
use socketkit::tls::{ClientTls, KnownHosts, Verification};
use socketkit::transport::{self, ConnectOptions};
use socketkit::Endpoint;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::args::ExecArgs;
use crate::hint::{hint_if, refusal, TOKEN_HINT};
use crate::{tls, token};

/// Runs the command (or the prompt) and returns the exit status to use.
pub async fn run(args: ExecArgs) -> anyhow::Result<u8> {
    let endpoint = match &args.addr {
        Some(endpoint) => endpoint.clone(),
        None => Endpoint::Unix(locate_default_socket()?),
    };
    check_transport(&args, &endpoint)?;
    let token = token::read(args.token_file.as_deref())?;
    let known_hosts = args.tofu.then(known_hosts).transpose()?;
    let recorded = match &known_hosts {
        Some(known) => known.lookup(&endpoint.to_string())?,
        None => None,
    };
    let mut options = ConnectOptions::default();
    options.timeout = args.timeout;
    options.server_name = args.tls.servername.clone();
    options.proxy = args.proxy.proxy.clone();
    options.tls = match (&endpoint, &known_hosts, recorded) {
        (Endpoint::Tls(_), Some(_), Some(fingerprint)) => Some(ClientTls::new(
            &Verification::Pin(fingerprint),
            tls::identity(&args.tls)?,
        )?),
        (Endpoint::Tls(_), Some(_), None) => Some(ClientTls::new(
            &Verification::Insecure,
            tls::identity(&args.tls)?,
        )?),
        (Endpoint::Tls(_), None, _) => Some(tls::client(&args.tls)?),
        _ => None,
    };
    let stream = transport::connect(&endpoint, &options)
        .await
        .map_err(|e| changed_certificate_hint(e, recorded.is_some(), known_hosts.as_ref()))?;
    if let (Some(known), None, Some(fingerprint)) =
        (&known_hosts, recorded, stream.peer_certificate())
    {
        known.record(&endpoint.to_string(), fingerprint)?;
        eprintln!(
            "socketkit: first contact with {endpoint}: recorded its certificate {fingerprint} in {}; it must present the same one from now on",
            known.path().display()
        );
    }
    let tokenless = token.is_none();
    let mut client = ExecClient::handshake(stream, token)
        .await
        .map_err(|e| hint_if(e.is_auth() && tokenless, e, TOKEN_HINT))
        .with_context(|| format!("exec on {endpoint}"))?;
    let interrupts = forward_interrupts()?;
    if args.command.is_empty() {
        prompt(&mut client, &args, interrupts).await
    } else {
        let request = request(&args, args.command.clone());
        run_one(&mut client, request, !args.no_stdin, interrupts).await
    }
}

fn known_hosts() -> anyhow::Result<KnownHosts> {
    let path = KnownHosts::default_path()
        .context("cannot find a config directory for --tofu (set XDG_CONFIG_HOME or HOME)")?;
    Ok(KnownHosts::new(path))
}

/// A pinned certificate from known_hosts that no longer matches is either an
/// attack or a new certificate: say where the record is.
fn changed_certificate_hint(
    error: socketkit::Error,
    pinned: bool,
    known: Option<&KnownHosts>,
) -> anyhow::Error {
    match known {
        Some(known) if pinned && error.is_tls() => anyhow::Error::new(error).context(format!(
            "the server's certificate is not the one recorded in {} (if it was changed on purpose, delete its line there)",
            known.path().display()
        )),
        _ => error.into(),
    }
}

/// Plain TCP only on loopback and only when asked for; TLS otherwise.
fn check_transport(args: &ExecArgs, endpoint: &Endpoint) -> anyhow::Result<()> {
    let Endpoint::Tcp(hp) = endpoint else {
        return Ok(());
    };
    if !args.insecure_plaintext {
        bail!("refusing plain TCP to {endpoint}: the command and its output would travel unencrypted (hint: use tls://, or --insecure-plaintext for a loopback demo server)");
    }
    // As a client target an empty host means this machine's loopback.
    if !(hp.host.is_loopback() || hp.host == Host::Any) {
        bail!("--insecure-plaintext only reaches loopback addresses, not {endpoint}");
    }
    Ok(())
}

fn request(args: &ExecArgs, words: Vec<String>) -> Run {
    let (argv, shell) = if args.shell {
        (None, Some(words.join(" ")))
    } else {
        (Some(words), None)
    };
    Run {
        argv,
        shell,
        cwd: args.cwd.clone(),
        env: args.env.iter().cloned().collect(),
        stdin: true,
    }
}

/// Ctrl-C while a command runs is forwarded to it (SIGINT to its process
/// group) instead of ending this client.
fn forward_interrupts() -> anyhow::Result<mpsc::Receiver<()>> {
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while interrupt.recv().await.is_some() {
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

async fn run_one(
    client: &mut ExecClient,
    request: Run,
    forward_stdin: bool,
    mut interrupts: mpsc::Receiver<()>,
) -> anyhow::Result<u8> {
    let stdin = forward_stdin.then(tokio::io::stdin);
    let shell_refused = shell_needed(&request) && !client.server().shell;
    let finished = client
        .run(
            request,
            stdin,
            crate::stdout::tokio(),
            tokio::io::stderr(),
            &mut interrupts,
        )
        .await
        .map_err(|e| {
            let denied = refusal(&e) == Some(Refusal::Denied) && shell_refused;
            hint_if(denied, e, SHELL_HINT)
        })?;
    report_abnormal_end(&finished.exit);
    Ok(finished.status)
}

const SHELL_HINT: &str =
    "the server runs shell lines and interpreters only when started with --allow-shell";

/// Whether `request` is a shell line, or one by another name (an
/// interpreter as the program), which a server refuses unless it allows shells.
fn shell_needed(request: &Run) -> bool {
    request.shell.is_some()
        || request
            .argv
            .as_ref()
            .and_then(|argv| argv.first())
            .is_some_and(|program| is_interpreter(program))
}

fn report_abnormal_end(exit: &Exit) {
    if exit.timed_out {
        eprintln!("socketkit: the command hit the server's time limit and was killed");
    }
    if exit.truncated {
        eprintln!("socketkit: output truncated at the server's limit; the command was killed");
    }
}

/// The textbook client: `>>:` prompt, one command per line, output shown in
/// full, `no output` when a command printed nothing; `exit` or EOF ends.
async fn prompt(
    client: &mut ExecClient,
    args: &ExecArgs,
    mut interrupts: mpsc::Receiver<()>,
) -> anyhow::Result<u8> {
    let mut lines = LineReader::new(tokio::io::stdin(), 64 * 1024);
    let mut last = 0;
    loop {
        let mut stderr = tokio::io::stderr();
        stderr.write_all(b">>: ").await?;
        stderr.flush().await?;
        let line = match lines.next_line().await? {
            None => break,
            Some(Line::TooLong) => {
                eprintln!("socketkit: line too long");
                continue;
            }
            Some(Line::Text(line)) => String::from_utf8_lossy(&line).trim().to_owned(),
        };
        if line.is_empty() {
            continue;
        }
        if line == "exit" {
            break;
        }
        let words = match shell_words::split(&line) {
            Ok(words) => words,
            Err(e) => {
                eprintln!("socketkit: {e}");
                continue;
            }
        };
        let request = Run {
            stdin: false,
            ..request(args, words)
        };
        let outcome = client
            .run(
                request,
                None::<tokio::io::Stdin>,
                crate::stdout::tokio(),
                tokio::io::stderr(),
                &mut interrupts,
            )
            .await;
        match outcome {
            Ok(finished) => {
                let exit = &finished.exit;
                report_abnormal_end(exit);
                if finished.output_bytes == 0 {
                    eprintln!("no output");
                }
                last = finished.status;
                if last != 0 {
                    eprintln!("exit status {last}");
                }
            }
            Err(e)
                if e.kind() == socketkit::ErrorKind::Auth
                    || e.kind() == socketkit::ErrorKind::Io =>
            {
                eprintln!("socketkit: {e:#}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(last)
}
