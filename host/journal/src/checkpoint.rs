//! The platform-signed statements of a journal (docs/journal.md,
//! "Checkpoint statements" and "Epoch statements"), both in the public part
//! of their frames so that `vigil journal verify` checks them without the
//! data key:
//! - a checkpoint [`Statement`]: the chain head after frame `covered_seq`
//!   was `head`;
//! - an [`EpochStatement`]: a writer holding the platform key opened the
//!   journal at this seq, over this chain head, with this salt, and adopted
//!   these unsealed frames of a crashed predecessor.

use minicbor::{Decode, Encode};
use vigil_attest::dual::{DualPublicKey, DualSignature, DualSigningKey};

use super::format::{CHAIN_LEN, JOURNAL_ID_LEN, SALT_LEN};

/// Signing context of the statement.
pub const CONTEXT: &[u8] = b"vigil-journal-checkpoint-v1";
/// Statement version.
pub const VERSION: u8 = 1;

/// The public part of a checkpoint frame.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Statement {
    /// [`VERSION`].
    #[n(0)]
    pub version: u8,
    /// The last frame covered (the frame just before the checkpoint).
    #[n(1)]
    pub covered_seq: u64,
    /// The chain hash of frame `covered_seq`.
    #[cbor(n(2), with = "minicbor::bytes")]
    pub head: Vec<u8>,
    /// Unix time in milliseconds.
    #[n(3)]
    pub time_ms: u64,
    /// Written when the writer closed the journal.
    #[n(4)]
    pub closing: bool,
    /// Ed25519 half of the dual signature.
    #[cbor(n(5), with = "minicbor::bytes")]
    pub ed25519: Vec<u8>,
    /// ML-DSA-65 half of the dual signature.
    #[cbor(n(6), with = "minicbor::bytes")]
    pub ml_dsa_65: Vec<u8>,
}

/// The signed message: `journal id || covered_seq u64 LE || head ||
/// time_ms u64 LE || closing u8`.
fn message(journal_id: &[u8; JOURNAL_ID_LEN], covered_seq: u64, head: &[u8], time_ms: u64, closing: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(JOURNAL_ID_LEN + 8 + CHAIN_LEN + 9);
    m.extend_from_slice(journal_id);
    m.extend_from_slice(&covered_seq.to_le_bytes());
    m.extend_from_slice(head);
    m.extend_from_slice(&time_ms.to_le_bytes());
    m.push(closing as u8);
    m
}

impl Statement {
    /// Signs a statement.
    pub fn sign(
        key: &DualSigningKey,
        journal_id: &[u8; JOURNAL_ID_LEN],
        covered_seq: u64,
        head: &[u8; CHAIN_LEN],
        time_ms: u64,
        closing: bool,
    ) -> Result<Statement, String> {
        let sig = key
            .sign(CONTEXT, &message(journal_id, covered_seq, head, time_ms, closing))
            .map_err(|e| format!("signing a journal checkpoint: {}", e.as_str()))?;
        Ok(Statement {
            version: VERSION,
            covered_seq,
            head: head.to_vec(),
            time_ms,
            closing,
            ed25519: sig.ed25519.to_vec(),
            ml_dsa_65: sig.ml_dsa_65.to_vec(),
        })
    }

    /// The CBOR encoding (the frame's public part).
    pub fn encode(&self) -> Vec<u8> {
        super::body::encode(self)
    }

    /// Parses a public part.
    pub fn decode(bytes: &[u8]) -> Result<Statement, String> {
        let s: Statement =
            minicbor::decode(bytes).map_err(|e| format!("checkpoint statement is not valid CBOR: {e}"))?;
        if s.version != VERSION {
            return Err(format!("checkpoint statement version {}; this vigil reads {VERSION}", s.version));
        }
        if s.head.len() != CHAIN_LEN {
            return Err("checkpoint head is not 32 bytes".into());
        }
        Ok(s)
    }

