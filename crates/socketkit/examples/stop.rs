//! A handler that shuts the server down: an echo of lines where the line
//! `stop` stops the whole server, gracefully (the listener closes, other
//! connections get the drain deadline to finish). Any handler can do this
//! through the server handle its message or connection carries.
//!
//! Try it from two terminals:
//!
//! ```text
//! cargo run -p socketkit --example stop         # prints: listening on 127.0.0.1:7073
//! nc 127.0.0.1 7073                             # type hi (echoed), then stop: the server exits
//! ```

use socketkit::server::{shutdown_signal, Framing, Message, MessageHandler, Reply};
use socketkit::server::{Server, ServerConfig};

pub struct Stop;

impl MessageHandler for Stop {
    fn framing(&self) -> Framing {
        Framing::Lines
    }

    async fn respond(&self, line: Message<'_>, reply: &mut Reply) -> socketkit::Result<()> {
        if line.data == b"stop" {
            line.server.shutdown();
            reply.send(b"stopping");
        } else {
            reply.echo();
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> socketkit::Result<()> {
    let server = Server::bind(&["127.0.0.1:7073".parse()?], ServerConfig::default()).await?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    let summary = server.serve_until(Stop, shutdown_signal()).await?;
    println!("stopped after {} connections", summary.connections);
    Ok(())
}
