//! The handler traits a service implements, and what a handler is given.
//!
//! A stream handler follows socketserver's `BaseRequestHandler`: `setup`
//! makes the connection's [`StreamHandler::Session`], `handle` serves with
//! it, then `finish` gets it back, whatever happened before. A datagram
//! handler gets one datagram at a time and may fill in a reply that the
//! server sends back to the sender. A [`MessageHandler`] is the short form
//! for services that answer message by message: one body serves chunks or
//! lines of a stream and datagrams alike, so echo is written once.

use std::future::{poll_fn, Future};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::{Connection, ServerHandle};
use super::{Lease, RELAY_BUFFER};
use crate::addr::{Endpoint, SocketKind};
use crate::codec::Line;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{DatagramSocket, SocketAddress};

/// A service on stream sockets (TCP, Unix stream).
///
/// One value serves every connection (it is shared, like a Python handler
/// class); what belongs to one connection is its [`Session`](Self::Session),
/// made by `setup` and lent to `handle` and `finish`.
pub trait StreamHandler: Send + Sync + 'static {
    /// Per-connection state (socketserver's attributes set on `self` in
    /// `setup`): `()` for a stateless service. `Default` so that a handler
    /// without `setup` still has one; a service whose state has no sensible
    /// default builds it in `setup` all the same.
    type Session: Default + Send;

    /// Admission check before anything is read (socketserver's
    /// `verify_request`). A refused connection is closed at once. Default:
    /// admit everyone.
    fn verify(&self, peer: &SocketAddress) -> bool {
        let _ = peer;
        true
    }

    /// Runs first and makes the session; an error skips `handle`.
    /// Default: `Session::default()`.
    fn setup(&self, conn: &mut Connection) -> impl Future<Output = Result<Self::Session>> + Send {
        let _ = conn;
        async { Ok(Self::Session::default()) }
    }

    /// Serves the connection until done. Returning ends the connection: the
    /// server flushes, half-closes and lets the peer finish.
    fn handle(
        &self,
        conn: &mut Connection,
        session: &mut Self::Session,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Whether, in [`Mode::Threads`](super::Mode::Threads), the
    /// connection's thread may wait for its peer in a blocking read, as a
    /// ThreadingMixIn handler does: one system call per message where an
    /// event loop needs two (its wait, then the read). Say `true` only if
    /// `setup` and `handle` wait on nothing but this connection's reads and
    /// writes: while a read blocks, no other future of the thread is polled
    /// (no `select!` on a channel or a timer wakes, no task spawned on the
    /// thread runs). The idle timeout still ends a blocked read (as the
    /// socket's timeout, counted from the read's start), the drain
    /// deadline's abort fails it as aborted, and `finish` runs on the event
    /// loop as usual. Plain
    /// TCP and Unix connections only; TLS ones stay on the event loop.
    /// Default: `false`; a [`MessageHandler`] decides with its own
    /// [`MessageHandler::blocking_reads`].
    fn blocking_reads(&self) -> bool {
        false
    }

    /// Always runs last, with the session (`None` if `setup` failed) and
    /// the outcome of `setup`/`handle` (an error, the peer gone, an idle
    /// timeout, or the drain deadline's abort). Default: nothing.
    fn finish(
        &self,
        conn: &mut Connection,
        session: Option<Self::Session>,
        outcome: &Result<()>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (conn, session, outcome);
        async {}
    }
}