    /// Checks both signatures against the pinned platform key.
    pub fn verify(&self, journal_id: &[u8; JOURNAL_ID_LEN], trust: &DualPublicKey) -> Result<(), String> {
        let sig = DualSignature::from_parts(Some(&self.ed25519), Some(&self.ml_dsa_65))
            .map_err(|e| format!("checkpoint signature: {}", e.as_str()))?;
        trust
            .verify(CONTEXT, &message(journal_id, self.covered_seq, &self.head, self.time_ms, self.closing), &sig)
            .map_err(|e| format!("checkpoint signature: {}", e.as_str()))
    }
}

/// Signing context of an epoch statement.
pub const EPOCH_CONTEXT: &[u8] = b"vigil-journal-epoch-v2";
/// Epoch statement version.
pub const EPOCH_VERSION: u8 = 1;

/// The public part of an epoch frame.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct EpochStatement {
    /// [`EPOCH_VERSION`].
    #[n(0)]
    pub version: u8,
    /// The 32-byte salt of the epoch key.
    #[cbor(n(1), with = "minicbor::bytes")]
    pub salt: Vec<u8>,
    /// Unix time in milliseconds.
    #[n(2)]
    pub time_ms: u64,
    /// First and last seq of the unsealed frames this writer found after
    /// the last checkpoint, authenticated with the data key only, and
    /// adopted (a crashed predecessor's frames); absent when none.
    #[n(3)]
    pub adopted: Option<(u64, u64)>,
    /// Ed25519 half of the dual signature.
    #[cbor(n(5), with = "minicbor::bytes")]
    pub ed25519: Vec<u8>,
    /// ML-DSA-65 half of the dual signature.
    #[cbor(n(6), with = "minicbor::bytes")]
    pub ml_dsa_65: Vec<u8>,
}

/// Where an epoch frame stands: what the statement's signature binds
/// besides its own fields.
#[derive(Clone, Copy, Debug)]
pub struct EpochPosition<'a> {
    /// The journal id.
    pub journal_id: &'a [u8; JOURNAL_ID_LEN],
    /// The epoch frame's seq.
    pub seq: u64,
    /// Its epoch number.
    pub epoch: u32,
    /// The chain hash of the frame before it (the header's chain start for
    /// the first frame).
    pub prev: &'a [u8; CHAIN_LEN],
}

/// The signed message: `journal id || seq u64 LE || epoch u32 LE || prev
/// head || salt || time_ms u64 LE || adopted first u64 LE || adopted last
/// u64 LE` (zeros when nothing was adopted).
fn epoch_message(at: &EpochPosition<'_>, salt: &[u8], time_ms: u64, adopted: Option<(u64, u64)>) -> Vec<u8> {
    let (first, last) = adopted.unwrap_or((0, 0));
    let mut m = Vec::with_capacity(JOURNAL_ID_LEN + 12 + 2 * CHAIN_LEN + 24);
    m.extend_from_slice(at.journal_id);
    m.extend_from_slice(&at.seq.to_le_bytes());
    m.extend_from_slice(&at.epoch.to_le_bytes());
    m.extend_from_slice(at.prev);
    m.extend_from_slice(salt);
    m.extend_from_slice(&time_ms.to_le_bytes());
    m.extend_from_slice(&first.to_le_bytes());
    m.extend_from_slice(&last.to_le_bytes());
    m
}

impl EpochStatement {
    /// Signs an epoch statement for the epoch frame at `at`.
    pub fn sign(
        key: &DualSigningKey,
        at: &EpochPosition<'_>,
        salt: &[u8; SALT_LEN],
        time_ms: u64,
        adopted: Option<(u64, u64)>,
    ) -> Result<EpochStatement, String> {
        let sig = key
            .sign(EPOCH_CONTEXT, &epoch_message(at, salt, time_ms, adopted))
            .map_err(|e| format!("signing a journal epoch: {}", e.as_str()))?;
        Ok(EpochStatement {
            version: EPOCH_VERSION,
            salt: salt.to_vec(),
            time_ms,
            adopted,
            ed25519: sig.ed25519.to_vec(),
            ml_dsa_65: sig.ml_dsa_65.to_vec(),
        })
    }

    /// The CBOR encoding (the frame's public part).
    pub fn encode(&self) -> Vec<u8> {
        super::body::encode(self)
    }

