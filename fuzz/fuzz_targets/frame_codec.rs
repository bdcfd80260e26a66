//! `FrameCodec` on arbitrary bytes in arbitrary chunkings: the chunking
//! never changes the frames or the error, no frame exceeds its cap, the
//! buffer never holds more than one frame's worth past what was read, and
//! the frames re-encode to exactly the bytes they came from.
#![no_main]

#[path = "common.rs"]
mod common;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use socketkit::protocol::{Frame, FrameCodec, FrameError};
use tokio_util::codec::{Decoder, Encoder};

/// The largest frame a codec can hold: header plus the largest body.
const MOST: usize = 5 + socketkit::protocol::MAX_DATA_BODY;

#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    /// The error, in words (`FrameError` is not `PartialEq`: its `Io`
    /// variant holds an `io::Error`).
    error: Option<String>,
}

/// The codec after the opening, or (`opening`) the one a server reads an
/// unauthenticated peer with, whose cap is a few KiB for every frame type.
fn codec(opening: bool) -> FrameCodec {
    if opening {
        FrameCodec::opening()
    } else {
        FrameCodec::default()
    }
}

fn decode(opening: bool, pieces: &[&[u8]]) -> Outcome {
    let mut codec = codec(opening);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.body.len() <= codec.max_body(frame.kind));
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(error) => return failed(frames, error),
            }
        }
        let most = if opening {
            5 + socketkit::protocol::MAX_OPENING_BODY
        } else {
            MOST
        };
        assert!(buf.len() < most, "{} bytes buffered", buf.len());
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {
                return Outcome {
                    frames,
                    error: None,
                }
            }
            Err(error) => return failed(frames, error),
        }
    }
}

fn failed(frames: Vec<Frame>, error: FrameError) -> Outcome {
    assert!(
        error.is_protocol(),
        "a decode error is the bytes' fault: {error}"
    );
    Outcome {
        frames,
        error: Some(error.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte's low bit picks the codec: opening or after it.
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let opening = mode & 1 == 1;
    let (sizes, stream) = common::split(data);
    let whole = decode(opening, &[stream]);
    let chunked = decode(opening, &common::pieces(stream, &sizes));
    assert_eq!(whole, chunked);

    let mut wire = BytesMut::new();
    for frame in whole.frames {
        codec(opening)
            .encode(frame, &mut wire)
            .expect("a decoded frame encodes");
    }
    assert_eq!(&wire[..], &stream[..wire.len()]);
});
