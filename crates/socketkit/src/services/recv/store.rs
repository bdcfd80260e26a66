//! Where received files go: safe names, the hidden fixed-length part file
//! of each transfer (never through a symlink, locked by the one transfer
//! writing it), expiry of abandoned parts, the cache of part hashes, hashing
//! and writing off the async threads, and the final fsync-and-rename.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

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

/// Part files are `.sk-` + 32 hex digits of BLAKE3(name) + `.part`: hidden,
/// and 41 bytes whatever the name, so every name of up to 255 bytes has one.
const PART_PREFIX: &str = ".sk-";
const PART_SUFFIX: &str = ".part";
const PART_HASH_DIGITS: usize = 32;

/// The part file name of transfers of `name`.
pub(crate) fn part_name(name: &str) -> String {
    let hash = blake3::hash(name.as_bytes()).to_hex();
    format!("{PART_PREFIX}{}{PART_SUFFIX}", &hash[..PART_HASH_DIGITS])
}

/// Whether a directory entry is one of our part files (and nothing else a
/// user may keep in the directory).
fn is_part_name(file_name: &OsStr) -> bool {
    let Some(text) = file_name.to_str() else {
        return false;
    };
    text.len() == PART_PREFIX.len() + PART_HASH_DIGITS + PART_SUFFIX.len()
        && text.starts_with(PART_PREFIX)
        && text.ends_with(PART_SUFFIX)
        && text[PART_PREFIX.len()..PART_PREFIX.len() + PART_HASH_DIGITS]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// The partial file of one transfer, opened without following symlinks and
/// locked (`flock`) for as long as this value lives: one writer per part, so
/// the bytes a confirmed hash covers are the bytes stored.
pub(crate) struct Part {
    pub path: PathBuf,
    pub file: File,
}

/// Attempts to lock a part that keeps being replaced under us before giving
/// up (each retry means another transfer finished or removed it).
const LOCK_ATTEMPTS: usize = 8;

impl Part {
    /// Opens (creating, mode 0600) and locks the part file of `name` in
    /// `dir`. `O_NOFOLLOW` makes a symlink planted there an error instead of
    /// a way out of DIR. Another transfer of the same name holding it is an
    /// error of kind [`io::ErrorKind::WouldBlock`].
    pub(crate) fn open(dir: &Path, name: &str) -> io::Result<Part> {
        let path = dir.join(part_name(name));
        for _ in 0..LOCK_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)?;
            let held = file.metadata()?;
            if !held.is_file() {
                return Err(io::Error::other(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
            lock(&file)?;
            // Between open and lock the part may have been renamed into
            // place by a finished transfer, or removed (expired, failed):
            // then this lock is on a file no longer at `path`. Try again.
            if still_at(&path, &held)? {
                return Ok(Part { path, file });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the partial file keeps changing",
        ))
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: held until the file is closed.
fn lock(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor is open for the duration of the call.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `path` still names the file `held` describes.
fn still_at(path: &Path, held: &Metadata) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes the part files in `dir` untouched for longer than `ttl` (and not
/// locked by a transfer), returning how many went. Only an unreadable `dir`
/// is an error: a part that cannot be checked or removed (gone already,
/// say) is skipped, so one odd entry never stops the sweep or the server.
pub(crate) fn expire_parts(dir: &Path, ttl: Duration) -> io::Result<usize> {
    let cutoff = SystemTime::now().checked_sub(ttl);
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        if !is_part_name(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        // O_NONBLOCK: a FIFO planted under a part's name must not hang
        // the sweep (it is then skipped as not a regular file).
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue; // a symlink or gone: not ours to remove
        };
        let Ok(held) = file.metadata() else { continue };
        let stale = match (cutoff, held.modified()) {
            (Some(cutoff), Ok(modified)) => modified < cutoff,
            _ => false,
        };
        // Locked means a transfer is writing it; a changed path means it
        // was just replaced. Either way it is not abandoned.
        if held.is_file()
            && stale
            && lock(&file).is_ok()
            && still_at(&path, &held).unwrap_or(false)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// What identifies a part file's content without reading it. The inode and
/// change time cannot be set by a client or `touch`: any write changes the
/// change time, so a matching stamp means the bytes a cached hash covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(file: &File) -> io::Result<Stamp> {
        let meta = file.metadata()?;
        Ok(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// Hash states of whole part files, so a resume offer does not re-read a
/// large part (work any client could otherwise make the receiver do on
/// every `OFFER`). Filled when a transfer is interrupted or a part is hashed;
/// an entry counts only while the file's [`Stamp`] is unchanged.
#[derive(Debug, Default)]
pub(crate) struct PrefixCache {
    entries: Mutex<HashMap<PathBuf, (Stamp, blake3::Hasher)>>,
}

/// Entries kept (each ~2 KiB of hasher state).
const PREFIX_CACHE_ENTRIES: usize = 64;

impl PrefixCache {
    /// The hash of the part at `path`, if cached for exactly this content.
    pub(crate) fn get(&self, path: &Path, stamp: Stamp) -> Option<blake3::Hasher> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(path) {
            Some((cached, hasher)) if *cached == stamp => Some(hasher.clone()),
            _ => None,
        }
    }

    /// Remembers `hasher` as the hash of the part at `path` while it is
    /// `stamp`.
    pub(crate) fn put(&self, path: &Path, stamp: Stamp, hasher: blake3::Hasher) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= PREFIX_CACHE_ENTRIES && !entries.contains_key(path) {
            // Full: drop one (an arbitrary one; a miss only costs a re-hash).
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(path.to_path_buf(), (stamp, hasher));
    }

    /// Forgets the part at `path` (stored or removed).
    pub(crate) fn forget(&self, path: &Path) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(path);
    }
}

/// The mode a stored file gets when the sender asks for `requested`:
/// permission bits only (never set-uid, set-gid or sticky), less what the
/// receiver's `umask` takes away, as if the receiver had created it.
pub(crate) fn allowed_mode(requested: u32, umask: u32) -> u32 {
    requested & 0o777 & !umask
}

/// The process umask, read without changing it (`umask(2)` can only be read
/// by setting it, which races with files other threads create).
pub(crate) fn process_umask() -> u32 {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Umask:"))
                .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
        });
    // Without /proc assume the common 022 rather than race.
    from_proc.unwrap_or(0o022)
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
    pub(crate) async fn finish(self) -> Result<(File, blake3::Hasher, u64), WriteError> {
        drop(self.chunks);
        self.task
            .await
            .map_err(WriteError::Task)?
            .map_err(WriteError::Io)
    }
}

/// Why the writer thread did not write everything.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Writing or seeking failed.
    Io(io::Error),
    /// The thread itself failed (it panicked).
    Task(tokio::task::JoinError),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Io(error) => error.fmt(f),
            WriteError::Task(error) => error.fmt(f),
        }
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
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
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

    #[test]
    fn part_names_are_hidden_fixed_length_and_recognised() {
        for name in ["a", "report.pdf", &"x".repeat(255)] {
            let part = part_name(name);
            assert_eq!(part.len(), 41, "{part}");
            assert!(part.starts_with('.'));
            assert!(is_part_name(OsStr::new(&part)));
        }
        assert_ne!(part_name("a"), part_name("b"));
        for other in [
            "a.part",
            ".sk-short.part",
            ".sk-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz.part",
        ] {
            assert!(!is_part_name(OsStr::new(other)), "{other}");
        }
    }

    #[test]
    fn modes_lose_special_bits_and_what_the_umask_removes() {
        assert_eq!(allowed_mode(0o6777, 0o022), 0o755);
        assert_eq!(allowed_mode(0o1777, 0o077), 0o700);
        assert_eq!(allowed_mode(0o644, 0), 0o644);
    }

    #[test]
    fn a_part_is_locked_by_one_transfer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = Part::open(dir.path(), "x").unwrap();
        let second = Part::open(dir.path(), "x").err().unwrap();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        // Nor is a locked part expired, however old.
        assert_eq!(expire_parts(dir.path(), Duration::ZERO).unwrap(), 0);
        drop(first);
        let again = Part::open(dir.path(), "x").unwrap();
        drop(again);
        // A FIFO under a part's name neither hangs the sweep nor goes.
        let fifo = dir.path().join(part_name("fifo"));
        let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only reads it.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(expire_parts(dir.path(), Duration::ZERO).unwrap(), 1);
        assert!(fifo.exists());
    }

    #[test]
    fn a_cached_prefix_counts_only_for_unchanged_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = Part::open(dir.path(), "x").unwrap();
        part.file.write_all(b"hello").unwrap();
        let cache = PrefixCache::default();
        let stamp = Stamp::of(&part.file).unwrap();
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"hello");
        cache.put(&part.path, stamp, hasher);
        assert!(cache.get(&part.path, stamp).is_some());
        part.file.write_all(b"!").unwrap();
        let changed = Stamp::of(&part.file).unwrap();
        assert!(cache.get(&part.path, changed).is_none());
        cache.forget(&part.path);
        assert!(cache.get(&part.path, stamp).is_none());
    }
}
