//! Upper: the textbook uppercase server, done byte-exactly.

use crate::error::Result;
use crate::server::{Message, MessageHandler, Reply};

/// Upper-cases ASCII letters and passes every other byte through, as
/// Python's `bytes.upper()` does, so binary data and lengths are preserved
/// (multi-byte UTF-8 is never split or altered). Works on streams and
/// datagrams; a client leaving at any point ends only its own connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Upper;

impl MessageHandler for Upper {
    async fn respond(&self, message: Message<'_>, reply: &mut Reply) -> Result<()> {
        message.data.make_ascii_uppercase();
        reply.echo();
        Ok(())
    }
}
