//! The journal: an append-only, AES-256-GCM sealed, SHA-256 hash-chained
//! file of everything Vigil decided, with platform-signed checkpoints
//! (byte-level spec: docs/journal.md).
//!
//! - [`format`](mod@format): the byte layout (header, frame header, AAD, chain);
//! - [`seal`]: master key, epoch keys, sealing one body;
//! - [`body`], [`checkpoint`]: what frames carry (checkpoint and epoch
//!   statements are platform-signed);
//! - [`anchor`]: checkpoint statements kept outside the file (the
//!   high-water mark, exported anchors);
//! - [`scan`]: the one reader — torn tails, tampering, checkpoints,
//!   optional decryption;
//! - [`writer`]: the one writer — a lock on the journal's own inode,
//!   recovery (authenticating unsealed frames), epochs, group commit,
//!   the high-water mark;
//! - [`replay`]: the auditor's re-evaluation; [`export`]: JSONL/CEF/show;
//!   [`verdict_report`]: how one verdict is reported (export, `vigil eval`).
//!
//! No KVM and no VMM here: this crate builds and runs wherever the auditor
//! verifies (`cargo xtask check-layers` keeps it so).

#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod anchor;
pub mod body;
pub mod checkpoint;
pub mod export;
pub mod format;
pub mod replay;
pub mod scan;
pub mod seal;
pub mod verdict_report;
pub mod writer;

use std::path::PathBuf;

pub use format::Kind;
pub use seal::MasterKey;
pub use writer::{Journal, WriterOptions};

/// What can go wrong reading or writing a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file header is not a version-1 journal header.
    #[error("bad journal header: {0}")]
    BadHeader(String),
    /// Damage before the tail: the journal was altered.
    #[error("journal tampered at seq {seq}, offset {offset}: {detail}")]
    Tampered {
        /// The expected sequence number of the damaged frame.
        seq: u64,
        /// Byte offset of the damaged frame.
        offset: u64,
        /// What did not check out.
        detail: String,
    },
    /// The master key is not the one the journal was written under.
    #[error(
        "this journal was written under another master key (file key fingerprint {file}, journal.key fingerprint {key}): use the journal.key it was written with"
    )]
    WrongKey {
        /// Fingerprint in the file header, hex.
        file: String,
        /// Fingerprint of the key given, hex.
        key: String,
    },
    /// A body that decrypted but is not the CBOR its kind requires.
    #[error("frame seq {seq}: body does not decode: {detail}")]
    Body {
        /// Sequence number.
        seq: u64,
        /// Decoder message.
        detail: String,
    },
    /// Another process holds the journal open for append.
    #[error(
        "{path} is open for append by another process{}: one writer at a time — stop it, or pass --journal with another file",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        /// The journal.
        path: PathBuf,
        /// The pid holding the lock, where the kernel tells it.
        pid: Option<u32>,
    },
    /// The high-water mark does not verify under the platform key given:
    /// another key directory's key, or an altered mark. Nothing is said
    /// about the journal.
    #[error(
        "the high-water mark {anchor} does not verify under the platform key given ({detail}): if that key is another key directory's, give the platform.pub of the directory that wrote this journal; if it is the right key, the mark was altered — keep it and find out who changed it. Nothing was changed"
    )]
    HighWaterUnverified {
        /// The high-water mark file.
        anchor: PathBuf,
        /// Why its signature fails.
        detail: String,
    },
    /// The journal does not reach its high-water mark (cut back, replaced
    /// by an older copy, or deleted).
    #[error(
        "{detail} (high-water mark {anchor}). Restore the journal from a copy that reaches the mark; if the loss is known and accepted, move the mark out of the directory to start over — that move is the record of the decision"
    )]
    HighWater {
        /// The high-water mark file.
        anchor: PathBuf,
        /// What does not reach it.
        detail: String,
    },
    /// The journal changed under a command that read it twice (verified
    /// it, then read it again to replay, export, anchor or cost it): the
    /// second read did not reach what the first verified.
    #[error(
        "the journal changed while it was read: {0}. Nothing from the changed file counts (an output file is not written; lines already streamed to standard output are from it and must be discarded); find out what is changing the file, then run the command again"
    )]
    Changed(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An earlier write or fsync failed; the writer accepts nothing more.
    #[error("the journal writer stopped after an earlier failure: {0}")]
    Failed(String),
}

impl JournalError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JournalError {
        let what = what.into();
        move |source| JournalError::Io { what, source }
    }
}
