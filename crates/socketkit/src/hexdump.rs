//! Watching the bytes a stream carries: [`Tap`] wraps any byte stream and
//! shows every chunk read and written, as it passed, to a [`Watch`]; a
//! [`HexDump`] is the watch behind `-x/--hexdump` (`hexdump -C` format),
//! and `get --raw` has its own.
//!
//! The tap sits outside the relay, so whatever relays a stream (`connect`,
//! `listen`, a forward's two legs) dumps it by wrapping the stream; the
//! relay itself knows nothing of dumps. The tap never changes the bytes: it
//! only looks at what the inner stream already read or accepted.

use std::fmt::Write as _;
use std::io::{self, IoSlice, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where dumps go (stderr or a file), shared by every tapped stream so
/// chunks from several streams never interleave within a chunk.
#[derive(Clone)]
pub struct HexDump {
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for HexDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HexDump").finish_non_exhaustive()
    }
}

impl HexDump {
    /// Dumps to `sink` (say `std::io::stderr()` or a `File`).
    pub fn new(sink: impl Write + Send + 'static) -> HexDump {
        HexDump {
            sink: Arc::new(Mutex::new(Box::new(sink))),
        }
    }

    /// Writes one chunk: the header line, then its `hexdump -C` lines with
    /// offsets starting at `offset` (say 0 for a datagram, a message of its
    /// own).
    pub fn chunk(&self, header: std::fmt::Arguments<'_>, offset: u64, data: &[u8]) {
        let mut text = format!("{header}\n");
        format_lines(&mut text, offset, data);
        // A dump that cannot be written (a full disk) must not fail or
        // alter the relay it observes, so the error is dropped here.
        if let Ok(mut sink) = self.sink.lock() {
            let _ = sink.write_all(text.as_bytes()).and_then(|()| sink.flush());
        }
    }
}

/// Appends `hexdump -C` lines for `data`, the first at `offset`: the offset
/// in 8 hex digits, two groups of eight bytes, and the bytes as text between
/// bars with anything outside printable ASCII as `.`. Unlike `hexdump`,
/// repeated lines are not collapsed into `*` and no closing offset line is
/// written (each chunk's header already says its length).
pub fn format_lines(out: &mut String, offset: u64, data: &[u8]) {
    for (i, line) in data.chunks(16).enumerate() {
        let at = offset.wrapping_add(16 * i as u64);
        let _ = write!(out, "{at:08x}  ");
        for column in 0..16 {
            match line.get(column) {
                Some(byte) => {
                    let _ = write!(out, "{byte:02x} ");
                }
                None => out.push_str("   "),
            }
            if column == 7 {
                out.push(' ');
            }
        }
        out.push_str(" |");
        out.extend(line.iter().map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
}

/// What a [`Tap`] shows each chunk to. An error fails the read or write
/// that carried the chunk (after the chunk moved).
pub trait Watch {
    /// `chunk` was just read from the stream.
    fn received(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// `chunk` was just written to the stream.
    fn sent(&mut self, chunk: &[u8]) -> io::Result<()>;
}

/// A byte stream whose every non-empty chunk, each way, is shown to a
/// [`Watch`].
#[derive(Debug)]
pub struct Tap<S, W> {
    inner: S,
    watch: W,
}

impl<S, W> Tap<S, W> {
    /// Taps `inner`.
    pub fn new(inner: S, watch: W) -> Tap<S, W> {
        Tap { inner, watch }
    }

    /// The tapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin, W: Watch + Unpin> AsyncRead for Tap<S, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let chunk = &buf.filled()[before..];
            if !chunk.is_empty() {
                this.watch.received(chunk)?;
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin, W: Watch + Unpin> AsyncWrite for Tap<S, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            // Only what the stream accepted went out; the rest comes again.
            if let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) {
                this.watch.sent(chunk)?;
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            let mut left = n;
            for slice in bufs {
                let take = left.min(slice.len());
                if take > 0 {
                    this.watch.sent(&slice[..take])?;
                }
                left -= take;
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A stream dumped by `-x`: `> N bytes to PEER` for writes, `< N bytes
/// from PEER` for reads, with an offset per direction.
pub type Tapped<S> = Tap<S, Dumper>;

impl<S> Tapped<S> {
    /// Taps `inner` into `dump`, labelling its chunks with `peer`.
    pub fn dumped(inner: S, dump: HexDump, peer: impl Into<String>) -> Tapped<S> {
        Tap::new(
            inner,
            Dumper {
                dump,
                peer: peer.into(),
                read: 0,
                written: 0,
            },
        )
    }
}

/// The [`Watch`] of one dumped stream: its label and offsets.
#[derive(Debug)]
pub struct Dumper {
    dump: HexDump,
    peer: String,
    read: u64,
    written: u64,
}

impl Watch for Dumper {
    fn received(&mut self, chunk: &[u8]) -> io::Result<()> {
        let n = chunk.len();
        let header = format_args!("< {n} bytes from {}", self.peer);
        self.dump.chunk(header, self.read, chunk);
        self.read = self.read.wrapping_add(n as u64);
        Ok(())
    }

    fn sent(&mut self, chunk: &[u8]) -> io::Result<()> {
        let n = chunk.len();
        let header = format_args!("> {n} bytes to {}", self.peer);
        self.dump.chunk(header, self.written, chunk);
        self.written = self.written.wrapping_add(n as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_line_pads_the_hex_and_not_the_text() {
        let mut out = String::new();
        format_lines(&mut out, 0, b"hello\n");
        assert_eq!(
            out,
            "00000000  68 65 6c 6c 6f 0a                                 |hello.|\n"
        );
    }

    #[test]
    fn offsets_continue_and_groups_split_at_eight() {
        let mut out = String::new();
        format_lines(&mut out, 0x20, b"0123456789abcdef\x00\x7f");
        assert_eq!(
            out,
            "00000020  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n\
             00000030  00 7f                                             |..|\n"
        );
    }
}
