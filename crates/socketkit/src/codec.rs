//! Framing: bounded lines.
//!
//! [`LineCodec`] is a tokio-util [`Decoder`] like `LinesCodec`, with two
//! differences line-based services need: it yields bytes, not `String`, so a
//! service can answer invalid UTF-8 with an error instead of losing the
//! stream; and an over-long line is an *item* ([`Line::TooLong`]), not an
//! error, because tokio-util's `FramedRead` ends the stream after any decoder
//! error while we want the connection to go on. Memory stays bounded: bytes
//! past the limit are discarded up to the next newline.
//!
//! [`LineReader`] drives the codec over any reader and can take a partial
//! line as a message once the peer pauses, for textbook clients that send
//! `Michael` without a newline and wait for the answer.

// Lengths here are driven by a peer's bytes: arithmetic on them is
// checked, and an operation that cannot overflow says why (issue 11).
#![deny(clippy::arithmetic_side_effects)]

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

/// One decoded line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line, without its `\n` or `\r\n`.
    Text(Bytes),
    /// A line longer than the limit; its bytes were discarded.
    TooLong,
}

/// Splits a byte stream into lines of at most `max_length` bytes.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_length: usize,
    /// Where the newline search resumes, so a partial line is scanned once.
    next_index: usize,
    /// Inside an over-long line: drop bytes until its newline.
    discarding: bool,
}

impl LineCodec {
    /// A codec for lines of at most `max_length` bytes (terminator excluded).
    pub fn new(max_length: usize) -> LineCodec {
        LineCodec {
            max_length,
            next_index: 0,
            discarding: false,
        }
    }

    /// The line limit.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Takes the unterminated bytes buffered so far as a line, if there are
    /// any and they are not part of an over-long line being discarded.
    pub fn take_partial(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        if self.discarding || buf.is_empty() {
            return None;
        }
        self.next_index = 0;
        Some(strip_cr(buf.split()).freeze())
    }
}

fn strip_cr(mut line: BytesMut) -> BytesMut {
    if line.last() == Some(&b'\r') {
        // Not empty: it ends with `\r`.
        line.truncate(line.len().saturating_sub(1));
    }
    line
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        loop {
            // One byte past the limit is enough to see a `\r` before `\n`.
            let read_to = buf.len().min(self.max_length.saturating_add(2));
            let newline = memchr::memchr(b'\n', &buf[self.next_index..read_to]);
            match (self.discarding, newline) {
                (true, Some(offset)) => {
                    #[allow(
                        clippy::arithmetic_side_effects,
                        reason = "an index into `buf` (the newline's) plus one: at most buf.len()"
                    )]
                    let past_newline = self.next_index + offset + 1;
                    buf.advance(past_newline);
                    self.discarding = false;
                    self.next_index = 0;
                }
                (true, None) => {
                    buf.advance(read_to);
                    self.next_index = 0;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                (false, Some(offset)) => {
                    #[allow(
                        clippy::arithmetic_side_effects,
                        reason = "the newline's index into `buf`, and one past it: at most buf.len()"
                    )]
                    let (newline_at, past_newline) =
                        (self.next_index + offset, self.next_index + offset + 1);
                    self.next_index = 0;
                    let mut line = buf.split_to(past_newline);
                    line.truncate(newline_at);
                    let line = strip_cr(line);
                    if line.len() > self.max_length {
                        return Ok(Some(Line::TooLong));
                    }
                    return Ok(Some(Line::Text(line.freeze())));
                }
                // Saturating: `LineCodec::new(usize::MAX)` means no limit,
                // not a limit of 0 after wrapping.
                (false, None) if buf.len() > self.max_length.saturating_add(1) => {
                    self.discarding = true;
                    return Ok(Some(Line::TooLong));
                }
                (false, None) => {
                    self.next_index = read_to;
                    return Ok(None);
                }
            }
        }
    }

    /// At end of stream an unterminated last line is still a line.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if self.discarding {
            buf.clear();
            self.discarding = false;
            return Ok(None);
        }
        Ok(self.take_partial(buf).map(|line| {
            if line.len() > self.max_length {
                Line::TooLong
            } else {
                Line::Text(line)
            }
        }))
    }
}

/// Reads lines from `R` with a [`LineCodec`], cancel-safely (it can sit in
/// a `select!`).
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    codec: LineCodec,
    pause: Option<Duration>,
    eof: bool,
}

