//! Zero-copy echo for plain TCP on Linux: splice(2) moves the peer's bytes
//! from the socket into a kernel pipe and from the pipe back into the
//! socket, so they never cross into user space (a read/write relay copies
//! each byte twice).
//!
//! It is the same connection as far as everything else is concerned: bytes
//! are counted, every wait is bounded by the idle timeout, the peer's end of
//! stream ends the echo (and the server then half-closes as usual), and the
//! server's drain and abort apply unchanged. Streams that cannot splice
//! (Unix sockets here; TLS, whose bytes must be decrypted) say so, and the
//! caller keeps its read/write path.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::connection::{until_idle, Metered};
use super::Connection;
use crate::transport::Stream;

/// Bytes moved per splice call: the default capacity of a Linux pipe.
const PIPE_CAPACITY: usize = 64 * 1024;

/// Which way one splice moves bytes.
#[derive(Clone, Copy)]
enum Direction {
    /// Socket to pipe, once the socket is readable.
    In,
    /// Pipe to socket, once the socket is writable.
    Out,
}

impl Connection {
    /// Echoes everything the peer sends until its end of stream, through a
    /// pipe with splice(2). `None` if this stream cannot splice (not plain
    /// TCP, or no pipe could be made); nothing has been read then.
    pub(crate) async fn splice_back(&mut self) -> Option<io::Result<()>> {
        if !matches!(self.io.inner, Stream::Tcp(_)) {
            return None;
        }
        let pipe = Pipe::new().ok()?;
        Some(self.splice_loop(&pipe).await)
    }

    async fn splice_loop(&mut self, pipe: &Pipe) -> io::Result<()> {
        loop {
            let mut in_pipe = self.splice(pipe, Direction::In, PIPE_CAPACITY).await?;
            if in_pipe == 0 {
                return Ok(()); // the peer's end of stream
            }
            self.io.read += in_pipe as u64;
            while in_pipe > 0 {
                let n = self.splice(pipe, Direction::Out, in_pipe).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                self.io.written += n as u64;
                in_pipe -= n;
            }
        }
    }

    /// One splice of at most `len` bytes once the socket is ready, retried
    /// when the readiness was stale; bounded by the idle timeout like a read
    /// or a write.
    async fn splice(&mut self, pipe: &Pipe, direction: Direction, len: usize) -> io::Result<usize> {
        let Metered {
            inner: Stream::Tcp(tcp),
            idle,
            ..
        } = &mut self.io
        else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        let socket = tcp.as_raw_fd();
        let (interest, from, to) = match direction {
            Direction::In => (Interest::READABLE, socket, pipe.write.as_raw_fd()),
            Direction::Out => (Interest::WRITABLE, pipe.read.as_raw_fd(), socket),
        };
        loop {
            until_idle(idle, ready(tcp, interest)).await?;
            match tcp.try_io(interest, || splice(from, to, len)) {
                Ok(n) => {
                    self.io.touch();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

async fn ready(tcp: &TcpStream, interest: Interest) -> io::Result<()> {
    tcp.ready(interest).await.map(drop)
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open for the duration of the call (the
    // socket is borrowed from the connection, the pipe from its owner), and
    // null offsets mean "the file position", as pipes and sockets require.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A non-blocking pipe, closed on drop (with whatever it still holds).
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors are fresh and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe { read, write })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UnixStream};

    use super::*;
    use crate::addr::Endpoint;
    use crate::server::ServerHandle;
    use crate::transport::SocketAddress;

    fn connection(stream: Stream, idle: Option<Duration>) -> Connection {
        let local: Endpoint = "127.0.0.1:1".parse().unwrap();
        let peer = SocketAddress::Unix(None);
        Connection::new(stream, peer, local, ServerHandle::default(), idle, 64)
    }

    #[tokio::test]
    async fn tcp_echoes_through_the_pipe_counts_and_ends_at_the_peers_eof() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut conn = connection(Stream::Tcp(accepted), Some(Duration::from_secs(10)));
        let echo = tokio::spawn(async move {
            let outcome = conn.splice_back().await.expect("TCP splices");
            (outcome.is_ok(), conn.bytes_read(), conn.bytes_written())
        });
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let (mut reader, mut writer) = client.split();
        let send = async {
            writer.write_all(&data).await.unwrap();
            writer.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let receive = reader.read_to_end(&mut back);
        let ((), received) = tokio::join!(send, receive);
        received.unwrap();
        assert!(back == data, "echo differs");
        let len = data.len() as u64;
        assert_eq!(echo.await.unwrap(), (true, len, len));
    }

    #[tokio::test]
    async fn an_idle_spliced_connection_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut conn = connection(Stream::Tcp(accepted), Some(Duration::from_millis(100)));
        let outcome = tokio::time::timeout(Duration::from_secs(10), conn.splice_back())
            .await
            .expect("the idle timeout ends it");
        let error = outcome.expect("TCP splices").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn unix_streams_keep_the_read_write_path() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let mut conn = connection(Stream::Unix(ours), None);
        assert!(conn.splice_back().await.is_none());
    }
}
