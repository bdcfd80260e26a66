//! The framed protocol of PROTOCOL.md: frames, their bounded codec, and the
//! message types carried in control frames.
//!
//! [`FrameCodec`] is a tokio-util `Decoder`/`Encoder`: a 4-byte big-endian
//! length, a type byte, a body. The decoder checks the declared length
//! against the cap for the frame's type (64 KiB control, 1 MiB data) from the
//! 5-byte header alone, before reserving or reading anything, so a peer
//! claiming 4 GiB costs nothing. Until the opening is over a server decodes
//! with [`FrameCodec::opening`], which caps every frame at
//! [`MAX_OPENING_BODY`]: a peer that has not authenticated cannot make the
//! server hold more than a few KiB. A decode error is final: `Framed` ends
//! the stream, and the connection is not resumed. The codec's error is
//! [`FrameError`], as tokio-util's `LinesCodecError`: the frame problems
//! the peer caused, plus an `Io` variant for the socket underneath.

// Every length and number here comes from a peer: arithmetic on them is
// checked, and an operation that cannot overflow says why (issue 11).
#![deny(clippy::arithmetic_side_effects)]

pub mod exec;
pub mod transfer;

use std::fmt;
use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

/// The protocol version this implementation speaks.
pub const VERSION: u32 = 1;

/// Largest control frame body: 64 KiB - 1.
pub const MAX_CONTROL_BODY: usize = 64 * 1024 - 1;

/// Largest data frame body: 1 MiB.
pub const MAX_DATA_BODY: usize = 1024 * 1024;

/// Largest body of any frame a server accepts before the client has
/// authenticated (`HELLO` and nothing else is due then): 4 KiB.
pub const MAX_OPENING_BODY: usize = 4 * 1024;

/// The size of data frames this implementation sends.
pub const DATA_CHUNK: usize = 64 * 1024;

/// A frame's type byte. Types `0x20..=0x3F` are data frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameType(pub u8);

impl FrameType {
    /// Server greeting, then the client's answer.
    pub const HELLO: FrameType = FrameType(0x01);
    /// Authentication succeeded.
    pub const READY: FrameType = FrameType(0x02);
    /// Run a command.
    pub const RUN: FrameType = FrameType(0x10);
    /// The command started.
    pub const STARTED: FrameType = FrameType(0x11);
    /// Signal the command's process group.
    pub const SIGNAL: FrameType = FrameType(0x12);
    /// The command ended.
    pub const EXIT: FrameType = FrameType(0x13);
    /// Something failed.
    pub const ERROR: FrameType = FrameType(0x1F);
    /// Bytes for the command's standard input.
    pub const STDIN: FrameType = FrameType(0x20);
    /// End of the command's standard input.
    pub const STDIN_END: FrameType = FrameType(0x21);
    /// Bytes the command wrote to standard output.
    pub const STDOUT: FrameType = FrameType(0x22);
    /// Bytes the command wrote to standard error.
    pub const STDERR: FrameType = FrameType(0x23);
    /// Bytes of a file being sent.
    pub const FILE_DATA: FrameType = FrameType(0x24);
    /// A file the client wants to send.
    pub const OFFER: FrameType = FrameType(0x40);
    /// The receiver takes the file (maybe from an offset).
    pub const ACCEPT: FrameType = FrameType(0x41);
    /// The client starts sending from an offset.
    pub const START: FrameType = FrameType(0x42);
    /// All bytes sent; the whole file's size and hash.
    pub const END: FrameType = FrameType(0x43);
    /// The receiver verified and stored the file.
    pub const DONE: FrameType = FrameType(0x44);

    /// Whether this type carries raw bytes (rather than a JSON object).
    pub fn is_data(self) -> bool {
        (0x20..=0x3F).contains(&self.0)
    }

    /// The largest body a frame of this type may have.
    pub fn max_body(self) -> usize {
        if self.is_data() {
            MAX_DATA_BODY
        } else {
            MAX_CONTROL_BODY
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x}", self.0)
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte.
    pub kind: FrameType,
    /// The body: JSON for control frames, raw bytes for data frames.
    pub body: Bytes,
}

impl Frame {
    /// A data frame.
    pub fn data(kind: FrameType, body: Bytes) -> Frame {
        Frame { kind, body }
    }

