//! The control messages of file transfer, as PROTOCOL.md defines them.

use serde::{Deserialize, Serialize};

/// The size of the `FILE_DATA` frames this implementation sends: big
/// enough that per-frame costs vanish, well under the 1 MiB cap.
pub const FILE_CHUNK: usize = 256 * 1024;

/// `OFFER`: a file the client wants to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// A plain file name (no directories).
    pub name: String,
    /// Its length, or `None` when unknown (a pipe).
    pub size: Option<u64>,
    /// Permission bits to give the stored file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// `ACCEPT`: the receiver takes the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    /// Bytes the receiver already holds from an interrupted transfer.
    pub offset: u64,
    /// BLAKE3 of those bytes (hex), when `offset` > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_hash: Option<String>,
}

/// `START`: where the data frames begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// The `ACCEPT` offset (resume) or 0 (start over).
    pub offset: u64,
}

/// `END` from the client, `DONE` from the receiver: a whole file's size and
/// BLAKE3 hash (64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Length in bytes.
    pub size: u64,
    /// BLAKE3, hex.
    pub hash: String,
    /// In `DONE`: the offset the receiver continued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
}
