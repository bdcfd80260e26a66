//! Runs every example's service over loopback against real clients.
//!
//! Each example file is compiled into this test as a module (`#[path]`),
//! so the test drives the very handler the example defines; only the
//! example's `main` (bind a fixed port, print, `serve_until` the signal) is
//! left to the compiler. That needs no `cargo run` inside a test and no
//! guess at where cargo put the example binaries (a narrow `cargo test
//! --test examples` does not build them).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use socketkit::server::{DatagramHandler, Handlers, Server, ServerConfig, StreamHandler, Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "../examples/resolve.rs"]
#[allow(dead_code)]
mod resolve;
#[path = "../examples/reverse.rs"]
#[allow(dead_code)]
mod reverse;
#[path = "../examples/stop.rs"]
#[allow(dead_code)]
mod stop;
#[path = "../examples/tally.rs"]
#[allow(dead_code)]
mod tally;
#[path = "../examples/tls.rs"]
#[allow(dead_code)]
mod tls;
#[path = "../examples/whoami.rs"]
#[allow(dead_code)]
mod whoami;

/// Bound for anything a test waits on: generous, because the machine is
/// shared; a correct run takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

/// A served example: its address, a way to stop it, and its outcome.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<socketkit::Result<Summary>>,
}

impl Running {
    /// Ends the `serve_until` future (dropping the sender completes it).
    async fn stopped(mut self) -> Summary {
        drop(self.stop.take());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server result")
    }
}

async fn serve<S, D>(
    addr: &str,
    config: ServerConfig,
    handlers: impl Into<Handlers<S, D>> + Send + 'static,
) -> Running
where
    S: StreamHandler,
    D: DatagramHandler,
{
    let server = Server::bind(&[addr.parse().unwrap()], config)
        .await
        .unwrap();
    let addr = server.local_addrs()[0]
        .as_inet()
        .expect("an internet address");
    let (stop, stopped) = oneshot::channel::<()>();
    let until = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(server.serve_until(handlers, until));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn within<T>(what: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, what).await.expect("in time")
}

/// Sends `input`, half-closes, and reads everything until the server closes.
async fn exchange(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = Vec::new();
    within(client.read_to_end(&mut reply)).await.unwrap();
    reply
}

#[tokio::test]
async fn reverse_answers_each_line_reversed_by_character() {
    let running = serve("127.0.0.1:0", ServerConfig::default(), reverse::Reverse).await;
    let reply = exchange(running.addr, "hello\r\nnaïve\n\nlast".as_bytes()).await;
    assert_eq!(String::from_utf8(reply).unwrap(), "olleh\nevïan\n\ntsal\n");
    assert_eq!(running.stopped().await.connections, 1);
}

#[tokio::test]
async fn reverse_skips_an_over_long_line_and_goes_on() {
    let config = ServerConfig::default().max_line_length(8);
    let running = serve("127.0.0.1:0", config, reverse::Reverse).await;
    let reply = exchange(running.addr, b"abc\n0123456789abcdef\nxyz\n").await;
    assert_eq!(reply, b"cba\nzyx\n");
    running.stopped().await;
}

/// The same handler on UDP: one datagram is one line.
#[tokio::test]
async fn reverse_serves_datagrams_as_lines() {
    let running = serve(
        "udp://127.0.0.1:0",
        ServerConfig::default(),
        Handlers::both(reverse::Reverse),
    )
    .await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(running.addr).await.unwrap();
    let mut buf = [0u8; 64];
    for (sent, expected) in [
        (&b"abc\n"[..], &b"cba\n"[..]),
        (b"xy\r\n", b"yx\n"),
        (b"", b"\n"),
    ] {
        client.send(sent).await.unwrap();
        let n = within(client.recv(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], expected);
    }
    assert_eq!(running.stopped().await.datagrams, 3);
}

