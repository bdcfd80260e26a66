//! `serve http-proxy`: an HTTP/1.1 forward proxy (RFC 9110, RFC 9112) on
//! socketkit's own [`Server`](crate::server::Server), with hyper parsing
//! HTTP as on the chat's web page.
//!
//! Each accepted connection is a [`StreamHandler`] call, so the server's
//! protections hold as for any service: the connection permit taken before
//! `accept()`, `--allow/--deny`, the idle timeout, TLS, the drain. hyper
//! reads request heads under the handshake deadline (the first head, and
//! the wait for the next on a kept-alive connection), bounded as `get`
//! bounds responses ([`MAX_HEADER_BYTES`], [`MAX_HEADERS`]; a larger head
//! is answered `431` by hyper itself).
//!
//! Two kinds of request are served:
//! - `CONNECT host:port` opens a tunnel: the destination is connected
//!   through [`ProxyConfig::connect`] (policy, resolution, policy on every
//!   address, Happy Eyeballs, the connect timeout), `200` goes back, hyper
//!   hands the client's socket back (with anything the client sent early)
//!   and [`both_ways`] relays until both sides closed.
//! - absolute-form requests (`GET http://host/path`) are forwarded with
//!   hyper's client (set up as `get`'s is) over a stream opened the same
//!   way; the connection to the last origin is kept for the next request
//!   of the same client connection. Hop-by-hop headers (RFC 9110 §7.6.1,
//!   with those the `Connection` header names) are removed both ways,
//!   `Via` is added both ways, `Host` comes from the URL, and the client
//!   hears HTTP/1.1 whatever the origin spoke (keep-alive to the client).
//!
//! Credentials (`Proxy-Authorization: Basic`) are checked per request
//! unless the connection already proved the same ones; they never go
//! upstream.
//!
//! Requests to the proxy itself (origin-form, `GET /`) are answered `400`;
//! failures get their status: `403` a destination the policy denies, `407`
//! missing or wrong credentials, `502` an upstream that refused or broke,
//! `504` an upstream connect that timed out. This module owns the HTTP
//! mechanics only: who may use the proxy and where it may connect are the
//! [`ProxyConfig`] it shares with SOCKS5 (users with their penalties, the
//! destination policy with its SSRF guard).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio_util::task::AbortOnDropHandle;
use tracing::debug;

use base64::Engine as _;

use super::users::MAX_CREDENTIAL;
use super::{DestFailure, ProxyConfig};
use crate::addr::{Host, HostPort};
use crate::client::http::{handshake, MAX_HEADERS, MAX_HEADER_BYTES};
use crate::client::{both_ways, BothWaysOptions};
use crate::error::Result;
use crate::server::{Connection, StreamHandler};
use crate::transport::{SocketAddress, Stream};

/// Relay buffer per direction of a tunnel, as `serve forward`'s: a tunnel
/// pays two sockets per byte each way.
const TUNNEL_BUFFER: usize = 64 * 1024;

/// How long a kept upstream connection may take to be ready for the next
/// request before a new one is opened instead (as `get` waits).
const REUSE_WAIT: Duration = Duration::from_secs(1);

/// The proxy's `Via` pseudonym (RFC 9110 §7.6.3), after the protocol version.
const VIA_NAME: &str = "socketkit";

/// Headers meaningful for one connection only (RFC 9110 §7.6.1), removed
/// from what is forwarded either way, besides those `Connection` names.
/// `Proxy-Connection` and `Keep-Alive` are the pre-standard ones clients
/// still send; `Proxy-Authorization` is ours and never goes upstream.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// The HTTP proxy service. Cheap to clone; one value serves every
/// connection.
#[derive(Debug, Clone)]
pub struct HttpProxy {
    config: Arc<ProxyConfig>,
}

