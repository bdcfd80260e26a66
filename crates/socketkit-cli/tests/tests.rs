//! The command-line tests: one integration binary (ripgrep's `tests/tests.rs`
//! shape) with one shared harness, [`util`]. Each module is one command or
//! concern and runs the real `socketkit` binary against independent peers on
//! loopback.

mod util;

mod accept_backoff;
mod access;
mod bench;
mod chat;
mod chat_browser;
mod chat_bus_attacks;
mod chat_federation;
mod chat_robustness;
mod check;
mod cmd;
mod command_line;
mod connect;
mod errors;
mod exec;
mod forward;
mod get;
mod http_proxy;
mod lifecycle;
mod listen;
mod proxy_client;
mod proxy_protocol;
mod services;
mod socks5;
mod source;
mod tls;
mod transfer;
