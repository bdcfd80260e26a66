//! Daytime (RFC 867): the current date and time as one line of text.

use std::time::SystemTime;

use crate::error::Result;
use crate::server::{Framing, Message, MessageHandler, Reply};

/// Sends the time in the HTTP date format (`Sat, 21 Nov 2026 22:55:52 GMT`,
/// UTC, unambiguous) followed by CRLF, then closes. Over datagrams, any
/// datagram is answered with the same line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Daytime;

impl MessageHandler for Daytime {
    fn framing(&self) -> Framing {
        Framing::Connect
    }

    async fn respond(&self, _message: Message<'_>, reply: &mut Reply) -> Result<()> {
        let now = httpdate::fmt_http_date(SystemTime::now());
        reply.send(format!("{now}\r\n").as_bytes());
        Ok(())
    }
}