impl HttpProxy {
    /// A proxy under `config`: its users, destination policy, connect
    /// timeout (`504` past it) and handshake deadline (every request
    /// head). Call [`ProxyConfig::check_start`] with the endpoints first.
    pub fn new(config: ProxyConfig) -> HttpProxy {
        HttpProxy {
            config: Arc::new(config),
        }
    }
}

impl StreamHandler for HttpProxy {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let stopping = conn.server().clone();
        let state = Arc::new(State {
            proxy: Arc::clone(&self.config),
            anonymous: self.config.anonymous_allowed(conn),
            verified: Mutex::new(None),
            client: conn.peer_addr().clone(),
            tunnel: Mutex::new(None),
            upstream: Mutex::new(None),
        });
        let requests = Requests(Arc::clone(&state));
        let mut http = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .title_case_headers(true)
            .header_read_timeout(self.config.handshake_timeout)
            // Both: the buffer bounds a head still arriving, the header
            // size one that arrived whole in a single large read.
            .max_buf_size(MAX_HEADER_BYTES)
            .max_header_size(MAX_HEADER_BYTES)
            .max_headers(MAX_HEADERS)
            .serve_connection(TokioIo::new(&mut *conn), requests);
        // As on the chat page, without hyper's upgrade machinery (it would
        // need to own the socket): after a `200` to CONNECT, hyper ends the
        // connection future and hands back the socket and what the client
        // sent after its request head.
        let served = tokio::select! {
            served = poll_fn(|cx| http.poll_without_shutdown(cx)) => served,
            () = stopping.shutdown_requested() => {
                // Finish the request in flight; an idle connection closes.
                Pin::new(&mut http).graceful_shutdown();
                poll_fn(|cx| http.poll_without_shutdown(cx)).await
            }
        };
        if let Err(error) = served {
            // A head that never came, a malformed request, a peer gone.
            drop(http);
            debug!(client = %conn.peer_addr(), %error, "http-proxy connection ended");
            return Ok(());
        }
        let parts = http.into_parts();
        let early = parts.read_buf;
        let Some(tunnel) = lock(&state.tunnel).take() else {
            return Ok(());
        };
        tunnel.relay(conn, &early).await
    }
}

/// What one client connection's requests share.
#[derive(Debug)]
struct State {
    proxy: Arc<ProxyConfig>,
    /// This client may use the proxy without credentials (loopback or
    /// `--allow` without `--users`: [`ProxyConfig::anonymous_allowed`]).
    anonymous: bool,
    /// The `Proxy-Authorization` value last verified on this connection
    /// and its user: a kept-alive client sends it with every request, and
    /// argon2id per request would cost tens of milliseconds each.
    verified: Mutex<Option<(HeaderValue, String)>>,
    client: SocketAddress,
    /// A tunnel a CONNECT opened, for [`HttpProxy::handle`] to relay once
    /// hyper has sent the `200` and handed the socket back.
    tunnel: Mutex<Option<Tunnel>>,
    /// The connection to the last origin forwarded to, for the next
    /// request to the same one (keep-alive upstream).
    upstream: Mutex<Option<Upstream>>,
}

/// An open CONNECT tunnel's far end, and what its log line needs.
#[derive(Debug)]
struct Tunnel {
    stream: Stream,
    client: SocketAddress,
    user: Option<String>,
    destination: HostPort,
    started: Instant,
}

impl Tunnel {
    /// Relays the client's socket and the destination until both sides
    /// closed; `early` is what the client sent after the CONNECT head
    /// (a TLS ClientHello sent without waiting for the `200`).
    async fn relay(mut self, conn: &mut Connection, early: &[u8]) -> Result<()> {
        if !early.is_empty() {
            if let Err(error) = self.stream.write_all(early).await {
                debug!(client = %self.client, destination = %self.destination, %error, "tunnel ended");
                return Ok(());
            }
        }
        let options = BothWaysOptions {
            idle_timeout: conn.idle_timeout(),
            buffer_size: TUNNEL_BUFFER,
        };
        let relayed = both_ways(&mut *conn, self.stream, &options).await;
        let (up, down) = relayed
            .as_ref()
            .map_or((0, 0), |report| (report.a_to_b, report.b_to_a));
        debug!(
            client = %self.client,
            user = %self.user.as_deref().unwrap_or("-"),
            method = %Method::CONNECT,
            destination = %self.destination,
            status = 200,
            to_destination = up.saturating_add(early.len() as u64),
            to_client = down,
            secs = self.started.elapsed().as_secs_f64(),
            "http-proxy tunnel ended"
        );
        relayed.map(|_| ())
    }
}

