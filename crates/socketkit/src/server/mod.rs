//! The server: binding, the accept loop, running handlers, limits and
//! graceful shutdown.
//!
//! [`Server::bind`] binds every endpoint (so port 0 is known before serving,
//! see [`Server::local_addrs`]); [`Server::serve`] runs until shutdown,
//! [`Server::serve_until`] until a future completes (say
//! [`shutdown_signal`]); [`Server::handle_request`] serves exactly one
//! connection or datagram. The life of a connection:
//!
//! 1. the accept loop takes a connection permit, *then* waits on every stream
//!    listener at once, so the limit holds without starving any listener;
//!    a peer the [`AccessList`] refuses is closed at once (no TLS, no
//!    handler byte) and the permit taken again; with the PROXY protocol
//!    ([`ProxyProtocol`]) the peer must be a trusted proxy instead, and the
//!    access list judges the client its header names (step 2's task);
//! 2. the connection is dispatched per [`Mode`]: a task, a thread, or
//!    (sequential) a task that holds the only permit;
//! 3. the handler runs `setup → handle → finish`: `setup` makes the
//!    connection's session, which `handle` uses and `finish` gets back;
//!    `finish` runs whatever `handle` returned and also after an abort;
//! 4. the connection closes gently (flush, FIN, drain the peer's leftovers).
//!
//! Shutdown is a [`CancellationToken`] inside [`ServerHandle`], reachable
//! from outside and from any handler. On shutdown the listeners close first,
//! open connections get [`ServerConfig::drain_timeout`] to finish (tracked by
//! a [`TaskTracker`]), then the rest are aborted.

mod access;
mod blocked;
mod config;
mod connection;
mod handler;
mod lease;
mod metrics;
mod nofile;
mod proxy;
mod signal;
pub(crate) use self::lease::{Lease, RELAY_BUFFER};
#[cfg(feature = "exec")]
pub(crate) use self::nofile::original_open_files_limit;

use std::future::{poll_fn, Future};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
#[cfg(feature = "tls")]
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use access::{AccessList, Rule};
pub use config::{Mode, ServerConfig};
pub use connection::{Connection, ReadHalf, WriteHalf};
pub use handler::{
    Datagram, DatagramHandler, DatagramSender, Framing, Handlers, Message, MessageHandler, Reply,
    StreamHandler, Unsupported,
};
pub use metrics::{Metrics, MetricsSnapshot};
pub use proxy::ProxyProtocol;
pub use signal::shutdown_signal;

use crate::addr::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{self, BoundSocket, DatagramSocket, Listener, SocketAddress, Stream};

/// Largest datagram served: UDP's maximum payload fits, and a bigger Unix
/// datagram is detected (one spare byte) and dropped rather than truncated.
const MAX_DATAGRAM: usize = 64 * 1024;

/// Most datagrams served per wakeup of a datagram socket, so a flood on one
/// socket still lets the stop token and other tasks have their turn.
const DATAGRAM_BATCH: usize = 64;

/// Shards of the abort token (see `Shared::abort_shards`).
const ABORT_SHARDS: usize = 64;

/// After the drain deadline's abort, how long to wait for handlers to run
/// `finish` and stop (a thread-mode handler blocked in a system call cannot
/// be interrupted, so this wait is bounded).
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// A cloneable handle that shuts its server down gracefully.
#[derive(Debug, Clone, Default)]
pub struct ServerHandle {
    shutdown: CancellationToken,
}

impl ServerHandle {
    /// A handle driven by `token`: cancelling the token shuts the server
    /// down, which lets one token stop a whole application.
    pub fn from_token(token: CancellationToken) -> ServerHandle {
        ServerHandle { shutdown: token }
    }

    /// Starts a graceful shutdown: stop accepting, let connections finish
    /// until the drain deadline, abort the rest. Idempotent.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Whether shutdown has started. Long-lived handlers check this (or
    /// await [`ServerHandle::shutdown_requested`]) to stop at a clean point.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Completes when shutdown starts.
    pub fn shutdown_requested(&self) -> WaitForCancellationFuture<'_> {
        self.shutdown.cancelled()
    }
}

