//! The client of remote exec: handshake, then run commands, streaming local
//! stdin to the command and its output back, forwarding interrupts.

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::session::{self, expect, next_frame, protocol_error, refused, Wire};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::exec::{Exit, Run, ServerHello, SignalRequest, Started};
use crate::protocol::{Frame, FrameType, DATA_CHUNK};
use crate::services::exec::check_local_server;
use crate::transport::Stream;

/// How a command ended, seen from the client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Finished {
    /// The server's `EXIT` report.
    pub exit: Exit,
    /// The status a shell would report (the code, or 128 + the signal),
    /// checked to be one a process could have.
    pub status: u8,
    /// Bytes of stdout and stderr received.
    pub output_bytes: u64,
}

/// A connection to an exec server that has completed the handshake.
#[derive(Debug)]
pub struct ExecClient {
    wire: Wire,
    server: ServerHello,
    identity: String,
}

impl ExecClient {
    /// Reads the server's greeting, answers with `token` if it asks for one,
    /// and waits for `READY`.
    ///
    /// On a Unix socket the server must run as this user
    /// ([`check_local_server`]): nothing is sent to anyone else.
    pub async fn handshake(stream: Stream, token: Option<String>) -> Result<ExecClient> {
        check_local_server(&stream)?;
        let (wire, server, identity) = session::open(stream, token, "exec").await?;
        Ok(ExecClient {
            wire,
            server,
            identity,
        })
    }

    /// The server's greeting.
    pub fn server(&self) -> &ServerHello {
        &self.server
    }

    /// Who the server took this client to be.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs one command. `stdin` (if any) is streamed to it, EOF included;
    /// its output goes to `stdout`/`stderr` as it arrives; each message on
    /// `interrupts` sends SIGINT to its process group.
    pub async fn run<I, O, E>(
        &mut self,
        request: Run,
        stdin: Option<I>,
        mut stdout: O,
        mut stderr: E,
        interrupts: &mut mpsc::Receiver<()>,
    ) -> Result<Finished>
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let request = Run {
            stdin: stdin.is_some(),
            ..request
        };
        self.wire
            .send(Frame::control(FrameType::RUN, &request))
            .await?;
        let _started: Started = expect(next_frame(&mut self.wire).await?, FrameType::STARTED)?;
        let (chunks_tx, mut chunks) = mpsc::channel(2);
        let pump = pump_input(stdin, chunks_tx);
        tokio::pin!(pump);
        let (mut pumping, mut input_open, mut interrupts_open) = (true, request.stdin, true);
        let mut output_bytes: u64 = 0;
        loop {
            tokio::select! {
                frame = next_frame(&mut self.wire) => {
                    let frame = frame?;
                    match frame.kind {
                        FrameType::STDOUT | FrameType::STDERR => output_bytes = output_bytes.saturating_add(frame.body.len() as u64),
                        _ => {}
                    }
                    match frame.kind {
                        FrameType::STDOUT => write_flush(&mut stdout, &frame.body).await?,
                        FrameType::STDERR => write_flush(&mut stderr, &frame.body).await?,
                        FrameType::EXIT => {
                            let exit: Exit = frame.parse().map_err(|e| protocol_error(e.to_string()))?;
                            let Some(status) = exit.shell_status() else {
                                return Err(protocol_error(format!(
                                    "the server reported an impossible exit (code {:?}, signal {:?})",
                                    exit.code, exit.signal
                                )));
                            };
                            return Ok(Finished { exit, status, output_bytes });
                        }
                        FrameType::ERROR => return Err(refused(&frame.parse().map_err(|e| protocol_error(e.to_string()))?)),
                        kind => return Err(protocol_error(format!("unexpected frame of type {kind} from the server"))),
                    }
                }
                () = &mut pump, if pumping => pumping = false,
                chunk = chunks.recv(), if input_open => match chunk {
                    Some(Ok(bytes)) => self.wire.send(Frame::data(FrameType::STDIN, bytes)).await?,
                    Some(Err(error)) => return Err(Error::with_source(ErrorKind::Io, "cannot read standard input", error)),
                    None => {
                        input_open = false;
                        self.wire.send(Frame::data(FrameType::STDIN_END, Bytes::new())).await?;
                    }
                },
                interrupt = interrupts.recv(), if interrupts_open => match interrupt {
                    Some(()) => {
                        let signal = SignalRequest { signal: "INT".to_owned() };
                        self.wire.send(Frame::control(FrameType::SIGNAL, &signal)).await?;
                    }
                    None => interrupts_open = false,
                },
            }
        }
    }
}

/// Reads input in chunks into `chunks`; dropping the sender marks EOF.
async fn pump_input<I: AsyncRead + Unpin>(
    input: Option<I>,
    chunks: mpsc::Sender<std::io::Result<Bytes>>,
) {
    let Some(mut input) = input else { return };
    let mut buf = BytesMut::with_capacity(DATA_CHUNK);
    loop {
        buf.reserve(DATA_CHUNK);
        let chunk = match (&mut input)
            .take(DATA_CHUNK as u64)
            .read_buf(&mut buf)
            .await
        {
            Ok(0) => return,
            Ok(_) => Ok(buf.split().freeze()),
            Err(error) => Err(error),
        };
        let failed = chunk.is_err();
        if chunks.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

async fn write_flush<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes).await?;
    out.flush().await?;
    Ok(())
}
