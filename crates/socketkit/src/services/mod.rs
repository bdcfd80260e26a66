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
//! | [`exec::Exec`] | stream | remote commands over the framed protocol |
//! | [`recv::Recv`] | stream | receives files over the framed protocol |
//! | [`Chat`] | stream (+ web page) | multi-room chat for `nc` and browsers, federated over Redis |

pub mod auth;
pub mod chat;
mod daytime;
mod discard;
mod echo;
pub mod exec;
mod hello;
pub mod recv;
mod session;
mod upper;

pub use chat::Chat;
pub use daytime::Daytime;
pub use discard::Discard;
pub use echo::Echo;
pub use hello::Hello;
pub use upper::Upper;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Result;
use crate::server::Connection;

/// Per-connection buffer of the byte-relaying services: big enough for bulk
/// throughput (1 KiB buffers are 3–4× slower), small enough that 1000
/// connections cost 16 MiB.
const RELAY_BUFFER: usize = 16 * 1024;

/// Reads until the peer's end of stream, transforming each chunk in place
/// and writing it back. Returning after EOF lets the server half-close, so
/// the peer's FIN is answered with ours after the last byte.
async fn relay_back(conn: &mut Connection, transform: fn(&mut [u8])) -> Result<()> {
    let mut buf = vec![0u8; RELAY_BUFFER];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let chunk = &mut buf[..n];
        transform(chunk);
        conn.write_all(chunk).await?;
    }
}
