//! `get`: the textbook raw-socket HTTP client, done properly.
//!
//! The textbook program sends `GET /` with `Host` and `Connection: close`,
//! reads to EOF and splits the header from the body at the first blank line.
//! Here HTTP/1.1 parsing and framing (Content-Length, chunked with
//! trailers, close-delimited, 1xx interim responses, HEAD, 204/304) belong
//! to hyper's client connection, which runs over socketkit's own connected
//! [`Stream`](crate::transport::Stream): resolution, Happy Eyeballs, the
//! connect timeout, the TLS client and proxy tunnels are the transport
//! layer's. This module owns the request, redirects (and which credentials
//! survive them), connection reuse, the timings, errors in words, and
//! which proxy a URL goes through ([`ProxyRules`], curl's `*_proxy`
//! conventions): through an HTTP proxy an `http://` URL is requested in
//! absolute form (`GET http://host/path`), an `https://` one always
//! through a `CONNECT` tunnel; through SOCKS5, both tunnel.
//!
//! [`get`] returns a [`Response`] once its head arrived; the caller pulls
//! the body with [`Response::chunk`] and decides where it goes. Limits:
//! [`MAX_HEADER_BYTES`] and [`MAX_HEADERS`] per response head; redirect
//! bodies are read up to [`MAX_REDIRECT_BODY`] (then the connection is
//! dropped instead of reused).

mod connection;
mod proxy;
mod target;

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Version};

use crate::error::{Error, ErrorKind, Result};
use crate::tls::{ClientTls, Verification};
use crate::transport::{ConnectOptions, ProxyScheme, ProxyUrl};
use connection::Connection;

#[cfg(feature = "proxy")]
pub(crate) use connection::handshake;
pub use connection::{ConnectionInfo, WireCopy, MAX_HEADERS, MAX_HEADER_BYTES};
pub use proxy::ProxyRules;
pub use target::HttpUrl;

/// How much of a redirect's body is read so its connection can carry the
/// next request; a longer one is abandoned with its connection.
pub const MAX_REDIRECT_BODY: usize = 64 * 1024;

/// Headers a redirect to another origin (scheme, host or port) drops, so
/// credentials meant for one server never reach another.
const CREDENTIAL_HEADERS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// What `get` sends and how it connects and follows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GetOptions {
    /// Send `HEAD` instead of `GET`. Default off.
    pub head: bool,
    /// Follow 301, 302, 303, 307 and 308 responses. Default off.
    pub follow_redirects: bool,
    /// Most redirects followed before giving up. Default 10.
    pub max_redirects: usize,
    /// The connect timeout (resolution, TCP, TLS handshake) and the TLS
    /// client; `tls: None` verifies `https://` servers against the system
    /// roots.
    pub connect: ConnectOptions,
    /// Copies of every byte sent and received (`--raw`). Default none.
    pub wire: Option<Arc<Mutex<WireCopy>>>,
    /// Which proxy each URL (each redirect's too) goes through; it
    /// overrides `connect.proxy`. Default: none.
    pub proxy: ProxyRules,
    /// Extra request headers, from [`add_header`](GetOptions::add_header).
    headers: HeaderMap,
}

impl Default for GetOptions {
    fn default() -> GetOptions {
        GetOptions {
            head: false,
            follow_redirects: false,
            max_redirects: GetOptions::DEFAULT_MAX_REDIRECTS,
            connect: ConnectOptions::default(),
            wire: None,
            proxy: ProxyRules::default(),
            headers: HeaderMap::new(),
        }
    }
}

impl GetOptions {
    /// Default of [`max_redirects`](GetOptions::max_redirects).
    pub const DEFAULT_MAX_REDIRECTS: usize = 10;

    /// Adds a request header from a `Name: value` line. It replaces a
    /// default of the same name (`Host`, `User-Agent`, `Accept`); a name
    /// given twice is sent twice.
    pub fn add_header(&mut self, line: &str) -> Result<()> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid header '{line}': {why}"),
            )
        };
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("expected 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| invalid("the name is not a valid header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| invalid("the value has control characters"))?;
        self.headers.append(name, value);
        Ok(())
    }
}

