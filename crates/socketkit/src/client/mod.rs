//! Clients: the programs that talk to servers, written against any reader
//! and writer so the command line only passes stdin and stdout.
//!
//! - [`relay`]: nc-style full-duplex relay between a stream and stdin/stdout;
//! - [`exchange_datagrams`]: one datagram per input line, replies printed;
//! - [`check`]: `connect_ex` port checks, concurrently;
//! - [`ExecClient`]: remote commands over the framed protocol;
//! - [`Sender`]: file transfer over the framed protocol;
//! - [`http`]: `get`, an HTTP/1.1 client (hyper over socketkit's stream);
//! - [`bench()`]: a load generator for echo servers.

mod bench;
mod check;
mod exec;
pub mod http;
pub(crate) mod relay;
mod send;
mod session;

pub use bench::{
    bench, BenchOptions, BenchReport, Latency, Progress, Workload, DEFAULT_BENCH_DURATION,
    DEFAULT_REPLY_TIMEOUT,
};
pub use check::{
    check, parse_targets, CheckOptions, CheckResult, CheckStatus, DEFAULT_CHECK_CONCURRENCY,
    DEFAULT_CHECK_TIMEOUT,
};
pub use exec::{ExecClient, Finished};
pub use relay::{
    both_ways, exchange_datagrams, relay, BothWaysOptions, BothWaysReport, DatagramOptions,
    RelayOptions, RelayReport, DEFAULT_DATAGRAM_WAIT,
};
pub use send::{Sender, Sent, Source, TransferProgress};
