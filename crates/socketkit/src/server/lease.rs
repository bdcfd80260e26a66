//! Relay buffers lent per read: an idle connection holds none, and the
//! threads of a busy server reuse theirs instead of allocating per read.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncRead;

/// Read buffer of the byte-relaying paths (echo, upper, discard, the
/// relay). Measured with bulk echo through one connection (BENCHMARKS.md):
/// 8–32 KiB move the most (1 KiB is 3–4× slower; 64 KiB chunks echo back
/// later and lose about a fifth). Connections do not own one: see
/// [`Lease`].
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

    /// Reads what `reader` has into a buffer of `size` taken for this read
    /// only: `Pending` gives it straight back, so a connection waiting for
    /// its peer holds none (and no extra readiness wait is needed before the
    /// read). `None` at end of stream. The read loops of
    /// [`MessageHandler`](super::MessageHandler) and the relay both go
    /// through here.
    pub(crate) fn poll_read<R: AsyncRead + Unpin>(
        reader: &mut R,
        cx: &mut Context<'_>,
        size: usize,
    ) -> Poll<io::Result<Option<Lease>>> {
        let mut buf = Lease::take(size);
        match tokio_util::io::poll_read_buf(Pin::new(reader), cx, &mut buf.0) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(None)),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(Some(buf))),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        SPARE.set(Some(buf));
    }
}