/// The connection to one origin, kept between requests.
#[derive(Debug)]
struct Upstream {
    destination: HostPort,
    sender: SendRequest<Incoming>,
    /// Drives the connection; aborted on drop.
    _driver: AbortOnDropHandle<()>,
}

/// hyper's service for one client connection.
struct Requests(Arc<State>);

/// What the proxy answers: its own short texts, or an origin's body as it
/// streams (counted for the log line).
type ProxyBody = Either<Full<Bytes>, Counted>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Requests {
    type Response = Response<ProxyBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<std::result::Result<Response<ProxyBody>, Self::Error>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move { Ok(state.serve(request).await) })
    }
}

/// The facts of one request for its log line.
struct Exchange<'a> {
    client: &'a SocketAddress,
    user: Option<String>,
    method: Method,
    destination: Option<HostPort>,
    started: Instant,
}

impl Exchange<'_> {
    fn log(&self, status: StatusCode, bytes: u64) {
        debug!(
            client = %self.client,
            user = %self.user.as_deref().unwrap_or("-"),
            method = %self.method,
            destination = %self.destination.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
            status = status.as_u16(),
            bytes,
            secs = self.started.elapsed().as_secs_f64(),
            "http-proxy request"
        );
    }

    /// Our own answer, logged. After a malformed request the connection
    /// closes (what follows it cannot be trusted to be a request); after
    /// other refusals it stays open, so a client can answer a `407`.
    fn answer(&self, status: StatusCode, text: &'static str) -> Response<ProxyBody> {
        self.log(status, text.len() as u64);
        let mut response = plain(status, text);
        if status == StatusCode::BAD_REQUEST {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl State {
    async fn serve(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let mut exchange = Exchange {
            client: &self.client,
            user: None,
            method: request.method().clone(),
            destination: None,
            started: Instant::now(),
        };
        let destination = match destination(&request) {
            Ok(destination) => destination,
            Err(why) => return exchange.answer(StatusCode::BAD_REQUEST, why),
        };
        exchange.destination = Some(destination.clone());
        match self.authorize(request.headers()).await {
            Ok(user) => exchange.user = user,
            Err(refusal) => {
                exchange.log(refusal.status(), 0);
                return refusal;
            }
        }
        if request.method() != Method::CONNECT {
            return self.forward(request, destination, exchange).await;
        }
        let stream = match self.open(&destination).await {
            Ok(stream) => stream,
            Err((status, why)) => return exchange.answer(status, why),
        };
        *lock(&self.tunnel) = Some(Tunnel {
            stream,
            client: self.client.clone(),
            user: exchange.user.take(),
            destination,
            started: exchange.started,
        });
        // hyper sends no body and no framing headers after a 2xx to
        // CONNECT, then hands the socket back.
        Response::new(Either::Left(Full::default()))
    }

    /// The kept connection if it goes to `destination` and the origin kept
    /// it open after the last response, else a new one.
    async fn upstream(
        &self,
        destination: &HostPort,
    ) -> std::result::Result<Upstream, (StatusCode, &'static str)> {
        let kept = lock(&self.upstream).take();
        if let Some(mut kept) = kept.filter(|kept| kept.destination == *destination) {
            // The previous response was sent in full before hyper read
            // this request: a live connection is ready at once, or as
            // soon as its driver has seen the end of that response.
            let ready = tokio::time::timeout(REUSE_WAIT, kept.sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) {
                return Ok(kept);
            }
        }
        let stream = self.open(destination).await?;
        let (sender, driver) = handshake::<_, Incoming>(stream)
            .await
            .map_err(|_| (StatusCode::BAD_GATEWAY, "the destination failed\n"))?;
        Ok(Upstream {
            destination: destination.clone(),
            sender,
            _driver: driver,
        })
    }

    /// The user a request is made for (`None`: anonymous), or the answer
    /// refusing it: `407` asking for Basic credentials when they are
    /// missing, malformed or wrong (wrong ones penalise the source, as
    /// SOCKS5's do), `503` while too many clients are authenticating.
    async fn authorize(
        &self,
        headers: &HeaderMap,
    ) -> std::result::Result<Option<String>, Response<ProxyBody>> {
        if self.anonymous {
            return Ok(None);
        }
        let ask = || {
            let mut response = plain(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "this proxy needs a user name and password\n",
            );
            response.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"socketkit\""),
            );
            response
        };
        // Without users a client that may not go anonymous has no way in
        // (the server's access list refused it before any byte anyway).
        let (Some(users), Some(offered)) = (
            self.proxy.users.as_deref(),
            headers.get(header::PROXY_AUTHORIZATION),
        ) else {
            return Err(ask());
        };
        if let Some((value, user)) = &*lock(&self.verified) {
            if value == offered {
                return Ok(Some(user.clone()));
            }
        }
        let Some((name, password)) = basic_credentials(offered) else {
            debug!(client = %self.client, "http-proxy: Proxy-Authorization is not Basic credentials");
            return Err(ask());
        };
        let Some(_slot) = users.enter(&self.client) else {
            debug!(client = %self.client, "http-proxy client refused: too many connections authenticating");
            return Err(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many clients are logging in; try again\n",
            ));
        };
        // A name that is not UTF-8 cannot be in the file; it is still
        // checked (against the dummy hash) so that it costs the same.
        let text = std::str::from_utf8(&name).unwrap_or_default();
        users
            .check(&self.client, text, &password)
            .await
            .map_err(|_| ask())?;
        let user = text.to_owned();
        *lock(&self.verified) = Some((offered.clone(), user.clone()));
        Ok(Some(user))
    }

    /// Opens the stream to `destination` through the proxy's policy, or
    /// the status and words to answer with.
    async fn open(
        &self,
        destination: &HostPort,
    ) -> std::result::Result<Stream, (StatusCode, &'static str)> {
        match self
            .proxy
            .connect(&destination.host, destination.port)
            .await
        {
            Ok((stream, _reached)) => Ok(stream),
            Err(error) => {
                debug!(client = %self.client, %destination, %error, "http-proxy destination refused or failed");
                Err(match error.failure {
                    DestFailure::Denied => {
                        (StatusCode::FORBIDDEN, "this proxy does not connect there\n")
                    }
                    DestFailure::TimedOut => (
                        StatusCode::GATEWAY_TIMEOUT,
                        "timed out connecting to the destination\n",
                    ),
                    _ => (
                        StatusCode::BAD_GATEWAY,
                        "cannot connect to the destination\n",
                    ),
                })
            }
        }
    }

    /// Sends an absolute-form request on to its origin and streams the
    /// response back.
    async fn forward(
        &self,
        request: Request<Incoming>,
        destination: HostPort,
        exchange: Exchange<'_>,
    ) -> Response<ProxyBody> {
        let mut upstream = match self.upstream(&destination).await {
            Ok(upstream) => upstream,
            Err((status, why)) => return exchange.answer(status, why),
        };
        let upstream_request = match outgoing(request, &destination) {
            Ok(request) => request,
            Err(why) => return exchange.answer(StatusCode::BAD_REQUEST, why),
        };
        let response = match upstream.sender.send_request(upstream_request).await {
            Ok(response) => response,
            Err(error) => {
                debug!(client = %self.client, %destination, %error, "http-proxy upstream failed");
                let status = if error.is_timeout() {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                return exchange.answer(status, "the destination did not answer properly\n");
            }
        };
        *lock(&self.upstream) = Some(upstream);
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        add_via(&mut parts.headers, parts.version);
        // The client hears our version (RFC 9110 §6.2): an HTTP/1.0 origin
        // does not end the client's kept-alive connection.
        parts.version = Version::HTTP_11;
        let status = parts.status;
        let counted = Counted {
            body,
            bytes: 0,
            status,
            exchange: Some(exchange.into_owned()),
        };
        Response::from_parts(parts, Either::Right(counted))
    }
}

