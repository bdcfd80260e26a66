//! Where `get` puts a body: stdout, or a file that appears under its name
//! only when complete.
//!
//! Writes are plain blocking writes on the runtime's one thread. `get` is one
//! transfer per process, so a slow disk or a slow reader of stdout should
//! stall the socket (that is the back-pressure we want), and tokio's own
//! stdout would hand every chunk to the blocking thread pool and back.

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::NamedTempFile;

use crate::stdout::Marked;

/// Small writes (chunked bodies in little pieces, header lines) are
/// gathered up to this; larger ones go straight to the file descriptor.
const WRITE_BUFFER: usize = 8 * 1024;

/// A body's destination.
pub enum Output {
    /// Our stdout (a duplicate of fd 1, so no line buffering).
    Stdout(BufWriter<Marked<File>>),
    /// A regular file, written under a temporary name in the same
    /// directory; dropped unfinished, the temporary file is removed.
    File {
        temp: BufWriter<NamedTempFile>,
        path: PathBuf,
    },
    /// Something that is not a regular file (`/dev/null`, a FIFO): written
    /// in place, since renaming over it would replace it.
    Special { file: File, path: PathBuf },
    /// Nowhere: `--raw` shows the bytes as received, and HEAD has no body.
    Discard,
}

impl Output {
    /// Stdout: a duplicate of descriptor 1.
    pub fn stdout() -> anyhow::Result<Output> {
        let fd = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot use stdout")?;
        Ok(Output::Stdout(BufWriter::with_capacity(
            WRITE_BUFFER,
            Marked(File::from(fd)),
        )))
    }

    /// The destination for `-o PATH`.
    pub fn file(path: &Path) -> anyhow::Result<Output> {
        if path == Path::new("-") {
            return Output::stdout();
        }
        // Write where a symbolic link points, as any program writing the
        // file by name would.
        let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                anyhow::bail!("cannot write to {}: it is a directory", path.display())
            }
            Ok(meta) if !meta.is_file() => {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Ok(Output::Special { file, path })
            }
            _ => Output::temporary(path),
        }
    }

    fn temporary(path: PathBuf) -> anyhow::Result<Output> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path.file_name().map_or_else(
            || "download".into(),
            |name| name.to_string_lossy().into_owned(),
        );
        // 0666 less the umask, like any file a shell redirection creates.
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        Ok(Output::File {
            temp: BufWriter::with_capacity(WRITE_BUFFER, temp),
            path,
        })
    }

    /// The file a progress bar may report on, if this is one.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Output::File { path, .. } | Output::Special { path, .. } => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
            Output::Stdout(_) | Output::Discard => None,
        }
    }

    /// Writes all of `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let written = match self {
            Output::Stdout(out) => out.write_all(bytes),
            Output::File { temp, .. } => temp.write_all(bytes),
            Output::Special { file, .. } => file.write_all(bytes),
            Output::Discard => Ok(()),
        };
        written.with_context(|| format!("cannot write to {}", self.name()))
    }

    /// Flushes, and gives a file its real name: only now does it exist
    /// under that name, and it is complete.
    pub fn finish(self) -> anyhow::Result<()> {
        let name = self.name();
        match self {
            Output::Stdout(mut out) => out.flush().context("cannot write to stdout"),
            Output::Special { .. } | Output::Discard => Ok(()),
            Output::File { temp, path } => {
                let temp = temp
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write to {name}"))?;
                temp.persist(&path)
                    .map_err(|e| e.error)
                    .with_context(|| format!("cannot rename the download to {}", path.display()))?;
                Ok(())
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "stdout".to_owned(),
            Output::File { path, .. } | Output::Special { path, .. } => path.display().to_string(),
            Output::Discard => "nowhere".to_owned(),
        }
    }
}
