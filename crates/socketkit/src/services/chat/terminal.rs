//! The chat over a byte stream, for `nc`, `telnet` and `socketkit connect`:
//! lines in (LF or CRLF, bounded by [`LineReader`]), lines out.
//!
//! One task per connection reads and writes concurrently: a `select!` over
//! the next line, the next batch of events and the server's shutdown. A
//! batch goes out in one write under the write deadline; a client that lets
//! its queue overflow or its write pass the deadline is too slow and is
//! disconnected, so no one else waits for it. Every write is flushed
//! ([`Terminal::send`]): a TLS stream holds written bytes until then.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::participant::{Flow, Participant};
use super::text::sanitize;
use super::Chat;
use crate::codec::{Line, LineReader};
use crate::error::{Error, ErrorKind, Result};
use crate::server::{Connection, StreamHandler};

const PROMPT: &[u8] = b"*** Welcome to socketkit chat. Your nickname? (Enter for a guest name)\r\n";
const TOO_SLOW: &[u8] = b"error: you are not reading fast enough to keep up; disconnecting\r\n";
/// How long the last words to a too-slow client may take.
const FAREWELL_DEADLINE: Duration = Duration::from_secs(1);
/// Write buffer kept between batches; a bigger batch's buffer is released
/// after it is sent, so a burst does not pin memory on every connection.
const OUT_BUFFER_KEEP: usize = 16 * 1024;

impl StreamHandler for Chat {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let server = conn.server().clone();
        let (read, write) = tokio::io::split(conn);
        let mut lines = LineReader::new(read, self.hub.config().max_message);
        let write_timeout = self.hub.config().write_timeout;
        let mut write = Terminal {
            write,
            deadline: write_timeout,
        };
        write.send(PROMPT).await?;
        let first = tokio::select! {
            line = lines.next_line() => line?,
            () = server.shutdown_requested() => return Ok(()),
        };
        let nick = match first {
            None => return Ok(()),
            Some(Line::Text(bytes)) => sanitize(&String::from_utf8_lossy(&bytes)),
            Some(Line::TooLong) => String::from("\u{fffd}"),
        };
        let (mut participant, mut inbox) = self.join(Some(nick.trim()), false);
        let mut out = Vec::new();
        let mut resume_at = None;
        // Armed once: a fresh shutdown future per loop would take the
        // token's lock on every batch.
        let shutdown = server.shutdown_requested();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    participant.shutdown();
                    render(&mut out, inbox.take_now());
                    return write.send(&out).await;
                }
                received = inbox.recv_text(&mut out) => match received {
                    Ok(()) => {
                        let sent = write.send(&out).await;
                        out.clear();
                        out.shrink_to(OUT_BUFFER_KEEP);
                        if let Err(e) = sent {
                            // A deadline is a slow reader; anything else is
                            // a peer that went away (an ordinary leave).
                            if e.is_timeout() {
                                participant.too_slow();
                            }
                            return Err(e);
                        }
                    }
                    Err(too_slow) => {
                        participant.too_slow();
                        write.deadline = FAREWELL_DEADLINE;
                        let _ = write.send(TOO_SLOW).await;
                        return Err(Error::new(ErrorKind::Io, too_slow.to_string()));
                    }
                },
                line = next_line(&mut lines, resume_at) => {
                    let Some(line) = line? else {
                        return Ok(());
                    };
                    match submit_read(&mut participant, &mut lines, line)? {
                        Flow::Continue => resume_at = None,
                        Flow::PauseUntil(at) => resume_at = Some(at),
                        Flow::Quit => {
                            render(&mut out, inbox.take_now());
                            return write.send(&out).await;
                        }
                    }
                }
            }
        }
    }
}

/// Submits `line` and the lines already read behind it, then wakes the
/// room once for all of them; stops early when the member must pause or
/// quit.
fn submit_read<R: tokio::io::AsyncRead + Unpin>(
    participant: &mut Participant,
    lines: &mut LineReader<R>,
    mut line: Line,
) -> std::io::Result<Flow> {
    let flow = loop {
        let flow = match line {
            Line::TooLong => {
                participant.too_long();
                Flow::Continue
            }
            Line::Text(bytes) => participant.submit_more(&bytes),
        };
        if flow != Flow::Continue {
            break flow;
        }
        match lines.next_buffered_line()? {
            Some(next) => line = next,
            None => break flow,
        }
    };
    participant.flush();
    Ok(flow)
}

/// The next line, once the rate limit allows reading it.
async fn next_line<R: tokio::io::AsyncRead + Unpin>(
    lines: &mut LineReader<R>,
    resume_at: Option<Instant>,
) -> std::io::Result<Option<Line>> {
    if let Some(at) = resume_at {
        tokio::time::sleep_until(at).await;
    }
    lines.next_line().await
}

fn render(out: &mut Vec<u8>, events: &[std::sync::Arc<super::Event>]) {
    out.clear();
    for event in events {
        out.extend_from_slice(event.text());
    }
}

/// A terminal's write half: every batch is written and flushed under the
/// write deadline, whatever the transport (TLS sends nothing until a flush).
struct Terminal<W> {
    write: W,
    deadline: Duration,
}

impl<W: AsyncWrite + Unpin> Terminal<W> {
    async fn send(&mut self, out: &[u8]) -> Result<()> {
        let write = async {
            self.write.write_all(out).await?;
            self.write.flush().await
        };
        match tokio::time::timeout(self.deadline, write).await {
            Ok(written) => Ok(written?),
            Err(_elapsed) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "a write to a chat client took over {:?}; disconnected as too slow",
                    self.deadline
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{ClientAuth, ClientTls, Identity, ServerTls, Verification};
    use rustls::pki_types::ServerName;
    use tokio::io::AsyncReadExt;

    /// Over TLS through a pipe that is always nearly full, a batch's last
    /// records stay inside TLS unless the terminal writer flushes: the
    /// reader would wait for them forever.
    #[tokio::test]
    async fn a_batch_over_tls_arrives_whole_through_a_narrow_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::self_signed(dir.path(), &["localhost".into()]).unwrap();
        let server = ServerTls::new(identity, &ClientAuth::None, false).unwrap();
        let client = ClientTls::new(&Verification::Pin(server.fingerprint()), None).unwrap();
        let (near, far) = tokio::io::duplex(256);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.config.clone());
        let connector = tokio_rustls::TlsConnector::from(client.config.clone());
        let name = ServerName::try_from("localhost").unwrap();
        let (accepted, connected) =
            tokio::join!(acceptor.accept(near), connector.connect(name, far));
        let (mut stream, mut peer) = (accepted.unwrap(), connected.unwrap());
        let batch: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; 200_000];
            peer.read_exact(&mut got).await.map(|_| got)
        });
        let mut terminal = Terminal {
            write: &mut stream,
            deadline: Duration::from_secs(10),
        };
        terminal.send(&batch).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the batch's last bytes never left TLS")
            .unwrap()
            .unwrap();
        assert!(got == batch);
        drop(stream);
    }
}