/// Where a request goes: `CONNECT`'s authority, or the authority of an
/// absolute-form `http://` URI. Origin-form requests (for the proxy
/// itself) and other schemes are errors, in words for the `400`.
pub(crate) fn destination<B>(request: &Request<B>) -> std::result::Result<HostPort, &'static str> {
    let uri = request.uri();
    if request.method() == Method::CONNECT {
        let authority = uri
            .authority()
            .filter(|_| uri.scheme().is_none() && uri.path_and_query().is_none());
        let Some(authority) = authority else {
            return Err("CONNECT needs host:port\n");
        };
        return host_port(authority.host(), authority.port_u16())
            .ok_or("CONNECT needs host:port\n");
    }
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) if scheme.eq_ignore_ascii_case("http") => {
            host_port(authority.host(), Some(authority.port_u16().unwrap_or(80)))
                .ok_or("the URL names no host\n")
        }
        (Some(_), _) => Err("only http:// URLs are forwarded (use CONNECT for https)\n"),
        (None, _) => Err("this is a proxy: ask for an absolute URL (GET http://host/path)\n"),
    }
}

/// A destination from a URI's host (IPv6 literals in brackets) and port;
/// `None` without a port or host.
fn host_port(host: &str, port: Option<u16>) -> Option<HostPort> {
    let port = port.filter(|&port| port != 0)?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => Host::Ip(std::net::IpAddr::V6(v6.parse().ok()?)),
        None if host.is_empty() => return None,
        None => match host.parse() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.to_ascii_lowercase()),
        },
    };
    Some(HostPort { host, port })
}

