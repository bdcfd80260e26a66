//! Codec micro-benchmarks in bytes per second: socketkit's bounded
//! `LineCodec` (lines of several sizes, and an over-long line being
//! discarded) and tokio-util's `LengthDelimitedCodec` as length-prefixed
//! framing uses it (decode and encode, u32 big-endian length prefix).
//!
//!     cargo bench -p socketkit --bench codecs
//!
//! Not run by CI (it only compiles them); compare runs on one machine only.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use socketkit::codec::{Line, LineCodec};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Bytes of input per iteration: big enough to amortise the setup.
const INPUT: usize = 1 << 20;

fn lines_of(len: usize) -> BytesMut {
    let mut line = vec![b'x'; len];
    line.push(b'\n');
    let mut input = BytesMut::with_capacity(INPUT + line.len());
    while input.len() < INPUT {
        input.extend_from_slice(&line);
    }
    input
}

fn decode_lines(codec: &mut LineCodec, mut input: BytesMut) -> usize {
    let mut count = 0;
    while let Some(line) = codec.decode(&mut input).expect("lines decode") {
        count += usize::from(matches!(line, Line::Text(_)));
    }
    count
}

fn line_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("LineCodec");
    for len in [16, 64, 1024, 16 * 1024] {
        let input = lines_of(len);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(format!("decode {len} B lines"), |b| {
            b.iter_batched(
                || input.clone(),
                |input| decode_lines(&mut LineCodec::new(64 * 1024), input),
                BatchSize::LargeInput,
            )
        });
    }
    let overlong = BytesMut::from(&vec![b'x'; INPUT][..]);
    group.throughput(Throughput::Bytes(overlong.len() as u64));
    group.bench_function("discard an over-long line", |b| {
        b.iter_batched(
            || overlong.clone(),
            |input| decode_lines(&mut LineCodec::new(64 * 1024), input),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn frames_of(len: usize) -> BytesMut {
    let mut codec = LengthDelimitedCodec::new();
    let payload = Bytes::from(vec![7u8; len]);
    let mut input = BytesMut::with_capacity(INPUT + len + 4);
    while input.len() < INPUT {
        codec
            .encode(payload.clone(), &mut input)
            .expect("frame encodes");
    }
    input
}

fn length_delimited(c: &mut Criterion) {
    let mut group = c.benchmark_group("LengthDelimitedCodec");
    for len in [64, 4 * 1024, 64 * 1024] {
        let input = frames_of(len);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(format!("decode {len} B frames"), |b| {
            b.iter_batched(
                || input.clone(),
                |mut input| {
                    let mut codec = LengthDelimitedCodec::new();
                    let mut count = 0;
                    while codec.decode(&mut input).expect("frames decode").is_some() {
                        count += 1;
                    }
                    count
                },
                BatchSize::LargeInput,
            )
        });
        let payload = Bytes::from(vec![7u8; len]);
        let frames = INPUT / (len + 4);
        group.throughput(Throughput::Bytes((frames * (len + 4)) as u64));
        group.bench_function(format!("encode {len} B frames"), |b| {
            let mut out = BytesMut::with_capacity(INPUT + len + 4);
            b.iter(|| {
                out.clear();
                let mut codec = LengthDelimitedCodec::new();
                for _ in 0..frames {
                    codec
                        .encode(payload.clone(), &mut out)
                        .expect("frame encodes");
                }
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, line_codec, length_delimited);
criterion_main!(benches);
