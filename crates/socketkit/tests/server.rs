//! The server framework over real loopback sockets: lifecycle, sessions,
//! modes, limits, split connections, shutdown and datagrams.
//!
//! Tests of the server's own timers (idle timeout, drain deadline) run on
//! tokio's paused clock: when every task waits, the clock jumps to the next
//! timer, so a 200 ms timeout costs no real time and cannot race a slow
//! machine. Loopback bytes are delivered within the sending system call, so
//! the clock moves only when the test really waits on a timer.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use socketkit::addr::Endpoint;
use socketkit::server::{
    Connection, DatagramHandler, Handlers, Mode, Server, ServerConfig, ServerHandle, StreamHandler,
    Summary,
};
use socketkit::services::{Echo, Hello};
use socketkit::transport::SocketAddress;
use socketkit::{ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bound for anything a test waits on: generous, because the machine is
/// shared; a correct run takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

struct Running {
    endpoints: Vec<Endpoint>,
    addrs: Vec<SocketAddress>,
    handle: ServerHandle,
    task: JoinHandle<Result<Summary>>,
}

impl Running {
    /// The first internet address bound (TCP, TLS or UDP).
    fn inet(&self) -> SocketAddr {
        self.addrs
            .iter()
            .find_map(SocketAddress::as_inet)
            .expect("an internet address")
    }

    async fn stopped(self) -> Summary {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server result")
    }
}

async fn start<S, D>(
    addrs: &[&str],
    config: ServerConfig,
    handlers: impl Into<Handlers<S, D>>,
    once: bool,
) -> Running
where
    S: StreamHandler,
    D: DatagramHandler,
{
    let endpoints: Vec<Endpoint> = addrs.iter().map(|a| a.parse().unwrap()).collect();
    let server = Server::bind(&endpoints, config).await.expect("bind");
    let endpoints = server.endpoints().cloned().collect();
    let addrs = server.local_addrs();
    let handle = server.handle();
    let handlers = handlers.into();
    let task = tokio::spawn(async move {
        if once {
            server.handle_request(handlers).await
        } else {
            server.serve(handlers).await
        }
    });
    Running {
        endpoints,
        addrs,
        handle,
        task,
    }
}

async fn recv<T>(events: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("event in time")
        .expect("channel open")
}

/// Records its lifecycle; `stop` from the client shuts the server down.
struct Recorder {
    events: mpsc::UnboundedSender<String>,
}

impl StreamHandler for Recorder {
    type Session = ();

    async fn setup(&self, conn: &mut Connection) -> Result<()> {
        let _ = self.events.send(format!("setup {}", conn.peer_addr()));
        Ok(())
    }

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let _ = self.events.send("handle".into());
        let mut buf = [0u8; 64];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            if &buf[..n] == b"stop" {
                conn.server().shutdown();
            }
            conn.write_all(&buf[..n]).await?;
        }
    }

    async fn finish(&self, _conn: &mut Connection, _session: Option<()>, outcome: &Result<()>) {
        let _ = self.events.send(finished(outcome));
    }
}

/// How a handler ended, as the event tests wait for.
fn finished(outcome: &Result<()>) -> String {
    match outcome {
        Ok(()) => "finish ok".to_owned(),
        Err(e) if e.kind() == ErrorKind::Aborted => "finish aborted".to_owned(),
        Err(e) if e.is_timeout() => "finish timeout".to_owned(),
        Err(e) if e.is_peer_gone() => "finish peer gone".to_owned(),
        Err(e) => format!("finish error {e}"),
    }
}

fn recorder() -> (Recorder, mpsc::UnboundedReceiver<String>) {
    let (events, rx) = mpsc::unbounded_channel();
    (Recorder { events }, rx)
}

