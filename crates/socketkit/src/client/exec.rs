//! The client of remote exec: handshake, then run commands, streaming local
//! stdin to the command and its output back, forwarding interrupts.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::error::{Error, ErrorKind, Result};
use crate::protocol::exec::{
    ClientHello, ErrorMessage, Exit, Ready, Refusal, Run, ServerHello, SignalRequest, Started,
};
use crate::protocol::{Frame, FrameCodec, FrameType, DATA_CHUNK, VERSION};
use crate::transport::Stream;

/// How a command ended, seen from the client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Finished {
    /// The server's `EXIT` report.
    pub exit: Exit,
    /// Bytes of stdout and stderr received.
    pub output_bytes: u64,
}

/// A connection to an exec server that has completed the handshake.
#[derive(Debug)]
pub struct ExecClient {
    wire: Framed<Stream, FrameCodec>,
    server: ServerHello,
    identity: String,
}

fn protocol_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, message)
}

fn refused(error: &ErrorMessage) -> Error {
    let kind = match error.kind {
        Refusal::Auth | Refusal::Denied => ErrorKind::Auth,
        Refusal::Busy | Refusal::Spawn => ErrorKind::Io,
        _ => ErrorKind::Protocol,
    };
    Error::new(
        kind,
        format!("server refused: {}: {}", error.kind, error.message),
    )
}

impl ExecClient {
    /// Reads the server's greeting, answers with `token` if it asks for one,
    /// and waits for `READY`.
    pub async fn handshake(stream: Stream, token: Option<String>) -> Result<ExecClient> {
        let mut wire = Framed::new(stream, FrameCodec);
        let hello = next_frame(&mut wire).await?;
        if hello.kind != FrameType::HELLO {
            return Err(protocol_error(
                "the server did not greet with HELLO: is it an exec server?",
            ));
        }
        let server: ServerHello = hello.parse().map_err(|e| protocol_error(e.to_string()))?;
        if server.protocol != VERSION {
            return Err(protocol_error(format!(
                "the server speaks protocol {}, this client {VERSION}",
                server.protocol
            )));
        }
        let wants_token = server.auth.iter().any(|a| a == "token");
        if wants_token && token.is_none() {
            return Err(Error::new(
                ErrorKind::Auth,
                "the server asks for a token (hint: --token-file FILE)",
            ));
        }
        let answer = ClientHello {
            protocol: VERSION,
            client: format!("socketkit {}", env!("CARGO_PKG_VERSION")),
            token: token.filter(|_| wants_token),
        };
        wire.send(Frame::control(FrameType::HELLO, &answer)).await?;
        let reply = next_frame(&mut wire).await?;
        let ready: Ready = expect(reply, FrameType::READY)?;
        Ok(ExecClient {
            wire,
            server,
            identity: ready.identity,
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
        let mut output_bytes = 0;
        loop {
            tokio::select! {
                frame = next_frame(&mut self.wire) => {
                    let frame = frame?;
                    match frame.kind {
                        FrameType::STDOUT | FrameType::STDERR => output_bytes += frame.body.len() as u64,
                        _ => {}
                    }
                    match frame.kind {
                        FrameType::STDOUT => write_flush(&mut stdout, &frame.body).await?,
                        FrameType::STDERR => write_flush(&mut stderr, &frame.body).await?,
                        FrameType::EXIT => {
                            let exit = frame.parse().map_err(|e| protocol_error(e.to_string()))?;
                            return Ok(Finished { exit, output_bytes });
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

async fn next_frame(wire: &mut Framed<Stream, FrameCodec>) -> Result<Frame> {
    match wire.next().await {
        Some(frame) => Ok(frame?),
        None => Err(Error::new(
            ErrorKind::Io,
            "the server closed the connection",
        )),
    }
}

/// The expected control message, or the server's `ERROR` as an error.
fn expect<T: serde::de::DeserializeOwned>(frame: Frame, kind: FrameType) -> Result<T> {
    let parse_error = |e: crate::protocol::FrameError| protocol_error(e.to_string());
    if frame.kind == FrameType::ERROR {
        return Err(refused(&frame.parse().map_err(parse_error)?));
    }
    if frame.kind != kind {
        return Err(protocol_error(format!(
            "expected a frame of type {kind}, got {}",
            frame.kind
        )));
    }
    frame.parse().map_err(parse_error)
}
