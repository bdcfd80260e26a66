//! Port forwarding (socat `TCP-LISTEN:a,fork TCP:host:b`): each accepted
//! connection is wired to a new connection to one fixed target.
//!
//! The server layer does the listening side (TLS termination, limits, access
//! lists, drain); the transport layer opens the target (resolution, Happy
//! Eyeballs, the connect timeout, TLS origination verified like any client);
//! [`both_ways`] relays between them. With [`Forward::with_send_proxy`] the
//! target's stream first gets a PROXY protocol header naming the client
//! (before TLS, as HAProxy's `send-proxy` does). Forwarding to one fixed target is not
//! an open relay: clients cannot choose where their bytes go.
//!
//! Datagrams (`udp://`, `unixgram:` to a datagram target) are forwarded
//! per client address: the first datagram from an address opens an upstream
//! socket of its own, whose replies go back to that address; a session ends
//! after the idle timeout without traffic either way, and at most
//! `max_sessions` exist at once (datagrams from further clients are dropped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::addr::Endpoint;
use crate::client::{both_ways, BothWaysOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::hexdump::{HexDump, Tapped};
use crate::proxy_header::{ProxyHeader, Version};
use crate::server::{
    Connection, Datagram, DatagramHandler, DatagramSender, Reply, ServerHandle, StreamHandler,
};
#[cfg(feature = "tls")]
use crate::transport::start_tls;
use crate::transport::{
    connect, connect_datagram, ConnectOptions, DatagramSocket, SocketAddress, Stream,
};

/// Relay buffer per direction while bytes are in flight: larger than the
/// echo services' because a forward pays two sockets per byte each way.
pub(crate) const FORWARD_BUFFER: usize = 64 * 1024;

/// The forwarding service: every stream connection is relayed to `target`.
#[derive(Debug, Clone)]
pub struct Forward {
    inner: Arc<Inner>,
    sessions: Arc<Sessions>,
}

/// The datagram sessions, by client address.
#[derive(Debug)]
struct Sessions {
    max: usize,
    idle: Option<Duration>,
    by_peer: Mutex<HashMap<SocketAddress, Arc<Session>>>,
}

#[derive(Debug)]
struct Session {
    upstream: DatagramSocket,
    last: Mutex<tokio::time::Instant>,
}

impl Session {
    fn touch(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = tokio::time::Instant::now();
        }
    }

    fn idle_until(&self, idle: Duration) -> tokio::time::Instant {
        let last = self.last.lock().map(|last| *last);
        last.unwrap_or_else(|_| tokio::time::Instant::now()) + idle
    }
}

#[derive(Debug, Clone)]
struct Inner {
    target: Endpoint,
    options: ConnectOptions,
    dump: Option<HexDump>,
    /// Write a PROXY protocol header of this version toward the target.
    send_proxy: Option<Version>,
}

impl Forward {
    /// Forwards to the stream endpoint `target`, connecting with `options`
    /// (timeout, TLS verification, source address, family).
    pub fn new(target: Endpoint, options: ConnectOptions) -> Forward {
        Forward {
            inner: Arc::new(Inner {
                target,
                options,
                dump: None,
                send_proxy: None,
            }),
            sessions: Arc::new(Sessions {
                max: 1024,
                idle: Some(Duration::from_secs(300)),
                by_peer: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Bounds datagram forwarding: at most `max` client addresses at once,
    /// each session ending after `idle` without traffic (`None`: never).
    /// Defaults: 1024 and 300 s, as the server's connection limits.
    pub fn with_datagram_limits(self, max: usize, idle: Option<Duration>) -> Forward {
        Forward {
            sessions: Arc::new(Sessions {
                max,
                idle,
                by_peer: Mutex::new(HashMap::new()),
            }),
            ..self
        }
    }

    /// Dumps both legs of every forward (`-x`), each chunk labelled with
    /// the client's or the target's address.
    pub fn with_hexdump(self, dump: HexDump) -> Forward {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.dump = Some(dump);
        Forward {
            inner: Arc::new(inner),
            sessions: self.sessions,
        }
    }

    /// Starts every stream toward the target with a PROXY protocol header
    /// of `version` carrying the client's address and the local address it
    /// connected to (HAProxy's `send-proxy` / `send-proxy-v2`), so a target
    /// that accepts the protocol sees the real client. Datagram forwarding
    /// is unaffected.
    pub fn with_send_proxy(self, version: Version) -> Forward {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.send_proxy = Some(version);
        Forward {
            inner: Arc::new(inner),
            sessions: self.sessions,
        }
    }

    /// Where connections are forwarded.
    pub fn target(&self) -> &Endpoint {
        &self.inner.target
    }
}

impl StreamHandler for Forward {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let Inner {
            target,
            options,
            dump,
            send_proxy,
        } = &*self.inner;
        let started = Instant::now();
        let client = conn.peer_addr().clone();
        // An unreachable target ends the handler at once: the server closes
        // the client and logs the error, which names the target and reason.
        let upstream = match send_proxy {
            None => connect(target, options).await?,
            Some(version) => {
                let local = conn.local_addr().map_err(|e| {
                    Error::with_source(ErrorKind::Io, "cannot read the client's local address", e)
                })?;
                let header = ProxyHeader::proxied(&client, &local).encode(*version);
                connect_with_header(target, options, &header).await?
            }
        };
        let relay = BothWaysOptions {
            // The connection times out on its own reads; this also covers a
            // client that half-closed while the target stays silent.
            idle_timeout: conn.idle_timeout(),
            buffer_size: FORWARD_BUFFER,
        };
        let report = match dump {
            None => both_ways(&mut *conn, upstream, &relay).await?,
            Some(dump) => {
                let client_leg = Tapped::dumped(&mut *conn, dump.clone(), client.to_string());
                let target_leg = Tapped::dumped(upstream, dump.clone(), target.to_string());
                both_ways(client_leg, target_leg, &relay).await?
            }
        };
        debug!(
            %client,
            %target,
            to_target = report.a_to_b,
            to_client = report.b_to_a,
            secs = started.elapsed().as_secs_f64(),
            "forward ended"
        );
        Ok(())
    }
}

/// Connects to `target` and writes `header` first: for a `tls://` target
/// on the TCP stream before the TLS handshake, where a receiving proxy
/// expects it.
async fn connect_with_header(
    target: &Endpoint,
    options: &ConnectOptions,
    header: &[u8],
) -> Result<Stream> {
    let (plain, tls) = match target {
        #[cfg(feature = "tls")]
        Endpoint::Tls(hp) => (Endpoint::Tcp(hp.clone()), Some(hp)),
        // Without TLS, `connect` refuses the tls:// target with its own
        // typed error.
        other => (other.clone(), None::<&crate::addr::HostPort>),
    };
    let mut stream = connect(&plain, options).await?;
    tokio::io::AsyncWriteExt::write_all(&mut stream, header)
        .await
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Io,
                format!("cannot send the PROXY header to {target}"),
                e,
            )
        })?;
    match tls {
        #[cfg(feature = "tls")]
        Some(hp) => start_tls(stream, hp, options).await,
        _ => Ok(stream),
    }
}

