//! The usual way a server program is told to stop: SIGINT (Ctrl-C) or
//! SIGTERM (service managers, `kill`), as a future for
//! [`Server::serve_until`](super::Server::serve_until).

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::warn;

/// Completes on the first SIGINT or SIGTERM:
/// `server.serve_until(handlers, shutdown_signal())`.
///
/// The signals are watched from the call on, not from the first poll, so
/// one that arrives while the server starts is not lost (nor does it kill
/// the process). Call it inside a tokio runtime. A signal that cannot be
/// watched (the process is out of descriptors) is logged and the other
/// still counts; if neither can be, the future never completes and the
/// signal's default action (exit) applies.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut interrupt = watch(SignalKind::interrupt(), "SIGINT");
    let mut terminate = watch(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = next(&mut interrupt) => {}
            () = next(&mut terminate) => {}
        }
    }
}

fn watch(kind: SignalKind, name: &str) -> Option<Signal> {
    match signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            warn!(%error, "cannot watch {name}");
            None
        }
    }
}

/// The next delivery of `signal`; never, for a signal not watched.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
