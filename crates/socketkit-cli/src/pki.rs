//! `socketkit pki init`: a private CA with server and client certificates.

use std::io::Write;

use anyhow::Context;
use socketkit::tls::pki;

use crate::args::PkiInitArgs;

pub fn init(args: &PkiInitArgs) -> anyhow::Result<()> {
    let issued = pki::init(&args.dir, &args.names, &args.clients)?;
    let mut stdout = crate::stdout::Marked(std::io::stdout().lock());
    for certificate in issued {
        writeln!(
            stdout,
            "{:<10} {} {} {}",
            certificate.name,
            certificate.cert.display(),
            certificate.key.display(),
            certificate.fingerprint
        )
        .context("cannot write to stdout")?;
    }
    Ok(())
}
