//! The chat in a browser: one page (embedded in the binary) and a WebSocket
//! endpoint, served by socketkit's own [`Server`] with hyper parsing HTTP,
//! in the same rooms as terminal users.
//!
//! Each accepted connection is a [`StreamHandler`] call like any other, so
//! the page inherits the server's protections: a connection permit taken
//! before `accept()` (the connection counts from its first byte, page or
//! WebSocket alike), the idle timeout, TLS with its handshake deadline, and
//! the drain on shutdown. On it, hyper reads requests under a header
//! deadline (a head, or the wait for the next one on a kept-alive
//! connection, must complete within the handshake timeout); every request
//! must name a host this page was bound to, and a WebSocket upgrade must
//! come from the page's own origin (`origin`). After the `101`, hyper hands
//! the connection back and the WebSocket runs on it, in the same task.
//!
//! The page sends the nickname as its first text frame, then lines exactly
//! as a terminal user types them (commands included); the server answers
//! with one JSON object per [`Event`](super::Event). Each session is a
//! [`Participant`](super::Participant) like any other, with the same
//! limits: bounded queue, write deadline, rate, line length. The server
//! pings a quiet page; one that neither sends nor answers for the idle
//! timeout is closed.

mod origin;

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use super::participant::{Flow, Inbox, Participant};
use super::Chat;
use crate::addr::{Endpoint, SocketKind};
use crate::error::{Error, ErrorKind, Result};
use crate::server::{Connection, Server, ServerConfig, ServerHandle, StreamHandler, Summary};
use origin::{Guard, HostRule, Refusal};

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

/// WebSocket frames above this are refused by the protocol layer; lines
/// above the chat's own limit (smaller) get an error and the page stays.
const MAX_FRAME: usize = 64 * 1024;
/// hyper's read buffer, and so the longest request head: the page's own
/// requests are well under 2 KiB. (hyper's minimum is 8 KiB.)
const MAX_HEAD: usize = 16 * 1024;
/// Pings go out at half the idle timeout, but at least this often, which
/// also keeps NAT and proxy mappings of a quiet page alive.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Where the page is served and who may use it: the server's limits
/// (connections, idle and handshake timeouts, drain deadline, TLS) and the
/// names and origins allowed besides the page's own.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    server: ServerConfig,
    hosts: Vec<HostRule>,
    origins: Vec<String>,
}

impl WebConfig {
    /// The page's server: [`ServerConfig::max_connections`] bounds every
    /// connection (pages and WebSockets; more wait in the backlog),
    /// [`ServerConfig::handshake_timeout`] a request head (and a TLS
    /// handshake, and the nickname), [`ServerConfig::idle_timeout`] a
    /// WebSocket that does not answer pings. Default: the defaults.
    pub fn server(mut self, config: ServerConfig) -> WebConfig {
        self.server = config;
        self
    }

    /// Also answer requests for `host` (`NAME`, any port, or `NAME:PORT`),
    /// say the name a proxy or DNS gives the machine. By default only the
    /// addresses bound, the name they were given as, and `localhost` for
    /// loopback are answered; on a Unix socket, any.
    pub fn allow_host(mut self, host: &str) -> Result<WebConfig> {
        self.hosts.push(HostRule::parse(host)?);
        Ok(self)
    }

    /// Also accept WebSockets opened by pages of `origin`
    /// (`https://chat.example.com`), besides the page's own.
    pub fn allow_origin(mut self, origin: &str) -> Result<WebConfig> {
        self.origins.push(origin::parse_origin_rule(origin)?);
        Ok(self)
    }
}

/// The bound web endpoint of a chat: serves `GET /` (the page), its script
/// and style, and `GET /ws` (the WebSocket).
#[derive(Debug)]
pub struct WebServer {
    server: Server,
    page: Page,
}

impl WebServer {
    pub(crate) async fn bind(
        chat: Chat,
        endpoint: &Endpoint,
        config: WebConfig,
    ) -> Result<WebServer> {
        if endpoint.kind() != SocketKind::Stream {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the web page is served on tcp://, tls:// or unix:, not {endpoint}"),
            ));
        }
        let server = Server::bind(std::slice::from_ref(endpoint), config.server.clone()).await?;
        let guard = Guard::new(endpoint, server.endpoints(), config.hosts, config.origins);
        let page = Page {
            chat,
            guard: Arc::new(guard),
            handshake_timeout: config.server.handshake_timeout,
            idle_timeout: config.server.idle_timeout,
        };
        Ok(WebServer { server, page })
    }

    /// Where the page is: `http://HOST:PORT/` for each TCP socket bound,
    /// `https://` on TLS (Unix sockets as their address).
    pub fn urls(&self) -> Vec<String> {
        self.server
            .endpoints()
            .map(|endpoint| match endpoint {
                Endpoint::Tcp(host_port) => format!("http://{host_port}/"),
                Endpoint::Tls(host_port) => format!("https://{host_port}/"),
                other => other.to_string(),
            })
            .collect()
    }

    /// Serves until `shutdown`; then every open page is told and closed,
    /// within the server's drain deadline.
    pub async fn serve(self, shutdown: ServerHandle) -> Result<Summary> {
        self.server.with_handle(shutdown).serve(self.page).await
    }
}

