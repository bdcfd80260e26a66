//! The process's open-file limit. Every connection is a file descriptor,
//! and the usual soft limit (1024) is far below what the hard limit allows,
//! so a server raises its soft limit to the hard one once, at start, as
//! nginx and most servers do: idle sockets must not be what runs a server
//! out of descriptors. The limit the process started with is kept, so that
//! programs the server runs for clients (exec, cmd) get it back: a child
//! that uses `select()` or closes every descriptor up to the limit should
//! not inherit a limit of a million.

use std::sync::{Once, OnceLock};

use tracing::debug;

/// The soft limit before [`raise_open_files_limit`] raised it, if it did.
static ORIGINAL: OnceLock<libc::rlimit> = OnceLock::new();

/// The open-file limit to give a child process: the one this process
/// started with, if the server raised it; `None` when it was left alone.
#[cfg(feature = "exec")]
pub(crate) fn original_open_files_limit() -> Option<libc::rlimit> {
    ORIGINAL.get().copied()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, once per process;
/// logs what it did at debug. Failing to is not fatal: the server runs
/// with the limit it has (and backs off on EMFILE).
pub(crate) fn raise_open_files_limit() {
    static RAISED: Once = Once::new();
    RAISED.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given, which we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            let error = std::io::Error::last_os_error();
            debug!(%error, "cannot read the open-file limit");
            return;
        }
        let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
        if soft >= hard {
            debug!(soft, hard, "open-file limit already at its hard limit");
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            let _ = ORIGINAL.set(limit);
            debug!(from = soft, to = hard, "raised the open-file limit");
        } else {
            let error = std::io::Error::last_os_error();
            debug!(soft, hard, %error, "cannot raise the open-file limit");
        }
    });
}
