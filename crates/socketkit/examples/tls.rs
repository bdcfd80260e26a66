//! A TLS service: the ready-made upper-case service behind TLS, with a
//! self-signed certificate made on first start and kept (so its
//! fingerprint, printed at start, stays the same across restarts). The
//! handler is unchanged: the server does the handshake, under its
//! handshake deadline, before `handle` sees the connection.
//!
//! Try it from two terminals:
//!
//! ```text
//! cargo run -p socketkit --example tls          # prints: listening on 127.0.0.1:7443, certificate sha256:…
//! openssl s_client -quiet -connect 127.0.0.1:7443   # type hello, read HELLO
//! ```

use std::path::Path;

use socketkit::server::{shutdown_signal, Server, ServerConfig};
use socketkit::services::Upper;
use socketkit::tls::{ClientAuth, Identity, ServerTls};

/// A self-signed identity for localhost, kept in `dir`.
pub fn self_signed(dir: &Path) -> socketkit::Result<ServerTls> {
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let identity = Identity::self_signed(dir, &names)?;
    ServerTls::new(identity, &ClientAuth::None, false)
}

#[tokio::main]
async fn main() -> socketkit::Result<()> {
    let tls = self_signed(&std::env::temp_dir().join("socketkit-example-tls"))?;
    let fingerprint = tls.fingerprint();
    let config = ServerConfig::default().tls(tls);
    let server = Server::bind(&["tls://127.0.0.1:7443".parse()?], config).await?;
    for addr in server.local_addrs() {
        println!("listening on {addr}, certificate {fingerprint}");
    }
    server.serve_until(Upper, shutdown_signal()).await?;
    Ok(())
}
