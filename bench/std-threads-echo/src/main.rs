//! std-threads-echo: the benchmark suite's thread-per-connection baseline,
//! written as a Rust user without a framework would: a blocking
//! `TcpListener`, one `std::thread` per connection running a blocking
//! read/write loop with a 16 KiB buffer (socketkit's relay buffer), plus
//! TCP_NODELAY and a 1024 backlog. TCP only. No timeouts, no limits.
//!
//!     cargo run --release --manifest-path bench/std-threads-echo/Cargo.toml -- 0

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

use socket2::{Domain, Socket, Type};

fn main() -> io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    socket.listen(1024)?;
    let listener: TcpListener = socket.into();
    println!("listening on tcp://{}", listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || echo(stream));
    }
    Ok(())
}

fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}