/// Read size; lines longer than this arrive over several reads.
const READ_CHUNK: usize = 8 * 1024;

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Lines of at most `max_length` bytes from `reader`.
    pub fn new(reader: R, max_length: usize) -> LineReader<R> {
        LineReader {
            reader,
            buf: BytesMut::new(),
            codec: LineCodec::new(max_length),
            pause: None,
            eof: false,
        }
    }

    /// Also yield a partial line once no byte arrived for `pause`.
    pub fn with_pause(mut self, pause: Duration) -> LineReader<R> {
        self.pause = Some(pause);
        self
    }

    /// The underlying reader, for writing replies to the same stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The next line if it is already buffered, without reading: for a
    /// caller that wants to act once per read rather than once per line.
    /// `None` says only that [`LineReader::next_line`] would have to wait
    /// (or report the end of the stream).
    pub fn next_buffered_line(&mut self) -> io::Result<Option<Line>> {
        if self.eof {
            return Ok(None);
        }
        self.codec.decode(&mut self.buf)
    }

    /// The next line, or `None` at end of stream.
    pub async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            if self.eof {
                return self.codec.decode_eof(&mut self.buf);
            }
            if let Some(line) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(line));
            }
            self.buf.reserve(READ_CHUNK);
            let waiting_on_partial = !self.buf.is_empty();
            let read = self.reader.read_buf(&mut self.buf);
            let n = match self.pause {
                Some(pause) if waiting_on_partial => {
                    match tokio::time::timeout(pause, read).await {
                        Ok(n) => n?,
                        Err(_paused) => {
                            if let Some(line) = self.codec.take_partial(&mut self.buf) {
                                return Ok(Some(Line::Text(line)));
                            }
                            continue;
                        }
                    }
                }
                _ => read.await?,
            };
            self.eof = n == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Line> {
        let mut buf = BytesMut::from(input);
        let mut lines = Vec::new();
        while let Some(line) = codec.decode(&mut buf).unwrap() {
            lines.push(line);
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            lines.push(line);
        }
        lines
    }

    fn text(s: &str) -> Line {
        Line::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn splits_lf_and_crlf_and_keeps_an_unterminated_tail() {
        let lines = decode_all(&mut LineCodec::new(64), b"one\ntwo\r\n\nthree");
        assert_eq!(
            lines,
            vec![text("one"), text("two"), text(""), text("three")]
        );
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_the_next_line_survives() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nok\n");
        let lines = decode_all(&mut LineCodec::new(10), &input);
        assert_eq!(lines, vec![Line::TooLong, text("ok")]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes_even_with_crlf() {
        let lines = decode_all(&mut LineCodec::new(3), b"abc\r\nabcd\n");
        assert_eq!(lines, vec![text("abc"), Line::TooLong]);
    }

    #[test]
    fn overlong_input_arriving_in_pieces_is_discarded_without_growing() {
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        for piece in [&b"abcdefgh"[..], b"ijkl", b"mn\nxy", b"z\n"] {
            buf.extend_from_slice(piece);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                seen.push(line);
            }
            assert!(buf.len() <= 6, "buffer grew to {}", buf.len());
        }
        assert_eq!(seen, vec![Line::TooLong, text("xyz")]);
    }

    #[test]
    fn a_limit_of_usize_max_is_no_limit() {
        // `max_length + 1` used to wrap to 0 (or panic in debug builds),
        // making every partial line "too long".
        let mut codec = LineCodec::new(usize::MAX);
        let mut buf = BytesMut::from(&b"partial"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b" line\n");
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(text("partial line")));
    }

    #[tokio::test]
    async fn reader_takes_a_partial_line_after_a_pause() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut lines = LineReader::new(server, 64).with_pause(Duration::from_millis(20));
        tokio::io::AsyncWriteExt::write_all(&mut client, b"Michael")
            .await
            .unwrap();
        assert_eq!(lines.next_line().await.unwrap(), Some(text("Michael")));
        drop(client);
        assert_eq!(lines.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn buffered_lines_come_without_reading_and_never_wait() {
        let mut lines = LineReader::new(&b"one\ntwo\nthr"[..], 64);
        assert_eq!(lines.next_line().await.unwrap(), Some(text("one")));
        assert_eq!(lines.next_buffered_line().unwrap(), Some(text("two")));
        assert_eq!(lines.next_buffered_line().unwrap(), None);
        assert_eq!(lines.next_line().await.unwrap(), Some(text("thr")));
        assert_eq!(lines.next_buffered_line().unwrap(), None);
        assert_eq!(lines.next_line().await.unwrap(), None);
    }
}