/// What a server did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Connections accepted and handed to a handler.
    pub connections: u64,
    /// Datagrams handled.
    pub datagrams: u64,
    /// Connections cut off at the drain deadline.
    pub aborted: u64,
    /// Connections closed and datagrams dropped because the access list
    /// refused their peer.
    pub refused: u64,
}

/// Bound sockets and their configuration, ready to serve.
#[derive(Debug)]
pub struct Server {
    sockets: Vec<BoundSocket>,
    config: ServerConfig,
    handle: ServerHandle,
}

impl Server {
    /// Binds every endpoint (each may stand for several sockets, see
    /// [`transport::bind`]). Nothing is accepted until `serve`. The first
    /// bind in a process raises its soft open-file limit to the hard limit.
    pub async fn bind(endpoints: &[Endpoint], config: ServerConfig) -> Result<Server> {
        if endpoints.is_empty() {
            return Err(Error::new(ErrorKind::InvalidAddress, "no address to bind"));
        }
        if let Some(tls_endpoint) = endpoints.iter().find(|e| matches!(e, Endpoint::Tls(_))) {
            #[cfg(not(feature = "tls"))]
            return Err(transport::tls_unsupported(tls_endpoint));
            #[cfg(feature = "tls")]
            if config.tls.is_none() {
                return Err(Error::new(
                    ErrorKind::Tls,
                    format!("{tls_endpoint} needs a certificate and key"),
                ));
            }
        }
        nofile::raise_open_files_limit();
        let mut sockets = Vec::new();
        for endpoint in endpoints {
            sockets.extend(transport::bind(endpoint, &config.bind).await?);
        }
        Ok(Server {
            sockets,
            config,
            handle: ServerHandle::default(),
        })
    }

    /// Uses `handle` (for instance one made from an application-wide token)
    /// instead of the server's own.
    pub fn with_handle(mut self, handle: ServerHandle) -> Server {
        self.handle = handle;
        self
    }

