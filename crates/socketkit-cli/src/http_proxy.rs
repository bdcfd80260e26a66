//! `socketkit serve http-proxy [ADDR...]`: the command line turned into the
//! library's [`HttpProxy`].

use socketkit::services::proxy::{HttpProxy, ProxyConfig};
use socketkit::transport::ConnectOptions;

use crate::args::ServeArgs;

/// The proxy from the serve flags: destinations are connected to within
/// `--connect-timeout`, request heads read within `--handshake-timeout`.
pub fn service(args: &ServeArgs) -> anyhow::Result<HttpProxy> {
    let mut config = ProxyConfig::new();
    config.access = crate::serve::access_list(&args.access)?;
    config.connect = ConnectOptions {
        timeout: args.forward.connect_timeout,
        ..ConnectOptions::default()
    };
    config.handshake_timeout = args.tls.handshake_timeout;
    Ok(HttpProxy::new(config.check_start("HTTP", &args.addrs)?))
}
