//! The local exec socket: where it lives when no address is given
//! (`$XDG_RUNTIME_DIR/socketkit/exec.sock`, or `$TMPDIR/socketkit-UID/exec.sock`),
//! and the checks that keep another local user from standing in for it.
//! In a shared `/tmp` anyone can create `socketkit-UID` first and listen
//! there; so the server refuses a directory that is not ours and closed
//! (mode 0700, not a symlink), and the client refuses the same and, once
//! connected, a server whose uid (SO_PEERCRED) is not its own: the argv and
//! the input never reach an impostor.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::services::auth::current_uid;
use crate::transport::Stream;

/// Where exec listens and connects when no address is given.
pub fn default_socket_path() -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("socketkit"),
        None => std::env::temp_dir().join(format!("socketkit-{}", current_uid())),
    };
    dir.join("exec.sock")
}

/// [`default_socket_path`], with its directory created (mode 0700) so the
/// server can bind there; an existing directory must be ours and closed
/// (see the module docs).
pub fn prepare_default_socket() -> Result<PathBuf> {
    let path = default_socket_path();
    let Some(dir) = path.parent() else {
        return Ok(path);
    };
    crate::tls::create_private_dir(dir)?;
    check_private_dir(dir)?;
    Ok(path)
}

/// [`default_socket_path`] for a client: its directory, if it exists, must
/// be ours and closed. (A missing one is left to the connection
/// attempt to report; [`check_local_server`] still guards the race.)
pub fn locate_default_socket() -> Result<PathBuf> {
    let path = default_socket_path();
    match path.parent() {
        Some(dir) if dir.exists() || dir.is_symlink() => check_private_dir(dir)?,
        _ => {}
    }
    Ok(path)
}

/// A directory owned by this user, closed to everyone else, and not a
/// symlink.
fn check_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(dir).map_err(|e| {
        Error::with_source(
            ErrorKind::Io,
            format!("cannot inspect {}", dir.display()),
            e,
        )
    })?;
    let ours = current_uid();
    let problem = if !metadata.is_dir() {
        Some("is not a directory (a symlink?)".to_owned())
    } else if metadata.uid() != ours {
        Some(format!(
            "belongs to uid {}, not to this user (uid {ours})",
            metadata.uid()
        ))
    } else if metadata.mode() & 0o077 != 0 {
        Some(format!(
            "has mode {:04o}, not 0700",
            metadata.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::new(
            ErrorKind::Auth,
            format!(
                "refusing the exec socket directory {}: it {problem}; another user may have planted it",
                dir.display()
            ),
        )),
        None => Ok(()),
    }
}

/// On a Unix socket, the server must run as this user (SO_PEERCRED): a
/// socket another user planted gets nothing. Other transports pass (TLS
/// authenticates the server).
pub fn check_local_server(stream: &Stream) -> Result<()> {
    let Stream::Unix(_) = stream else {
        return Ok(());
    };
    let ours = current_uid();
    match stream.peer_uid() {
        Some(uid) if uid == ours => Ok(()),
        Some(uid) => Err(Error::new(
            ErrorKind::Auth,
            format!(
                "refusing the exec server: it runs as uid {uid}, not as this user (uid {ours})"
            ),
        )),
        None => Err(Error::new(
            ErrorKind::Auth,
            "refusing the exec server: the kernel did not say who it runs as (SO_PEERCRED)",
        )),
    }
}