/// A service that answers message by message, written once for streams
/// and datagrams (socketserver's one handler for TCP and UDP).
///
/// On a datagram socket each datagram is a message. On a stream the
/// [`Framing`] says what a message is; each reply is written back in
/// order, and the connection ends when the peer finishes sending (or at
/// once, for [`Framing::Connect`]). Every type that implements this is a
/// [`StreamHandler`] and a [`DatagramHandler`], so `server.serve(MyService)`
/// and `Handlers::both(MyService)` take it as it is.
pub trait MessageHandler: Send + Sync + 'static {
    /// What a message is on a stream. Default: [`Framing::Chunks`].
    fn framing(&self) -> Framing {
        Framing::Chunks
    }

    /// Whether, in [`Mode::Threads`](super::Mode::Threads), the server may
    /// wait for the next message in a blocking read (see
    /// [`StreamHandler::blocking_reads`]). `respond` runs between reads, so
    /// it may await anything; what it must not expect is a task it spawned
    /// on the connection's thread to run while the server waits for the
    /// peer. Default: `true`.
    fn blocking_reads(&self) -> bool {
        true
    }

    /// Answers one message: put the answer in `reply` (or
    /// [`Reply::echo`] the message, which may be changed in place); leave
    /// `reply` alone to answer nothing. An error ends a stream connection;
    /// on a datagram socket it is logged and the next datagram is served.
    fn respond(
        &self,
        message: Message<'_>,
        reply: &mut Reply,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What a [`MessageHandler`] takes as one message on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// Whatever one read returned (binary-safe; message boundaries are
    /// wherever the network put them): echo, discard.
    Chunks,
    /// One line, without its `\n` or `\r\n`, at most the server's
    /// [`max_line_length`](super::ServerConfig::max_line_length) (a longer
    /// line is skipped, unanswered, and the connection goes on); a reply is
    /// written with `\n` after it. On a datagram socket a datagram is one
    /// line too: one trailing line ending is removed, and `\n` added to the
    /// reply.
    Lines,
    /// The connection itself is the one message, empty, answered as soon as
    /// it opens; then the connection closes without reading (RFC 867's
    /// daytime, quote of the day).
    Connect,
}

/// One message for a [`MessageHandler`] and where it came from.
#[derive(Debug)]
#[non_exhaustive]
pub struct Message<'a> {
    /// The payload; a handler may change it in place and
    /// [`echo`](Reply::echo) it.
    pub data: &'a mut [u8],
    /// The sender.
    pub peer: &'a SocketAddress,
    /// The socket it arrived on.
    pub local: &'a Endpoint,
    /// Shuts the server down when asked.
    pub server: &'a ServerHandle,
}

impl<'a> Message<'a> {
    /// A message that arrived on `conn`.
    fn of(data: &'a mut [u8], conn: &'a Connection) -> Message<'a> {
        Message::new(data, conn.peer_addr(), conn.local_endpoint(), conn.server())
    }

    fn new(
        data: &'a mut [u8],
        peer: &'a SocketAddress,
        local: &'a Endpoint,
        server: &'a ServerHandle,
    ) -> Message<'a> {
        Message {
            data,
            peer,
            local,
            server,
        }
    }
}

impl<M: MessageHandler> StreamHandler for M {
    type Session = ();

    fn blocking_reads(&self) -> bool {
        MessageHandler::blocking_reads(self)
    }

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let mut reply = Reply::default();
        match self.framing() {
            Framing::Chunks => loop {
                // The buffer is taken only for a read that finds bytes, so
                // an idle connection holds none (see `Lease`).
                let read = poll_fn(|cx| Lease::poll_read(conn, cx, RELAY_BUFFER)).await;
                let Some(mut buf) = read? else {
                    return Ok(());
                };
                let message = Message::of(&mut buf.0, conn);
                self.respond(message, &mut reply).await?;
                if let Some(answer) = reply.take(&buf.0) {
                    conn.write_all(answer).await?;
                }
            },
            // Boxed: the line reader's state is several times the byte
            // path's, and inline it would size every connection's task of
            // every message service, echo's included.
            Framing::Lines => Box::pin(serve_lines(self, conn, &mut reply)).await,
            Framing::Connect => {
                self.respond(Message::of(&mut [], conn), &mut reply).await?;
                if let Some(answer) = reply.take(&[]) {
                    conn.write_all(answer).await?;
                }
                Ok(())
            }
        }
    }
}

