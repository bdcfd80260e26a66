//! `listen` (nc -l): each accepted connection is relayed to one input and
//! one output (the command's stdin and stdout) by the same
//! [`relay`](crate::client::relay) as `connect`, one connection at a time.
//!
//! The service owns the input and output for as long as a connection runs,
//! so with a server that keeps accepting (`-k`) the input continues into
//! the next connection where the last one left it. A failed connection is
//! kept for the caller ([`Listen::failure`]): a listener's exit status
//! says whether the transfer was whole.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::{relay, RelayOptions};
use crate::error::{Error, Result};
use crate::hexdump::{HexDump, Tapped};
use crate::server::{Connection, ErrorChain, StreamHandler};

/// The nc -l service: relays each connection to `input` and `output`.
#[derive(Debug)]
pub struct Listen<I, O> {
    io: tokio::sync::Mutex<(I, O)>,
    options: RelayOptions,
    hexdump: Option<HexDump>,
    failure: Arc<Mutex<Option<Error>>>,
}

impl<I, O> Listen<I, O> {
    /// Relays with `options` (see [`RelayOptions::input_grace`]).
    pub fn new(input: I, output: O, options: RelayOptions) -> Listen<I, O> {
        Listen {
            io: tokio::sync::Mutex::new((input, output)),
            options,
            hexdump: None,
            failure: Arc::default(),
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

impl<I, O> StreamHandler for Listen<I, O>
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    async fn handle(&self, conn: &mut Connection) -> Result<()> {
        let peer = conn.peer_addr().to_string();
        let mut io = self.io.lock().await;
        let (input, output) = &mut *io;
        let relayed = match &self.hexdump {
            Some(dump) => {
                let tapped = Tapped::new(&mut *conn, dump.clone(), peer.clone());
                relay(tapped, &mut *input, &mut *output, &self.options).await
            }
            None => relay(&mut *conn, &mut *input, &mut *output, &self.options).await,
        };
        if let Err(error) = relayed {
            // Kept for the exit status rather than returned: the server's
            // log line would say it a second time.
            self.fail(Error::new(
                error.kind(),
                format!("connection from {peer}: {}", ErrorChain(&error)),
            ));
        }
        Ok(())
    }

    async fn finish(&self, conn: &mut Connection, outcome: &Result<()>) {
        // Only an abort (the drain deadline) gets here with an error.
        if let Err(error) = outcome {
            let peer = conn.peer_addr();
            self.fail(Error::new(
                error.kind(),
                format!("connection from {peer}: {}", ErrorChain(error)),
            ));
        }
    }
}
