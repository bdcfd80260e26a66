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

pub mod auth;
pub mod chat;
pub mod cmd;
pub mod contain;
mod daytime;
mod discard;
mod echo;
pub mod exec;
mod forward;
mod hello;
mod listen;
pub mod recv;
mod session;
mod upper;

pub use chat::Chat;
pub use daytime::Daytime;
pub use discard::Discard;
pub use echo::Echo;
pub use forward::Forward;
pub use hello::Hello;
pub use listen::Listen;
pub use upper::Upper;