    /// The addresses actually bound, port 0 replaced by the real port.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.sockets.iter().map(BoundSocket::endpoint)
    }

    /// The socket addresses actually bound (port 0 replaced by the real
    /// port), one per socket: `server.local_addrs()[0]` is where a client
    /// connects to a one-address server.
    pub fn local_addrs(&self) -> Vec<SocketAddress> {
        self.sockets
            .iter()
            // getsockname on a socket this server holds open can fail only
            // for a bad descriptor, which it cannot have.
            .filter_map(|socket| socket.local_addr().ok())
            .collect()
    }

    /// A handle to shut the server down from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The configuration the server was bound with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves until shutdown is requested, then drains (Python's
    /// `serve_forever` followed by `shutdown` and `server_close`).
    pub async fn serve<S, D>(self, handlers: impl Into<Handlers<S, D>>) -> Result<Summary>
    where
        S: StreamHandler,
        D: DatagramHandler,
    {
        self.run(handlers.into(), false).await
    }

    /// Serves until `shutdown` completes (or shutdown is requested another
    /// way), then drains like [`Server::serve`]. mini-redis's
    /// `server::run(listener, shutdown)`: a program passes
    /// [`shutdown_signal()`], a test any future it controls.
    pub async fn serve_until<S, D>(
        self,
        handlers: impl Into<Handlers<S, D>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Summary>
    where
        S: StreamHandler,
        D: DatagramHandler,
    {
        let handle = self.handle();
        let serving = self.serve(handlers);
        tokio::pin!(serving);
        tokio::select! {
            summary = &mut serving => return summary,
            () = shutdown => handle.shutdown(),
        }
        serving.await
    }

    /// Serves exactly one connection or datagram to completion, then closes
    /// the sockets (Python's `handle_request`).
    pub async fn handle_request<S, D>(self, handlers: impl Into<Handlers<S, D>>) -> Result<Summary>
    where
        S: StreamHandler,
        D: DatagramHandler,
    {
        self.run(handlers.into(), true).await
    }

    async fn run<S, D>(self, handlers: Handlers<S, D>, once: bool) -> Result<Summary>
    where
        S: StreamHandler,
        D: DatagramHandler,
    {
        let mut listeners = Vec::new();
        let mut datagram_sockets = Vec::new();
        for socket in self.sockets {
            match socket {
                BoundSocket::Stream(listener) => listeners.push(listener),
                BoundSocket::Datagram(socket) => datagram_sockets.push(socket),
            }
        }
        check_support(
            listeners.first().map(Listener::endpoint),
            handlers.stream.is_some(),
        )?;
        check_support(
            datagram_sockets.first().map(DatagramSocket::endpoint),
            handlers.datagram.is_some(),
        )?;

        let abort = CancellationToken::new();
        let stats = self.config.metrics.clone().unwrap_or_default();
        let shared = Arc::new(Shared {
            stop_accepting: self.handle.shutdown.child_token(),
            handle: self.handle,
            abort_shards: (0..ABORT_SHARDS).map(|_| abort.child_token()).collect(),
            abort,
            aborted: AtomicBool::new(false),
            blocked: blocked::Blocked::default(),
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(self.config.permits())),
            config: self.config,
            handlers,
            once,
            claimed: AtomicBool::new(false),
            stats,
        });
        let mut loops = JoinSet::new();
        for socket in datagram_sockets {
            loops.spawn(shared.clone().datagram_loop(socket));
        }
        // The accept loop runs in this future, not a task of its own: on a
        // multi-thread runtime driven by `block_on` (the `socketkit`
        // command, `#[tokio::main]`) it then accepts on that thread, as
        // hand-written tokio servers do, and the workers only serve.
        let accepting = async {
            if !listeners.is_empty() {
                shared.clone().accept_loop(listeners).await;
            }
        };
        let receiving = async {
            while let Some(joined) = loops.join_next().await {
                if let Err(e) = joined {
                    warn!(error = %e, "a receive loop ended abnormally");
                }
            }
        };
        // The loops own the sockets: once they return, the listeners are
        // closed and the kernel queues no more connections.
        tokio::join!(accepting, receiving);
        shared.drain().await;
        Ok(Summary::from(shared.stats.snapshot()))
    }
}

fn check_support(endpoint: Option<&Endpoint>, supported: bool) -> Result<()> {
    match endpoint {
        Some(endpoint) if !supported => Err(Error::new(
            ErrorKind::Unsupported,
            format!("this service cannot serve {endpoint}"),
        )),
        _ => Ok(()),
    }
}

/// State the loops and connections of one `serve` share.
struct Shared<S, D> {
    handlers: Handlers<S, D>,
    config: ServerConfig,
    /// Shutdown requested (by a signal, a caller or a handler).
    handle: ServerHandle,
    /// Child of the shutdown token; also cancelled alone after the one
    /// request of `handle_request`.
    stop_accepting: CancellationToken,
    /// Cancelled when the drain deadline passes.
    abort: CancellationToken,
    /// Set just before `abort` is cancelled: what a connection's wakeups
    /// read instead of locking the token (see `Shared::poll_until_aborted`).
    aborted: AtomicBool,
    /// Children of `abort`, one per connection in turn. A connection locks
    /// its token's waiter list when it registers and when it ends: one
    /// shared token would be a lock every opening and closing connection
    /// contends for, and a child per connection would cost each one an
    /// allocation that an idle connection cannot afford.
    abort_shards: Box<[CancellationToken]>,
    /// Threads mode: the sockets a connection's thread may be blocked
    /// reading, which the abort shuts down.
    blocked: blocked::Blocked,
    /// Every running connection, task or thread.
    tracker: TaskTracker,
    /// Connection permits, taken before `accept()`.
    permits: Arc<Semaphore>,
    /// `handle_request`: serve one connection or datagram only.
    once: bool,
    /// Set by whichever loop got the one request in `once` mode.
    claimed: AtomicBool,
    /// The server's counters: [`ServerConfig::metrics`]'s, or its own.
    stats: Arc<Metrics>,
}

