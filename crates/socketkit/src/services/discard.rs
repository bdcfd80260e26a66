//! Discard (RFC 863): reads everything and answers nothing.

use tokio::io::AsyncReadExt;

use crate::error::Result;
use crate::server::{Connection, Datagram, DatagramHandler, Reply, StreamHandler};

/// The discard service: a sink for load tests and for checking that a
/// client's writes complete.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl StreamHandler for Discard {
    async fn handle(&self, conn: &mut Connection) -> Result<()> {
        loop {
            conn.readable().await?;
            if conn
                .read_buf(&mut super::Lease::take(super::RELAY_BUFFER).0)
                .await?
                == 0
            {
                return Ok(());
            }
        }
    }
}

impl DatagramHandler for Discard {
    async fn handle_datagram(&self, _request: Datagram<'_>, _reply: &mut Reply) -> Result<()> {
        Ok(())
    }
}
