//! Anchors: a platform-signed checkpoint statement kept outside the journal
//! file, so that cutting the file back to an earlier checkpoint — which
//! leaves a perfectly chained, signed, closed journal — is seen
//! (docs/journal.md, "Anchors and the high-water mark").
//!
//! - The **high-water mark** is the anchor of the newest checkpoint a
//!   writer made durable, kept in a private directory (`DIR/anchors/`,
//!   one file per journal id) and advanced with every checkpoint; a writer
//!   refuses a journal that no longer reaches it.
//! - `vigil journal anchor` exports the same thing for an external witness,
//!   with a short printable form for a paper log; `vigil journal verify
//!   --anchor` accepts either.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use minicbor::{Decode, Encode};
use serde::Serialize;
use vigil_attest::dual::DualPublicKey;

use super::JournalError;
use super::checkpoint::Statement;
use super::format::{CHAIN_LEN, JOURNAL_ID_LEN};

/// The format name in every anchor file.
pub const FORMAT: &str = "vigil-journal-anchor";
/// Anchor file version.
pub const VERSION: u8 = 1;
/// Prefix of the printable form.
pub const PRINTABLE_PREFIX: &str = "vigil-anchor-v1";
/// File name suffix of high-water marks.
const SUFFIX: &str = ".anchor";
/// The largest anchor file read (a statement is about 3.5 KB).
const MAX_ANCHOR_LEN: u64 = 64 << 10;

/// An anchor file: the signed checkpoint statement and what it is about.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Anchor {
    /// [`FORMAT`].
    #[n(0)]
    pub format: String,
    /// [`VERSION`].
    #[n(1)]
    pub version: u8,
    /// The journal id.
    #[cbor(n(2), with = "minicbor::bytes")]
    pub journal_id: Vec<u8>,
    /// The checkpoint statement (its CBOR, as in the checkpoint frame).
    #[cbor(n(3), with = "minicbor::bytes")]
    pub statement: Vec<u8>,
    /// The journal's path when the anchor was written (informational; not
    /// signed).
    #[n(4)]
    pub path: Option<String>,
}

/// What a journal must reach: a seq and the chain hash there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// The journal id, hex.
    pub journal_id: String,
    /// The covered seq (the checkpoint frame is the next one).
    pub seq: u64,
    /// The chain hash of frame `seq`, hex.
    pub head: String,
    /// Whether the mark came with a verified platform signature (a printed
    /// mark is only as good as the paper it was written on).
    pub signed: bool,
}

impl Mark {
    /// The short printable form: `vigil-anchor-v1 <journal id> <seq> <head>`.
    pub fn printable(&self) -> String {
        format!("{PRINTABLE_PREFIX} {} {} {}", self.journal_id, self.seq, self.head)
    }

    /// Parses the printable form.
    pub fn parse_printable(text: &str) -> Result<Mark, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [prefix, id, seq, head] = parts.as_slice() else {
            return Err(format!("a printed anchor is `{PRINTABLE_PREFIX} <journal id> <seq> <head>`"));
        };
        if *prefix != PRINTABLE_PREFIX {
            return Err(format!("a printed anchor starts with `{PRINTABLE_PREFIX}`"));
        }
        let id_ok = hex::decode(id).is_ok_and(|b| b.len() == JOURNAL_ID_LEN);
        let head_ok = hex::decode(head).is_ok_and(|b| b.len() == CHAIN_LEN);
        let seq: u64 = seq.parse().map_err(|_| format!("anchor seq `{seq}` is not a number"))?;
        if !id_ok || !head_ok || seq == 0 {
            return Err("a printed anchor has a 32-hex-digit journal id, a seq ≥ 1 and a 64-hex-digit head".into());
        }
        Ok(Mark { journal_id: id.to_ascii_lowercase(), seq, head: head.to_ascii_lowercase(), signed: false })
    }
}

impl Anchor {
    /// The anchor of a checkpoint statement.
    pub fn new(journal_id: &[u8; JOURNAL_ID_LEN], statement: &Statement, path: Option<&Path>) -> Anchor {
        Anchor {
            format: FORMAT.into(),
            version: VERSION,
            journal_id: journal_id.to_vec(),
            statement: statement.encode(),
            path: path.map(|p| p.display().to_string()),
        }
    }

    /// The CBOR bytes of the anchor file.
    pub fn encode(&self) -> Vec<u8> {
        super::body::encode(self)
    }

    /// Parses an anchor file and checks its platform signature.
    pub fn decode_verified(bytes: &[u8], trust: &DualPublicKey) -> Result<(Anchor, Mark), String> {
        let a: Anchor = minicbor::decode(bytes).map_err(|e| format!("not a Vigil anchor file: {e}"))?;
        if a.format != FORMAT {
            return Err(format!("not a Vigil anchor file (format `{}`)", a.format));
        }
        if a.version != VERSION {
            return Err(format!("anchor version {}; this vigil reads {VERSION}", a.version));
        }
        let id: [u8; JOURNAL_ID_LEN] =
            a.journal_id.as_slice().try_into().map_err(|_| "anchor journal id is not 16 bytes".to_string())?;
        let statement = Statement::decode(&a.statement)?;
        statement.verify(&id, trust)?;
        let mark = Mark {
            journal_id: hex::encode(id),
            seq: statement.covered_seq,
            head: hex::encode(&statement.head),
            signed: true,
        };
        Ok((a, mark))
    }
}

