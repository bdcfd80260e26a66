//! The sending side of file transfer (`socketkit send`): offer, resume when
//! the receiver's partial copy hashes the same as our prefix, stream the
//! bytes in bounded frames while hashing them, and check the receiver's hash.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::session::{self, expect, next_frame, protocol_error, Wire};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::transfer::{Accept, Digest, Offer, Start, FILE_CHUNK};
use crate::protocol::{Frame, FrameError, FrameType};
use crate::transport::Stream;

/// What to send.
#[derive(Debug)]
pub enum Source {
    /// A file: its size and mode are offered, and it can be resumed.
    File(PathBuf),
    /// A stream of unknown length (standard input): never resumed.
    Stdin,
}

/// A completed transfer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sent {
    /// The name offered.
    pub name: String,
    /// The whole file's size.
    pub bytes: u64,
    /// Time from offer to the receiver's confirmation.
    pub seconds: f64,
    /// BLAKE3 of the whole file, hex (what `b3sum` prints), confirmed by the
    /// receiver.
    pub hash: String,
    /// Bytes the receiver already held and kept.
    pub resumed_from: u64,
}

/// A connection to a receiver, after the handshake; sends files one after
/// the other.
#[derive(Debug)]
pub struct Sender {
    wire: Wire,
}

/// Chunks read ahead of the socket.
const READ_AHEAD: usize = 8;

impl Sender {
    /// Opens the session (`token` if the receiver asks for one).
    pub async fn open(stream: Stream, token: Option<String>) -> Result<Sender> {
        let (wire, _, _) = session::open(stream, token, "recv").await?;
        Ok(Sender { wire })
    }

    /// Sends one file under `name`. `progress` is called with the total
    /// (when known) and the offset first, then with each chunk's size.
    pub async fn send(
        &mut self,
        source: Source,
        name: &str,
        progress: &mut dyn FnMut(TransferProgress),
    ) -> Result<Sent> {
        let started = Instant::now();
        let (size, mode) = describe(&source)?;
        let offer = Offer {
            name: name.to_owned(),
            size,
            mode,
        };
        self.wire
            .send(Frame::control(FrameType::OFFER, &offer))
            .await?;
        let accept: Accept = expect(next_frame(&mut self.wire).await?, FrameType::ACCEPT)?;
        let (offset, hasher) = resume_point(&source, &accept).await?;
        self.wire
            .send(Frame::control(FrameType::START, &Start { offset }))
            .await?;
        progress(TransferProgress::Started {
            total: size,
            offset,
        });
        let (hasher, read) = self.stream(source, offset, hasher, progress).await?;
        let digest = Digest {
            size: offset + read,
            hash: hasher.finalize().to_hex().to_string(),
            resumed_from: None,
        };
        self.wire
            .send(Frame::control(FrameType::END, &digest))
            .await?;
        let done: Digest = expect(next_frame(&mut self.wire).await?, FrameType::DONE)?;
        if done.hash != digest.hash || done.size != digest.size {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the receiver stored {} bytes hashing {}, not {}",
                    done.size, done.hash, digest.hash
                ),
            ));
        }
        Ok(Sent {
            name: name.to_owned(),
            bytes: digest.size,
            seconds: started.elapsed().as_secs_f64(),
            hash: digest.hash,
            resumed_from: offset,
        })
    }

    /// Reads the source on a blocking thread (hashing as it goes) and sends
    /// what it read as `FILE_DATA` frames; the bounded channel between them
    /// is the back-pressure. The receiver may refuse mid-file (a limit on
    /// the bytes that arrived): then sending stops at once.
    async fn stream(
        &mut self,
        source: Source,
        offset: u64,
        hasher: blake3::Hasher,
        progress: &mut dyn FnMut(TransferProgress),
    ) -> Result<(blake3::Hasher, u64)> {
        let (chunks_tx, mut chunks) = mpsc::channel(READ_AHEAD);
        let reader =
            tokio::task::spawn_blocking(move || read_chunks(source, offset, hasher, chunks_tx));
        let mut sent = offset;
        loop {
            let chunk = tokio::select! {
                chunk = chunks.recv() => chunk,
                frame = self.wire.next() => return Err(self.refused_midway(frame, sent).await),
            };
            let Some(chunk) = chunk else { break };
            let length = chunk.len() as u64;
            sent = sent.saturating_add(length);
            self.wire
                .send(Frame::data(FrameType::FILE_DATA, chunk))
                .await?;
            progress(TransferProgress::Advanced(length));
        }
        reader
            .await
            .map_err(|e| Error::with_source(ErrorKind::Io, "the file reader failed", e))?
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot read the file", e))
    }
}

