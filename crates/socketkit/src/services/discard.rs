//! Discard (RFC 863): reads everything and answers nothing.

use crate::error::Result;
use crate::server::{Message, MessageHandler, Reply};

/// The discard service: a sink for load tests and for checking that a
/// client's writes complete.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl MessageHandler for Discard {
    async fn respond(&self, _message: Message<'_>, _reply: &mut Reply) -> Result<()> {
        Ok(())
    }
}
