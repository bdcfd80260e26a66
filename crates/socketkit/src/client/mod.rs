//! Clients: the programs that talk to servers, written against any reader
//! and writer so the command line only passes stdin and stdout.
//!
//! - [`relay`]: nc-style full-duplex relay between a stream and stdin/stdout;
//! - [`exchange_datagrams`]: one datagram per input line, replies printed;
//! - [`check`]: `connect_ex` port checks, concurrently;
//! - [`bench()`]: a load generator for echo servers.

mod bench;
mod check;
mod relay;

pub use bench::{bench, BenchOptions, BenchReport, Latency, Progress, Workload};
pub use check::{check, CheckOptions, CheckResult, CheckStatus};
pub use relay::{exchange_datagrams, relay, DatagramOptions, RelayOptions, RelayReport};
