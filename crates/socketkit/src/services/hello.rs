//! Hello: the textbook greeting server, hardened.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::codec::{Line, LineReader};
use crate::error::Result;
use crate::server::{Connection, StreamHandler};

/// Sends `Welcome!` on connect and answers every message with
/// `Hello, NAME!`; the message `exit` closes the connection.
///
/// A message is a line (LF or CRLF). Textbook clients send `Michael` with no
/// newline and wait, so a partial line also counts once the client has sent
/// nothing more for [`Hello::pause`] (default 50 ms). Empty messages are
/// ignored. A message that is not UTF-8, or longer than the server's line
/// limit, gets an `error:` line and the connection stays up. On server
/// shutdown it says goodbye at the next message boundary.
#[derive(Debug, Clone)]
pub struct Hello {
    pause: Duration,
}

impl Default for Hello {
    fn default() -> Hello {
        Hello {
            pause: Duration::from_millis(50),
        }
    }
}

impl Hello {
    /// How long a client must stay quiet before a partial line counts.
    pub fn pause(mut self, pause: Duration) -> Hello {
        self.pause = pause;
        self
    }
}

impl StreamHandler for Hello {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let server = conn.server().clone();
        let limit = conn.max_line_length();
        conn.write_all(b"Welcome!\n").await?;
        let mut lines = LineReader::new(conn, limit).with_pause(self.pause);
        loop {
            let line = tokio::select! {
                biased;
                line = lines.next_line() => line?,
                () = server.shutdown_requested() => {
                    lines.get_mut().write_all(b"Server shutting down. Bye!\n").await?;
                    return Ok(());
                }
            };
            let reply = match line {
                None => return Ok(()),
                Some(Line::TooLong) => format!("error: message longer than {limit} bytes\n"),
                Some(Line::Text(bytes)) => match std::str::from_utf8(&bytes).map(str::trim) {
                    Err(_) => "error: message is not valid UTF-8\n".to_owned(),
                    Ok("") => continue,
                    Ok("exit") => {
                        lines.get_mut().write_all(b"Bye!\n").await?;
                        return Ok(());
                    }
                    Ok(name) => format!("Hello, {name}!\n"),
                },
            };
            lines.get_mut().write_all(reply.as_bytes()).await?;
        }
    }
}
