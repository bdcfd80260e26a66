//! A core-only build (`cargo test -p socketkit --no-default-features --test
//! core`, run by `.ci/run`): the server framework works without any
//! optional dependency, and a `tls://` endpoint, which still parses, is a
//! typed `Unsupported` error when bound or connected to, not a compile
//! error in the program that names it. With the `tls` feature on (the
//! default) there is nothing to check here.

#![cfg(not(feature = "tls"))]

use std::time::Duration;

use socketkit::server::{Server, ServerConfig};
use socketkit::services::Echo;
use socketkit::transport::{connect, ConnectOptions};
use socketkit::{Endpoint, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod util;

/// Bound for anything a test waits on: generous, because the machine is
/// shared; a correct run takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn tls_endpoints_are_unsupported_without_the_tls_feature() {
    let tls: Endpoint = "tls://127.0.0.1:0".parse().expect("tls:// still parses");
    let error = Server::bind(std::slice::from_ref(&tls), ServerConfig::default())
        .await
        .expect_err("no TLS server in a core build");
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    let error = connect(
        &"tls://127.0.0.1:443".parse().expect("valid"),
        &ConnectOptions::default(),
    )
    .await
    .expect_err("no TLS client in a core build");
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
}

#[tokio::test]
async fn the_core_serves_echo_on_loopback() {
    let tcp: Endpoint = "tcp://127.0.0.1:0".parse().expect("valid");
    let server = Server::bind(&[tcp], ServerConfig::default())
        .await
        .expect("bind a loopback port");
    let bound = server.endpoints().next().expect("one endpoint").clone();
    let handle = server.handle();
    let task = tokio::spawn(server.serve(Echo));
    let mut stream = connect(&bound, &ConnectOptions::default())
        .await
        .expect("connect to the echo server");
    stream.write_all(b"core\n").await.expect("write");
    stream.shutdown().await.expect("half-close");
    let mut echoed = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut echoed))
        .await
        .expect("the echo ends in time")
        .expect("read the echo");
    assert_eq!(echoed, b"core\n");
    util::stop(handle, task, PATIENCE).await;
}
