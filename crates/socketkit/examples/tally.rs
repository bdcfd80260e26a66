//! A service with per-connection state: each line is a whole number,
//! answered with the running total of this connection, and when the
//! connection ends its total is added to the server's grand total. The
//! per-connection part is the handler's `Session`: `setup` makes it,
//! `handle` updates it, `finish` gets it back (socketserver keeps such state
//! on the handler instance; here one handler value serves every connection,
//! so what is shared lives on `self` and the rest in the session).
//!
//! Try it from two terminals:
//!
//! ```text
//! cargo run -p socketkit --example tally        # prints: listening on 127.0.0.1:7074
//! printf '1\n2\n-5\n' | nc -N 127.0.0.1 7074    # prints: 1 3 -2, one per line
//! ```

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use socketkit::codec::Line;
use socketkit::server::{shutdown_signal, Connection, Server, ServerConfig, StreamHandler};
use tokio::io::AsyncWriteExt;

#[derive(Default)]
pub struct Tally {
    /// Every finished connection's total, added up.
    pub grand_total: Arc<AtomicI64>,
}

/// One connection's state.
#[derive(Default)]
pub struct Running {
    total: i64,
}

impl StreamHandler for Tally {
    type Session = Running;

    async fn handle(&self, conn: &mut Connection, tally: &mut Running) -> socketkit::Result<()> {
        let (mut lines, mut out) = conn.lines();
        while let Some(line) = lines.next_line().await? {
            let number = match &line {
                Line::Text(text) => std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.trim().parse().ok()),
                Line::TooLong => None,
            };
            let answer = match number.and_then(|n: i64| tally.total.checked_add(n)) {
                Some(total) => {
                    tally.total = total;
                    format!("{total}\n")
                }
                None => "error: not a whole number, or the total would overflow\n".to_owned(),
            };
            out.write_all(answer.as_bytes()).await?;
        }
        Ok(())
    }

    async fn finish(
        &self,
        _conn: &mut Connection,
        tally: Option<Running>,
        _outcome: &socketkit::Result<()>,
    ) {
        if let Some(tally) = tally {
            // Wrapping: a grand total is a statistic, not worth a panic.
            self.grand_total.fetch_add(tally.total, Ordering::Relaxed);
        }
    }
}

#[tokio::main]
async fn main() -> socketkit::Result<()> {
    let server = Server::bind(&["127.0.0.1:7074".parse()?], ServerConfig::default()).await?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    let tally = Tally::default();
    let grand_total = tally.grand_total.clone();
    server.serve_until(tally, shutdown_signal()).await?;
    println!("grand total {}", grand_total.load(Ordering::Relaxed));
    Ok(())
}
