//! Turning TLS flags into the library's TLS configurations.

use anyhow::Context;
use socketkit::addr::Host;
use socketkit::tls::{ClientAuth, ClientTls, Identity, ServerTls, Verification};
use socketkit::Endpoint;
use tracing::warn;

use crate::args::{ClientTlsArgs, ServerTlsArgs};

/// The server's TLS setup, when any endpoint is `tls://`. `tls13_only` for
/// services that authenticate clients by certificate (exec).
pub fn server(
    args: &ServerTlsArgs,
    endpoints: &[Endpoint],
    tls13_only: bool,
) -> anyhow::Result<Option<ServerTls>> {
    if !endpoints.iter().any(|e| matches!(e, Endpoint::Tls(_))) {
        return Ok(None);
    }
    let identity = match (&args.cert, &args.key, args.self_signed) {
        (Some(cert), Some(key), _) => Identity::from_pem_files(cert, key)?,
        (_, _, true) => {
            let dir = socketkit::tls::default_self_signed_dir().context(
                "cannot find a config directory for --self-signed (set XDG_CONFIG_HOME or HOME)",
            )?;
            Identity::self_signed(&dir, &certificate_names(endpoints))?
        }
        _ => anyhow::bail!("tls:// addresses need --cert FILE --key FILE, or --self-signed"),
    };
    let client_auth = match &args.client_ca {
        Some(ca) => ClientAuth::Required(ca.clone()),
        None => ClientAuth::None,
    };
    Ok(Some(ServerTls::new(identity, &client_auth, tls13_only)?))
}

/// Names a self-signed certificate covers: this machine's loopback names
/// plus every host the server was asked to bind.
fn certificate_names(endpoints: &[Endpoint]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for hp in endpoints.iter().filter_map(Endpoint::host_port) {
        let name = match &hp.host {
            Host::Name(name) => name.clone(),
            Host::Ip(ip) if !ip.is_unspecified() => ip.to_string(),
            _ => continue,
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The client's TLS setup from its flags.
pub fn client(args: &ClientTlsArgs) -> anyhow::Result<ClientTls> {
    let verification = match (&args.ca, args.pin, args.insecure) {
        (Some(ca), _, _) => Verification::CaFile(ca.clone()),
        (_, Some(pin), _) => Verification::Pin(pin),
        (_, _, true) => {
            warn!("--insecure: the server's certificate is not verified; anyone in the path can read and change this connection");
            Verification::Insecure
        }
        _ => Verification::SystemRoots,
    };
    Ok(ClientTls::new(&verification, identity(args)?)?)
}

/// The client certificate for mutual TLS, if one was given.
pub fn identity(args: &ClientTlsArgs) -> anyhow::Result<Option<Identity>> {
    match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => Ok(Some(Identity::from_pem_files(cert, key)?)),
        _ => Ok(None),
    }
}