/// The request as the origin gets it: origin-form target, `Host` from the
/// URI (RFC 9112 §3.2.2), hop-by-hop headers gone, `Via` added.
pub(crate) fn outgoing<B>(
    request: Request<B>,
    destination: &HostPort,
) -> std::result::Result<Request<B>, &'static str> {
    let (mut parts, body) = request.into_parts();
    let received = parts.version;
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    parts.uri = Uri::try_from(target).map_err(|_| "malformed request target\n")?;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let host = match (&destination.host, destination.port) {
        (host, 80) => host_text(host),
        (host, port) => format!("{}:{port}", host_text(host)),
    };
    let host = HeaderValue::from_str(&host).map_err(|_| "the URL's host cannot be sent\n")?;
    parts.headers.insert(header::HOST, host);
    add_via(&mut parts.headers, received);
    Ok(Request::from_parts(parts, body))
}

/// `Basic base64(name:password)` (RFC 7617), each part at most
/// [`MAX_CREDENTIAL`] bytes as SOCKS5 carries them; `None` for any other
/// scheme or a malformed value.
pub(crate) fn basic_credentials(value: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    // Both parts at their longest, the colon, base64's 4/3, padding.
    if encoded.len() > (2 * MAX_CREDENTIAL + 1).div_ceil(3) * 4 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (name, password) = (&decoded[..colon], &decoded[colon.saturating_add(1)..]);
    if name.len() > MAX_CREDENTIAL || password.len() > MAX_CREDENTIAL {
        return None;
    }
    Some((name.to_vec(), password.to_vec()))
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Ip(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        Host::Ip(ip) => ip.to_string(),
        Host::Name(name) => name.clone(),
        Host::Any => String::new(),
    }
}

