//! Hex dumps of the bytes a stream carries (`-x/--hexdump`): [`Tapped`]
//! wraps any byte stream and reports every chunk read and written, as it
//! passed, to a shared [`HexDump`] sink in `hexdump -C` format.
//!
//! The tap sits outside the relay, so whatever relays a stream (`connect`,
//! `listen`, a forward's two legs) dumps it by wrapping the stream; the
//! relay itself knows nothing of dumps. Dumping never changes the bytes: the
//! tap only looks at what the inner stream already read or accepted.

use std::fmt::Write as _;
use std::io::{self, Write};
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
    /// offsets starting at `offset`.
    fn chunk(&self, header: std::fmt::Arguments<'_>, offset: u64, data: &[u8]) {
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

/// A byte stream whose every chunk, each way, is dumped to a [`HexDump`]:
/// `> N bytes to PEER` for writes, `< N bytes from PEER` for reads, with
/// an offset per direction.
#[derive(Debug)]
pub struct Tapped<S> {
    inner: S,
    dump: HexDump,
    peer: String,
    read: u64,
    written: u64,
}

impl<S> Tapped<S> {
    /// Taps `inner`, labelling its chunks with `peer` (an address).
    pub fn new(inner: S, dump: HexDump, peer: impl Into<String>) -> Tapped<S> {
        Tapped {
            inner,
            dump,
            peer: peer.into(),
            read: 0,
            written: 0,
        }
    }

    /// The tapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
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
                let n = chunk.len();
                this.dump.chunk(
                    format_args!("< {n} bytes from {}", this.peer),
                    this.read,
                    chunk,
                );
                this.read = this.read.wrapping_add(n as u64);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
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
                this.dump.chunk(
                    format_args!("> {n} bytes to {}", this.peer),
                    this.written,
                    chunk,
                );
                this.written = this.written.wrapping_add(n as u64);
            }
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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