    /// A control frame carrying `message` as JSON.
    pub fn control<T: Serialize>(kind: FrameType, message: &T) -> Frame {
        // Serializing our own message types (strings, numbers, maps with
        // string keys) cannot fail.
        let body = serde_json::to_vec(message).unwrap_or_default();
        Frame {
            kind,
            body: Bytes::from(body),
        }
    }

    /// Parses the JSON body of a control frame.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FrameError> {
        serde_json::from_slice(&self.body).map_err(|e| FrameError::BadBody {
            kind: self.kind,
            reason: e.to_string(),
        })
    }
}

/// Why a frame was rejected, or reading or writing frames failed. Every
/// one of these ends the connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// The header declared a length of 0 (no type byte).
    Empty,
    /// The header declared a body larger than the cap for its type.
    TooLarge {
        /// The frame's type.
        kind: FrameType,
        /// The declared body length.
        declared: u64,
        /// The cap for the type.
        cap: usize,
    },
    /// A control body was not the expected JSON.
    BadBody {
        /// The frame's type.
        kind: FrameType,
        /// What was wrong.
        reason: String,
    },
    /// A frame arrived that makes no sense at this point.
    Unexpected {
        /// The frame's type.
        kind: FrameType,
    },
    /// The stream ended inside a frame.
    Truncated,
    /// Reading or writing the stream underneath failed.
    Io(io::Error),
}

impl FrameError {
    /// Whether the peer broke the protocol (every variant but
    /// [`FrameError::Io`]): what a server answers with an `ERROR` of kind
    /// `protocol` before closing.
    pub fn is_protocol(&self) -> bool {
        !matches!(self, FrameError::Io(_))
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => f.write_str("frame with length 0"),
            FrameError::TooLarge {
                kind,
                declared,
                cap,
            } => {
                write!(
                    f,
                    "frame of type {kind} declares {declared} bytes; the limit is {cap}"
                )
            }
            FrameError::BadBody { kind, reason } => {
                write!(f, "bad body in frame of type {kind}: {reason}")
            }
            FrameError::Unexpected { kind } => write!(f, "unexpected frame of type {kind}"),
            FrameError::Truncated => f.write_str("stream ended inside a frame"),
            // Transparent, as tokio-util's codec errors: the I/O error is
            // what happened.
            FrameError::Io(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(error) => error.source(),
            _ => None,
        }
    }
}

/// What `Framed` needs of a codec's error: the socket's errors fit in it.
impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> FrameError {
        FrameError::Io(error)
    }
}

/// An I/O failure stays one (so `is_peer_gone` and `is_timeout` see it);
/// anything else is the peer breaking the protocol.
impl From<FrameError> for crate::Error {
    fn from(error: FrameError) -> crate::Error {
        match error {
            FrameError::Io(error) => error.into(),
            problem => {
                crate::Error::with_source(crate::ErrorKind::Protocol, "protocol error", problem)
            }
        }
    }
}

const HEADER: usize = 5;

/// The codec for frames; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec {
    /// A cap below the per-type ones while the opening lasts.
    opening_cap: Option<usize>,
}

impl FrameCodec {
    /// A codec with the per-type caps (64 KiB control, 1 MiB data).
    pub const fn new() -> FrameCodec {
        FrameCodec { opening_cap: None }
    }

    /// A codec for a server's side of the opening: every frame, of any
    /// type, is capped at [`MAX_OPENING_BODY`] until
    /// [`FrameCodec::end_opening`].
    pub const fn opening() -> FrameCodec {
        FrameCodec {
            opening_cap: Some(MAX_OPENING_BODY),
        }
    }

    /// The peer has authenticated: the per-type caps apply from now on.
    pub fn end_opening(&mut self) {
        self.opening_cap = None;
    }

