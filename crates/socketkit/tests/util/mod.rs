//! What the library's service tests share: a service served on loopback
//! TCP (port 0, read back), shut down when the test lets go of it, and how
//! long a test waits for anything.

// Each test file uses a different subset of these helpers (`core`, a
// core-only build, only [`stop`]).
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use socketkit::server::{Server, ServerConfig, ServerHandle};
use socketkit::Endpoint;
use tokio::task::JoinHandle;

/// Bound for anything a test waits on: generous, because the machine is
/// shared; a correct run takes milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A server running in its own task; shut down on drop.
pub struct Running {
    /// The bound endpoint, its port read back.
    pub endpoint: Endpoint,
    handle: ServerHandle,
}

impl Running {
    /// The address to hand a raw socket: `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(hp) => hp.to_string(),
            other => panic!("not TCP: {other}"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Binds `tcp://127.0.0.1:0` and runs `serve` on the server (a closure, so
/// any handler's `serve` call fits).
pub async fn start<F>(serve: impl FnOnce(Server) -> F) -> Running
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let server = Server::bind(
        &["tcp://127.0.0.1:0".parse().unwrap()],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let endpoint = server.endpoints().next().unwrap().clone();
    let handle = server.handle();
    tokio::spawn(serve(server));
    Running { endpoint, handle }
}

/// Shuts the server down through `handle` and waits, at most `patience`,
/// for its task to end with `serve` returning `Ok`: for the tests that
/// check a clean stop rather than only letting go of the server (as
/// dropping a [`Running`] does).
pub async fn stop<T>(
    handle: ServerHandle,
    task: JoinHandle<socketkit::Result<T>>,
    patience: Duration,
) {
    handle.shutdown();
    tokio::time::timeout(patience, task)
        .await
        .expect("the server stops in time")
        .expect("the server task")
        .expect("the server");
}
