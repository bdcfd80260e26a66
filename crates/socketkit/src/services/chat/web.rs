//! The chat in a browser: one page (embedded in the binary) and a WebSocket
//! endpoint, on axum, in the same rooms as terminal users.
//!
//! The page sends the nickname as its first text frame, then lines exactly
//! as a terminal user types them (commands included); the server answers
//! with one JSON object per [`Event`](super::Event). Each session is a
//! [`Participant`](super::Participant) like any other, with the same
//! limits: bounded queue, write deadline, rate, line length.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::participant::{Flow, Inbox, Participant};
use super::Chat;
use crate::addr::{Endpoint, SocketKind};
use crate::error::{Error, ErrorKind, Result};
use crate::server::ServerHandle;
use crate::transport::{self, BindOptions, BoundSocket, Listener, SocketAddress, Stream};

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

/// How long a new page has to send its nickname.
const HELLO_DEADLINE: Duration = Duration::from_secs(30);
/// WebSocket frames above this are refused by the protocol layer; lines
/// above the chat's own limit (smaller) get an error and the page stays.
const MAX_FRAME: usize = 64 * 1024;
/// After shutdown, how long open pages get to receive their goodbye.
const GOODBYE_DEADLINE: Duration = Duration::from_secs(2);

/// The bound web endpoint of a chat: serves `GET /` (the page), its script
/// and style, and `GET /ws` (the WebSocket).
#[derive(Debug)]
pub struct WebServer {
    chat: Chat,
    listeners: Vec<Listener>,
}

impl WebServer {
    pub(crate) async fn bind(chat: Chat, endpoint: &Endpoint) -> Result<WebServer> {
        if endpoint.kind() != SocketKind::Stream || matches!(endpoint, Endpoint::Tls(_)) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the web page is served over plain HTTP on tcp:// or unix:, not {endpoint}"
                ),
            ));
        }
        let listeners = transport::bind(endpoint, &BindOptions::default())
            .await?
            .into_iter()
            .filter_map(|socket| match socket {
                BoundSocket::Stream(listener) => Some(listener),
                BoundSocket::Datagram(_) => None,
            })
            .collect();
        Ok(WebServer { chat, listeners })
    }

    /// Where the page is: `http://HOST:PORT/` for each TCP socket bound
    /// (Unix sockets as their address).
    pub fn urls(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|listener| match listener.endpoint() {
                Endpoint::Tcp(host_port) => format!("http://{host_port}/"),
                other => other.to_string(),
            })
            .collect()
    }

    /// Serves until `shutdown`; then every open page is told and closed
    /// (waiting at most a couple of seconds for them).
    pub async fn serve(self, shutdown: ServerHandle) -> Result<()> {
        let sessions = TaskTracker::new();
        let open = Arc::new(Semaphore::new(self.chat.hub.config().max_web_sessions));
        let state = WebState {
            chat: self.chat,
            shutdown: shutdown.clone(),
            sessions: sessions.clone(),
            open,
        };
        let app = Router::new()
            .route("/", get(index))
            .route("/app.js", get(app_js))
            .route("/style.css", get(style_css))
            .route("/ws", get(upgrade))
            .with_state(state);
        let listener = Listeners {
            listeners: self.listeners,
            next: 0,
        };
        let stopping = shutdown.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopping.shutdown_requested().await })
            .await
            .map_err(|e| Error::with_source(ErrorKind::Io, "the chat web server failed", e))?;
        sessions.close();
        let _ = tokio::time::timeout(GOODBYE_DEADLINE, sessions.wait()).await;
        Ok(())
    }
}

#[derive(Clone)]
struct WebState {
    chat: Chat,
    shutdown: ServerHandle,
    sessions: TaskTracker,
    /// One permit per page that may be open at once.
    open: Arc<Semaphore>,
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn upgrade(State(state): State<WebState>, ws: WebSocketUpgrade) -> Response {
    // Taken before the upgrade, held for the session's life.
    let Ok(permit) = state.open.clone().try_acquire_owned() else {
        tracing::warn!("chat web page refused: too many pages open");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many chat pages are open; try again later\n",
        )
            .into_response();
    };
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| {
            let sessions = state.sessions.clone();
            sessions.track_future(async move {
                session(state, socket).await;
                drop(permit);
            })
        })
}

/// One page: nickname first, then lines in and JSON events out.
async fn session(state: WebState, mut socket: WebSocket) {
    let nick = match tokio::time::timeout(HELLO_DEADLINE, socket.recv()).await {
        Ok(Some(Ok(Message::Text(nick)))) => nick,
        _ => return,
    };
    let (participant, inbox) = state.chat.join(Some(nick.trim()), true);
    if let Err(error) = converse(&state, socket, participant, inbox).await {
        debug!(%error, "web chat session ended");
    }
}

async fn converse(
    state: &WebState,
    socket: WebSocket,
    mut participant: Participant,
    mut inbox: Inbox,
) -> std::result::Result<(), axum::Error> {
    let (mut sink, mut stream) = socket.split();
    let write_timeout = state.chat.hub.config().write_timeout;
    let max_line = state.chat.hub.config().max_message;
    let mut resume_at: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            () = state.shutdown.shutdown_requested() => {
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
            frame = next_frame(&mut stream, resume_at) => {
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

async fn next_frame(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    resume_at: Option<Instant>,
) -> Option<std::result::Result<Message, axum::Error>> {
    if let Some(at) = resume_at {
        tokio::time::sleep_until(at).await;
    }
    stream.next().await
}

fn json_frame(json: &bytes::Bytes) -> Message {
    // Event JSON is built by serde_json from Rust strings: always UTF-8.
    Message::Text(Utf8Bytes::try_from(json.clone()).unwrap_or_default())
}

/// The bound sockets as one axum listener, accepting from any of them.
struct Listeners {
    listeners: Vec<Listener>,
    next: usize,
}

impl axum::serve::Listener for Listeners {
    type Io = Stream;
    type Addr = SocketAddress;

    async fn accept(&mut self) -> (Stream, SocketAddress) {
        loop {
            let accepted = poll_fn(|cx| {
                let count = self.listeners.len();
                for offset in 0..count {
                    let index = (self.next + offset) % count;
                    if let Poll::Ready(result) = self.listeners[index].poll_accept(cx) {
                        self.next = (index + 1) % count;
                        return Poll::Ready(result);
                    }
                }
                Poll::Pending
            })
            .await;
            match accepted {
                Ok(accepted) => return accepted,
                Err(error) => {
                    debug!(%error, "web accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddress> {
        match self.listeners.first().map(Listener::endpoint) {
            Some(Endpoint::Tcp(host_port)) => host_port
                .to_string()
                .parse()
                .map(SocketAddress::Inet)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no TCP listener",
            )),
        }
    }
}