    /// The largest body this codec accepts for a frame of `kind` now.
    pub fn max_body(&self, kind: FrameType) -> usize {
        match self.opening_cap {
            Some(cap) => cap.min(kind.max_body()),
            None => kind.max_body(),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < HEADER {
            return Ok(None);
        }
        let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        let kind = FrameType(src[4]);
        if length == 0 {
            return Err(FrameError::Empty);
        }
        // Not 0, checked above.
        let body_length = length.saturating_sub(1);
        let cap = self.max_body(kind);
        if body_length > cap {
            return Err(FrameError::TooLarge {
                kind,
                declared: body_length as u64,
                cap,
            });
        }
        // The cap checked above keeps this far from overflowing.
        let frame_length = HEADER.saturating_add(body_length);
        if src.len() < frame_length {
            // Bounded by the cap checked above; positive by the test.
            src.reserve(frame_length.saturating_sub(src.len()));
            return Ok(None);
        }
        src.advance(HEADER);
        let body = src.split_to(body_length).freeze();
        Ok(Some(Frame { kind, body }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    /// A frame over its type's cap is refused here, before a byte is
    /// written, with the error the peer's decoder would have given.
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        if frame.body.len() > frame.kind.max_body() {
            return Err(FrameError::TooLarge {
                kind: frame.kind,
                declared: frame.body.len() as u64,
                cap: frame.kind.max_body(),
            });
        }
        #[allow(
            clippy::arithmetic_side_effects,
            reason = "the cap checked above keeps the length far below u32::MAX"
        )]
        let (frame_length, declared) = (HEADER + frame.body.len(), frame.body.len() as u32 + 1);
        dst.reserve(frame_length);
        dst.put_u32(declared);
        dst.put_u8(frame.kind.0);
        dst.extend_from_slice(&frame.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut src = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = FrameCodec::new().decode(&mut src)? {
            frames.push(frame);
        }
        if let Some(frame) = FrameCodec::new().decode_eof(&mut src)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn round_trips_control_and_data_frames() {
        let mut wire = BytesMut::new();
        let hello = Frame::control(FrameType::HELLO, &serde_json::json!({"protocol": 1}));
        let data = Frame::data(FrameType::STDOUT, Bytes::from_static(b"\x00\xffbytes"));
        FrameCodec::new().encode(hello.clone(), &mut wire).unwrap();
        FrameCodec::new().encode(data.clone(), &mut wire).unwrap();
        assert_eq!(&wire[..5], &[0, 0, 0, 15, 0x01]);
        assert_eq!(decode_all(&wire).unwrap(), vec![hello, data]);
    }

    #[test]
    fn a_huge_declared_length_is_rejected_from_the_header_alone() {
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x22][..]);
        let error = FrameCodec::new().decode(&mut src).unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { .. }), "{error}");
        assert!(src.capacity() < 1024, "nothing reserved for the claim");
    }

    #[test]
    fn control_frames_have_the_smaller_cap() {
        let declared = (MAX_CONTROL_BODY + 2) as u32;
        let mut header = declared.to_be_bytes().to_vec();
        header.push(0x10);
        let error = decode_all(&header).unwrap_err();
        assert!(matches!(
            error,
            FrameError::TooLarge {
                cap: MAX_CONTROL_BODY,
                ..
            }
        ));
        let mut data = ((MAX_CONTROL_BODY + 2) as u32).to_be_bytes().to_vec();
        data.push(0x20);
        let mut src = BytesMut::from(&data[..]);
        assert_eq!(
            FrameCodec::new().decode(&mut src).unwrap(),
            None,
            "a data frame may be that big"
        );
    }

    #[test]
    fn zero_length_and_truncation_are_errors() {
        assert!(matches!(
            decode_all(&[0, 0, 0, 0, 1]).unwrap_err(),
            FrameError::Empty
        ));
        assert!(matches!(
            decode_all(&[0, 0, 0, 9, 0x22, b'x']).unwrap_err(),
            FrameError::Truncated
        ));
    }

    #[test]
    fn the_opening_caps_every_frame_until_it_ends() {
        let mut header = ((MAX_DATA_BODY + 1) as u32).to_be_bytes().to_vec();
        header.push(0x20);
        let mut codec = FrameCodec::opening();
        let mut src = BytesMut::from(&header[..]);
        let error = codec.decode(&mut src).unwrap_err();
        assert!(matches!(
            error,
            FrameError::TooLarge {
                cap: MAX_OPENING_BODY,
                ..
            }
        ));
        assert!(src.capacity() < 1024, "nothing reserved for the claim");
        codec.end_opening();
        let mut src = BytesMut::from(&header[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
    }
}