    /// Parses a public part; `seq` is the epoch frame's own seq (an adopted
    /// range must lie before it).
    pub fn decode(bytes: &[u8], seq: u64) -> Result<EpochStatement, String> {
        let s: EpochStatement =
            minicbor::decode(bytes).map_err(|e| format!("epoch statement is not valid CBOR: {e}"))?;
        if s.version != EPOCH_VERSION {
            return Err(format!("epoch statement version {}; this vigil reads {EPOCH_VERSION}", s.version));
        }
        if s.salt.len() != SALT_LEN {
            return Err("epoch salt is not 32 bytes".into());
        }
        if let Some((first, last)) = s.adopted
            && (first == 0 || first > last || last >= seq)
        {
            return Err(format!("epoch statement adopts frames {first}..={last}, which do not precede it"));
        }
        Ok(s)
    }

    /// The salt.
    pub fn salt(&self) -> [u8; SALT_LEN] {
        self.salt.as_slice().try_into().expect("decode and sign check the salt length")
    }

    /// Checks both signatures against the pinned platform key.
    pub fn verify(&self, at: &EpochPosition<'_>, trust: &DualPublicKey) -> Result<(), String> {
        let sig = DualSignature::from_parts(Some(&self.ed25519), Some(&self.ml_dsa_65))
            .map_err(|e| format!("epoch signature: {}", e.as_str()))?;
        trust
            .verify(EPOCH_CONTEXT, &epoch_message(at, &self.salt, self.time_ms, self.adopted), &sig)
            .map_err(|e| format!("epoch signature: {}", e.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_statement_binds_position_salt_time_and_adoption() {
        let key = DualSigningKey::from_seeds(&[1; 32], &[2; 32]);
        let id = [5; JOURNAL_ID_LEN];
        let prev = [8; CHAIN_LEN];
        let at = EpochPosition { journal_id: &id, seq: 10, epoch: 3, prev: &prev };
        let s = EpochStatement::sign(&key, &at, &[4; SALT_LEN], 77, Some((6, 9))).unwrap();
        let back = EpochStatement::decode(&s.encode(), 10).unwrap();
        assert_eq!(back, s);
        back.verify(&at, &key.public()).unwrap();
        let other_prev = [9; CHAIN_LEN];
        for moved in [
            EpochPosition { seq: 11, ..at },
            EpochPosition { epoch: 4, ..at },
            EpochPosition { prev: &other_prev, ..at },
            EpochPosition { journal_id: &[6; JOURNAL_ID_LEN], ..at },
        ] {
            assert!(back.verify(&moved, &key.public()).is_err());
        }
        for tweak in 0..3 {
            let mut t = back.clone();
            match tweak {
                0 => t.salt[0] ^= 1,
                1 => t.time_ms += 1,
                _ => t.adopted = None,
            }
            assert!(t.verify(&at, &key.public()).is_err(), "tweak {tweak}");
        }
        assert!(EpochStatement::decode(&s.encode(), 9).is_err(), "adopting frames at or after itself");
        let other = DualSigningKey::from_seeds(&[3; 32], &[2; 32]);
        assert!(back.verify(&at, &other.public()).is_err());
    }

    #[test]
    fn statement_signs_verifies_and_binds_every_field() {
        let key = DualSigningKey::from_seeds(&[1; 32], &[2; 32]);
        let id = [5; JOURNAL_ID_LEN];
        let s = Statement::sign(&key, &id, 9, &[7; 32], 1000, false).unwrap();
        let back = Statement::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        back.verify(&id, &key.public()).unwrap();
        assert!(back.verify(&[6; JOURNAL_ID_LEN], &key.public()).is_err());
        for tweak in 0..4 {
            let mut t = back.clone();
            match tweak {
                0 => t.covered_seq += 1,
                1 => t.head[0] ^= 1,
                2 => t.time_ms += 1,
                _ => t.closing = true,
            }
            assert!(t.verify(&id, &key.public()).is_err(), "tweak {tweak}");
        }
        let other = DualSigningKey::from_seeds(&[3; 32], &[2; 32]);
        assert!(back.verify(&id, &other.public()).is_err());
    }
}
