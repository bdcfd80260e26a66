//! A custom line service: each line comes back reversed. The service is the
//! 13 lines from `struct Reverse` to the end of its `impl`; the same server
//! in Python's socketserver, for comparison:
//!
//! ```python
//! import socketserver
//!
//! class Reverse(socketserver.StreamRequestHandler):
//!     def handle(self):
//!         for line in self.rfile:
//!             self.wfile.write(line.rstrip(b"\r\n")[::-1] + b"\n")
//!
//! with socketserver.TCPServer(("127.0.0.1", 7070), Reverse) as server:
//!     server.serve_forever()
//! ```
//!
//! What the Rust one adds without a line more: a bound on line length (the
//! server's `max_line_length`; Python's `rfile` reads any length into
//! memory), concurrent connections with a limit, an idle timeout, UTF-8
//! reversed by character rather than by byte, UDP if you bind `udp://`, and
//! a graceful stop on Ctrl-C or SIGTERM.
//!
//! Try it from two terminals:
//!
//! ```text
//! cargo run -p socketkit --example reverse      # prints: listening on 127.0.0.1:7070
//! echo hello | nc -N 127.0.0.1 7070             # prints: olleh
//! ```

use socketkit::server::{shutdown_signal, Framing, Message, MessageHandler, Reply};
use socketkit::server::{Server, ServerConfig};

pub struct Reverse;

impl MessageHandler for Reverse {
    fn framing(&self) -> Framing {
        Framing::Lines
    }

    async fn respond(&self, line: Message<'_>, reply: &mut Reply) -> socketkit::Result<()> {
        let reversed: String = String::from_utf8_lossy(line.data).chars().rev().collect();
        reply.send(reversed.as_bytes());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> socketkit::Result<()> {
    let server = Server::bind(&["127.0.0.1:7070".parse()?], ServerConfig::default()).await?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    server.serve_until(Reverse, shutdown_signal()).await?;
    Ok(())
}