/// Removes the hop-by-hop headers, those named by `Connection` first.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Appends this hop to `Via`, with the version the message arrived in.
fn add_via(headers: &mut HeaderMap, received: Version) {
    let via = match received {
        Version::HTTP_10 => "1.0 socketkit",
        _ => "1.1 socketkit",
    };
    debug_assert!(via.ends_with(VIA_NAME));
    headers.append(header::VIA, HeaderValue::from_static(via));
}

fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An [`Exchange`] that outlives the request's borrow of the connection
/// state, for the body that logs it once done.
#[derive(Debug)]
struct Logged {
    client: SocketAddress,
    user: Option<String>,
    method: Method,
    destination: Option<HostPort>,
    started: Instant,
}

impl Exchange<'_> {
    fn into_owned(self) -> Logged {
        Logged {
            client: self.client.clone(),
            user: self.user,
            method: self.method,
            destination: self.destination,
            started: self.started,
        }
    }
}

/// An origin's response body on its way to the client, counted; the
/// request's log line goes out when it ends (or is dropped unfinished).
#[derive(Debug)]
struct Counted {
    body: Incoming,
    bytes: u64,
    status: StatusCode,
    exchange: Option<Logged>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            let len = frame.data_ref().map_or(0, Bytes::len);
            self.bytes = self.bytes.saturating_add(len as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(logged) = self.exchange.take() {
            Exchange {
                client: &logged.client,
                user: logged.user,
                method: logged.method,
                destination: logged.destination,
                started: logged.started,
            }
            .log(self.status, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn destinations_come_from_connect_authorities_and_absolute_urls() {
        let dest = |method, uri| destination(&request(method, uri)).map(|d| d.to_string());
        assert_eq!(
            dest(Method::CONNECT, "example.com:443").unwrap(),
            "example.com:443"
        );
        assert_eq!(dest(Method::CONNECT, "[::1]:8443").unwrap(), "[::1]:8443");
        assert!(dest(Method::CONNECT, "example.com").is_err(), "no port");
        assert_eq!(
            dest(Method::GET, "http://Example.COM/x?y").unwrap(),
            "example.com:80"
        );
        assert_eq!(
            dest(Method::GET, "http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080"
        );
        assert!(dest(Method::GET, "/index.html").is_err(), "origin-form");
        assert!(dest(Method::GET, "https://example.com/").is_err());
        assert!(dest(Method::GET, "ftp://example.com/").is_err());
        assert!(dest(Method::GET, "http://example.com:0/").is_err());
    }

    #[test]
    fn basic_credentials_are_decoded_and_bounded() {
        let basic = |value: &str| basic_credentials(&HeaderValue::from_str(value).unwrap());
        // "alice:open sesame:x" — the password may hold colons.
        assert_eq!(
            basic("Basic YWxpY2U6b3BlbiBzZXNhbWU6eA=="),
            Some((b"alice".to_vec(), b"open sesame:x".to_vec()))
        );
        assert_eq!(
            basic("basic   YWxpY2U6"),
            Some((b"alice".to_vec(), Vec::new()))
        );
        assert_eq!(basic("Bearer YWxpY2U6eA=="), None, "another scheme");
        assert_eq!(basic("Basic YWxpY2U="), None, "no colon");
        assert_eq!(basic("Basic !!!"), None, "not base64");
        assert_eq!(basic("Basic"), None);
        let long =
            base64::engine::general_purpose::STANDARD.encode(format!("a:{}", "x".repeat(256)));
        assert_eq!(
            basic(&format!("Basic {long}")),
            None,
            "password past 255 bytes"
        );
        let longest = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            "n".repeat(255),
            "p".repeat(255)
        ));
        assert!(basic(&format!("Basic {longest}")).is_some());
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic eDp5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
            ("content-length", "5"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept", "content-length"]);
        add_via(&mut headers, Version::HTTP_11);
        assert_eq!(headers[header::VIA], "1.1 socketkit");
    }
}
