//! The byte layout of a journal file (docs/journal.md): the plaintext file
//! header, the frame header, the additional authenticated data and the
//! chain hash. Nothing here needs the data key.

use sha2::{Digest, Sha256};

use super::JournalError;

/// File magic.
pub const MAGIC: [u8; 8] = *b"VIGILJNL";
/// File format version (2: epoch frames carry a platform-signed statement).
pub const VERSION: u16 = 2;
/// Cipher suite 1: AES-256-GCM, HKDF-SHA256 epoch keys, SHA-256 chain.
pub const SUITE_AES256GCM_HKDF_SHA256: u16 = 1;
/// File header length.
pub const HEADER_LEN: usize = 96;
/// Journal id length.
pub const JOURNAL_ID_LEN: usize = 16;
/// Frame header length (before the public part).
pub const FRAME_HEADER_LEN: usize = 24;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Chain hash length.
pub const CHAIN_LEN: usize = 32;
/// The smallest frame: header, empty public part, empty body, tag, chain.
pub const MIN_FRAME_LEN: usize = FRAME_HEADER_LEN + TAG_LEN + CHAIN_LEN;
/// The largest frame this version writes or reads (a policy bundle is at
/// most 8 MiB).
pub const MAX_FRAME_LEN: usize = 16 << 20;
/// Length of an epoch salt.
pub const SALT_LEN: usize = 32;

const CHAIN_DOMAIN: &[u8] = b"vigil-journal-chain-v1";

/// Frame kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Kind {
    /// A writer opened the journal: new epoch key (public part: the
    /// platform-signed epoch statement with the salt).
    Epoch = 1,
    /// Platform-signed checkpoint over (seq, chain head) (public part: the
    /// signed statement).
    Checkpoint = 2,
    /// A guard VM booted and attested: its evidence.
    Boot = 3,
    /// A policy bundle, once per SHA-384.
    Policy = 4,
    /// One judged intent.
    Verdict = 5,
    /// A checkpoint signed by a guard over its verdict chain.
    GuardCheckpoint = 6,
    /// A cost record: what judging a batch of verdicts cost, counted
    /// (docs/cost.md).
    Cost = 7,
    /// A human decision on an ESCALATE verdict (or its timeout).
    Approval = 8,
    /// A cost statement: a run of cost records signed with the cost key
    /// (public part: the COSE_Sign; docs/cost.md).
    CostStatement = 9,
}

impl Kind {
    /// The kind with code `code`.
    pub fn from_code(code: u16) -> Option<Kind> {
        Some(match code {
            1 => Kind::Epoch,
            2 => Kind::Checkpoint,
            3 => Kind::Boot,
            4 => Kind::Policy,
            5 => Kind::Verdict,
            6 => Kind::GuardCheckpoint,
            7 => Kind::Cost,
            8 => Kind::Approval,
            9 => Kind::CostStatement,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Epoch => "epoch",
            Kind::Checkpoint => "checkpoint",
            Kind::Boot => "boot",
            Kind::Policy => "policy",
            Kind::Verdict => "verdict",
            Kind::GuardCheckpoint => "guard_checkpoint",
            Kind::Cost => "cost",
            Kind::Approval => "approval",
            Kind::CostStatement => "cost_statement",
        }
    }
}

/// The plaintext file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Random journal id.
    pub journal_id: [u8; JOURNAL_ID_LEN],
    /// Fingerprint of the master key (see `seal::fingerprint`).
    pub key_fingerprint: [u8; 32],
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
}

impl Header {
    /// The 96 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&SUITE_AES256GCM_HKDF_SHA256.to_le_bytes());
        out[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        out[16..32].copy_from_slice(&self.journal_id);
        out[32..64].copy_from_slice(&self.key_fingerprint);
        out[64..72].copy_from_slice(&self.created_ms.to_le_bytes());
        out
    }