impl From<MetricsSnapshot> for Summary {
    fn from(counters: MetricsSnapshot) -> Summary {
        Summary {
            connections: counters.connections_total,
            datagrams: counters.datagrams,
            aborted: counters.aborted,
            refused: counters.refused,
        }
    }
}

impl<S: StreamHandler, D: DatagramHandler> Shared<S, D> {
    /// In `once` mode, true for the first request only, and stops the loops.
    fn claim(&self) -> bool {
        if !self.once {
            return true;
        }
        self.stop_accepting.cancel();
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// Applies the access list to a peer, counting (and, under `-v`,
    /// logging through `log`) a refusal. Runs before `claim`, so a refused
    /// peer never uses up `handle_request`'s one request.
    fn admits(&self, peer: &SocketAddress, local: &Endpoint, log: &mut RefusalLog) -> bool {
        if self.config.access.permits(peer) {
            return true;
        }
        self.stats.refused();
        log.refused(peer, local, "peer refused by the access list");
        false
    }

    /// [`Shared::admits`] for a stream peer: under the PROXY protocol the
    /// peer is a proxy, judged by the trusted list (the access list judges
    /// its client, once the header names it).
    fn admits_stream(&self, peer: &SocketAddress, local: &Endpoint, log: &mut RefusalLog) -> bool {
        let Some(proxy_protocol) = &self.config.proxy_protocol else {
            return self.admits(peer, local, log);
        };
        if proxy_protocol.trusts(peer) {
            return true;
        }
        self.stats.refused();
        log.refused(
            peer,
            local,
            "peer refused: not a trusted PROXY protocol source",
        );
        false
    }

    async fn accept_loop(self: Arc<Self>, listeners: Vec<Listener>) {
        let Some(handler) = self.handlers.stream.clone() else {
            return;
        };
        let mut backoff = AcceptBackoff::default();
        let mut refusals = RefusalLog::default();
        let mut first = 0;
        loop {
            let permit = tokio::select! {
                biased;
                () = self.stop_accepting.cancelled() => return,
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => return,
                },
            };
            let accepted = tokio::select! {
                biased;
                () = self.stop_accepting.cancelled() => return,
                accepted = accept_any(&listeners, &mut first) => accepted,
            };
            match accepted {
                Ok((stream, peer, local)) => {
                    backoff.succeeded();
                    if !self.admits_stream(&peer, &local, &mut refusals) {
                        // Dropping closes it: nothing was read or written,
                        // so the peer sees a FIN and no byte, and the permit
                        // goes back with it.
                        drop(stream);
                        continue;
                    }
                    if !self.claim() {
                        return;
                    }
                    self.dispatch(&handler, stream, peer, local, permit);
                }
                Err(error) => {
                    drop(permit);
                    tokio::select! {
                        () = self.stop_accepting.cancelled() => return,
                        () = backoff.failed(error) => {}
                    }
                }
            }
        }
    }