#[tokio::test]
async fn lifecycle_runs_setup_handle_finish_in_order() {
    let (handler, mut events) = recorder();
    let server = start(&["127.0.0.1:0"], ServerConfig::default(), handler, false).await;
    let mut client = TcpStream::connect(server.inet()).await.unwrap();
    let local = client.local_addr().unwrap();
    client.write_all(b"ping").await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"ping");
    assert_eq!(recv(&mut events).await, format!("setup {local}"));
    assert_eq!(recv(&mut events).await, "handle");
    assert_eq!(recv(&mut events).await, "finish ok");
    server.handle.shutdown();
    assert_eq!(server.stopped().await.connections, 1);
}

#[tokio::test]
async fn finish_runs_when_the_peer_resets() {
    let (handler, mut events) = recorder();
    let server = start(&["127.0.0.1:0"], ServerConfig::default(), handler, false).await;
    let client = socket2::Socket::from(std::net::TcpStream::connect(server.inet()).unwrap());
    assert!(recv(&mut events).await.starts_with("setup"));
    assert_eq!(recv(&mut events).await, "handle");
    client.set_linger(Some(Duration::ZERO)).unwrap();
    drop(client); // linger 0: the close is a reset
    assert_eq!(recv(&mut events).await, "finish peer gone");
    server.handle.shutdown();
    server.stopped().await;
}

#[tokio::test]
async fn a_handler_can_shut_the_server_down() {
    let (handler, mut events) = recorder();
    let server = start(&["127.0.0.1:0"], ServerConfig::default(), handler, false).await;
    let addr = server.inet();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"stop").await.unwrap();
    let mut reply = [0u8; 4];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(
        &reply, b"stop",
        "bytes sent before the shutdown are still answered"
    );
    client.shutdown().await.unwrap();
    assert_eq!(client.read(&mut reply).await.unwrap(), 0);
    let summary = server.stopped().await;
    assert_eq!((summary.connections, summary.aborted), (1, 0));
    assert!(recv(&mut events).await.starts_with("setup"));
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn handle_request_serves_exactly_one_connection() {
    let server = start(&["127.0.0.1:0"], ServerConfig::default(), Echo, true).await;
    let addr = server.inet();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"once").await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"once");
    assert_eq!(server.stopped().await.connections, 1);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn any_host_shares_one_port_across_families() {
    let server = start(&[":0"], ServerConfig::default(), Echo, false).await;
    let ports: Vec<String> = server.endpoints.iter().map(ToString::to_string).collect();
    assert_eq!(ports.len(), 2, "{ports:?}");
    let port = server.inet().port();
    assert_ne!(port, 0);
    for host in ["127.0.0.1", "[::1]"] {
        let mut client = TcpStream::connect(format!("{host}:{port}")).await.unwrap();
        client.write_all(host.as_bytes()).await.unwrap();
        client.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, host.as_bytes());
    }
    server.handle.shutdown();
    server.stopped().await;
}

/// Blocks its thread until two connections are inside `handle` at once:
/// only possible when each connection has a thread of its own.
struct Rendezvous {
    arrived: Arc<(Mutex<u32>, Condvar)>,
}

impl StreamHandler for Rendezvous {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let (count, changed) = &*self.arrived;
        let together = {
            let mut count = count.lock().unwrap();
            *count += 1;
            changed.notify_all();
            let (count, _) = changed
                .wait_timeout_while(count, PATIENCE, |n| *n < 2)
                .unwrap();
            *count >= 2
        };
        let answer: &[u8] = if together { b"together" } else { b"alone" };
        conn.write_all(answer).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn threads_mode_lets_handlers_block() {
    let handler = Rendezvous {
        arrived: Arc::new((Mutex::new(0), Condvar::new())),
    };
    let config = ServerConfig::default().mode(Mode::Threads);
    let server = start(&["127.0.0.1:0"], config, handler, false).await;
    let addr = server.inet();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                let mut client = TcpStream::connect(addr).await.unwrap();
                let mut reply = Vec::new();
                client.read_to_end(&mut reply).await.unwrap();
                reply
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap(), b"together");
    }
    server.handle.shutdown();
    server.stopped().await;
}

