//! What several targets share: cutting an input into a stream and the
//! sizes of the pieces it arrives in, so a decoder sees every chunking a
//! peer's writes and TCP's segmentation could give it; and the model of
//! what lines a byte stream holds.

// Each target uses only some of these.
#![allow(dead_code)]

use bytes::Bytes;
use socketkit::codec::Line;

/// Splits `data` into chunk sizes and a stream: the first byte says how
/// many of the following bytes are chunk sizes (0 to 15; none means the
/// stream arrives whole); the sizes repeat until the stream is used up.
pub fn split(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let count = usize::from(first % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(count);
    // A size of 0 delivers nothing: the decoder is asked again with the
    // same bytes, which it must also handle.
    (sizes.iter().map(|&b| usize::from(b)).collect(), stream)
}

/// The stream cut into pieces of the given sizes (cycled), the last one
/// possibly shorter.
pub fn pieces<'a>(stream: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    if sizes.iter().all(|&size| size == 0) {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// A limit from the input: small ones most often (where the edge cases
/// are), and the extremes.
pub fn max_length(byte: u8) -> usize {
    match byte {
        0..=199 => usize::from(byte % 20),
        200..=249 => usize::from(byte) * 7,
        250 => 8 * 1024,
        251 => usize::MAX - 2,
        252 => usize::MAX - 1,
        _ => usize::MAX,
    }
}

pub fn lines(stream: &[u8], max: usize) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (line, tail) = match memchr(rest) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        lines.push(if line.len() > max {
            Line::TooLong
        } else {
            Line::Text(Bytes::copy_from_slice(line))
        });
        rest = tail;
    }
    lines
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}