    fn dispatch(
        self: &Arc<Self>,
        handler: &Arc<S>,
        stream: Stream,
        peer: SocketAddress,
        local: Endpoint,
        permit: OwnedSemaphorePermit,
    ) {
        // Under the PROXY protocol, verify sees the client, after the header.
        if self.config.proxy_protocol.is_none() && !handler.verify(&peer) {
            debug!(%peer, %local, "connection refused by the handler's verify");
            return;
        }
        if let (Stream::Tcp(tcp), true) = (&stream, self.config.nodelay) {
            if let Err(error) = tcp.set_nodelay(true) {
                debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
        }
        let driver = self
            .clone()
            .drive(handler.clone(), stream, peer, local, permit);
        match self.config.mode {
            Mode::Tasks | Mode::Sequential => {
                self.tracker.spawn(driver);
            }
            Mode::Threads => {
                let tracked = self.tracker.token();
                let spawned = std::thread::Builder::new()
                    .name("socketkit-conn".into())
                    .spawn(move || {
                        run_on_own_event_loop(driver);
                        drop(tracked);
                    });
                if let Err(error) = spawned {
                    warn!(%error, "cannot start a thread for a connection; closing it");
                }
            }
        }
    }

    /// Runs one connection's lifecycle; the permit is released on return.
    /// An `async move` block rather than an `async fn`: rustc keeps an async
    /// fn's arguments twice in its state (as passed, and moved into the
    /// body), which every connection's task would carry for its whole life.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice (see above)"
    )]
    fn drive(
        self: Arc<Self>,
        handler: Arc<S>,
        mut stream: Stream,
        peer: SocketAddress,
        local: Endpoint,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            // Named, so the block captures it and holds it to the end.
            let _permit = permit;
            let number = self.stats.opened();
            let mut counted = metrics::OpenConnection {
                metrics: &self.stats,
                bytes: (0, 0),
                failed: false,
            };
            let abort = &self.abort_shards[number as usize % ABORT_SHARDS];
            if self.config.mode == Mode::Threads {
                // Before any TLS handshake, so that runs on this thread's own
                // event loop too.
                if let Err(error) = stream.move_to_current_runtime() {
                    warn!(%error, "cannot move the connection to its thread's event loop");
                }
            }
            let Some((peer, proxy)) = self
                .proxied(&handler, &mut stream, peer, &local, abort)
                .await
            else {
                return;
            };
            let Some(stream) = self.secure(stream, &peer, &local, abort).await else {
                return;
            };
            let mut conn = Connection::new(
                stream,
                peer,
                local,
                self.handle.clone(),
                self.config.idle_timeout,
                self.config.max_line_length,
            );
            conn.set_proxy_addr(proxy);
            // Threads mode's fast path (see `StreamHandler::blocking_reads`).
            let blocking = (self.config.mode == Mode::Threads && handler.blocking_reads())
                .then(|| self.blocked.enter(number, &mut conn, &self.aborted))
                .flatten();
            let opened = Instant::now();
            debug!(peer = %conn.peer_addr(), local = %conn.local_endpoint(), "connection opened");
            let mut session = None;
            let mut served = {
                // Pinned in place (see `poll_until_aborted`), and dropped at the
                // end of this block, before `finish` takes the connection.
                let mut served = std::pin::pin!(async {
                    let session = session.insert(handler.setup(&mut conn).await?);
                    handler.handle(&mut conn, session).await
                });
                let mut cancelled = std::pin::pin!(abort.cancelled());
                let mut registered = None;
                poll_fn(|cx| {
                    self.poll_until_aborted(
                        served.as_mut(),
                        cancelled.as_mut(),
                        &mut registered,
                        cx,
                    )
                })
                .await
            };
            if let Some(registered) = blocking {
                // Counted as aborted only if the abort reached this one
                // (its reads failed as aborted from then on).
                if registered.was_cut() {
                    served = None;
                }
                drop(registered);
                if let Err(error) = conn.unblock_reads() {
                    warn!(%error, "cannot switch the connection back to its event loop; it was shut down");
                }
            }
            let outcome = match served {
                Some(outcome) => outcome,
                None => {
                    self.stats.aborted();
                    Err(Error::new(
                        ErrorKind::Aborted,
                        "aborted at the drain deadline",
                    ))
                }
            };
            handler.finish(&mut conn, session, &outcome).await;
            // Boxed: the close future (its timer, its scratch reads) exists only
            // at the end, and inline it would size every connection's task.
            Box::pin(conn.close(abort)).await;
            let (peer, secs) = (conn.peer_addr(), opened.elapsed().as_secs_f64());
            let (bytes_in, bytes_out) = (conn.bytes_read(), conn.bytes_written());
            counted.bytes = (bytes_in, bytes_out);
            match &outcome {
                Ok(()) => debug!(%peer, secs, bytes_in, bytes_out, "connection closed"),
                Err(e) if e.is_peer_gone() || e.is_timeout() || e.kind() == ErrorKind::Aborted => {
                    debug!(%peer, secs, bytes_in, bytes_out, error = %format_args!("{e:#}"), "connection closed")
                }
                Err(e) => {
                    counted.failed = true;
                    warn!(%peer, secs, bytes_in, bytes_out, error = %format_args!("{e:#}"), "connection failed")
                }
            }
        }
    }

    /// Polls `future` to its end, or `None` once the drain deadline's abort
    /// comes. This is on every wakeup of every connection, and polling a
    /// cancellation token takes its lock (twice: `is_cancelled` and the
    /// waiter list), so `cancelled` is polled only to register the task's
    /// waker, again only if the waker changes; every other wakeup reads
    /// [`Shared::aborted`], one atomic load. `drain` sets that flag
    /// before it cancels the token, whose wakeup then finds the flag set.
    /// A poll function over futures pinned in `drive`, not an `async fn`
    /// taking the future: that would hold the handler's future twice in
    /// every connection's task (rustc keeps an async fn's argument and its
    /// pinned copy side by side).
    fn poll_until_aborted<F: Future>(
        &self,
        future: Pin<&mut F>,
        cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
        registered: &mut Option<Waker>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<F::Output>> {
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if self.aborted.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if registered.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
            if cancelled.poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            *registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Under the PROXY protocol, reads the header (before TLS, under the
    /// handshake deadline) and judges the client it names by the access
    /// list and `verify`. The peer to serve and the proxy's address; `None`
    /// closes the connection. Without the protocol, the peer as it is.
    async fn proxied(
        &self,
        handler: &S,
        stream: &mut Stream,
        peer: SocketAddress,
        local: &Endpoint,
        abort: &CancellationToken,
    ) -> Option<(SocketAddress, Option<SocketAddress>)> {
        let Some(proxy_protocol) = &self.config.proxy_protocol else {
            return Some((peer, None));
        };
        let deadline = self.config.handshake_timeout;
        // Boxed, as only connections under the PROXY protocol read one.
        let client = Box::pin(proxy::accept_header(
            proxy_protocol,
            stream,
            &peer,
            local,
            deadline,
            abort,
        ))
        .await?;
        if !self.config.access.permits(&client) || !handler.verify(&client) {
            self.stats.refused();
            debug!(peer = %client, proxy = %peer, %local, "peer refused by the access list");
            return None;
        }
        Some((client, Some(peer)))
    }

    /// The TLS handshake for connections on `tls://` listeners, under the
    /// handshake deadline. It runs in the connection's own task, so a slow
    /// client never holds up the accept loop. `None`: the connection is
    /// dropped (a failed handshake has nothing to hand to a handler).
    #[cfg(feature = "tls")]
    async fn secure(
        &self,
        stream: Stream,
        peer: &SocketAddress,
        local: &Endpoint,
        abort: &CancellationToken,
    ) -> Option<Stream> {
        if !matches!(local, Endpoint::Tls(_)) {
            return Some(stream);
        }
        let (Stream::Tcp(tcp), Some(tls)) = (stream, &self.config.tls) else {
            return None;
        };
        // Boxed: a rustls handshake in progress is over a kilobyte, and
        // inline it would size every connection's task, TLS or not.
        let handshake = Box::pin(TlsAcceptor::from(tls.config.clone()).accept(tcp));
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(self.config.handshake_timeout, handshake) => outcome,
            () = abort.cancelled() => return None,
        };
        match outcome {
            Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls.into()))),
            Ok(Err(error)) => {
                warn!(%peer, %local, %error, "TLS handshake failed");
                None
            }
            Err(_elapsed) => {
                warn!(%peer, %local, "TLS handshake timed out");
                None
            }
        }
    }

    /// Without TLS no `tls://` listener is ever bound ([`Server::bind`]
    /// refuses them), so every stream is handed on as it is.
    #[cfg(not(feature = "tls"))]
    async fn secure(
        &self,
        stream: Stream,
        _peer: &SocketAddress,
        _local: &Endpoint,
        _abort: &CancellationToken,
    ) -> Option<Stream> {
        Some(stream)
    }

    /// Waits until the socket is readable, then serves the datagrams
    /// queued (up to [`DATAGRAM_BATCH`]) before waiting again: one wakeup and
    /// one check of the stop token per batch rather than per datagram.
    async fn datagram_loop(self: Arc<Self>, socket: DatagramSocket) {
        let Some(handler) = self.handlers.datagram.clone() else {
            return;
        };
        let sender = DatagramSender {
            socket: Arc::new(socket),
        };
        let socket = &*sender.socket;
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        let mut reply = Reply::default();
        let mut backoff = AcceptBackoff::default();
        let mut refusals = RefusalLog::default();
        loop {
            let readable = tokio::select! {
                biased;
                () = self.stop_accepting.cancelled() => return,
                readable = socket.readable() => readable,
            };
            if let Err(error) = readable {
                backoff.failed(error).await;
                continue;
            }
            for _ in 0..DATAGRAM_BATCH {
                let (len, peer) = match socket.try_recv_from(&mut buf) {
                    Ok(received) => received,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => {
                        backoff.failed(error).await;
                        break;
                    }
                };
                if len > MAX_DATAGRAM {
                    warn!(%peer, "datagram over {MAX_DATAGRAM} bytes dropped rather than truncated");
                    continue;
                }
                if !self.admits(&peer, socket.endpoint(), &mut refusals) {
                    continue;
                }
                if !self.claim() {
                    return;
                }
                let request = Datagram {
                    data: &buf[..len],
                    peer: &peer,
                    local: socket.endpoint(),
                    server: &self.handle,
                    sender: &sender,
                };
                let handled = handler.handle_datagram(request, &mut reply).await;
                if let Err(error) = &handled {
                    debug!(%peer, error = %format_args!("{error:#}"), "datagram handler failed");
                }
                let mut sent = None;
                if let Some(answer) = reply.take(&[]) {
                    sent = send_reply(socket, answer, &peer)
                        .await
                        .then_some(answer.len());
                }
                self.stats.datagram(len, sent, handled.is_err());
            }
        }
    }

    /// Waits for running connections: without limit until shutdown is
    /// requested (so `handle_request` finishes its one connection), then
    /// until the drain deadline, then aborts the rest.
    async fn drain(&self) {
        self.tracker.close();
        tokio::select! {
            () = self.tracker.wait() => return,
            () = self.handle.shutdown_requested() => {}
        }
        if !self.tracker.is_empty() {
            info!(connections = self.tracker.len(), deadline = ?self.config.drain_timeout, "draining open connections");
        }
        if tokio::time::timeout(self.config.drain_timeout, self.tracker.wait())
            .await
            .is_ok()
        {
            return;
        }
        warn!(
            connections = self.tracker.len(),
            "drain deadline passed; aborting the remaining connections"
        );
        self.aborted.store(true, Ordering::Release);
        self.abort.cancel();
        self.blocked.wake_all();
        if tokio::time::timeout(ABORT_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                connections = self.tracker.len(),
                "connections still blocked after abort; leaving them"
            );
        }
    }
}