/// A response's status line and headers.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    version: Version,
    status: StatusCode,
    /// The server's reason phrase, or the standard one for the status.
    reason: String,
    /// Names lower-cased (hyper's `HeaderMap`), values as sent.
    headers: HeaderMap,
}

impl ResponseHead {
    fn new(
        version: Version,
        status: StatusCode,
        reason: Option<&[u8]>,
        headers: HeaderMap,
    ) -> Self {
        let reason = match reason {
            Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            None => status.canonical_reason().unwrap_or_default().to_owned(),
        };
        ResponseHead {
            version,
            status,
            reason,
            headers,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status.as_u16()
    }

    /// The reason phrase the server sent (or the standard one).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// 4xx or 5xx.
    pub fn is_error(&self) -> bool {
        self.status.is_client_error() || self.status.is_server_error()
    }

    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The declared body length, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.parse().ok()
    }

    /// The protocol version as in a status line (`HTTP/1.1`).
    pub fn version(&self) -> &'static str {
        match self.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        }
    }

    /// The head as a status line and header lines (names as hyper keeps
    /// them, lower case), CRLF-terminated, with the blank line: what
    /// `-i` prints.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        write!(
            out,
            "{} {} {}\r\n",
            self.version(),
            self.status(),
            self.reason
        )?;
        for (name, value) in &self.headers {
            out.write_all(name.as_str().as_bytes())?;
            out.write_all(b": ")?;
            out.write_all(value.as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        out.write_all(b"\r\n")
    }
}

impl fmt::Display for ResponseHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason)
    }
}

/// Timings and addresses of the exchange that produced the response.
#[derive(Debug, Clone)]
pub struct Timings {
    /// When `get` was called: totals run from here.
    pub started: Instant,
    /// The connection that carried the final response.
    pub connection: ConnectionInfo,
    /// Whether that connection was reused from a previous hop (keep-alive).
    pub reused: bool,
    /// From sending the final request to the first byte of its response.
    pub first_byte: Duration,
    /// Redirects followed.
    pub redirects: usize,
}

/// A response whose head has arrived; the body is pulled with [`chunk`](Response::chunk).
#[derive(Debug)]
pub struct Response {
    /// The URL that answered, after redirects.
    url: HttpUrl,
    head: ResponseHead,
    /// Interim and redirect heads before `head`, in order.
    history: Vec<ResponseHead>,
    timings: Timings,
    /// hyper's body stream: decoded frames and their errors.
    body: Incoming,
    /// Body bytes handed out so far, for the truncation message.
    received: u64,
    /// Keeps the connection (and its driver task) alive while the body is read.
    _connection: Connection,
}

impl Response {
    /// The URL that answered (after redirects).
    pub fn url(&self) -> &HttpUrl {
        &self.url
    }

    /// The final response's head.
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The heads that came before it, in order: interim (1xx) responses
    /// and redirects followed.
    pub fn history(&self) -> &[ResponseHead] {
        &self.history
    }

    /// Timings and addresses.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Body bytes received so far (after removing any chunked framing).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next piece of the body, `None` at its end. A body that ends
    /// early, or whose framing is malformed, is an error, never a short
    /// success. Trailers are read and discarded.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            self.received += data.len() as u64;
                            return Ok(Some(data));
                        }
                    }
                }
                Some(Err(e)) => return Err(self.body_error(e)),
            }
        }
    }

    fn body_error(&self, error: hyper::Error) -> Error {
        let cause = std::error::Error::source(&error)
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        let url = &self.url;
        let (kind, context) = match (cause, self.head.content_length()) {
            (Some(std::io::ErrorKind::UnexpectedEof), Some(length)) => (
                ErrorKind::Protocol,
                format!(
                    "response body from {url} ended after {} of {length} bytes",
                    self.received
                ),
            ),
            (Some(std::io::ErrorKind::UnexpectedEof), None) => (
                ErrorKind::Protocol,
                format!("chunked response body from {url} ended before its last chunk"),
            ),
            (Some(std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput), _) => (
                ErrorKind::Protocol,
                format!("malformed response body from {url}"),
            ),
            _ => (
                ErrorKind::Io,
                format!("connection failed while reading the body from {url}"),
            ),
        };
        Error::with_source(kind, context, error)
    }
}

