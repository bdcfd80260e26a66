//! `listen` (nc -l): each accepted connection is relayed to one input and
//! one output (the command's stdin and stdout) by the same
//! [`relay`](crate::client::relay) as `connect`, one connection at a time;
//! on datagram sockets every datagram is written to the output and each
//! input line goes, as one datagram, to the sender of the latest one.
//!
//! The service owns the input and output for as long as a connection runs,
//! so with a server that keeps accepting (`-k`) the input continues into
//! the next connection where the last one left it. A failed connection is
//! kept for the caller ([`Listen::failure`]): a listener's exit status
//! says whether the transfer was whole.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::client::relay::{write_reply, MAX_INPUT_LINE};
use crate::client::{relay, RelayOptions};
use crate::codec::{Line, LineReader};
use crate::error::{Error, ErrorKind, Result};
use crate::hexdump::{HexDump, Tapped};
use crate::server::{Connection, Datagram, DatagramHandler, DatagramSender, Reply, StreamHandler};
use crate::transport::SocketAddress;

/// The nc -l service: relays each connection (or datagram) to `input` and
/// `output`.
#[derive(Debug)]
pub struct Listen<I, O> {
    input: Arc<tokio::sync::Mutex<I>>,
    output: tokio::sync::Mutex<O>,
    options: RelayOptions,
    hexdump: Option<HexDump>,
    failure: Arc<Mutex<Option<Error>>>,
    /// Where input lines go on datagram sockets: the latest sender.
    latest: Arc<watch::Sender<Option<(DatagramSender, SocketAddress)>>>,
}

impl<I, O> Listen<I, O> {
    /// Relays with `options` (see [`RelayOptions::input_grace`]).
    pub fn new(input: I, output: O, options: RelayOptions) -> Listen<I, O> {
        Listen {
            input: Arc::new(tokio::sync::Mutex::new(input)),
            output: tokio::sync::Mutex::new(output),
            options,
            hexdump: None,
            failure: Arc::default(),
            latest: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Dumps every chunk each way to `dump`.
    pub fn with_hexdump(mut self, dump: HexDump) -> Listen<I, O> {
        self.hexdump = Some(dump);
        self
    }

    /// Where the last failed connection's error is left; read it after the
    /// server stopped.
    pub fn failure(&self) -> Arc<Mutex<Option<Error>>> {
        self.failure.clone()
    }

    fn fail(&self, error: Error) {
        if let Ok(mut slot) = self.failure.lock() {
            *slot = Some(error);
        }
    }
}

impl<I: AsyncRead + Unpin + Send + 'static, O> Listen<I, O> {
    /// For datagram sockets: sends each input line (without its ending) as
    /// one datagram to the sender of the latest datagram received. Input is
    /// not read before a first datagram names a peer. Ends at end of input.
    pub fn datagram_input(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let input = self.input.clone();
        let hexdump = self.hexdump.clone();
        let mut latest = self.latest.subscribe();
        async move {
            let mut input = input.lock().await;
            let mut lines = LineReader::new(&mut *input, MAX_INPUT_LINE);
            if latest.wait_for(Option::is_some).await.is_err() {
                return Ok(());
            }
            loop {
                let line = lines
                    .next_line()
                    .await
                    .map_err(|e| Error::with_source(ErrorKind::Io, "cannot read the input", e))?;
                let line = match line {
                    None => return Ok(()),
                    Some(Line::Text(line)) => line,
                    Some(Line::TooLong) => {
                        return Err(Error::new(
                            ErrorKind::Io,
                            format!("input line longer than a datagram ({MAX_INPUT_LINE} bytes)"),
                        ))
                    }
                };
                let target = latest.borrow_and_update().clone();
                if let Some((sender, peer)) = target {
                    // One undeliverable line (an ICMP refusal, a peer the
                    // inetd rule will not answer) does not end the listener.
                    if let Err(error) = sender.send_to(&line, &peer).await {
                        tracing::warn!(%peer, error = %format_args!("{error:#}"), "line not sent");
                        continue;
                    }
                    if let Some(dump) = &hexdump {
                        dump.chunk(format_args!("> {} bytes to {peer}", line.len()), 0, &line);
                    }
                }
            }
        }
    }
}

impl<I, O> StreamHandler for Listen<I, O>
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let peer = conn.peer_addr().to_string();
        let mut input = self.input.lock().await;
        let mut output = self.output.lock().await;
        let (input, output) = (&mut *input, &mut *output);
        let relayed = match &self.hexdump {
            Some(dump) => {
                let tapped = Tapped::dumped(&mut *conn, dump.clone(), peer.clone());
                relay(tapped, input, output, &self.options).await
            }
            None => relay(&mut *conn, input, output, &self.options).await,
        };
        if let Err(error) = relayed {
            // Kept for the exit status rather than returned: the server's
            // log line would say it a second time.
            self.fail(Error::new(
                error.kind(),
                format!("connection from {peer}: {error:#}"),
            ));
        }
        Ok(())
    }

    async fn finish(&self, conn: &mut Connection, _session: Option<()>, outcome: &Result<()>) {
        // Only an abort (the drain deadline) gets here with an error.
        if let Err(error) = outcome {
            let peer = conn.peer_addr();
            self.fail(Error::new(
                error.kind(),
                format!("connection from {peer}: {error:#}"),
            ));
        }
    }
}

impl<I, O> DatagramHandler for Listen<I, O>
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    async fn handle_datagram(&self, request: Datagram<'_>, _reply: &mut Reply) -> Result<()> {
        self.latest
            .send_replace(Some((request.sender.clone(), request.peer.clone())));
        if let Some(dump) = &self.hexdump {
            let (n, peer) = (request.data.len(), request.peer);
            dump.chunk(format_args!("< {n} bytes from {peer}"), 0, request.data);
        }
        let mut output = self.output.lock().await;
        write_reply(&mut *output, request.data)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot write the output", e))
    }
}