#[tokio::test]
async fn the_connection_limit_queues_excess_clients_until_a_slot_frees() {
    let (handler, mut events) = recorder();
    let config = ServerConfig::default().max_connections(1);
    let server = start(&["127.0.0.1:0"], config, handler, false).await;
    let mut first = TcpStream::connect(server.inet()).await.unwrap();
    assert!(recv(&mut events).await.starts_with("setup"));
    assert_eq!(recv(&mut events).await, "handle");
    let mut second = TcpStream::connect(server.inet()).await.unwrap();
    second.write_all(b"queued").await.unwrap();
    first.shutdown().await.unwrap();
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).await.unwrap();
    assert_eq!(
        recv(&mut events).await,
        "finish ok",
        "first finished before the second starts"
    );
    assert!(recv(&mut events).await.starts_with("setup"));
    let mut reply = [0u8; 6];
    second.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"queued");
    server.handle.shutdown();
    drop(second);
    server.stopped().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_times_out_and_finish_sees_it() {
    let (handler, mut events) = recorder();
    let config = ServerConfig::default().idle_timeout(Some(Duration::from_millis(200)));
    let server = start(&["127.0.0.1:0"], config, handler, false).await;
    let mut client = TcpStream::connect(server.inet()).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(PATIENCE, client.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "server closed the idle connection");
    assert!(recv(&mut events).await.starts_with("setup"));
    assert_eq!(recv(&mut events).await, "handle");
    assert_eq!(recv(&mut events).await, "finish timeout");
    server.handle.shutdown();
    server.stopped().await;
}

/// Writes a kilobyte and flushes it, over and over, until that fails.
struct Flooder {
    events: mpsc::UnboundedSender<String>,
}

impl StreamHandler for Flooder {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _session: &mut ()) -> Result<()> {
        let chunk = [b'x'; 1024];
        loop {
            conn.write_all(&chunk).await?;
            conn.flush().await?;
        }
    }

    async fn finish(&self, _conn: &mut Connection, _session: Option<()>, outcome: &Result<()>) {
        let _ = self.events.send(finished(outcome));
    }
}

/// A TLS flush writes the records the session has buffered: a peer that
/// stops reading must stall it no longer than the idle timeout, as it would
/// a write. (Each write here fits the session's buffer, so only the flush
/// ever waits for the socket.)
#[tokio::test]
async fn a_tls_flush_to_a_peer_that_stops_reading_times_out() {
    use socketkit::tls::{ClientAuth, Identity, ServerTls};
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::self_signed(dir.path(), &["localhost".to_owned()]).unwrap();
    let tls = ServerTls::new(identity, &ClientAuth::None, false).unwrap();
    let config = ServerConfig::default()
        .idle_timeout(Some(Duration::from_millis(300)))
        .tls(tls);
    let (events, mut finishes) = mpsc::unbounded_channel();
    let server = start(&["tls://127.0.0.1:0"], config, Flooder { events }, false).await;
    let port = server.inet().port();
    // Python's ssl completes the handshake, then never reads again.
    let script = "import socket, ssl, sys\n\
        s = socket.socket()\n\
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n\
        s.connect(('127.0.0.1', int(sys.argv[1])))\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n\
        ctx.check_hostname = False\n\
        ctx.verify_mode = ssl.CERT_NONE\n\
        t = ctx.wrap_socket(s)\n\
        print('ready', flush=True)\n\
        sys.stdin.read()\n";
    let mut client = tokio::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut ready = String::new();
    let mut stdout = tokio::io::BufReader::new(client.stdout.take().unwrap());
    tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut ready),
    )
    .await
    .expect("handshake in time")
    .unwrap();
    assert_eq!(ready, "ready\n");
    // The clock runs until Python (another process, which a paused clock
    // would not wait for) has its session; from here only the server's
    // idle timer is awaited.
    tokio::time::pause();
    assert_eq!(recv(&mut finishes).await, "finish timeout");
    drop(client);
    server.handle.shutdown();
    server.stopped().await;
}