/// Requests `url` and returns the response once its head arrived,
/// following redirects if asked.
pub async fn get(url: &HttpUrl, options: &GetOptions) -> Result<Response> {
    let mut hops = Hops::new(url, options);
    loop {
        let (mut connection, reused) = hops.connection().await?;
        let request = build_request(
            &hops.url,
            options.head,
            &hops.headers,
            &hops.interim,
            connection.forward_proxy.as_ref(),
        )?;
        let (response, first_byte) = connection.send(&hops.url, request).await?;
        let (head, body) = hops.received(response);
        match hops.redirect(&head)? {
            Some(next) => {
                if drain(body).await {
                    hops.idle = Some(connection);
                }
                hops.follow(head, next);
            }
            None => {
                let timings = Timings {
                    started: hops.started,
                    connection: connection.info.clone(),
                    reused,
                    first_byte,
                    redirects: hops.redirects,
                };
                return Ok(Response {
                    url: hops.url,
                    head,
                    history: hops.history,
                    timings,
                    body,
                    received: 0,
                    _connection: connection,
                });
            }
        }
    }
}

/// The state of one `get` across its redirects.
struct Hops<'a> {
    options: &'a GetOptions,
    /// When `get` was called.
    started: Instant,
    /// The URL requested next.
    url: HttpUrl,
    /// The caller's headers, less credentials once the origin changed.
    headers: HeaderMap,
    /// Connect options, with the TLS client once one was needed.
    connect: ConnectOptions,
    /// The previous hop's connection, if it may carry the next request.
    idle: Option<Connection>,
    /// Interim responses of the request in flight (hyper's callback).
    interim: Arc<Mutex<Vec<ResponseHead>>>,
    /// Heads of earlier hops and interim responses, in order.
    history: Vec<ResponseHead>,
    /// Redirects followed so far.
    redirects: usize,
}

