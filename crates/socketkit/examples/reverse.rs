//! A custom service in under 40 lines: reverses each line it receives.
//!
//! Try it from two terminals:
//!     cargo run -p socketkit --example reverse      # prints: listening on tcp://127.0.0.1:7070
//!     echo hello | nc -N 127.0.0.1 7070             # prints: olleh
use socketkit::codec::{Line, LineReader};
use socketkit::server::{Connection, Server, ServerConfig, StreamHandler};
use tokio::io::AsyncWriteExt;

struct Reverse;

impl StreamHandler for Reverse {
    async fn handle(&self, conn: &mut Connection) -> socketkit::Result<()> {
        let limit = conn.max_line_length();
        let mut lines = LineReader::new(conn, limit);
        while let Some(line) = lines.next_line().await? {
            let mut reply = match line {
                Line::Text(text) => String::from_utf8_lossy(&text).chars().rev().collect(),
                Line::TooLong => "error: line too long".to_owned(),
            };
            reply.push('\n');
            lines.get_mut().write_all(reply.as_bytes()).await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> socketkit::Result<()> {
    let server = Server::bind(&["127.0.0.1:7070".parse()?], ServerConfig::default()).await?;
    server
        .endpoints()
        .for_each(|e| println!("listening on {e}"));
    let handle = server.handle();
    tokio::spawn(async move { tokio::signal::ctrl_c().await.map(|()| handle.shutdown()) });
    server.serve(Reverse).await?;
    Ok(())
}
