//! `FrameCodec` on arbitrary bytes in arbitrary chunkings: the chunking
//! never changes the frames or the error, no frame exceeds its cap, the
//! buffer never holds more than one frame's worth past what was read, and
//! the frames re-encode to exactly the bytes they came from.
#![no_main]

#[path = "common.rs"]
mod common;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use socketkit::protocol::{frame_error, Frame, FrameCodec, FrameError};
use tokio_util::codec::{Decoder, Encoder};

/// The largest frame a codec can hold: header plus the largest body.
const MOST: usize = 5 + socketkit::protocol::MAX_DATA_BODY;

#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    error: Option<FrameError>,
}

fn codec() -> FrameCodec {
    FrameCodec::default()
}

fn decode(pieces: &[&[u8]]) -> Outcome {
    let mut codec = codec();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.body.len() <= frame.kind.max_body());
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(error) => return failed(frames, &error),
            }
        }
        assert!(buf.len() < MOST, "{} bytes buffered", buf.len());
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
            Err(error) => return failed(frames, &error),
        }
    }
}

fn failed(frames: Vec<Frame>, error: &std::io::Error) -> Outcome {
    let error = frame_error(error).cloned();
    assert!(error.is_some(), "a decode error is a FrameError");
    Outcome { frames, error }
}

fuzz_target!(|data: &[u8]| {
    let (sizes, stream) = common::split(data);
    let whole = decode(&[stream]);
    let chunked = decode(&common::pieces(stream, &sizes));
    assert_eq!(whole, chunked);

    let mut wire = BytesMut::new();
    for frame in whole.frames {
        codec()
            .encode(frame, &mut wire)
            .expect("a decoded frame encodes");
    }
    assert_eq!(&wire[..], &stream[..wire.len()]);
});
