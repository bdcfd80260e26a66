//! The echo service's data path over loopback: it holds no buffer while
//! idle, so these pin down what must survive that: the idle timeout, byte
//! counts, half-close, bulk in both directions at once, and echoing on
//! through a graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use socketkit::addr::{Endpoint, Host};
use socketkit::server::{
    Connection, Framing, Message, MessageHandler, Mode, Reply, Server, ServerConfig, ServerHandle,
    StreamHandler,
};
use socketkit::services::Echo;
use socketkit::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;

/// Bound for anything a test waits on: generous, because the machine is
/// shared; a correct run takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

/// Echo, reporting each connection's outcome and byte counts from `finish`.
struct Counted {
    outcomes: mpsc::UnboundedSender<(String, u64, u64)>,
}

impl StreamHandler for Counted {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        Echo.handle(conn, &mut ()).await
    }

    /// As echo's own: in threads mode the connection reads blocking.
    fn blocking_reads(&self) -> bool {
        StreamHandler::blocking_reads(&Echo)
    }

    async fn finish(&self, conn: &mut Connection, _session: Option<()>, outcome: &Result<()>) {
        let what = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(e) => format!("error {e}"),
        };
        let _ = self
            .outcomes
            .send((what, conn.bytes_read(), conn.bytes_written()));
    }
}

struct Running {
    endpoint: Endpoint,
    handle: ServerHandle,
    outcomes: mpsc::UnboundedReceiver<(String, u64, u64)>,
    task: Task,
}

async fn start(endpoint: &str, config: ServerConfig) -> Running {
    let server = Server::bind(&[endpoint.parse().unwrap()], config)
        .await
        .unwrap();
    let endpoint = server.endpoints().next().unwrap().clone();
    let handle = server.handle();
    let (tx, outcomes) = mpsc::unbounded_channel();
    let task = tokio::spawn(server.serve(Counted { outcomes: tx }));
    Running {
        endpoint,
        handle,
        outcomes,
        task,
    }
}

impl Running {
    async fn tcp(&self) -> TcpStream {
        let Endpoint::Tcp(hp) = &self.endpoint else {
            panic!("not TCP: {}", self.endpoint)
        };
        let Host::Ip(ip) = hp.host else {
            panic!("not an IP: {}", self.endpoint)
        };
        TcpStream::connect((ip, hp.port)).await.unwrap()
    }

    async fn outcome(&mut self) -> (String, u64, u64) {
        tokio::time::timeout(PATIENCE, self.outcomes.recv())
            .await
            .expect("finish in time")
            .expect("server running")
    }

    async fn stop(self) {
        self.handle.shutdown();
        stopped(self.task).await;
    }
}

type Task = tokio::task::JoinHandle<Result<socketkit::server::Summary>>;

/// The server's summary once its task ends, which must be in time.
async fn stopped(task: Task) -> socketkit::server::Summary {
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("server stops in time")
        .unwrap()
        .unwrap()
}

/// `handler` served on 127.0.0.1, port 0: the address, the handle, the task.
async fn serve_on_loopback<H: MessageHandler>(
    handler: H,
    config: ServerConfig,
) -> (String, ServerHandle, Task) {
    let server = Server::bind(&["127.0.0.1:0".parse().unwrap()], config)
        .await
        .unwrap();
    let addr = server.local_addrs()[0].to_string();
    let handle = server.handle();
    (addr, handle, tokio::spawn(server.serve(handler)))
}

async fn read_until_eof(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut all))
        .await
        .expect("EOF in time")
        .unwrap();
    all
}

/// On tokio's paused clock: the idle wait costs no real time.
#[tokio::test(start_paused = true)]
async fn an_idle_echo_connection_times_out_after_an_exchange() {
    let config = ServerConfig::default().idle_timeout(Some(Duration::from_millis(200)));
    let mut server = start("127.0.0.1:0", config).await;
    let mut client = server.tcp().await;
    client.write_all(b"ping").await.unwrap();
    let mut reply = [0u8; 4];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"ping");
    assert!(read_until_eof(&mut client).await.is_empty());
    assert_eq!(server.outcome().await, ("timeout".to_owned(), 4, 4));
    server.stop().await;
}