impl DatagramHandler for Forward {
    async fn handle_datagram(&self, request: Datagram<'_>, _reply: &mut Reply) -> Result<()> {
        // A source the server never answers (a port below 1024, broadcast,
        // an unnamed socket) would hold a session and an upstream socket
        // whose every reply is refused: drop it before it costs anything.
        if !crate::server::may_answer(request.peer) {
            return Ok(());
        }
        let existing = self.sessions.get(request.peer);
        let session = match existing {
            Some(session) => session,
            None => {
                if self.sessions.len() >= self.sessions.max {
                    debug!(peer = %request.peer, max = self.sessions.max, "datagram dropped: every forward session is taken");
                    return Ok(());
                }
                let Inner {
                    target, options, ..
                } = &*self.inner;
                let upstream = connect_datagram(target, options).await?;
                let session = Arc::new(Session {
                    upstream,
                    last: Mutex::new(tokio::time::Instant::now()),
                });
                self.sessions.insert(request.peer.clone(), session.clone());
                tokio::spawn(replies(
                    session.clone(),
                    request.peer.clone(),
                    request.sender.clone(),
                    self.sessions.clone(),
                    request.server.clone(),
                ));
                session
            }
        };
        session.touch();
        session.upstream.send(request.data).await.map_err(|e| {
            Error::with_source(
                ErrorKind::Io,
                format!("cannot forward a datagram to {}", self.inner.target),
                e,
            )
        })?;
        Ok(())
    }
}

impl Sessions {
    fn get(&self, peer: &SocketAddress) -> Option<Arc<Session>> {
        self.by_peer.lock().ok()?.get(peer).cloned()
    }

    fn len(&self) -> usize {
        self.by_peer.lock().map_or(0, |map| map.len())
    }

    fn insert(&self, peer: SocketAddress, session: Arc<Session>) {
        if let Ok(mut map) = self.by_peer.lock() {
            map.insert(peer, session);
        }
    }

    fn remove(&self, peer: &SocketAddress) {
        if let Ok(mut map) = self.by_peer.lock() {
            map.remove(peer);
        }
    }
}

/// One session's way back: the target's datagrams to the client, until
/// the session has been idle (both ways) for the limit.
async fn replies(
    session: Arc<Session>,
    peer: SocketAddress,
    sender: DatagramSender,
    sessions: Arc<Sessions>,
    server: ServerHandle,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let idle = async {
            match sessions.idle {
                Some(idle) => loop {
                    let deadline = session.idle_until(idle);
                    if deadline <= tokio::time::Instant::now() {
                        return;
                    }
                    tokio::time::sleep_until(deadline).await;
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = session.upstream.recv(&mut buf) => match received {
                Ok(n) => {
                    session.touch();
                    if let Err(error) = sender.send_to(&buf[..n], &peer).await {
                        debug!(%peer, %error, "cannot pass a reply back");
                    }
                }
                // A connected UDP socket reports an earlier ICMP "port
                // unreachable" here; the session goes on.
                Err(error) => debug!(%peer, %error, "forward target did not take a datagram"),
            },
            () = idle => break,
            // A datagram session has no stream to drain: it ends with the
            // server rather than outliving it.
            () = server.shutdown_requested() => break,
        }
    }
    debug!(%peer, "forward session ended");
    sessions.remove(&peer);
}
