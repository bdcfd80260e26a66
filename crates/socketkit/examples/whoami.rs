//! A datagram service: every datagram is answered with the address it came
//! from, the way a STUN server tells a client how the network sees it. A
//! [`DatagramHandler`] gets one datagram and a [`Reply`] to fill in; the
//! server sends the reply back (never to a privileged port or a broadcast
//! source, which is how two UDP services get tricked into a loop).
//!
//! Try it from two terminals:
//!
//! ```text
//! cargo run -p socketkit --example whoami       # prints: listening on 127.0.0.1:7071
//! echo hi | nc -u -w1 127.0.0.1 7071            # prints: 127.0.0.1:PORT (nc's port)
//! ```

use socketkit::server::{shutdown_signal, Datagram, DatagramHandler, Handlers, Reply};
use socketkit::server::{Server, ServerConfig};

pub struct WhoAmI;

impl DatagramHandler for WhoAmI {
    async fn handle_datagram(
        &self,
        datagram: Datagram<'_>,
        reply: &mut Reply,
    ) -> socketkit::Result<()> {
        reply.send(format!("{}\n", datagram.peer).as_bytes());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> socketkit::Result<()> {
    let server = Server::bind(&["udp://127.0.0.1:7071".parse()?], ServerConfig::default()).await?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    server
        .serve_until(Handlers::datagram(WhoAmI), shutdown_signal())
        .await?;
    Ok(())
}
