//! Where received files go: safe names, the `NAME.part` file (never through
//! a symlink), hashing and writing off the async threads, and the final
//! fsync-and-rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Why a name is refused, or `None` if it is a plain, safe file name.
pub(crate) fn unsafe_name(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if name.is_empty() {
        Some("the name is empty")
    } else if bytes.len() > 255 {
        Some("the name is longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("the name is a directory reference")
    } else if name.contains('/') || name.contains('\\') {
        Some("the name contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("the name contains control characters")
    } else if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        Some("the name starts with a drive prefix")
    } else if name.ends_with(".part") {
        Some("names ending in .part are reserved for partial transfers")
    } else {
        None
    }
}

/// The partial file of one transfer, opened without following symlinks.
pub(crate) struct Part {
    pub path: PathBuf,
    pub file: File,
}

impl Part {
    /// Opens (creating, mode 0600) `DIR/NAME.part`. `O_NOFOLLOW` makes a
    /// symlink planted there an error instead of a way out of DIR.
    pub(crate) fn open(dir: &Path, name: &str) -> io::Result<Part> {
        let path = dir.join(format!("{name}.part"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        Ok(Part { path, file })
    }
}

/// Hashes the first `length` bytes of `reader`, returning the hasher (to go
/// on with) or an error if there are fewer bytes.
pub(crate) fn hash_prefix(reader: &mut impl Read, length: u64) -> io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    let copied = io::copy(&mut reader.take(length), &mut hasher)?;
    if copied != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than expected",
        ));
    }
    Ok(hasher)
}

/// Free bytes for unprivileged writers on the filesystem holding `dir`.
pub(crate) fn free_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid C string and `stats` a buffer of the right
    // type; statvfs fills it or fails.
    let status = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs succeeded, so the struct is initialised.
    let stats = unsafe { stats.assume_init() };
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Writes and hashes chunks on a blocking thread, so disk and hash work
/// overlap with the network. Chunks in flight are bounded by the channel.
pub(crate) struct Writer {
    chunks: mpsc::Sender<Bytes>,
    task: JoinHandle<io::Result<(File, blake3::Hasher, u64)>>,
}

/// Chunks queued for the writer thread (each up to 1 MiB).
const WRITE_QUEUE: usize = 8;

/// How much is written before the kernel is asked to start writing it to
/// disk. The final fsync then finds little left to do, instead of flushing
/// the whole file at the end.
const WRITEBACK_STEP: u64 = 16 * 1024 * 1024;

/// Starts (does not wait for) writeback of a written range: Linux's
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`. Best effort; fsync still
/// guarantees durability.
fn start_writeback(file: &File, start: u64, length: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(start), Ok(length)) = (i64::try_from(start), i64::try_from(length)) else {
        return;
    };
    // SAFETY: the descriptor is open for the duration of the call; the call
    // only schedules I/O.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), start, length, libc::SYNC_FILE_RANGE_WRITE);
    }
}

impl Writer {
    /// Continues `file` at `offset` with `hasher` already covering the bytes
    /// before it.
    pub(crate) fn start(mut file: File, offset: u64, hasher: blake3::Hasher) -> Writer {
        let (chunks, mut incoming) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut written = 0u64;
            let mut flushed = 0u64;
            while let Some(chunk) = incoming.blocking_recv() {
                file.write_all(&chunk)?;
                hasher.update(&chunk);
                written += chunk.len() as u64;
                if written - flushed >= WRITEBACK_STEP {
                    start_writeback(&file, offset + flushed, written - flushed);
                    flushed = written;
                }
            }
            Ok((file, hasher, written))
        });
        Writer { chunks, task }
    }

    /// Queues a chunk; `false` if the writer stopped (its error comes from
    /// [`Writer::finish`]).
    pub(crate) async fn write(&self, chunk: Bytes) -> bool {
        self.chunks.send(chunk).await.is_ok()
    }

    /// Waits for every queued chunk to be written.
    pub(crate) async fn finish(self) -> io::Result<(File, blake3::Hasher, u64)> {
        drop(self.chunks);
        self.task.await.map_err(io::Error::other)?
    }
}

/// Makes the verified part the final file: fsync it, set its mode, rename
/// (refusing to replace an existing file unless `overwrite`), fsync the
/// directory so the rename survives a crash.
pub(crate) fn commit(
    part: &Path,
    file: &File,
    dir: &Path,
    name: &str,
    mode: Option<u32>,
    overwrite: bool,
) -> io::Result<()> {
    if let Some(mode) = mode {
        // Permission bits only: never set-uid, set-gid or sticky.
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    file.sync_all()?;
    let target = dir.join(name);
    if overwrite {
        std::fs::rename(part, &target)?;
    } else {
        rename_no_replace(part, &target)?;
    }
    File::open(dir)?.sync_all()
}

fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are valid C strings; renameat2 only reads them.
    let status = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "../../etc/passwd",
            "a/b",
            "a\\b",
            "/etc/passwd",
            "C:\\x",
            "c:x",
            "nul\0",
            "bell\u{7}",
            "esc\u{1b}[2J",
            "x.part",
        ] {
            assert!(unsafe_name(name).is_some(), "{name:?} accepted");
        }
        assert!(unsafe_name(&"a".repeat(256)).is_some());
        for name in [
            "report.pdf",
            "a",
            "...",
            "..x",
            "ünïcødé.txt",
            &"a".repeat(255),
        ] {
            assert_eq!(unsafe_name(name), None, "{name:?} refused");
        }
    }
}
