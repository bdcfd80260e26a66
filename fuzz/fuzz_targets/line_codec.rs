//! `LineCodec` on arbitrary bytes, limits and chunkings, against a plain
//! model: lines split at `\n`, one `\r` before it stripped, a line over the
//! limit reported once as `TooLong`, an unterminated tail still a line.
//! The buffer never holds more than the limit plus one byte between reads.
#![no_main]

#[path = "common.rs"]
mod common;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use socketkit::codec::{Line, LineCodec};
use tokio_util::codec::Decoder;

fn decode(pieces: &[&[u8]], max: usize) -> Vec<Line> {
    let mut codec = LineCodec::new(max);
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some(line) = codec.decode(&mut buf).expect("lines never fail") {
            lines.push(line);
        }
        assert!(
            buf.len() <= max.saturating_add(1),
            "{} bytes buffered with a limit of {max}",
            buf.len()
        );
    }
    while let Some(line) = codec.decode_eof(&mut buf).expect("lines never fail") {
        lines.push(line);
    }
    assert!(buf.is_empty(), "decode_eof leaves nothing behind");
    lines
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, data)) = data.split_first() else {
        return;
    };
    let max = common::max_length(limit);
    let (sizes, stream) = common::split(data);
    let expected = common::lines(stream, max);
    assert_eq!(decode(&[stream], max), expected, "whole stream");
    assert_eq!(
        decode(&common::pieces(stream, &sizes), max),
        expected,
        "chunked"
    );
});