#[tokio::test(start_paused = true)]
async fn the_drain_deadline_aborts_stragglers_and_finish_still_runs() {
    let (handler, mut events) = recorder();
    let config = ServerConfig::default()
        .idle_timeout(None)
        .drain_timeout(Duration::from_millis(200));
    let server = start(&["127.0.0.1:0"], config, handler, false).await;
    let mut client = TcpStream::connect(server.inet()).await.unwrap();
    assert!(recv(&mut events).await.starts_with("setup"));
    assert_eq!(recv(&mut events).await, "handle");
    server.handle.shutdown();
    assert_eq!(recv(&mut events).await, "finish aborted");
    let summary = server.stopped().await;
    assert_eq!((summary.connections, summary.aborted), (1, 1));
    let mut buf = [0u8; 8];
    let _ = client.read(&mut buf).await; // closed: EOF or reset, never a hang
}

#[tokio::test]
async fn datagrams_are_answered_including_empty_ones() {
    let server = start(
        &["udp://127.0.0.1:0"],
        ServerConfig::default(),
        Handlers::both(Echo),
        false,
    )
    .await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(server.inet()).await.unwrap();
    let mut buf = [0u8; 70_000];
    for payload in [&b"hello"[..], b"", &[7u8; 65_000][..]] {
        client.send(payload).await.unwrap();
        let n = tokio::time::timeout(PATIENCE, client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], payload);
    }
    server.handle.shutdown();
    assert_eq!(server.stopped().await.datagrams, 3);
}