/// Threads mode: the connection's thread runs its own current-thread
/// runtime, so its socket's readiness wakes it directly, as a blocking read
/// would, instead of hopping through the server's workers on every read.
/// Tasks its handler spawns live on this runtime and end with the
/// connection; nothing waits for its blocking tasks.
fn run_on_own_event_loop(driver: impl std::future::Future<Output = ()>) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            runtime.block_on(driver);
            runtime.shutdown_background();
        }
        Err(error) => warn!(%error, "cannot start a connection thread's event loop; closing it"),
    }
}

/// Waits until any listener has a connection, starting the scan at a
/// rotating index so a busy listener cannot starve the others.
async fn accept_any(
    listeners: &[Listener],
    first: &mut usize,
) -> io::Result<(Stream, SocketAddress, Endpoint)> {
    poll_fn(|cx| {
        let count = listeners.len();
        for offset in 0..count {
            let index = (*first + offset) % count;
            let listener = &listeners[index];
            if let Poll::Ready(result) = listener.poll_accept(cx) {
                *first = (index + 1) % count;
                return Poll::Ready(
                    result.map(|(stream, peer)| (stream, peer, listener.endpoint().clone())),
                );
            }
        }
        Poll::Pending
    })
    .await
}

/// Whether the reply went out.
async fn send_reply(socket: &DatagramSocket, answer: &[u8], peer: &SocketAddress) -> bool {
    if !may_answer(peer) {
        debug!(%peer, "not answering a privileged port or a broadcast/multicast source");
        return false;
    }
    match socket.send_to(answer, peer).await {
        Ok(_) => true,
        Err(error) => {
            debug!(%peer, %error, "cannot send the reply");
            false
        }
    }
}

