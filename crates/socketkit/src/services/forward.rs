//! Port forwarding (socat `TCP-LISTEN:a,fork TCP:host:b`): each accepted
//! connection is wired to a new connection to one fixed target.
//!
//! The server layer does the listening side (TLS termination, limits, access
//! lists, drain); the transport layer opens the target (resolution, Happy
//! Eyeballs, the connect timeout, TLS origination verified like any client);
//! [`both_ways`] relays between them. Forwarding to one fixed target is not
//! an open relay: clients cannot choose where their bytes go.

use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use crate::addr::Endpoint;
use crate::client::{both_ways, BothWaysOptions};
use crate::error::Result;
use crate::server::{Connection, StreamHandler};
use crate::transport::{connect, ConnectOptions};

/// The forwarding service: every stream connection is relayed to `target`.
#[derive(Debug, Clone)]
pub struct Forward {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    target: Endpoint,
    options: ConnectOptions,
}

impl Forward {
    /// Forwards to the stream endpoint `target`, connecting with `options`
    /// (timeout, TLS verification, source address, family).
    pub fn new(target: Endpoint, options: ConnectOptions) -> Forward {
        Forward {
            inner: Arc::new(Inner { target, options }),
        }
    }

    /// Where connections are forwarded.
    pub fn target(&self) -> &Endpoint {
        &self.inner.target
    }
}

impl StreamHandler for Forward {
    async fn handle(&self, conn: &mut Connection) -> Result<()> {
        let Inner { target, options } = &*self.inner;
        let started = Instant::now();
        let client = conn.peer_addr().clone();
        // An unreachable target ends the handler at once: the server closes
        // the client and logs the error, which names the target and reason.
        let upstream = connect(target, options).await?;
        let relay = BothWaysOptions {
            // The connection times out on its own reads; this also covers a
            // client that half-closed while the target stays silent.
            idle_timeout: conn.idle_timeout(),
            ..BothWaysOptions::default()
        };
        let report = both_ways(&mut *conn, upstream, &relay).await?;
        debug!(
            %client,
            %target,
            to_target = report.a_to_b,
            to_client = report.b_to_a,
            secs = started.elapsed().as_secs_f64(),
            "forward ended"
        );
        Ok(())
    }
}
