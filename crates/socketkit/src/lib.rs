//! socketkit: Python's `socket` + `socketserver`, rebuilt on tokio.
//!
//! Write a handler, and the framework binds (TCP, UDP, Unix stream, Unix
//! datagram), accepts, runs the handler's `setup → handle → finish`, applies
//! limits and timeouts, and shuts down without losing what it accepted.
//!
//! ```no_run
//! use socketkit::server::{shutdown_signal, Framing, Message, MessageHandler, Reply};
//! use socketkit::server::{Server, ServerConfig};
//!
//! /// Each line back reversed, on TCP, Unix streams, UDP alike.
//! struct Reverse;
//!
//! impl MessageHandler for Reverse {
//!     fn framing(&self) -> Framing {
//!         Framing::Lines
//!     }
//!
//!     async fn respond(&self, line: Message<'_>, reply: &mut Reply) -> socketkit::Result<()> {
//!         let reversed: String = String::from_utf8_lossy(line.data).chars().rev().collect();
//!         reply.send(reversed.as_bytes());
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> socketkit::Result<()> {
//! let server = Server::bind(&["127.0.0.1:0".parse()?], ServerConfig::default()).await?;
//! for addr in server.local_addrs() {
//!     println!("listening on {addr}");
//! }
//! server.serve_until(Reverse, shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! A service that owns its connection implements
//! [`StreamHandler`](server::StreamHandler) instead, with per-connection
//! state in its `Session`.
//!
//! The layers, each knowing only the one below:
//!
//! - [`addr`]: parse and resolve endpoints;
//! - [`transport`]: listeners, connectors, socket options;
//! - [`server`]: accept loop, handler lifecycle, concurrency, limits, shutdown;
//! - [`codec`]: bounded framing;
//! - [`protocol`]: the framed protocol of PROTOCOL.md;
//! - [`proxy_header`]: the PROXY protocol header (HAProxy v1/v2), decoded and encoded;
//! - [`services`]: the ready-made services, each a handler;
//! - [`client`]: relay, datagram exchange, port checks;
//! - [`hexdump`]: `-x`, a tap that dumps every chunk a stream carries;
//! - [`tls`]: certificates, fingerprints, rustls configurations.
//!
//! The core (`addr`, `transport`, `server`, `codec`, `hexdump`, the relay,
//! port checks and the simple services) is always built and needs only
//! tokio, tokio-util, bytes, socket2, tracing and libc (plus ipnet, memchr
//! and httpdate, which need nothing). Everything else is a Cargo feature,
//! all on by default: `tls`, `protocol`, `exec`, `transfer`, `cmd`,
//! `chat`, `chat-web`, `chat-redis`, `http`, `bench`, `forward`, `listen`,
//! `proxy`, `proxy-client` (ARCHITECTURE.md has the table). Without `tls`
//! a `tls://` endpoint still parses, and binding or connecting to it is an
//! [`ErrorKind::Unsupported`] error.

#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod addr;
pub mod client;
pub mod codec;
mod error;
// Hooks for `fuzz/`; only under `cargo fuzz` (see the module docs).
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod hexdump;
#[cfg(feature = "protocol")]
#[cfg_attr(docsrs, doc(cfg(feature = "protocol")))]
pub mod protocol;
pub mod proxy_header;
pub mod server;
pub mod services;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
pub mod transport;

pub use addr::Endpoint;
pub use error::{BoxError, Error, ErrorKind, Result};