/// The inetd rule: never answer a source port below 1024 or a broadcast or
/// multicast source, which is how two datagram services (echo and chargen)
/// get tricked into answering each other forever. An unnamed Unix datagram
/// sender has no address to answer.
pub(crate) fn may_answer(peer: &SocketAddress) -> bool {
    match peer {
        SocketAddress::Inet(addr) => {
            let special = match addr.ip() {
                IpAddr::V4(ip) => ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified(),
                IpAddr::V6(ip) => ip.is_multicast() || ip.is_unspecified(),
            };
            addr.port() >= 1024 && !special
        }
        SocketAddress::Unix(path) => path.is_some(),
    }
}

/// Logs refused peers at debug level (`-v`), at most [`REFUSALS_LOGGED`]
/// a second per loop, so a flood of refused peers cannot flood the log;
/// what was left out is counted in the next second's first line.
#[derive(Default)]
struct RefusalLog {
    window: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

const REFUSALS_LOGGED: u32 = 10;

impl RefusalLog {
    fn refused(&mut self, peer: &SocketAddress, local: &Endpoint, why: &'static str) {
        let now = Instant::now();
        if self
            .window
            .is_none_or(|start| now - start >= Duration::from_secs(1))
        {
            self.window = Some(now);
            self.logged = 0;
            if self.suppressed > 0 {
                debug!(
                    suppressed = self.suppressed,
                    "more peers refused by the access list than were logged"
                );
                self.suppressed = 0;
            }
        }
        if self.logged < REFUSALS_LOGGED {
            self.logged += 1;
            debug!(%peer, %local, "{why}");
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
        }
    }
}

/// Accept-error policy. Errors about one connection (it was reset or aborted
/// before we got to it) are skipped. Anything else, notably running out of
/// file descriptors (EMFILE, ENFILE) or memory, backs off from 100 ms to 1 s,
/// logging at most once a second: never a spin, never an exit.
struct AcceptBackoff {
    delay: Duration,
    last_logged: Option<Instant>,
}

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Default for AcceptBackoff {
    fn default() -> AcceptBackoff {
        AcceptBackoff {
            delay: BACKOFF_START,
            last_logged: None,
        }
    }
}

impl AcceptBackoff {
    fn succeeded(&mut self) {
        self.delay = BACKOFF_START;
    }

    async fn failed(&mut self, error: io::Error) {
        if is_per_connection_error(&error) {
            return;
        }
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now - at >= Duration::from_secs(1))
        {
            warn!(%error, retry_in = ?self.delay, "accept failed; backing off");
            self.last_logged = Some(now);
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }
}

fn is_per_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}
