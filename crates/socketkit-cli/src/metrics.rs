//! `serve --metrics ADDR`: the server's counters (the library's
//! [`Metrics`]) in the Prometheus text exposition format, encoded by
//! `prometheus-client` and answered by a tiny HTTP/1.1 responder that runs
//! on socketkit's own server (no hyper: one GET, one reply, close).
//!
//! Every metric carries a `service` label. Byte counters grow as
//! connections close (see the library's `server::metrics`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use socketkit::server::{
    AccessList, Connection, Metrics, Server, ServerConfig, ServerHandle, StreamHandler,
};
use socketkit::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest request head read; a scraper's is a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Scrapes served at once; Prometheus sends one at a time.
const MAX_SCRAPES: usize = 16;

/// A scraper that has not sent its request head in this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The page: a registry whose one collector reads the counters.
#[derive(Debug)]
pub struct Page {
    registry: Registry,
}

impl Page {
    /// A page for `service`, and the counters its server should count into.
    pub fn new(service: &'static str) -> (Page, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let mut registry = Registry::with_prefix_and_labels(
            "socketkit",
            [(Cow::Borrowed("service"), Cow::Borrowed(service))].into_iter(),
        );
        registry.register_collector(Box::new(Counters(metrics.clone())));
        (Page { registry }, metrics)
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Reads a snapshot per scrape, so the hot path never touches
/// prometheus-client's own types.
#[derive(Debug)]
struct Counters(Arc<Metrics>);

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = self.0.snapshot();
        let counters = [
            (
                "connections",
                "Connections accepted and handed to the service.",
                now.connections_total,
            ),
            (
                "connections_refused",
                "Connections and datagrams refused by the access list.",
                now.refused,
            ),
            (
                "connections_aborted",
                "Connections cut off at the drain deadline.",
                now.aborted,
            ),
            ("datagrams", "Datagrams handled.", now.datagrams),
            (
                "received_bytes",
                "Bytes read from peers (connections: counted when they close).",
                now.bytes_in,
            ),
            (
                "sent_bytes",
                "Bytes written to peers (connections: counted when they close).",
                now.bytes_out,
            ),
            (
                "handler_errors",
                "Connections and datagrams whose handler failed (not a peer gone, a timeout or the drain abort).",
                now.handler_errors,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        // A gauge of u64 does not exist in the text encoder; i64 holds any
        // count of open connections.
        let open = ConstGauge::new(i64::try_from(now.connections_open).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "connections_open",
            "Connections being served now.",
            None,
            open.metric_type(),
        )?;
        open.encode(metric)?;
        Ok(())
    }
}

/// The metrics server, bound and ready.
pub struct Exposition {
    server: Server,
    page: Page,
}

/// Binds the metrics address (tcp:// or unix:) under the service's access
/// list, on the service's shutdown handle.
pub async fn bind(
    endpoint: &Endpoint,
    page: Page,
    access: AccessList,
    handle: &ServerHandle,
) -> anyhow::Result<Exposition> {
    if !matches!(endpoint, Endpoint::Tcp(_) | Endpoint::Unix(_)) {
        bail!("--metrics serves plain HTTP on tcp:// or unix:, not {endpoint}");
    }
    let config = ServerConfig::default()
        .max_connections(MAX_SCRAPES)
        .idle_timeout(Some(REQUEST_TIMEOUT))
        .access(access);
    let server = Server::bind(std::slice::from_ref(endpoint), config)
        .await?
        .with_handle(handle.clone());
    Ok(Exposition { server, page })
}

impl Exposition {
    /// Where to scrape, for the `listening on` lines.
    pub fn url(&self) -> Vec<String> {
        self.server
            .endpoints()
            .map(|endpoint| match endpoint {
                Endpoint::Tcp(host_port) => format!("http://{host_port}/metrics"),
                other => other.to_string(),
            })
            .collect()
    }

    /// Serves scrapes until the handle shuts down.
    pub async fn serve(self) -> socketkit::Result<()> {
        self.server.serve(self.page).await.map(drop)
    }
}

impl StreamHandler for Page {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> socketkit::Result<()> {
        let Some(head) = read_head(conn).await? else {
            return respond(
                conn,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        };
        let mut words = head.split(|&b| b == b' ');
        let (method, path) = (words.next(), words.next());
        match (method, path) {
            (Some(b"GET"), Some(b"/metrics" | b"/")) => match self.render() {
                Ok(text) => {
                    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                    respond(conn, "200 OK", kind, &text).await
                }
                Err(_) => respond(conn, "500 Internal Server Error", "text/plain", "").await,
            },
            (Some(b"GET"), _) => respond(conn, "404 Not Found", "text/plain", "").await,
            _ => respond(conn, "405 Method Not Allowed", "text/plain", "").await,
        }
    }
}

/// The request line, once the whole head (up to the blank line) is in;
/// `None` when the head passes [`MAX_REQUEST_HEAD`].
async fn read_head(conn: &mut Connection) -> socketkit::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
            head.truncate(line_end);
            return Ok(Some(head.trim_ascii_end().to_vec()));
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(
    conn: &mut Connection,
    status: &str,
    content_type: &str,
    body: &str,
) -> socketkit::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    Ok(())
}
