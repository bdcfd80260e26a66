//! `socketkit serve forward ADDR... --to TARGET`: the target's flags turned
//! into the library's [`Forward`] service.

use anyhow::bail;
use clap::Args;
use socketkit::addr::SocketKind;
use socketkit::services::Forward;
use socketkit::tls::Fingerprint;
use socketkit::transport::ConnectOptions;
use socketkit::Endpoint;
use std::path::PathBuf;
use std::time::Duration;

use crate::args::{
    parse_duration, parse_endpoint, parse_fingerprint, ClientTlsArgs, FamilyArgs, HexdumpArgs,
    ServeArgs, Service,
};

/// Options of the forward service (the target side).
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// forward: where each client is connected (tcp://HOST:PORT, tls://HOST:PORT, unix:PATH).
    #[arg(long = "to", value_name = "TARGET", value_parser = parse_endpoint, help_heading = "forward")]
    pub to: Option<Endpoint>,
    /// forward, socks5, http-proxy: limit on resolving and connecting to the target (a proxy's destination).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "forward")]
    pub connect_timeout: Duration,
    /// forward: trust only CAs in FILE (PEM) for a tls:// target.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["to_pin", "to_insecure"], help_heading = "forward")]
    pub to_ca: Option<PathBuf>,
    /// forward: trust exactly the tls:// target's certificate with this fingerprint (sha256:HEX).
    #[arg(long, value_name = "FINGERPRINT", value_parser = parse_fingerprint, conflicts_with = "to_insecure", help_heading = "forward")]
    pub to_pin: Option<Fingerprint>,
    /// forward: do not verify the tls:// target at all (prints a warning).
    #[arg(long, help_heading = "forward")]
    pub to_insecure: bool,
    /// forward: client certificate (PEM) for mutual TLS to the target.
    #[arg(
        long,
        value_name = "FILE",
        requires = "to_key",
        help_heading = "forward"
    )]
    pub to_cert: Option<PathBuf>,
    /// forward: private key (PEM) of --to-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "to_cert",
        help_heading = "forward"
    )]
    pub to_key: Option<PathBuf>,
    /// forward: verify the target's certificate against NAME (and send it as SNI).
    #[arg(long, value_name = "NAME", help_heading = "forward")]
    pub to_servername: Option<String>,
    /// -4/-6: which of the target's addresses to connect to.
    #[command(flatten, next_help_heading = "forward")]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub hexdump: HexdumpArgs,
}

/// The forward service from the command line; other services refuse the
/// forward flags rather than ignore them.
pub fn service(args: &ServeArgs) -> anyhow::Result<Option<Forward>> {
    let forward = &args.forward;
    if !matches!(args.service, Service::Forward) {
        let dump = forward.hexdump.hexdump || forward.hexdump.hexdump_file.is_some();
        if forward.to.is_some() || forward.family.family().is_some() || dump {
            bail!("--to, -4/-6 and -x belong to the forward service (hint: socketkit serve forward ADDR --to TARGET)");
        }
        return Ok(None);
    }
    let Some(target) = forward.to.clone() else {
        bail!("serve forward needs a target (hint: --to tcp://HOST:PORT)");
    };
    for addr in &args.addrs {
        if addr.kind() != target.kind() {
            let kind = |k| match k {
                SocketKind::Stream => "a stream",
                SocketKind::Datagram => "a datagram",
            };
            bail!("cannot forward {addr} ({} socket) to {target} ({} socket) (hint: tcp://, tls:// and unix: forward to each other, udp:// and unixgram: to each other)", kind(addr.kind()), kind(target.kind()));
        }
    }
    let tls_flags = forward.to_ca.is_some()
        || forward.to_pin.is_some()
        || forward.to_insecure
        || forward.to_cert.is_some()
        || forward.to_servername.is_some();
    if tls_flags && !matches!(target, Endpoint::Tls(_)) {
        bail!("--to-ca, --to-pin, --to-insecure, --to-cert and --to-servername need a tls:// target, not {target}");
    }
    let tls = match target {
        Endpoint::Tls(_) => Some(crate::tls::client(&ClientTlsArgs {
            ca: forward.to_ca.clone(),
            pin: forward.to_pin,
            insecure: forward.to_insecure,
            client_cert: forward.to_cert.clone(),
            client_key: forward.to_key.clone(),
            servername: forward.to_servername.clone(),
        })?),
        _ => None,
    };
    let options = ConnectOptions {
        timeout: forward.connect_timeout,
        tls,
        server_name: forward.to_servername.clone(),
        family: forward.family.family(),
        ..ConnectOptions::default()
    };
    let forward_service = Forward::new(target, options)
        .with_datagram_limits(args.max_conns, crate::args::optional(args.idle_timeout));
    Ok(Some(match crate::hexdump::open(&forward.hexdump)? {
        Some(dump) => forward_service.with_hexdump(dump),
        None => forward_service,
    }))
}