/// The page's connection handler.
#[derive(Debug)]
struct Page {
    chat: Chat,
    guard: Arc<Guard>,
    handshake_timeout: Duration,
    idle_timeout: Option<Duration>,
}

impl StreamHandler for Page {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let (scheme, default_port) = match conn.local_endpoint() {
            Endpoint::Tls(_) => (Some("https"), 443),
            Endpoint::Tcp(_) => (Some("http"), 80),
            _ => (None, 80),
        };
        let stopping = conn.server().clone();
        let requests = Requests {
            guard: self.guard.clone(),
            scheme,
            default_port,
            upgraded: AtomicBool::new(false),
        };
        let mut http = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.handshake_timeout)
            .max_buf_size(MAX_HEAD)
            .serve_connection(TokioIo::new(&mut *conn), requests);
        // Without hyper's own upgrade machinery (which needs to own the
        // socket): once the 101 is out, the connection future ends and
        // hands back the socket and whatever the client sent after its
        // request.
        let served = tokio::select! {
            served = poll_fn(|cx| http.poll_without_shutdown(cx)) => served,
            () = stopping.shutdown_requested() => {
                // Finish the request in flight; an idle connection closes.
                std::pin::Pin::new(&mut http).graceful_shutdown();
                poll_fn(|cx| http.poll_without_shutdown(cx)).await
            }
        };
        if let Err(error) = served {
            // A head that never completed, a malformed request, a peer gone.
            drop(http);
            debug!(peer = %conn.peer_addr(), %error, "web connection ended");
            return Ok(());
        }
        let parts = http.into_parts();
        if !parts.service.upgraded.load(Ordering::Relaxed) || stopping.is_shutting_down() {
            return Ok(());
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let socket = WebSocketStream::from_partially_read(
            parts.io.into_inner(),
            parts.read_buf.to_vec(),
            Role::Server,
            Some(config),
        )
        .await;
        self.session(socket, &stopping).await;
        Ok(())
    }
}

impl Page {
    /// One page: nickname first, then lines in and JSON events out.
    async fn session(&self, mut socket: WebSocketStream<&mut Connection>, stopping: &ServerHandle) {
        // The page sends its nickname as soon as the socket opens.
        let hello = async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(nick))) => return Some(nick),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    _ => return None,
                }
            }
        };
        let nick = tokio::select! {
            nick = tokio::time::timeout(self.handshake_timeout, hello) => nick,
            () = stopping.shutdown_requested() => return,
        };
        let Ok(Some(nick)) = nick else {
            return;
        };
        let (participant, inbox) = self.chat.join(Some(nick.trim()), true);
        let session = Session {
            chat: &self.chat,
            stopping,
            idle_timeout: self.idle_timeout,
        };
        if let Err(error) = session.converse(socket, participant, inbox).await {
            debug!(%error, "web chat session ended");
        }
    }
}

/// What one WebSocket session needs besides its socket.
struct Session<'a> {
    chat: &'a Chat,
    stopping: &'a ServerHandle,
    idle_timeout: Option<Duration>,
}

type WsError = tokio_tungstenite::tungstenite::Error;

