//! Platform checkpoints: a statement, dual-signed with the platform key,
//! that the journal's chain head after frame `covered_seq` was `head`
//! (docs/journal.md, "Checkpoints"). It lives in the public part of a
//! checkpoint frame so that `vigil journal verify` checks it without the
//! data key.

use minicbor::{Decode, Encode};
use vigil_attest::dual::{DualPublicKey, DualSignature, DualSigningKey};

use super::format::{CHAIN_LEN, JOURNAL_ID_LEN};

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

#[cfg(test)]
mod tests {
    use super::*;

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
