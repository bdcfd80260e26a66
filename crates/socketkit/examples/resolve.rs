//! A blocking handler in threads mode: each line is a host name, answered
//! with its addresses from the system resolver (`getaddrinfo`, which
//! blocks). In [`Mode::Threads`] every connection runs on a thread of its
//! own (socketserver's `ThreadingMixIn`), so a handler may block without
//! holding up anyone else; in the default tasks mode the same call would
//! stall every connection sharing its worker.
//!
//! Try it from two terminals:
//!
//! ```text
//! cargo run -p socketkit --example resolve      # prints: listening on 127.0.0.1:7072
//! echo localhost | nc -N 127.0.0.1 7072         # prints: 127.0.0.1 (and ::1, per /etc/hosts)
//! ```

use std::net::ToSocketAddrs;

use socketkit::server::{shutdown_signal, Framing, Message, MessageHandler, Mode, Reply};
use socketkit::server::{Server, ServerConfig};

pub struct Resolve;

impl MessageHandler for Resolve {
    fn framing(&self) -> Framing {
        Framing::Lines
    }

    async fn respond(&self, line: Message<'_>, reply: &mut Reply) -> socketkit::Result<()> {
        let name = String::from_utf8_lossy(line.data);
        // Blocks this connection's thread, and only it.
        let answer = match (name.trim(), 0).to_socket_addrs() {
            Ok(addrs) => addrs
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            Err(error) => format!("error: {error}"),
        };
        reply.send(answer.as_bytes());
        Ok(())
    }
}

/// Threads mode, with a thread limit: each connection costs a thread.
pub fn config() -> ServerConfig {
    ServerConfig::default()
        .mode(Mode::Threads)
        .max_connections(64)
}

#[tokio::main]
async fn main() -> socketkit::Result<()> {
    let server = Server::bind(&["127.0.0.1:7072".parse()?], config()).await?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    server.serve_until(Resolve, shutdown_signal()).await?;
    Ok(())
}
