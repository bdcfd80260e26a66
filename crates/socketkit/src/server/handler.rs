//! The handler traits a service implements, and what a handler is given.
//!
//! A stream handler follows socketserver's `BaseRequestHandler`: `setup`,
//! `handle`, then `finish`, which runs whatever happened before it. A
//! datagram handler gets one datagram at a time and may fill in a reply that
//! the server sends back to the sender. One type can implement both, so a
//! service is written once for TCP and UDP.

use std::future::Future;
use std::sync::Arc;

use super::{Connection, ServerHandle};
use crate::addr::{Endpoint, SocketKind};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{DatagramSocket, SocketAddress};

/// A service on stream sockets (TCP, Unix stream).
///
/// One value serves every connection (it is shared, like a Python handler
/// class), so per-connection state lives in locals of `handle`.
pub trait StreamHandler: Send + Sync + 'static {
    /// Admission check before anything is read (socketserver's
    /// `verify_request`). A refused connection is closed at once. Default:
    /// admit everyone.
    fn verify(&self, peer: &SocketAddress) -> bool {
        let _ = peer;
        true
    }

    /// Runs first; an error skips `handle`. Default: nothing.
    fn setup(&self, conn: &mut Connection) -> impl Future<Output = Result<()>> + Send {
        let _ = conn;
        async { Ok(()) }
    }

    /// Serves the connection until done. Returning ends the connection: the
    /// server flushes, half-closes and lets the peer finish.
    fn handle(&self, conn: &mut Connection) -> impl Future<Output = Result<()>> + Send;

    /// Always runs last, with the outcome of `setup`/`handle` (an error, the
    /// peer gone, an idle timeout, or the drain deadline's abort). Default:
    /// nothing.
    fn finish(
        &self,
        conn: &mut Connection,
        outcome: &Result<()>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (conn, outcome);
        async {}
    }
}

/// A service on datagram sockets (UDP, Unix datagram).
///
/// Datagrams are handled one at a time on each socket's receive loop, so a
/// flood queues in the kernel (which drops the excess), never in memory.
pub trait DatagramHandler: Send + Sync + 'static {
    /// Handles one datagram; whatever is put in `reply` goes back to the
    /// sender (unless the sender may not be answered, see the server docs).
    fn handle_datagram(
        &self,
        request: Datagram<'_>,
        reply: &mut Reply,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// One received datagram and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// The payload.
    pub data: &'a [u8],
    /// The sender.
    pub peer: &'a SocketAddress,
    /// The socket it arrived on.
    pub local: &'a Endpoint,
    /// Shuts the server down when asked.
    pub server: &'a ServerHandle,
    /// Sends from the socket it arrived on, later and from anywhere (a
    /// reply that is not an immediate answer); clone it to keep it.
    pub sender: &'a DatagramSender,
}

/// Sends datagrams from a server's datagram socket, outside the
/// request/reply rhythm of [`DatagramHandler`] (say, a line typed later).
/// The inetd rule holds here too: a peer that may not be answered (a
/// privileged port, a broadcast or multicast source) is refused.
#[derive(Debug, Clone)]
pub struct DatagramSender {
    pub(crate) socket: Arc<DatagramSocket>,
}

impl DatagramSender {
    /// Sends `data` to `peer` as one datagram.
    pub async fn send_to(&self, data: &[u8], peer: &SocketAddress) -> Result<()> {
        if !super::may_answer(peer) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{peer} may not be answered (a privileged port, a broadcast or multicast source, or an unnamed socket)"),
            ));
        }
        self.socket
            .send_to(data, peer)
            .await
            .map(drop)
            .map_err(|e| Error::with_source(ErrorKind::Io, format!("cannot send to {peer}"), e))
    }
}

/// The answer to a datagram. Empty-but-sent is distinct from not sent: RFC
/// 862 echoes a zero-length datagram with a zero-length one.
#[derive(Debug, Default)]
pub struct Reply {
    buf: Vec<u8>,
    armed: bool,
}

impl Reply {
    /// Replies with a copy of `data`.
    pub fn send(&mut self, data: &[u8]) {
        self.buffer().extend_from_slice(data);
    }

    /// An empty buffer to build the reply in; the reply is sent even if it
    /// stays empty.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.buf.clear();
        self.armed = true;
        &mut self.buf
    }

    pub(crate) fn take(&mut self) -> Option<&[u8]> {
        std::mem::take(&mut self.armed).then_some(self.buf.as_slice())
    }
}

/// The handlers a server runs: for streams, for datagrams, or both.
///
/// A plain [`StreamHandler`] converts into this, so `server.serve(MyHandler)`
/// works; use [`Handlers::datagram`] or [`Handlers::both`] otherwise.
#[derive(Debug)]
pub struct Handlers<S, D> {
    pub(crate) stream: Option<Arc<S>>,
    pub(crate) datagram: Option<Arc<D>>,
}

impl<S, D> Handlers<S, D> {
    /// Whether these handlers can serve sockets of `kind`.
    pub fn supports(&self, kind: SocketKind) -> bool {
        match kind {
            SocketKind::Stream => self.stream.is_some(),
            SocketKind::Datagram => self.datagram.is_some(),
        }
    }
}

impl<S: StreamHandler> Handlers<S, Unsupported> {
    /// Stream sockets only.
    pub fn stream(handler: S) -> Self {
        Handlers {
            stream: Some(Arc::new(handler)),
            datagram: None,
        }
    }
}

impl<D: DatagramHandler> Handlers<Unsupported, D> {
    /// Datagram sockets only.
    pub fn datagram(handler: D) -> Self {
        Handlers {
            stream: None,
            datagram: Some(Arc::new(handler)),
        }
    }
}

impl<H: StreamHandler + DatagramHandler> Handlers<H, H> {
    /// One service on both kinds of socket.
    pub fn both(handler: H) -> Self {
        let handler = Arc::new(handler);
        Handlers {
            stream: Some(handler.clone()),
            datagram: Some(handler),
        }
    }
}

impl<S: StreamHandler> From<S> for Handlers<S, Unsupported> {
    fn from(handler: S) -> Self {
        Handlers::stream(handler)
    }
}

/// Stands for "no handler" in [`Handlers`]; has no values.
#[derive(Debug)]
pub enum Unsupported {}

impl StreamHandler for Unsupported {
    async fn handle(&self, _conn: &mut Connection) -> Result<()> {
        match *self {}
    }
}

impl DatagramHandler for Unsupported {
    async fn handle_datagram(&self, _request: Datagram<'_>, _reply: &mut Reply) -> Result<()> {
        match *self {}
    }
}