    /// Parses and checks the header.
    pub fn decode(bytes: &[u8]) -> Result<Header, JournalError> {
        if bytes.len() < HEADER_LEN {
            return Err(JournalError::BadHeader(format!(
                "the file is {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        if bytes[0..8] != MAGIC {
            return Err(JournalError::BadHeader("not a Vigil journal (magic is not VIGILJNL)".into()));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version == 1 {
            return Err(JournalError::BadHeader(
                "journal format version 1 (written by vigil 0.1 before epoch frames were signed): its epochs cannot be authenticated, so this vigil does not read or extend it — keep it with the vigil that wrote it, and start a new journal".into(),
            ));
        }
        if version != VERSION {
            return Err(JournalError::BadHeader(format!(
                "journal format version {version}; this vigil reads version {VERSION}"
            )));
        }
        let suite = u16::from_le_bytes([bytes[10], bytes[11]]);
        if suite != SUITE_AES256GCM_HKDF_SHA256 {
            return Err(JournalError::BadHeader(format!("unknown cipher suite {suite}")));
        }
        let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        if len as usize != HEADER_LEN || bytes[72..HEADER_LEN].iter().any(|&b| b != 0) {
            return Err(JournalError::BadHeader(
                "header length or reserved bytes are not as version 2 writes them".into(),
            ));
        }
        Ok(Header {
            journal_id: bytes[16..32].try_into().expect("16 bytes"),
            key_fingerprint: bytes[32..64].try_into().expect("32 bytes"),
            created_ms: u64::from_le_bytes(bytes[64..72].try_into().expect("8 bytes")),
        })
    }

    /// The chain hash before the first frame: `SHA-256("vigil-journal-chain-v1" || header)`.
    pub fn chain_start(&self) -> [u8; CHAIN_LEN] {
        let mut h = Sha256::new();
        h.update(CHAIN_DOMAIN);
        h.update(self.encode());
        h.finalize().into()
    }
}

/// The fixed fields at the start of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whole frame length, this header and the chain hash included.
    pub len: u32,
    /// Sequence number.
    pub seq: u64,
    /// Kind code (see [`Kind`]).
    pub kind: u16,
    /// Length of the public (unencrypted, authenticated) part.
    pub public_len: u16,
    /// Epoch number.
    pub epoch: u32,
}

/// Why a frame header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderDefect {
    /// The length and its complement disagree.
    LengthCheck,
    /// The length is outside [MIN_FRAME_LEN, MAX_FRAME_LEN] or too short
    /// for the public part.
    LengthRange,
}

impl FrameHeader {
    /// Writes the 24 header bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.len.to_le_bytes());
        out[4..8].copy_from_slice(&(!self.len).to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..18].copy_from_slice(&self.kind.to_le_bytes());
        out[18..20].copy_from_slice(&self.public_len.to_le_bytes());
        out[20..24].copy_from_slice(&self.epoch.to_le_bytes());
    }

    /// Reads the 24 header bytes.
    pub fn decode(bytes: &[u8; FRAME_HEADER_LEN]) -> Result<FrameHeader, HeaderDefect> {
        let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        let check = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if check != !len {
            return Err(HeaderDefect::LengthCheck);
        }
        let header = FrameHeader {
            len,
            seq: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            kind: u16::from_le_bytes([bytes[16], bytes[17]]),
            public_len: u16::from_le_bytes([bytes[18], bytes[19]]),
            epoch: u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes")),
        };
        if (len as usize) < MIN_FRAME_LEN + header.public_len as usize || len as usize > MAX_FRAME_LEN {
            return Err(HeaderDefect::LengthRange);
        }
        Ok(header)
    }

    /// Plaintext body length.
    pub fn body_len(&self) -> usize {
        self.len as usize - MIN_FRAME_LEN - self.public_len as usize
    }
}

/// Frame length for a public part and a plaintext body.
pub fn frame_len(public_len: usize, body_len: usize) -> usize {
    MIN_FRAME_LEN + public_len + body_len
}

/// The AES-GCM nonce: `epoch u32 LE || seq u64 LE`.
pub fn nonce(epoch: u32, seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[0..4].copy_from_slice(&epoch.to_le_bytes());
    n[4..12].copy_from_slice(&seq.to_le_bytes());
    n
}

/// Writes the AAD into `out` (replacing its contents): `journal id ||
/// frame header || public part || previous chain hash`.
pub fn aad(out: &mut Vec<u8>, journal_id: &[u8; JOURNAL_ID_LEN], header_and_public: &[u8], prev: &[u8; CHAIN_LEN]) {
    out.clear();
    out.extend_from_slice(journal_id);
    out.extend_from_slice(header_and_public);
    out.extend_from_slice(prev);
}

/// `SHA-256(prev || frame without its chain field)`.
pub fn chain_hash(prev: &[u8; CHAIN_LEN], frame_without_chain: &[u8]) -> [u8; CHAIN_LEN] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(frame_without_chain);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = Header { journal_id: [7; 16], key_fingerprint: [9; 32], created_ms: 1234 };
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes).unwrap(), h);
        for i in 0..16 {
            let mut bad = bytes;
            bad[i] ^= 1;
            assert!(Header::decode(&bad).is_err(), "byte {i}");
        }
        let mut bad = bytes;
        bad[80] = 1;
        assert!(Header::decode(&bad).is_err());
        assert!(Header::decode(&bytes[..95]).is_err());
    }

    #[test]
    fn frame_header_detects_every_length_bit_flip() {
        let fh = FrameHeader { len: 300, seq: 5, kind: 5, public_len: 0, epoch: 2 };
        let mut bytes = [0u8; FRAME_HEADER_LEN];
        fh.encode(&mut bytes);
        assert_eq!(FrameHeader::decode(&bytes).unwrap(), fh);
        for bit in 0..64 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(FrameHeader::decode(&bad), Err(HeaderDefect::LengthCheck), "bit {bit}");
        }
        let tiny = FrameHeader { len: 10, ..fh };
        tiny.encode(&mut bytes);
        assert_eq!(FrameHeader::decode(&bytes), Err(HeaderDefect::LengthRange));
    }
}