#[tokio::test]
async fn datagrams_from_privileged_ports_get_no_reply() {
    let server = start(
        &["udp://127.0.0.1:0"],
        ServerConfig::default(),
        Handlers::both(Echo),
        false,
    )
    .await;
    let target = server.inet();
    // Binding below 1024 needs privilege; without it the rule cannot be probed.
    let mut low = None;
    for port in (600..1000).rev() {
        if let Ok(socket) = UdpSocket::bind(("127.0.0.1", port)).await {
            low = Some(socket);
            break;
        }
    }
    let Some(low) = low else {
        eprintln!("skipped: cannot bind a port below 1024 here");
        return;
    };
    let high = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    low.send_to(b"loop?", target).await.unwrap();
    high.send_to(b"fine", target).await.unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(PATIENCE, high.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"fine");
    // Datagrams are handled in order, so a reply to `low` would be queued by now.
    assert_eq!(
        low.try_recv_from(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    server.handle.shutdown();
    assert_eq!(server.stopped().await.datagrams, 2);
}

#[tokio::test]
async fn a_stream_only_service_refuses_datagram_sockets() {
    let endpoint: Endpoint = "udp://127.0.0.1:0".parse().unwrap();
    let server = Server::bind(&[endpoint], ServerConfig::default())
        .await
        .unwrap();
    let error = server.serve(Hello::default()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn connect_falls_back_to_the_family_that_listens() {
    let server = start(&["127.0.0.1:0"], ServerConfig::default(), Echo, false).await;
    // `:PORT` as a client target tries ::1 first (nothing there), then 127.0.0.1.
    let target: Endpoint = format!("tcp://:{}", server.inet().port()).parse().unwrap();
    let options = socketkit::transport::ConnectOptions::default();
    let stream = socketkit::transport::connect(&target, &options)
        .await
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap().as_inet(), Some(server.inet()));
    drop(stream);
    server.handle.shutdown();
    server.stopped().await;
}

#[tokio::test]
async fn binding_a_taken_port_says_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint: Endpoint = format!("127.0.0.1:{}", taken.local_addr().unwrap().port())
        .parse()
        .unwrap();
    let error = Server::bind(&[endpoint], ServerConfig::default())
        .await
        .unwrap_err();
    assert!(error.is_address_in_use(), "{error:?}");
    assert!(error
        .to_string()
        .starts_with("cannot bind tcp://127.0.0.1:"));
}

/// The access list through the public API, the way `listen` or a forward
/// would use it: a client from 127.0.0.2 (bound with `ConnectOptions`'
/// source) is closed before the greeting, one from 127.0.0.1 is served, and
/// the summary counts the refusal.
#[tokio::test]
async fn access_list_refuses_a_second_loopback_source_before_any_byte() {
    use socketkit::addr::SourceAddress;
    use socketkit::server::{AccessList, Rule};
    use socketkit::transport::{self, ConnectOptions};

    let mut access = AccessList::new();
    access.add(Rule::Allow, "127.0.0.0/8").unwrap();
    access.add(Rule::Deny, "127.0.0.2").unwrap();
    let config = ServerConfig::default().access(access);
    let running = start(&["127.0.0.1:0"], config, Hello::default(), false).await;
    let target: Endpoint = format!("tcp://{}", running.inet()).parse().unwrap();
    let from = |ip: &str| ConnectOptions {
        source: Some(SourceAddress {
            ip: Some(ip.parse().unwrap()),
            port: 0,
        }),
        ..ConnectOptions::default()
    };

    let mut refused = transport::connect(&target, &from("127.0.0.2"))
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, refused.read_to_end(&mut got)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed without a byte: {read:?} {got:?}"
    );
    assert!(got.is_empty());

    let mut admitted = transport::connect(&target, &from("127.0.0.1"))
        .await
        .unwrap();
    let mut greeting = [0u8; 8];
    tokio::time::timeout(PATIENCE, admitted.read_exact(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&greeting, b"Welcome!");
    drop(admitted);

    running.handle.shutdown();
    let summary = running.stopped().await;
    assert_eq!((summary.refused, summary.connections), (1, 1));
}

/// Keeps a log of its connection in its session; `finish` reports it (or
/// `None` when `setup` failed).
struct Journal {
    reports: mpsc::UnboundedSender<Option<Vec<String>>>,
    refuse: bool,
}

impl StreamHandler for Journal {
    type Session = Vec<String>;

    async fn setup(&self, conn: &mut Connection) -> Result<Vec<String>> {
        if self.refuse {
            return Err(socketkit::Error::new(ErrorKind::Io, "refused in setup"));
        }
        Ok(vec![format!("setup {}", conn.peer_addr())])
    }

    async fn handle(&self, conn: &mut Connection, log: &mut Vec<String>) -> Result<()> {
        let mut text = String::new();
        conn.read_to_string(&mut text).await?;
        log.push(text);
        Ok(())
    }

    async fn finish(
        &self,
        _conn: &mut Connection,
        log: Option<Vec<String>>,
        _outcome: &Result<()>,
    ) {
        let _ = self.reports.send(log);
    }
}

#[tokio::test]
async fn each_connection_has_its_own_session_from_setup_to_finish() {
    let (reports, mut logs) = mpsc::unbounded_channel();
    let journal = Journal {
        reports,
        refuse: false,
    };
    let server = start(&["127.0.0.1:0"], ServerConfig::default(), journal, false).await;
    let (mut one, mut two) = (
        TcpStream::connect(server.inet()).await.unwrap(),
        TcpStream::connect(server.inet()).await.unwrap(),
    );
    let mut expected = Vec::new();
    for (client, text) in [(&mut one, "one"), (&mut two, "two")] {
        client.write_all(text.as_bytes()).await.unwrap();
        client.shutdown().await.unwrap();
        let log = vec![
            format!("setup {}", client.local_addr().unwrap()),
            text.to_owned(),
        ];
        expected.push(Some(log));
    }
    let mut got = vec![recv(&mut logs).await, recv(&mut logs).await];
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    server.handle.shutdown();
    server.stopped().await;
}

#[tokio::test]
async fn finish_gets_no_session_when_setup_fails() {
    let (reports, mut logs) = mpsc::unbounded_channel();
    let journal = Journal {
        reports,
        refuse: true,
    };
    let server = start(&["127.0.0.1:0"], ServerConfig::default(), journal, false).await;
    let mut client = TcpStream::connect(server.inet()).await.unwrap();
    assert_eq!(recv(&mut logs).await, None);
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    server.handle.shutdown();
    server.stopped().await;
}

/// Waits on its read half while the write half sends `tick` every 100 ms,
/// five times, then falls silent.
struct Ticker {
    events: mpsc::UnboundedSender<String>,
}

impl StreamHandler for Ticker {
    type Session = ();

    async fn handle(&self, conn: &mut Connection, _: &mut ()) -> Result<()> {
        let (mut reader, mut writer) = conn.split();
        let ticks = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                writer.write_all(b"tick\n").await?;
            }
            std::future::pending::<std::io::Result<()>>().await
        };
        let mut buf = [0u8; 16];
        tokio::select! {
            read = reader.read(&mut buf) => read.map(drop)?,
            ticked = ticks => ticked?,
        }
        Ok(())
    }

    async fn finish(&self, conn: &mut Connection, _: Option<()>, outcome: &Result<()>) {
        let _ = self.events.send(format!(
            "{} {} {}",
            finished(outcome),
            conn.bytes_read(),
            conn.bytes_written()
        ));
    }
}