impl Sender {
    /// The error for a frame that came while the file was being sent (only
    /// an `ERROR` may). After a refusal the file ends with an `END` whose
    /// fields the receiver ignores, so the connection can carry the next
    /// file.
    async fn refused_midway(
        &mut self,
        frame: Option<Result<Frame, FrameError>>,
        sent: u64,
    ) -> Error {
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return error.into(),
            None => {
                return Error::new(ErrorKind::Io, "the receiver closed the connection mid-file")
            }
        };
        let error = match expect::<serde::de::IgnoredAny>(frame, FrameType::ERROR) {
            Ok(_) => return protocol_error("an ERROR without content"),
            Err(error) => error,
        };
        let end = Digest {
            size: sent,
            hash: String::new(),
            resumed_from: None,
        };
        let _ = self.wire.send(Frame::control(FrameType::END, &end)).await;
        error
    }
}

/// Progress of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferProgress {
    /// The transfer starts: the whole size if known, and the offset resumed
    /// from.
    Started {
        /// The whole file's size, if known.
        total: Option<u64>,
        /// Bytes the receiver already had.
        offset: u64,
    },
    /// This many more bytes were sent.
    Advanced(u64),
}

fn describe(source: &Source) -> Result<(Option<u64>, Option<u32>)> {
    match source {
        Source::File(path) => {
            let metadata = std::fs::metadata(path).map_err(|e| {
                Error::with_source(ErrorKind::Io, format!("cannot read {}", path.display()), e)
            })?;
            if !metadata.is_file() {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{} is not a regular file", path.display()),
                ));
            }
            Ok((
                Some(metadata.len()),
                Some(metadata.permissions().mode() & 0o777),
            ))
        }
        Source::Stdin => Ok((None, None)),
    }
}

/// Resume from the receiver's offset only if our own first bytes hash the
/// same; otherwise (or for stdin, which cannot be re-read) start over.
async fn resume_point(source: &Source, accept: &Accept) -> Result<(u64, blake3::Hasher)> {
    let (Source::File(path), Some(theirs)) = (source, &accept.prefix_hash) else {
        return Ok((0, blake3::Hasher::new()));
    };
    let (path, offset) = (path.clone(), accept.offset);
    let ours = tokio::task::spawn_blocking(move || {
        let mut file = File::open(path)?;
        let mut hasher = blake3::Hasher::new();
        let copied = io::copy(&mut (&mut file).take(offset), &mut hasher)?;
        Ok::<_, io::Error>((copied == offset).then_some(hasher))
    })
    .await
    .map_err(|e| protocol_error(e.to_string()))?
    .map_err(|e| Error::with_source(ErrorKind::Io, "cannot read the file", e))?;
    match ours {
        Some(hasher) if hasher.finalize().to_hex().as_str() == theirs => Ok((offset, hasher)),
        _ => Ok((0, blake3::Hasher::new())),
    }
}

fn read_chunks(
    source: Source,
    offset: u64,
    mut hasher: blake3::Hasher,
    chunks: mpsc::Sender<Bytes>,
) -> io::Result<(blake3::Hasher, u64)> {
    let mut input: Box<dyn Read> = match source {
        Source::File(path) => {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(offset))?;
            Box::new(file)
        }
        Source::Stdin => Box::new(io::stdin().lock()),
    };
    let mut read = 0u64;
    loop {
        let mut chunk = BytesMut::with_capacity(FILE_CHUNK);
        let filled = fill(&mut input, &mut chunk)?;
        if filled == 0 {
            return Ok((hasher, read));
        }
        hasher.update(&chunk);
        read += filled as u64;
        if chunks.blocking_send(chunk.freeze()).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection ended",
            ));
        }
    }
}

/// Reads until the chunk is full or the input ends.
fn fill(input: &mut dyn Read, chunk: &mut BytesMut) -> io::Result<usize> {
    let mut limited = input.take(FILE_CHUNK as u64);
    let mut writer = chunk.writer();
    let copied = io::copy(&mut limited, &mut writer)?;
    Ok(copied as usize)
}
