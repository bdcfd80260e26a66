//! Ready-made services, one module each, every one an ordinary handler on
//! the [`server`](crate::server) API, so each doubles as an example.
//!
//! | service | transports | behaviour |
//! |---|---|---|
//! | [`Echo`] | stream, datagram | RFC 862: every byte back |
//! | [`Upper`] | stream, datagram | ASCII letters upper-cased, other bytes unchanged |
//! | [`Hello`] | stream | `Welcome!`, then `Hello, NAME!` per line; `exit` closes |
//! | [`Discard`] | stream, datagram | RFC 863: reads and drops everything |
//! | [`Daytime`] | stream, datagram | RFC 867: the date and time, then close |
//! | [`exec::Exec`] | stream | remote commands over the framed protocol |
//! | [`cmd::Cmd`] | stream | inetd: a program per connection, the socket as its stdin and stdout |
//! | [`recv::Recv`] | stream | receives files over the framed protocol |
//! | [`Forward`] | stream | each connection relayed to a fixed target (port forwarding, TLS wrap/unwrap) |
//! | [`Listen`] | stream | nc -l: each connection relayed to one input and output (stdin/stdout) |
//! | [`Chat`] | stream (+ web page) | multi-room chat for `nc` and browsers, federated over Redis |
//! | [`proxy`] | stream (+ UDP relay) | proxy servers: SOCKS5 and HTTP ([`proxy::HttpProxy`]), with users and a destination policy |

#[cfg(feature = "exec")]
#[cfg_attr(docsrs, doc(cfg(feature = "exec")))]
pub mod auth;
#[cfg(feature = "chat")]
#[cfg_attr(docsrs, doc(cfg(feature = "chat")))]
pub mod chat;
#[cfg(feature = "cmd")]
#[cfg_attr(docsrs, doc(cfg(feature = "cmd")))]
pub mod cmd;
#[cfg(feature = "exec")]
#[cfg_attr(docsrs, doc(cfg(feature = "exec")))]
pub mod contain;
mod daytime;
mod discard;
mod echo;
#[cfg(feature = "exec")]
#[cfg_attr(docsrs, doc(cfg(feature = "exec")))]
pub mod exec;
#[cfg(feature = "exec")]
#[cfg_attr(docsrs, doc(cfg(feature = "exec")))]
pub mod exposure;
#[cfg(feature = "forward")]
mod forward;
mod hello;
#[cfg(feature = "listen")]
mod listen;
#[cfg(feature = "proxy")]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy")))]
pub mod proxy;
#[cfg(feature = "transfer")]
#[cfg_attr(docsrs, doc(cfg(feature = "transfer")))]
pub mod recv;
#[cfg(feature = "exec")]
mod session;
mod upper;

#[cfg(feature = "chat")]
#[cfg_attr(docsrs, doc(cfg(feature = "chat")))]
pub use chat::Chat;
pub use daytime::Daytime;
pub use discard::Discard;
pub use echo::Echo;
#[cfg(feature = "forward")]
#[cfg_attr(docsrs, doc(cfg(feature = "forward")))]
pub use forward::Forward;
pub use hello::Hello;
#[cfg(feature = "listen")]
#[cfg_attr(docsrs, doc(cfg(feature = "listen")))]
pub use listen::Listen;
pub use upper::Upper;