/// The halves of a split connection share its idle deadline and counters:
/// the read half, waiting alone, must not time out while the write half
/// moves bytes (after 300 ms it would have, with two ticks sent); the
/// connection is idle 300 ms after the last tick.
#[tokio::test(start_paused = true)]
async fn split_halves_share_the_idle_deadline_and_the_counters() {
    let (events, mut finishes) = mpsc::unbounded_channel();
    let config = ServerConfig::default().idle_timeout(Some(Duration::from_millis(300)));
    let server = start(&["127.0.0.1:0"], config, Ticker { events }, false).await;
    let started = tokio::time::Instant::now();
    let mut client = TcpStream::connect(server.inet()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"tick\n".repeat(5));
    assert_eq!(recv(&mut finishes).await, "finish timeout 0 25");
    // The paused clock makes this exact: last tick at 500 ms, idle 300 ms.
    assert!(started.elapsed() >= Duration::from_millis(800));
    server.handle.shutdown();
    server.stopped().await;
}

/// `shutdown_signal` watches from the call, so a SIGTERM sent right after
/// (by kill(1), as a service manager would) stops `serve_until`.
#[tokio::test]
async fn serve_until_shutdown_signal_stops_on_sigterm() {
    use socketkit::server::shutdown_signal;
    let endpoint: Endpoint = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(&[endpoint], ServerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addrs()[0].as_inet().unwrap();
    let signal = shutdown_signal();
    let task = tokio::spawn(server.serve_until(Echo, signal));
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let summary = tokio::time::timeout(PATIENCE, task)
        .await
        .expect("stopped by the signal")
        .unwrap()
        .unwrap();
    assert_eq!(summary.connections, 0);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn local_addrs_are_the_sockets_actually_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let endpoints: Vec<Endpoint> = [
        "127.0.0.1:0",
        "udp://[::1]:0",
        &format!("unix:{}", path.display()),
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    let server = Server::bind(&endpoints, ServerConfig::default())
        .await
        .unwrap();
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 3, "{addrs:?}");
    let tcp = addrs[0].as_inet().unwrap();
    assert_eq!(tcp.ip().to_string(), "127.0.0.1");
    assert_ne!(tcp.port(), 0);
    let udp = addrs[1].as_inet().unwrap();
    assert_eq!(udp.ip().to_string(), "::1");
    assert_ne!(udp.port(), 0);
    assert_eq!(addrs[2], SocketAddress::Unix(Some(path)));
    // The TCP one accepts.
    drop(TcpStream::connect(tcp).await.unwrap());
}
