//! Daytime (RFC 867): the current date and time as one line of text.

use std::time::SystemTime;

use tokio::io::AsyncWriteExt;

use crate::error::Result;
use crate::server::{Connection, Datagram, DatagramHandler, Reply, StreamHandler};

/// Sends the time in the HTTP date format (`Sat, 21 Nov 2026 22:55:52 GMT`,
/// UTC, unambiguous) followed by CRLF, then closes. Over datagrams, any
/// datagram is answered with the same line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Daytime;

fn now_line() -> String {
    format!("{}\r\n", httpdate::fmt_http_date(SystemTime::now()))
}

impl StreamHandler for Daytime {
    async fn handle(&self, conn: &mut Connection) -> Result<()> {
        conn.write_all(now_line().as_bytes()).await?;
        Ok(())
    }
}

impl DatagramHandler for Daytime {
    async fn handle_datagram(&self, _request: Datagram<'_>, reply: &mut Reply) -> Result<()> {
        reply.send(now_line().as_bytes());
        Ok(())
    }
}
