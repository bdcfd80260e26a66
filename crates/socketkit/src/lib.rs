//! socketkit: Python's `socket` + `socketserver`, rebuilt on tokio.
//!
//! Write a handler, and the framework binds (TCP, UDP, Unix stream, Unix
//! datagram), accepts, runs the handler's `setup → handle → finish`, applies
//! limits and timeouts, and shuts down without losing what it accepted.
//!
//! ```no_run
//! use socketkit::server::{Connection, Server, ServerConfig, StreamHandler};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! struct Shout;
//!
//! impl StreamHandler for Shout {
//!     type Session = ();
//!
//!     async fn handle(&self, conn: &mut Connection, _: &mut ()) -> socketkit::Result<()> {
//!         let mut buf = [0u8; 1024];
//!         loop {
//!             let n = conn.read(&mut buf).await?;
//!             if n == 0 {
//!                 return Ok(());
//!             }
//!             buf[..n].make_ascii_uppercase();
//!             conn.write_all(&buf[..n]).await?;
//!         }
//!     }
//! }
//!
//! # async fn run() -> socketkit::Result<()> {
//! let endpoint = "127.0.0.1:0".parse()?;
//! let server = Server::bind(&[endpoint], ServerConfig::default()).await?;
//! for bound in server.endpoints() {
//!     println!("listening on {bound}");
//! }
//! server.serve(Shout).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The layers, each knowing only the one below:
//!
//! - [`addr`]: parse and resolve endpoints;
//! - [`transport`]: listeners, connectors, socket options;
//! - [`server`]: accept loop, handler lifecycle, concurrency, limits, shutdown;
//! - [`codec`]: bounded framing;
//! - [`protocol`]: the framed protocol of PROTOCOL.md;
//! - [`services`]: the ready-made services, each a handler;
//! - [`client`]: relay, datagram exchange, port checks;
//! - [`hexdump`]: `-x`, a tap that dumps every chunk a stream carries;
//! - [`tls`]: certificates, fingerprints, rustls configurations.

#![deny(missing_docs, missing_debug_implementations)]

pub mod addr;
pub mod client;
pub mod codec;
mod error;
// Hooks for `fuzz/`; only under `cargo fuzz` (see the module docs).
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod hexdump;
pub mod protocol;
pub mod server;
pub mod services;
pub mod tls;
pub mod transport;

pub use addr::Endpoint;
pub use error::{BoxError, Error, ErrorKind, Result};
