//! Upper: the textbook uppercase server, done byte-exactly.

use super::relay_back;
use crate::error::Result;
use crate::server::{Connection, Datagram, DatagramHandler, Reply, StreamHandler};

/// Upper-cases ASCII letters and passes every other byte through, as
/// Python's `bytes.upper()` does, so binary data and lengths are preserved
/// (multi-byte UTF-8 is never split or altered). Works on streams and
/// datagrams; a client leaving at any point ends only its own connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Upper;

impl StreamHandler for Upper {
    async fn handle(&self, conn: &mut Connection) -> Result<()> {
        relay_back(conn, <[u8]>::make_ascii_uppercase).await
    }
}

impl DatagramHandler for Upper {
    async fn handle_datagram(&self, request: Datagram<'_>, reply: &mut Reply) -> Result<()> {
        let answer = reply.buffer();
        answer.extend_from_slice(request.data);
        answer.make_ascii_uppercase();
        Ok(())
    }
}
