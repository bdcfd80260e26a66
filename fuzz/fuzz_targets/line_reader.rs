//! `LineReader` over a reader that hands out arbitrary chunks, mixing
//! `next_line` with `next_buffered_line`: the lines are those of the model
//! in `common.rs`, however they arrive and however they are asked for.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use socketkit::codec::LineReader;
use tokio::io::{AsyncRead, ReadBuf};

/// A reader that returns its pieces one read at a time (never more than
/// one piece per read), then end of stream.
struct Pieces(VecDeque<Vec<u8>>);

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut piece) = self.0.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.0.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, data)) = data.split_first() else {
        return;
    };
    let Some((&pattern, data)) = data.split_first() else {
        return;
    };
    let max = common::max_length(limit);
    let (sizes, stream) = common::split(data);
    let expected = common::lines(stream, max);
    // An empty read is end of stream, so no empty pieces.
    let pieces = common::pieces(stream, &sizes)
        .into_iter()
        .filter(|piece| !piece.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut reader = LineReader::new(Pieces(pieces), max);
    let got = runtime().block_on(async {
        let mut got = Vec::new();
        for turn in 0usize.. {
            // The pattern's bits say which calls ask only for what is
            // buffered; every eighth call reads, so the loop ends.
            let bit = turn % 8;
            if bit != 7 && pattern & (1 << bit) != 0 {
                if let Some(line) = reader.next_buffered_line().expect("lines never fail") {
                    got.push(line);
                }
                continue;
            }
            match reader.next_line().await.expect("lines never fail") {
                Some(line) => got.push(line),
                None => break,
            }
        }
        got
    });
    assert_eq!(got, expected);
});
