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

#[cfg(feature = "bench")]
mod bench;
mod check;
#[cfg(feature = "exec")]
mod exec;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub(crate) mod relay;
#[cfg(feature = "transfer")]
mod send;
#[cfg(feature = "exec")]
mod session;

#[cfg(feature = "bench")]
#[cfg_attr(docsrs, doc(cfg(feature = "bench")))]
pub use bench::{bench, BenchOptions, BenchReport, Latency, Progress, Workload};
pub use check::{check, parse_targets, CheckOptions, CheckResult, CheckStatus};
#[cfg(feature = "exec")]
#[cfg_attr(docsrs, doc(cfg(feature = "exec")))]
pub use exec::{ExecClient, Finished};
pub use relay::{
    both_ways, exchange_datagrams, relay, BothWaysOptions, BothWaysReport, DatagramOptions,
    RelayOptions, RelayReport,
};
#[cfg(feature = "transfer")]
#[cfg_attr(docsrs, doc(cfg(feature = "transfer")))]
pub use send::{Sender, Sent, Source, TransferProgress};
