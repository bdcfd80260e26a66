//! tokio-echo: the benchmark suite's tokio baseline, written the way the
//! tokio tutorial does it: one task per connection running `io::copy` from
//! the read half to the write half, plus TCP_NODELAY and a 1024 backlog so
//! it is not handicapped by either. UDP on the same port: `recv_from`, then
//! `send_to`, in one task. No timeouts, no limits.
//!
//! With `current-thread` after the port it runs on tokio's current-thread
//! runtime, the shape of `socketkit serve --threads 1`, so the suite can
//! tell tokio's own cost against the C epoll loop from socketkit's.
//!
//!     cargo run --release --manifest-path bench/tokio-echo/Cargo.toml -- 0 [current-thread]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, UdpSocket};

fn main() -> io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let runtime = match std::env::args().nth(2).as_deref() {
        Some("current-thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(serve(port))
}

async fn serve(port: u16) -> io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let listener = socket.listen(1024)?;
    let addr = listener.local_addr()?;
    let udp = UdpSocket::bind(addr).await?;
    println!("listening on tcp://{addr}\nlistening on udp://{addr}");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                let _ = udp.send_to(&buf[..n], peer).await;
            }
        }
    });
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let (mut reader, mut writer) = stream.split();
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
        });
    }
}
