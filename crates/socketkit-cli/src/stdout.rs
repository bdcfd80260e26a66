//! Our stdout, marked: a write to it that finds the pipe closed fails with
//! [`StdoutClosed`] inside the `BrokenPipe` error, so `main` can tell "our
//! reader (say `head`) has what it wanted", which is success, from a peer's
//! EPIPE on a socket, which is the error it is.
//!
//! Every command writes its stdout through [`Marked`]; nothing else is
//! treated as a closed stdout.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// The payload of a `BrokenPipe` error raised by a write to our stdout.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Whether `error` comes from writing to a closed stdout.
pub fn closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// A writer to stdout whose broken-pipe errors carry [`StdoutClosed`].
#[derive(Debug)]
pub struct Marked<W>(pub W);

/// Stdout for async writers (the relays).
pub fn tokio() -> Marked<tokio::io::Stdout> {
    Marked(tokio::io::stdout())
}

/// Stdout for blocking writers (results, listening lines).
pub fn std() -> Marked<io::Stdout> {
    Marked(io::stdout())
}

fn mark(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        error
    }
}

impl<W: Write> Write for Marked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Marked<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf).map_err(mark)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(mark)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx).map_err(mark)
    }
}