impl<'a> Hops<'a> {
    fn new(url: &HttpUrl, options: &'a GetOptions) -> Hops<'a> {
        let mut headers = options.headers.clone();
        // The URL's credentials go to every hop of its origin (a server's
        // absolute Location does not repeat them), and no further.
        if let Some(auth) = url
            .basic_auth()
            .and_then(|a| HeaderValue::from_str(&a).ok())
        {
            headers.entry(header::AUTHORIZATION).or_insert(auth);
        }
        Hops {
            options,
            started: Instant::now(),
            url: url.clone(),
            headers,
            connect: options.connect.clone(),
            idle: None,
            interim: Arc::default(),
            history: Vec::new(),
            redirects: 0,
        }
    }

    /// The previous hop's connection if it can serve this URL (keep-alive),
    /// else a new one; and whether it was reused.
    async fn connection(&mut self) -> Result<(Connection, bool)> {
        let proxy = self.options.proxy.proxy_for(&self.url).cloned();
        // An HTTP proxy takes http:// requests in absolute form on a
        // connection to itself; anything else tunnels through the proxy.
        let (forward, tunnel) = match proxy {
            Some(p) if p.scheme() == ProxyScheme::Http && !self.url.is_https() => (Some(p), None),
            tunnel => (None, tunnel),
        };
        if let Some(mut idle) = self.idle.take() {
            if idle.forward_proxy == forward && idle.reusable_for(&self.url).await {
                tracing::debug!(url = %self.url, "reusing the connection (keep-alive)");
                return Ok((idle, true));
            }
        }
        if self.url.is_https() && self.connect.tls.is_none() {
            self.connect.tls = Some(ClientTls::new(&Verification::SystemRoots, None)?);
        }
        if let Some(proxy) = forward.as_ref().or(tunnel.as_ref()) {
            tracing::debug!(url = %self.url, %proxy, absolute_form = forward.is_some(), "through a proxy");
        }
        self.connect.proxy = tunnel;
        let opened =
            Connection::open(&self.url, &self.connect, forward, self.options.wire.clone()).await?;
        Ok((opened, false))
    }

    /// Splits a response, moving the interim heads that preceded it into
    /// the history.
    fn received(&mut self, response: hyper::Response<Incoming>) -> (ResponseHead, Incoming) {
        let interim =
            std::mem::take(&mut *self.interim.lock().unwrap_or_else(PoisonError::into_inner));
        self.history.extend(interim);
        let (parts, body) = response.into_parts();
        let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
        let head = ResponseHead::new(
            parts.version,
            parts.status,
            reason.map(|r| r.as_bytes()),
            parts.headers,
        );
        (head, body)
    }

    /// Where a response redirects to, if it is a redirect to follow.
    fn redirect(&self, head: &ResponseHead) -> Result<Option<HttpUrl>> {
        let location = match head.header("location") {
            Some(location) if self.options.follow_redirects && is_redirect(head.status) => location,
            _ => return Ok(None),
        };
        if self.redirects == self.options.max_redirects {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "too many redirects: {} redirected again after {}",
                    self.url, self.redirects
                ),
            ));
        }
        self.url.join(location).map(Some)
    }

    /// Moves on to `next`, dropping credentials if the origin changes.
    fn follow(&mut self, head: ResponseHead, next: HttpUrl) {
        if !self.url.same_origin(&next) {
            for name in &CREDENTIAL_HEADERS {
                self.headers.remove(name);
            }
            self.connect.server_name = None;
        }
        tracing::debug!(from = %self.url, to = %next, status = head.status(), "following redirect");
        self.history.push(head);
        self.url = next;
        self.redirects += 1;
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The request for `url`: `Host`, `User-Agent` and `Accept` unless the
/// caller gave its own, credentials in the URL (a redirect's) unless there
/// is an `Authorization` already, then the caller's headers. No `Connection: close`, so a
/// redirect to the same origin can reuse the connection. To an HTTP
/// `proxy` the target is in absolute form, with `Proxy-Authorization`
/// from the proxy URL's credentials.
fn build_request(
    url: &HttpUrl,
    head: bool,
    extra: &HeaderMap,
    interim: &Arc<Mutex<Vec<ResponseHead>>>,
    proxy: Option<&ProxyUrl>,
) -> Result<Request<Empty<Bytes>>> {
    let mut headers = HeaderMap::new();
    let defaults = [
        (header::HOST, url.host_header()),
        (
            header::USER_AGENT,
            concat!("socketkit/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
        (header::ACCEPT, "*/*".to_owned()),
    ];
    let credentials = url.basic_auth().map(|auth| (header::AUTHORIZATION, auth));
    let proxy_credentials = proxy
        .and_then(ProxyUrl::basic_auth)
        .map(|auth| (header::PROXY_AUTHORIZATION, auth));
    for (name, value) in defaults
        .into_iter()
        .chain(credentials)
        .chain(proxy_credentials)
    {
        if !extra.contains_key(&name) {
            let value = HeaderValue::from_str(&value).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidAddress,
                    format!("{url} cannot go in a {name} header"),
                )
            })?;
            headers.insert(name, value);
        }
    }
    for (name, value) in extra {
        headers.append(name, value.clone());
    }
    let method = if head { Method::HEAD } else { Method::GET };
    let target = match proxy {
        Some(_) => url.absolute_form(),
        None => url.request_target().to_owned(),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(target)
        .body(Empty::new())
        .map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidAddress,
                format!("cannot build a request for {url}"),
                e,
            )
        })?;
    *request.headers_mut() = headers;
    let interim = Arc::clone(interim);
    hyper::ext::on_informational(&mut request, move |response| {
        let head = ResponseHead::new(
            response.version(),
            response.status(),
            None,
            response.headers().clone(),
        );
        interim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(head);
    });
    Ok(request)
}

/// Reads a redirect's body so its connection can carry the next request;
/// false when the body was too long, broken, or the connection unusable.
async fn drain(mut body: Incoming) -> bool {
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > MAX_REDIRECT_BODY {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}
