//! Ready-made services, one module each, every one an ordinary handler on
//! the [`server`](crate::server) API, so each doubles as an example.
//!
//! | service | transports | behaviour |
//! |---|---|---|
//! | [`Echo`] | stream, datagram | RFC 862: every byte back |
//! | [`Upper`] | stream, datagram | ASCII letters upper-cased, other bytes unchanged |
//! | [`Hello`] | stream | `Welcome!`, then `Hello, NAME!` per line; `exit` closes |
//! | [`Discard`] | stream, datagram | RFC 863: reads and drops everything |
//! | [`Daytime`] | stream, datagram | RFC 867: the date and time, then close |

mod daytime;
mod discard;
mod echo;
mod hello;
mod upper;

pub use daytime::Daytime;
pub use discard::Discard;
pub use echo::Echo;
pub use hello::Hello;
pub use upper::Upper;

use std::cell::Cell;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Result;
use crate::server::Connection;

/// Read buffer of the byte-relaying services: 64 KiB, because bulk
/// throughput keeps rising up to there (1 KiB buffers are 3–4× slower).
/// Connections do not own one: see [`Lease`].
const RELAY_BUFFER: usize = 64 * 1024;

thread_local! {
    /// One spare relay buffer per thread.
    static SPARE: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// A relay buffer taken only once the socket is readable and given back
/// before waiting again, so an idle connection holds no buffer and the
/// threads of a busy server reuse theirs instead of allocating per read.
/// Only a connection whose peer is slow to take its echo keeps one while it
/// waits: memory follows the bytes in flight, not the connections open.
struct Lease(Vec<u8>);

impl Lease {
    fn take() -> Lease {
        let spare = SPARE
            .take()
            .unwrap_or_else(|| Vec::with_capacity(RELAY_BUFFER));
        Lease(spare)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        SPARE.set(Some(buf));
    }
}

/// Reads until the peer's end of stream, transforming each chunk in place
/// (`None`: no change) and writing it back. Returning after EOF lets the
/// server half-close, so the peer's FIN is answered with ours after the
/// last byte.
///
/// An unchanged echo whose read fills the whole buffer is bulk traffic:
/// it moves to [`Connection::splice_back`] (zero-copy, plain TCP on Linux)
/// for the rest of the connection when the stream allows it. Small
/// messages stay on this path, where they cost two system calls and no pipe.
async fn relay_back(conn: &mut Connection, transform: Option<fn(&mut [u8])>) -> Result<()> {
    let mut may_splice = transform.is_none();
    loop {
        conn.readable().await?;
        let mut buf = Lease::take();
        let n = conn.read_buf(&mut buf.0).await?;
        if n == 0 {
            return Ok(());
        }
        if let Some(transform) = transform {
            transform(&mut buf.0);
        }
        conn.write_all(&buf.0).await?;
        if may_splice && n == RELAY_BUFFER {
            drop(buf);
            // Boxed: only bulk connections get here, and inline the splice
            // state would size every connection's task.
            match Box::pin(conn.splice_back()).await {
                Some(done) => return Ok(done?),
                None => may_splice = false,
            }
        }
    }
}
