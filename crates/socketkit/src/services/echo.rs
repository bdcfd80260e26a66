//! Echo (RFC 862): every byte back, binary-safe, any size.

use super::relay_back;
use crate::error::Result;
use crate::server::{Connection, Datagram, DatagramHandler, Reply, StreamHandler};

/// The echo service. On a stream it echoes until the client half-closes and
/// then closes its side; it keeps echoing through a graceful shutdown until
/// the client is done or the drain deadline passes, so no byte a client sent
/// goes unanswered. On datagram sockets each datagram is sent back, a
/// zero-length one included.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl StreamHandler for Echo {
    async fn handle(&self, conn: &mut Connection) -> Result<()> {
        relay_back(conn, |_| {}).await
    }
}

impl DatagramHandler for Echo {
    async fn handle_datagram(&self, request: Datagram<'_>, reply: &mut Reply) -> Result<()> {
        reply.send(request.data);
        Ok(())
    }
}