impl Session<'_> {
    async fn converse(
        &self,
        socket: WebSocketStream<&mut Connection>,
        mut participant: Participant,
        mut inbox: Inbox,
    ) -> std::result::Result<(), WsError> {
        let (mut sink, mut stream) = socket.split();
        let write_timeout = self.chat.hub.config().write_timeout;
        let max_line = self.chat.hub.config().max_message;
        let ping_every = self
            .idle_timeout
            .map(|idle| (idle / 2).min(MAX_PING_INTERVAL));
        let mut last_heard = Instant::now();
        // One timer for pings and the idle deadline, whichever is first.
        let ticker = tokio::time::sleep(ping_every.unwrap_or(Duration::MAX / 4));
        tokio::pin!(ticker);
        let mut resume_at: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = self.stopping.shutdown_requested() => {
                    participant.shutdown();
                    for event in inbox.take_now() {
                        sink.feed(json_frame(event.json())).await?;
                    }
                    sink.send(Message::Close(None)).await?;
                    return Ok(());
                }
                batch = inbox.recv() => {
                    let Ok(events) = batch else {
                        participant.too_slow();
                        return Ok(());
                    };
                    let sent = async {
                        for event in events {
                            sink.feed(json_frame(event.json())).await?;
                        }
                        sink.flush().await
                    };
                    match tokio::time::timeout(write_timeout, sent).await {
                        Ok(sent) => sent?,
                        Err(_elapsed) => {
                            participant.too_slow();
                            return Ok(());
                        }
                    }
                }
                () = &mut ticker, if ping_every.is_some() => {
                    let (Some(idle), Some(every)) = (self.idle_timeout, ping_every) else {
                        continue;
                    };
                    // A page paused for its rate limit is not read, so it
                    // is not idle either.
                    if resume_at.is_none() && last_heard.elapsed() >= idle {
                        participant.leave(Some("timed out: no answer to pings".into()), false);
                        let _ = tokio::time::timeout(write_timeout, sink.send(Message::Close(None))).await;
                        return Ok(());
                    }
                    match tokio::time::timeout(write_timeout, sink.send(Message::Ping(Bytes::new()))).await {
                        Ok(sent) => sent?,
                        Err(_elapsed) => {
                            participant.too_slow();
                            return Ok(());
                        }
                    }
                    // Next: a ping, or the idle deadline if sooner (it is
                    // still ahead: checked just above).
                    let next = Instant::now() + every;
                    ticker.as_mut().reset(match resume_at {
                        Some(_) => next,
                        None => next.min(last_heard + idle),
                    });
                }
                frame = next_frame(&mut stream, resume_at) => {
                    last_heard = Instant::now();
                    let line = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None => return Ok(()),
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return Err(error),
                    };
                    let flow = if line.len() > max_line {
                        participant.too_long();
                        Flow::Continue
                    } else {
                        participant.submit(line.as_bytes())
                    };
                    match flow {
                        Flow::Continue => resume_at = None,
                        Flow::PauseUntil(at) => resume_at = Some(at),
                        Flow::Quit => {
                            for event in inbox.take_now() {
                                sink.feed(json_frame(event.json())).await?;
                            }
                            sink.send(Message::Close(None)).await?;
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

async fn next_frame(
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<&mut Connection>>,
    resume_at: Option<Instant>,
) -> Option<std::result::Result<Message, WsError>> {
    if let Some(at) = resume_at {
        tokio::time::sleep_until(at).await;
    }
    stream.next().await
}

fn json_frame(json: &Bytes) -> Message {
    // Event JSON is built by serde_json from Rust strings: always UTF-8.
    Message::Text(Utf8Bytes::try_from(json.clone()).unwrap_or_default())
}

/// The requests of one connection: the host check for every request, the
/// three files, and the WebSocket handshake (which marks the connection as
/// upgraded for [`Page::handle`] to take over).
struct Requests {
    guard: Arc<Guard>,
    /// `http` or `https`; `None` on a Unix socket (a proxy's concern).
    scheme: Option<&'static str>,
    default_port: u16,
    upgraded: AtomicBool,
}

type Body = Full<Bytes>;

impl hyper::service::Service<Request<Incoming>> for Requests {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<std::result::Result<Response<Body>, Self::Error>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut response = self.respond(&request);
        let headers = response.headers_mut();
        // Never inside another site's frame (clickjacking), and no
        // guessing a script out of a text answer.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        std::future::ready(Ok(response))
    }
}

impl Requests {
    fn respond(&self, request: &Request<Incoming>) -> Response<Body> {
        let host = match self
            .guard
            .check_host(request.headers(), request.uri(), self.default_port)
        {
            Ok(host) => host,
            Err(_) => {
                debug!(host = ?request.headers().get(header::HOST), "web request for a host not served here");
                return text(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this server does not serve that host name\n",
                );
            }
        };
        let page = match request.uri().path() {
            "/" => (INDEX_HTML, "text/html; charset=utf-8"),
            "/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
            "/style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
            "/ws" => return self.upgrade(request, &host),
            _ => return text(StatusCode::NOT_FOUND, "not found\n"),
        };
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let (body, content_type) = page;
        let mut response = Response::new(Body::new(Bytes::from_static(body.as_bytes())));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// The WebSocket opening handshake (RFC 6455 section 4.2), after the
    /// origin check.
    fn upgrade(&self, request: &Request<Incoming>, host: &(origin::Name, u16)) -> Response<Body> {
        if let Err(Refusal::Origin) =
            self.guard
                .check_origin(request.headers().get(header::ORIGIN), self.scheme, host)
        {
            debug!(origin = ?request.headers().get(header::ORIGIN), "WebSocket from another site's page refused");
            return text(
                StatusCode::FORBIDDEN,
                "WebSockets are accepted from this page's own origin only\n",
            );
        }
        let headers = request.headers();
        let has_token = |name: header::HeaderName, token: &str| {
            headers.get_all(name).iter().any(|value| {
                value.to_str().is_ok_and(|value| {
                    value
                        .split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case(token))
                })
            })
        };
        let key = headers.get(header::SEC_WEBSOCKET_KEY);
        let opening = *request.method() == Method::GET
            && request.version() == Version::HTTP_11
            && has_token(header::CONNECTION, "upgrade")
            && has_token(header::UPGRADE, "websocket");
        let Some(key) = key.filter(|_| opening) else {
            return text(
                StatusCode::BAD_REQUEST,
                "expected a WebSocket opening handshake\n",
            );
        };
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            let mut response = text(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n");
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return response;
        }
        let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
            return text(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key\n");
        };
        self.upgraded.store(true, Ordering::Relaxed);
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        response
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
