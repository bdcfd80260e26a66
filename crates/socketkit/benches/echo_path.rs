//! The echo data path, framework against hand-written tokio: one 64-byte
//! round trip through `services::Echo` served by socketkit's `Server`
//! (connection driver, abort watch, idle timer, byte counters, leased
//! buffer), and the same through the tokio tutorial's echo (`io::copy`
//! per task), client and server on one current-thread runtime so the
//! difference is CPU, not scheduling. It guards the per-wakeup work of
//! `Shared::drive` and `Lease::poll_read` (issue 15); `bench/suite.py`
//! measures the whole servers.
//!
//! The second group is threads mode's path: socketkit's echo in
//! `Mode::Threads` (a thread per connection reading with blocking system
//! calls) against a std thread-per-connection echo, each round trip from a
//! blocking std client.
//!
//!     cargo bench -p socketkit --bench echo_path
//!
//! Not run by CI (it only compiles them); compare the two lines of one run.

use std::io::{Read, Write};
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use socketkit::server::{Mode, Server, ServerConfig, ServerHandle};
use socketkit::services::Echo;
use socketkit::transport::SocketAddress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const MESSAGE: [u8; 64] = [b'x'; 64];

/// socketkit's echo on 127.0.0.1, port 0, with the default configuration
/// (idle timeout and all) in `mode`.
fn socketkit_echo(runtime: &Runtime, mode: Mode) -> (SocketAddr, ServerHandle) {
    runtime.block_on(async {
        let endpoint = "tcp://127.0.0.1:0".parse().expect("a valid endpoint");
        let server = Server::bind(&[endpoint], ServerConfig::default().mode(mode))
            .await
            .expect("bind 127.0.0.1:0");
        let Some(SocketAddress::Inet(addr)) = server.local_addrs().first().cloned() else {
            panic!("no TCP address bound");
        };
        let handle = server.handle();
        tokio::spawn(server.serve(Echo));
        (addr, handle)
    })
}

/// The tokio tutorial's echo (bench/tokio-echo's TCP half).
fn tokio_echo(runtime: &Runtime) -> SocketAddr {
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        addr
    })
}

fn round_trips(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (socketkit, handle) = socketkit_echo(&runtime, Mode::Tasks);
    let tokio = tokio_echo(&runtime);
    let mut group = c.benchmark_group("echo 64 B round trip");
    group.throughput(Throughput::Elements(1));
    for (name, addr) in [("socketkit Echo", socketkit), ("tokio io::copy", tokio)] {
        let mut client = runtime.block_on(async {
            let client = TcpStream::connect(addr).await.expect("connect");
            client.set_nodelay(true).expect("TCP_NODELAY");
            client
        });
        let mut reply = [0u8; 64];
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    client.write_all(&MESSAGE).await.expect("send");
                    client.read_exact(&mut reply).await.expect("echo");
                })
            })
        });
    }
    group.finish();
    handle.shutdown();
}

/// What a ThreadingMixIn user writes in Rust (bench/std-threads-echo).
fn std_threads_echo() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn thread_per_connection(c: &mut Criterion) {
    // Only the accept loop runs here; each connection gets its own thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let (socketkit, handle) = socketkit_echo(&runtime, Mode::Threads);
    let std = std_threads_echo();
    let mut group = c.benchmark_group("echo 64 B round trip, thread per connection");
    group.throughput(Throughput::Elements(1));
    for (name, addr) in [
        ("socketkit Echo, Mode::Threads", socketkit),
        ("std threads", std),
    ] {
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        client.set_nodelay(true).expect("TCP_NODELAY");
        let mut reply = [0u8; 64];
        group.bench_function(name, |b| {
            b.iter(|| {
                client.write_all(&MESSAGE).expect("send");
                client.read_exact(&mut reply).expect("echo");
            })
        });
    }
    group.finish();
    handle.shutdown();
}

criterion_group!(benches, round_trips, thread_per_connection);
criterion_main!(benches);
