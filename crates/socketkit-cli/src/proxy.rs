//! The proxy servers' flags (`serve socks5`; `serve http-proxy` shares
//! them): users and the destination policy turned into the library's
//! [`ProxyConfig`], whose start-up rule refuses an open proxy; and
//! `socketkit passwd`, which prints a users-file line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use socketkit::server::Rule;
use socketkit::services::auth::StartupLimits;
use socketkit::services::proxy::users::{users_line, Users};
use socketkit::services::proxy::ProxyConfig;
use socketkit::transport::ConnectOptions;

use crate::args::{duration_text, parse_duration, ServeArgs};

/// `serve socks5` and `serve http-proxy`: the common serve flags, the
/// proxy's own, and how long reaching a destination may take.
#[derive(Debug, Args)]
pub struct ProxyServeArgs {
    #[command(flatten)]
    pub common: ServeArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// proxy: limit on resolving and connecting to a destination (SOCKS5
    /// replies 0x06, the HTTP proxy 504, when it passes).
    #[arg(long, value_name = "DURATION", default_value = duration_text(ConnectOptions::DEFAULT_TIMEOUT), value_parser = parse_duration, help_heading = "proxy")]
    pub connect_timeout: Duration,
    /// proxy: clients still authenticating (with --users), per source
    /// address and in total; more are closed at once.
    #[arg(long, value_name = "PER_SOURCE:TOTAL", default_value_t = StartupLimits::default(), help_heading = "proxy")]
    pub max_startups: StartupLimits,
}

/// Options of the proxy services.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// proxy: require a user name and password from every client, checked against FILE (`NAME:HASH` lines from `socketkit passwd NAME`).
    #[arg(long, value_name = "FILE", help_heading = "proxy")]
    pub users: Option<PathBuf>,
    /// proxy: destinations allowed (CIDR, address, or host-name suffix such as example.com); once given, only these (repeatable).
    #[arg(
        long = "allow-dest",
        value_name = "CIDR|SUFFIX",
        help_heading = "proxy"
    )]
    pub allow_dest: Vec<String>,
    /// proxy: destinations refused, whatever --allow-dest says (repeatable). Off loopback, loopback, link-local and the server's own addresses are refused unless an --allow-dest CIDR names them.
    #[arg(long = "deny-dest", value_name = "CIDR|SUFFIX", help_heading = "proxy")]
    pub deny_dest: Vec<String>,
}

/// The proxy's configuration from the command line, checked against the
/// start-up rule for the addresses it will listen on. `service` names the
/// protocol in the refusal ("SOCKS5").
pub fn config(args: &ProxyServeArgs, service: &str) -> anyhow::Result<ProxyConfig> {
    let (flags, common) = (&args.proxy, &args.common);
    let mut config = ProxyConfig::new();
    if let Some(path) = &flags.users {
        let users = Users::load(path)?.with_startup_limits(args.max_startups);
        config.users = Some(Arc::new(users));
    }
    for (rule, entries, flag) in [
        (Rule::Allow, &flags.allow_dest, "--allow-dest"),
        (Rule::Deny, &flags.deny_dest, "--deny-dest"),
    ] {
        for entry in entries {
            config.dest.add(rule, entry).context(flag)?;
        }
    }
    config.access = crate::serve::access_list(&common.access)?;
    config.connect = ConnectOptions::default();
    config.connect.timeout = args.connect_timeout;
    config.handshake_timeout = common.tls.handshake_timeout;
    Ok(config.check_start(service, &common.addrs)?)
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The user's name.
    pub name: String,
}

/// `socketkit passwd NAME`: reads one password line from stdin and prints
/// `NAME:HASH` (argon2id) for a proxy's --users file.
pub fn passwd(args: &PasswdArgs) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // No echo suppression without a terminal library: say so.
        eprint!("password for {} (shown as typed): ", args.name);
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!(
            "no password on stdin (hint: echo 'PASSWORD' | socketkit passwd {})",
            args.name
        );
    }
    let entry = users_line(&args.name, password.as_bytes())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{entry}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}
