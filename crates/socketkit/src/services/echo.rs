//! Echo (RFC 862): every byte back, binary-safe, any size.

use crate::error::Result;
use crate::server::{Message, MessageHandler, Reply};

/// The echo service. On a stream it echoes until the client half-closes and
/// then closes its side; it keeps echoing through a graceful shutdown until
/// the client is done or the drain deadline passes, so no byte a client sent
/// goes unanswered. On datagram sockets each datagram is sent back, a
/// zero-length one included.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl MessageHandler for Echo {
    async fn respond(&self, _message: Message<'_>, reply: &mut Reply) -> Result<()> {
        reply.echo();
        Ok(())
    }
}