#[tokio::test]
async fn bulk_both_ways_then_half_close_gets_every_byte_back_and_counted() {
    bulk_both_ways_then_half_close(ServerConfig::default()).await;
}

/// Threads mode reads blocking, and writes block while the peer's window
/// is full: the echo must still come back whole, and the close after the
/// peer's FIN run on the event loop again.
#[tokio::test]
async fn threads_mode_bulk_both_ways_then_half_close_gets_every_byte_back() {
    bulk_both_ways_then_half_close(ServerConfig::default().mode(Mode::Threads)).await;
}

async fn bulk_both_ways_then_half_close(config: ServerConfig) {
    let mut server = start("127.0.0.1:0", config).await;
    let client = server.tcp().await;
    let data: Arc<Vec<u8>> = Arc::new((0..4 << 20).map(|i| (i * 7 % 251) as u8).collect());
    let (mut reader, mut writer) = client.into_split();
    let sent = data.clone();
    let writing = tokio::spawn(async move {
        for chunk in sent.chunks(100_000) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.shutdown().await.unwrap();
        writer
    });
    let echoed = read_until_eof(&mut reader).await;
    drop(writing.await.unwrap());
    assert!(
        echoed == *data,
        "echo differs ({} bytes back)",
        echoed.len()
    );
    let size = data.len() as u64;
    assert_eq!(server.outcome().await, ("ok".to_owned(), size, size));
    server.stop().await;
}

#[tokio::test]
async fn unix_echo_keeps_answering_through_a_graceful_shutdown() {
    unix_echo_through_a_graceful_shutdown(ServerConfig::default()).await;
}

/// The same with the connection's thread blocked in `recv` when the
/// shutdown comes: graceful shutdown leaves it be until the peer is done.
#[tokio::test]
async fn threads_mode_unix_echo_keeps_answering_through_a_graceful_shutdown() {
    unix_echo_through_a_graceful_shutdown(ServerConfig::default().mode(Mode::Threads)).await;
}

async fn unix_echo_through_a_graceful_shutdown(config: ServerConfig) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let config = config.drain_timeout(PATIENCE);
    let mut server = start(&format!("unix:{}", path.display()), config).await;
    let mut client = UnixStream::connect(&path).await.unwrap();
    client.write_all(b"one").await.unwrap();
    let mut reply = [0u8; 3];
    client.read_exact(&mut reply).await.unwrap();
    server.handle.shutdown();
    client.write_all(b"two").await.unwrap();
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"two");
    client.shutdown().await.unwrap();
    assert!(read_until_eof(&mut client).await.is_empty());
    assert_eq!(server.outcome().await, ("ok".to_owned(), 6, 6));
    server.stop().await;
}

/// On the real clock: the connection's thread runs its own runtime, whose
/// clock the test's `start_paused` would not pause.
#[tokio::test]
async fn threads_mode_echoes_counts_and_times_out_on_the_connections_own_loop() {
    let config = ServerConfig::default()
        .mode(Mode::Threads)
        .idle_timeout(Some(Duration::from_millis(300)));
    let mut server = start("127.0.0.1:0", config).await;
    let mut client = server.tcp().await;
    for message in [&b"one"[..], b"two", b"three"] {
        client.write_all(message).await.unwrap();
        let mut reply = vec![0u8; message.len()];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, message);
    }
    assert!(read_until_eof(&mut client).await.is_empty());
    assert_eq!(server.outcome().await, ("timeout".to_owned(), 11, 11));
    server.stop().await;
}

/// Threads mode, the peer stops reading its echo: the server's write
/// blocks in the kernel once both windows are full, and the idle timeout
/// (the socket's send timeout there) must still end it.
#[tokio::test]
async fn threads_mode_times_out_a_peer_that_stops_reading() {
    let config = ServerConfig::default()
        .mode(Mode::Threads)
        .idle_timeout(Some(Duration::from_millis(300)));
    let mut server = start("127.0.0.1:0", config).await;
    let client = server.tcp().await;
    let (reader, mut writer) = client.into_split();
    // Writes until the server gives up on us (a reset) or the test ends;
    // never reads.
    let flooding = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        while writer.write_all(&chunk).await.is_ok() {}
    });
    let (outcome, read, written) = server.outcome().await;
    assert_eq!(outcome, "timeout");
    assert!(
        read > written,
        "the echo stalled: read {read}, wrote {written}"
    );
    flooding.abort();
    drop(reader);
    server.stop().await;
}