/// Reads an anchor given to `verify --anchor`: an anchor file (checked
/// against `trust`) or a printed anchor.
pub fn read_mark(path: &Path, trust: &DualPublicKey) -> Result<Mark, String> {
    let bytes = read_small(path).map_err(|e| format!("reading the anchor {}: {e}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes)
        && text.trim_start().starts_with(PRINTABLE_PREFIX)
    {
        return Mark::parse_printable(text.trim());
    }
    Anchor::decode_verified(&bytes, trust).map(|(_, mark)| mark).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_ANCHOR_LEN + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ANCHOR_LEN {
        return Err(std::io::Error::other("larger than an anchor can be"));
    }
    Ok(bytes)
}

/// The high-water mark file of journal `journal_id` in `dir`.
pub fn high_water_path(dir: &Path, journal_id: &[u8; JOURNAL_ID_LEN]) -> PathBuf {
    dir.join(format!("{}{SUFFIX}", hex::encode(journal_id)))
}

/// Reads the high-water mark of a journal, if `dir` holds one.
pub fn read_high_water(
    dir: &Path,
    journal_id: &[u8; JOURNAL_ID_LEN],
    trust: &DualPublicKey,
) -> Result<Option<(PathBuf, Mark)>, JournalError> {
    let path = high_water_path(dir, journal_id);
    let bytes = match read_small(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(JournalError::Io {
                what: format!("reading the high-water mark {}", path.display()),
                source: e,
            });
        }
    };
    let (_, mark) = Anchor::decode_verified(&bytes, trust)
        .map_err(|e| JournalError::HighWaterUnverified { anchor: path.clone(), detail: e.to_string() })?;
    Ok(Some((path, mark)))
}

/// The high-water mark in `dir` recorded for a journal at `journal_path`
/// (used when that file is missing: a deleted journal must not be silently
/// started afresh).
pub fn find_by_path(dir: &Path, journal_path: &Path) -> Option<(PathBuf, [u8; JOURNAL_ID_LEN])> {
    let wanted = journal_path.display().to_string();
    let entries = fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "anchor") {
            continue;
        }
        let Ok(bytes) = read_small(&path) else { continue };
        if let Ok(a) = minicbor::decode::<Anchor>(&bytes)
            && a.path.as_deref() == Some(wanted.as_str())
            && let Ok(id) = a.journal_id.as_slice().try_into()
        {
            return Some((path, id));
        }
    }
    None
}

/// Writes the high-water mark atomically and privately (through
/// [`vigil_os::output_file`]: a fresh temporary file, fsync, rename over the
/// old mark, fsync of the directory).
pub fn write_high_water(dir: &Path, anchor: &Anchor) -> Result<(), JournalError> {
    let id: [u8; JOURNAL_ID_LEN] =
        anchor.journal_id.as_slice().try_into().map_err(|_| JournalError::Failed("anchor journal id".into()))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(JournalError::io(format!("creating {}", dir.display())))?;
    let target = high_water_path(dir, &id);
    vigil_os::output_file::write_private(&target, &anchor.encode())
        .map_err(|e| JournalError::Failed(format!("advancing the high-water mark {}: {e}", target.display())))
}

#[cfg(test)]
mod tests {
    use vigil_attest::dual::DualSigningKey;

    use super::*;

    #[test]
    fn anchors_round_trip_verify_and_print() {
        let key = DualSigningKey::from_seeds(&[1; 32], &[2; 32]);
        let id = [3; JOURNAL_ID_LEN];
        let st = Statement::sign(&key, &id, 41, &[9; CHAIN_LEN], 5, true).unwrap();
        let a = Anchor::new(&id, &st, Some(Path::new("/j/x.vgj")));
        let (back, mark) = Anchor::decode_verified(&a.encode(), &key.public()).unwrap();
        assert_eq!(back, a);
        assert_eq!(mark.seq, 41);
        assert!(mark.signed);
        let printed = Mark::parse_printable(&mark.printable()).unwrap();
        assert_eq!((printed.seq, &printed.head, &printed.journal_id), (41, &mark.head, &mark.journal_id));
        assert!(!printed.signed);
        // Another key, another journal id, a flipped byte: refused.
        let other = DualSigningKey::from_seeds(&[7; 32], &[2; 32]);
        assert!(Anchor::decode_verified(&a.encode(), &other.public()).is_err());
        let mut moved = a.clone();
        moved.journal_id = vec![4; JOURNAL_ID_LEN];
        assert!(Anchor::decode_verified(&moved.encode(), &key.public()).is_err());
        let bytes = a.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            if let Ok((b, m)) = Anchor::decode_verified(&bad, &key.public()) {
                // Only the unsigned, informational path may change.
                assert_eq!((m.seq, m.head.clone()), (41, mark.head.clone()), "byte {i}");
                assert_eq!(b.statement, a.statement, "byte {i}");
            }
        }
        for bad in ["", "vigil-anchor-v1 00 1 00", "vigil-anchor-v2 x 1 y", &mark.printable().replace(" 41 ", " 0 ")] {
            assert!(Mark::parse_printable(bad).is_err(), "{bad}");
        }
    }
}
