//! Threads mode's blocking reads: the sockets a connection's thread may be
//! waiting on in a blocking system call, so that the drain deadline's abort
//! can reach them. A thread blocked in `recv` polls no future, so the
//! cancellation token that ends every other connection cannot wake it;
//! shutting its socket down does (the read returns end of stream, a
//! blocked write fails).

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use socket2::SockRef;
use tracing::debug;

use super::Connection;

/// The registered sockets, by connection number, each with the flag that
/// tells its connection it was cut (so its reads fail as aborted instead of
/// taking the shutdown for the peer's end of stream).
#[derive(Debug, Default)]
pub(crate) struct Blocked {
    sockets: Mutex<HashMap<u64, (RawFd, Arc<AtomicBool>)>>,
}

/// A connection's registration; dropping it (before the connection, which
/// owns the descriptor) takes the socket out again.
pub(crate) struct Registered<'a> {
    blocked: &'a Blocked,
    number: u64,
    cut: Arc<AtomicBool>,
}

impl Registered<'_> {
    /// Whether the abort cut this connection.
    pub(crate) fn was_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

impl Blocked {
    /// Registers connection `number`'s socket and puts it in blocking mode,
    /// unless the server is already aborting (`aborted`, set before
    /// [`Blocked::wake_all`] runs) or the stream cannot block (TLS). `None`:
    /// the connection stays on its event loop.
    pub(crate) fn enter<'a>(
        &'a self,
        number: u64,
        conn: &mut Connection,
        aborted: &AtomicBool,
    ) -> Option<Registered<'a>> {
        let fd = conn.raw_fd()?;
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock: either `wake_all` runs after this and finds the
        // socket, or it ran before and the flag, stored before it took
        // the lock, is seen here.
        if aborted.load(Ordering::Acquire) {
            return None;
        }
        let cut = Arc::new(AtomicBool::new(false));
        if let Err(error) = conn.block_reads(cut.clone()) {
            debug!(%error, "cannot switch the connection to blocking reads; it stays on its event loop");
            return None;
        }
        sockets.insert(number, (fd, cut.clone()));
        Some(Registered {
            blocked: self,
            number,
            cut,
        })
    }

    /// Cuts every registered connection and shuts its socket down, both
    /// ways, waking the threads blocked on them.
    pub(crate) fn wake_all(&self) {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        for (fd, cut) in sockets.values() {
            // Before the shutdown: the woken read must find it set.
            cut.store(true, Ordering::Release);
            // SAFETY: a socket is registered only while its connection,
            // which owns the descriptor, is alive: `Registered` takes it
            // out (under this lock) before the connection can be dropped.
            let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
            if let Err(error) = SockRef::from(&fd).shutdown(Shutdown::Both) {
                debug!(%error, "cannot shut down a blocked connection");
            }
        }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut sockets = self
            .blocked
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        sockets.remove(&self.number);
    }
}