/// Threads mode: a connection whose thread is blocked reading an idle peer
/// is still ended at the drain deadline; the abort shuts its socket down,
/// the peer sees the close, and the server stops without leaving it.
#[tokio::test]
async fn threads_mode_the_drain_deadline_ends_a_blocked_read() {
    let config = ServerConfig::default()
        .mode(Mode::Threads)
        .idle_timeout(None)
        .drain_timeout(Duration::from_millis(200));
    let mut server = start("127.0.0.1:0", config).await;
    let mut client = server.tcp().await;
    client.write_all(b"ping").await.unwrap();
    let mut reply = [0u8; 4];
    client.read_exact(&mut reply).await.unwrap();
    server.handle.shutdown();
    let (outcome, read, written) = server.outcome().await;
    assert!(outcome.contains("aborted"), "{outcome}");
    assert_eq!((read, written), (4, 4));
    assert!(read_until_eof(&mut client).await.is_empty());
    let summary = stopped(server.task).await;
    assert_eq!((summary.connections, summary.aborted), (1, 1));
}

/// Upper-cases each line: a line service, for the split halves' path.
struct ShoutLines;

impl MessageHandler for ShoutLines {
    fn framing(&self) -> Framing {
        Framing::Lines
    }

    async fn respond(&self, message: Message<'_>, reply: &mut Reply) -> Result<()> {
        message.data.make_ascii_uppercase();
        reply.echo();
        Ok(())
    }
}

/// Threads mode with line framing: the split halves read blocking too.
#[tokio::test]
async fn threads_mode_serves_lines_through_blocking_reads() {
    let config = ServerConfig::default().mode(Mode::Threads);
    let (addr, handle, task) = serve_on_loopback(ShoutLines, config).await;
    let mut client = TcpStream::connect(addr.as_str()).await.unwrap();
    client.write_all(b"one\ntwo\r\nthr").await.unwrap();
    client.write_all(b"ee\n").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(read_until_eof(&mut client).await, b"ONE\nTWO\nTHREE\n");
    handle.shutdown();
    stopped(task).await;
}

/// Records each line it is given: what a line service did after the fact.
struct RecordLines {
    seen: mpsc::UnboundedSender<Vec<u8>>,
}

impl MessageHandler for RecordLines {
    fn framing(&self) -> Framing {
        Framing::Lines
    }

    async fn respond(&self, message: Message<'_>, _reply: &mut Reply) -> Result<()> {
        let _ = self.seen.send(message.data.to_vec());
        Ok(())
    }
}

/// Threads mode: the drain deadline's abort wakes a blocked read by shutting
/// the socket down, which the read must report as the abort. Taken for the
/// peer's end of stream, the unfinished line still queued would be served
/// as a last line after the deadline.
#[tokio::test]
async fn threads_mode_serves_nothing_after_the_drain_deadline() {
    let config = ServerConfig::default()
        .mode(Mode::Threads)
        .idle_timeout(None)
        .drain_timeout(Duration::from_millis(200));
    let (seen, mut lines) = mpsc::unbounded_channel();
    let (addr, handle, task) = serve_on_loopback(RecordLines { seen }, config).await;
    let mut client = TcpStream::connect(addr.as_str()).await.unwrap();
    client.write_all(b"whole\nunfinish").await.unwrap();
    let first = tokio::time::timeout(PATIENCE, lines.recv()).await.unwrap();
    assert_eq!(first.as_deref(), Some(&b"whole"[..]));
    handle.shutdown();
    let summary = stopped(task).await;
    assert_eq!((summary.connections, summary.aborted), (1, 1));
    let after: Vec<_> = std::iter::from_fn(|| lines.try_recv().ok()).collect();
    assert!(after.is_empty(), "served after the deadline: {after:?}");
}