#[tokio::test]
async fn whoami_answers_each_datagram_with_its_source() {
    let running = serve(
        "udp://127.0.0.1:0",
        ServerConfig::default(),
        Handlers::datagram(whoami::WhoAmI),
    )
    .await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(running.addr).await.unwrap();
    let mut buf = [0u8; 64];
    for payload in [&b"hi"[..], b""] {
        client.send(payload).await.unwrap();
        let n = within(client.recv(&mut buf)).await.unwrap();
        assert_eq!(
            &buf[..n],
            format!("{}\n", client.local_addr().unwrap()).as_bytes()
        );
    }
    running.stopped().await;
}

/// Python's ssl module as the client: an independent TLS stack.
#[tokio::test]
async fn tls_serves_upper_over_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = tls::self_signed(dir.path()).unwrap();
    let config = ServerConfig::default().tls(tls);
    let running = serve("tls://127.0.0.1:0", config, socketkit::services::Upper).await;
    let script = "import socket, ssl, sys\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n\
        ctx.load_verify_locations(sys.argv[2])\n\
        with socket.create_connection(('127.0.0.1', int(sys.argv[1]))) as s:\n\
        \x20   with ctx.wrap_socket(s, server_hostname='localhost') as t:\n\
        \x20       t.sendall(b'hello tls\\n')\n\
        \x20       got = b''\n\
        \x20       while not got.endswith(b'\\n'):\n\
        \x20           got += t.recv(64)\n\
        \x20       sys.stdout.write(got.decode())\n";
    let cert = dir.path().join("cert.pem");
    let output = within(
        tokio::process::Command::new("python3")
            .args(["-c", script, &running.addr.port().to_string()])
            .arg(&cert)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python3");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"HELLO TLS\n");
    assert_eq!(running.stopped().await.connections, 1);
}

/// Two clients at once, each blocked in the resolver on its own thread.
#[tokio::test]
async fn resolve_answers_from_the_system_resolver_in_threads_mode() {
    let running = serve("127.0.0.1:0", resolve::config(), resolve::Resolve).await;
    let (one, two) = tokio::join!(
        exchange(running.addr, b"localhost\n127.0.0.1\n"),
        exchange(running.addr, b"::1\n"),
    );
    let one = String::from_utf8(one).unwrap();
    let mut lines = one.lines();
    assert!(
        lines.next().unwrap().split(' ').any(|a| a == "127.0.0.1"),
        "{one:?}"
    );
    assert_eq!(lines.next(), Some("127.0.0.1"));
    assert_eq!(two, b"::1\n");
    assert_eq!(running.stopped().await.connections, 2);
}

#[tokio::test]
async fn stop_echoes_lines_until_stop_shuts_the_server_down() {
    let mut running = serve("127.0.0.1:0", ServerConfig::default(), stop::Stop).await;
    let addr = running.addr;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"hi\nstop\n").await.unwrap();
    let mut reply = [0u8; 12];
    within(client.read_exact(&mut reply)).await.unwrap();
    assert_eq!(&reply, b"hi\nstopping\n");
    // A graceful stop lets this connection finish: it is still answered.
    client.write_all(b"still here\n").await.unwrap();
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(client.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(rest, b"still here\n");
    // The server stopped by itself: `serve_until` returns with its future
    // still pending.
    let summary = within(&mut running.task).await.unwrap().unwrap();
    assert_eq!(summary.connections, 1);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn tally_keeps_a_total_per_connection_and_adds_them_up_in_finish() {
    let handler = tally::Tally::default();
    let grand_total = handler.grand_total.clone();
    let running = serve("127.0.0.1:0", ServerConfig::default(), handler).await;
    let (one, two) = tokio::join!(
        exchange(running.addr, b"1\n2\n-5\n"),
        exchange(running.addr, b"10\nten\n9223372036854775807\n"),
    );
    assert_eq!(one, b"1\n3\n-2\n");
    let two = String::from_utf8(two).unwrap();
    assert_eq!(
        two.lines().collect::<Vec<_>>(),
        [
            "10",
            "error: not a whole number, or the total would overflow",
            "error: not a whole number, or the total would overflow"
        ]
    );
    running.stopped().await;
    // `finish` ran before each connection closed, so before its EOF.
    assert_eq!(
        grand_total.load(std::sync::atomic::Ordering::Relaxed),
        -2 + 10
    );
}
