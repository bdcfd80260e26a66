//! `socketkit serve http-proxy [ADDR...]`: the command line turned into the
//! library's [`HttpProxy`].

use socketkit::services::proxy::HttpProxy;
use socketkit::transport::ConnectOptions;

use crate::args::ServeArgs;

/// The proxy from the serve flags: destinations are connected to within
/// `--connect-timeout`, request heads read within `--handshake-timeout`.
pub fn service(args: &ServeArgs) -> anyhow::Result<HttpProxy> {
    let connect = ConnectOptions {
        timeout: args.forward.connect_timeout,
        ..ConnectOptions::default()
    };
    Ok(HttpProxy::new(connect, args.tls.handshake_timeout))
}