/// [`Framing::Lines`] on a stream: each line is a message, each reply a
/// line.
async fn serve_lines<M: MessageHandler>(
    handler: &M,
    conn: &mut Connection,
    reply: &mut Reply,
) -> Result<()> {
    // The halves borrow the connection for the whole loop, so the
    // message's addresses are copies (a line service is not the byte path
    // whose idle connections must stay small).
    let (peer, local, server) = (
        conn.peer_addr().clone(),
        conn.local_endpoint().clone(),
        conn.server().clone(),
    );
    let (mut lines, mut out) = conn.lines();
    let mut text = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let Line::Text(line) = line else {
            debug!(%peer, "line over the limit skipped");
            continue;
        };
        text.clear();
        text.extend_from_slice(&line);
        let message = Message::new(&mut text, &peer, &local, &server);
        handler.respond(message, reply).await?;
        if let Some(answer) = reply.take_line(&text) {
            out.write_all(answer).await?;
        }
    }
    Ok(())
}

impl<M: MessageHandler> DatagramHandler for M {
    async fn handle_datagram(&self, request: Datagram<'_>, reply: &mut Reply) -> Result<()> {
        // The datagram is copied out of the receive loop's buffer so the
        // handler may change it in place; at most 64 KiB, from a buffer the
        // reply keeps.
        let mut data = std::mem::take(&mut reply.message);
        data.clear();
        data.extend_from_slice(request.data);
        let lines = self.framing() == Framing::Lines;
        if lines {
            let ending = match data.as_slice() {
                [.., b'\r', b'\n'] => 2,
                [.., b'\n'] => 1,
                _ => 0,
            };
            data.truncate(data.len().saturating_sub(ending));
        }
        let message = Message::new(&mut data, request.peer, request.local, request.server);
        let outcome = self.respond(message, reply).await;
        reply.settle(&mut data, lines);
        reply.message = data;
        outcome
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

/// The answer to a datagram or message. Empty-but-sent is distinct from
/// not sent: RFC 862 echoes a zero-length datagram with a zero-length one.
#[derive(Debug, Default)]
pub struct Reply {
    buf: Vec<u8>,
    armed: Armed,
    /// The message handed to a [`MessageHandler`] on a datagram socket,
    /// kept to reuse its allocation.
    message: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Armed {
    /// Nothing to send.
    #[default]
    No,
    /// Send `buf`.
    Buffer,
    /// Send the message itself (a [`MessageHandler`]'s echo).
    Message,
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
        self.armed = Armed::Buffer;
        &mut self.buf
    }

    /// For a [`MessageHandler`]: replies with the message's own bytes as
    /// they are when the handler returns (changed in place or not), without
    /// a copy.
    pub fn echo(&mut self) {
        self.armed = Armed::Message;
    }

    /// The answer to `message`, if one was given; disarms.
    pub(crate) fn take<'a>(&'a mut self, message: &'a [u8]) -> Option<&'a [u8]> {
        match std::mem::take(&mut self.armed) {
            Armed::No => None,
            Armed::Buffer => Some(&self.buf),
            Armed::Message => Some(message),
        }
    }

    /// [`Reply::take`] for a line: the answer with `\n` after it.
    fn take_line(&mut self, message: &[u8]) -> Option<&[u8]> {
        match std::mem::take(&mut self.armed) {
            Armed::No => return None,
            Armed::Message => {
                self.buf.clear();
                self.buf.extend_from_slice(message);
            }
            Armed::Buffer => {}
        }
        self.buf.push(b'\n');
        Some(&self.buf)
    }

    /// After a [`MessageHandler`] answered a datagram: an echo becomes the
    /// buffer by a swap (the message does not outlive the handler call, its
    /// allocation goes on in the buffer's place) and, for lines, the answer
    /// ends with `\n`.
    fn settle(&mut self, message: &mut Vec<u8>, lines: bool) {
        match self.armed {
            Armed::No => return,
            Armed::Message => {
                std::mem::swap(&mut self.buf, message);
                self.armed = Armed::Buffer;
            }
            Armed::Buffer => {}
        }
        if lines {
            self.buf.push(b'\n');
        }
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
    type Session = ();

    async fn handle(&self, _conn: &mut Connection, _session: &mut ()) -> Result<()> {
        match *self {}
    }
}

impl DatagramHandler for Unsupported {
    async fn handle_datagram(&self, _request: Datagram<'_>, _reply: &mut Reply) -> Result<()> {
        match *self {}
    }
}
