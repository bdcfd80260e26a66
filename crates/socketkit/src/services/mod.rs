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
//! | [`cmd::Cmd`] | stream | inetd: a program per connection, the socket as its stdin and stdout |
//! | [`recv::Recv`] | stream | receives files over the framed protocol |
//! | [`Forward`] | stream | each connection relayed to a fixed target (port forwarding, TLS wrap/unwrap) |
//! | [`Listen`] | stream | nc -l: each connection relayed to one input and output (stdin/stdout) |
//! | [`Chat`] | stream (+ web page) | multi-room chat for `nc` and browsers, federated over Redis |
//! | [`proxy`] | stream (+ UDP relay) | proxy servers: SOCKS5 and HTTP ([`proxy::HttpProxy`]), with users and a destination policy |

pub mod auth;
pub mod chat;
pub mod cmd;
pub mod contain;
mod daytime;
mod discard;
mod echo;
pub mod exec;
mod forward;
mod hello;
mod listen;
pub mod proxy;
pub mod recv;
mod session;
mod upper;

pub use chat::Chat;
pub use daytime::Daytime;
pub use discard::Discard;
pub use echo::Echo;
pub use forward::Forward;
pub use hello::Hello;
pub use listen::Listen;
pub use upper::Upper;

use std::cell::Cell;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Result;
use crate::server::Connection;

/// Read buffer of the byte-relaying services. Measured with bulk echo
/// through one connection (BENCHMARKS.md): 8–32 KiB move the most (1 KiB is
/// 3–4× slower; 64 KiB chunks echo back later and lose about a fifth).
/// Connections do not own one: see [`Lease`].
pub(crate) const RELAY_BUFFER: usize = 16 * 1024;

thread_local! {
    /// One spare relay buffer per thread.
    static SPARE: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// A relay buffer taken only once the socket is readable and given back
/// before waiting again, so an idle connection holds no buffer and the
/// threads of a busy server reuse theirs instead of allocating per read.
/// Only a connection whose peer is slow to take its echo keeps one while it
/// waits: memory follows the bytes in flight, not the connections open.
/// [`both_ways`](crate::client::both_ways) leases its buffers here too.
pub(crate) struct Lease(pub(crate) Vec<u8>);

impl Lease {
    /// An empty buffer with room for at least `size` bytes.
    pub(crate) fn take(size: usize) -> Lease {
        let mut spare = SPARE.take().unwrap_or_default();
        spare.reserve(size);
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
/// and writing it back. Returning after EOF lets the server half-close, so
/// the peer's FIN is answered with ours after the last byte.
async fn relay_back(conn: &mut Connection, transform: fn(&mut [u8])) -> Result<()> {
    loop {
        conn.readable().await?;
        let mut buf = Lease::take(RELAY_BUFFER);
        if conn.read_buf(&mut buf.0).await? == 0 {
            return Ok(());
        }
        transform(&mut buf.0);
        conn.write_all(&buf.0).await?;
    }
}
