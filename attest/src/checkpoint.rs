//! The guard's verdict chain and its signed checkpoints (docs/protocol.md,
//! "Verdict chain and guard checkpoints"). `no_std`, no allocation: the
//! guard builds them, the host and an auditor recompute and verify them.
//!
//! Chain: `h0 = SHA-256("vigil-guard-chain-v1" || guard key fingerprint)`,
//! `h(n) = SHA-256(h(n-1) || SHA-256(intent bytes) || verdict record)`.
//! A checkpoint states `(count, head)` and is signed with the guard's
//! per-boot dual key (context [`CONTEXT`]); that key is the one the
//! evidence vouches for, which also binds the measured policy.
//!
//! Encoding, version [`VERSION`], [`LEN`] bytes:
//! `version u8 || reserved [u8; 7] = 0 || count u64 LE || head [32] ||
//! Ed25519 signature [64] || ML-DSA-65 signature [3309]`; the signed
//! message is the first [`SIGNED_LEN`] bytes.

use sha2::{Digest, Sha256};

use crate::dual::{
    DualError, DualPublicKey, DualSignature, DualSigningKey, ED25519_SIGNATURE_LEN, ML_DSA_65_SIGNATURE_LEN,
};

/// Encoding version.
pub const VERSION: u8 = 1;
/// Dual-signature context.
pub const CONTEXT: &[u8] = b"vigil-guard-checkpoint-v1";
/// Bytes covered by the signatures.
pub const SIGNED_LEN: usize = 48;
/// Encoded length.
pub const LEN: usize = SIGNED_LEN + ED25519_SIGNATURE_LEN + ML_DSA_65_SIGNATURE_LEN;

const CHAIN_DOMAIN: &[u8] = b"vigil-guard-chain-v1";

/// The running verdict chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictChain {
    count: u64,
    head: [u8; 32],
}

impl VerdictChain {
    /// The empty chain of the guard whose signing key has `fingerprint`.
    pub fn new(guard_key_fingerprint: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(CHAIN_DOMAIN);
        h.update(guard_key_fingerprint);
        VerdictChain { count: 0, head: h.finalize().into() }
    }

    /// Appends one (intent, verdict record) pair.
    pub fn append(&mut self, intent: &[u8], verdict_record: &[u8]) {
        let intent_digest: [u8; 32] = Sha256::digest(intent).into();
        let mut h = Sha256::new();
        h.update(self.head);
        h.update(intent_digest);
        h.update(verdict_record);
        self.head = h.finalize().into();
        self.count += 1;
    }

    /// Verdicts appended so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The current head.
    pub fn head(&self) -> &[u8; 32] {
        &self.head
    }
}

/// Why a checkpoint was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointError {
    /// Wrong length, version or reserved bytes.
    Malformed,
    /// A signature does not verify (which one is in the [`DualError`]).
    Signature(DualError),
    /// Valid, but not over the chain the verifier holds.
    ChainMismatch,
}

impl CheckpointError {
    /// Human-readable description.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointError::Malformed => "the guard checkpoint is malformed",
            CheckpointError::Signature(e) => e.as_str(),
            CheckpointError::ChainMismatch => "the guard checkpoint does not match the verdicts received",
        }
    }
}

/// A signed statement "the guard judged `count` intents; the chain head is
/// `head`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardCheckpoint {
    /// Verdicts covered.
    pub count: u64,
    /// Chain head after them.
    pub head: [u8; 32],
    /// The guard's dual signature over the signed part.
    pub signature: DualSignature,
}

fn signed_part(count: u64, head: &[u8; 32]) -> [u8; SIGNED_LEN] {
    let mut out = [0u8; SIGNED_LEN];
    out[0] = VERSION;
    out[8..16].copy_from_slice(&count.to_le_bytes());
    out[16..48].copy_from_slice(head);
    out
}

impl GuardCheckpoint {
    /// Signs the chain's current state.
    pub fn sign(chain: &VerdictChain, key: &DualSigningKey) -> Result<Self, DualError> {
        let signature = key.sign(CONTEXT, &signed_part(chain.count, &chain.head))?;
        Ok(GuardCheckpoint { count: chain.count, head: chain.head, signature })
    }

    /// Writes the [`LEN`]-byte encoding.
    pub fn encode(&self, out: &mut [u8; LEN]) {
        out[..SIGNED_LEN].copy_from_slice(&signed_part(self.count, &self.head));
        out[SIGNED_LEN..SIGNED_LEN + ED25519_SIGNATURE_LEN].copy_from_slice(&self.signature.ed25519);
        out[SIGNED_LEN + ED25519_SIGNATURE_LEN..].copy_from_slice(&self.signature.ml_dsa_65);
    }

    /// Parses an encoding (signatures not yet checked).
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        if bytes.len() != LEN || bytes[0] != VERSION || bytes[1..8].iter().any(|&b| b != 0) {
            return Err(CheckpointError::Malformed);
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&bytes[8..16]);
        let mut head = [0u8; 32];
        head.copy_from_slice(&bytes[16..48]);
        let signature = DualSignature::from_parts(
            Some(&bytes[SIGNED_LEN..SIGNED_LEN + ED25519_SIGNATURE_LEN]),
            Some(&bytes[SIGNED_LEN + ED25519_SIGNATURE_LEN..]),
        )
        .map_err(CheckpointError::Signature)?;
        Ok(GuardCheckpoint { count: u64::from_le_bytes(count), head, signature })
    }

    /// Checks both signatures against the attested guard key.
    pub fn verify(&self, guard_key: &DualPublicKey) -> Result<(), CheckpointError> {
        guard_key
            .verify(CONTEXT, &signed_part(self.count, &self.head), &self.signature)
            .map_err(CheckpointError::Signature)
    }

    /// Checks both signatures and that the checkpoint covers exactly `chain`.
    pub fn verify_against(&self, guard_key: &DualPublicKey, chain: &VerdictChain) -> Result<(), CheckpointError> {
        self.verify(guard_key)?;
        if self.count != chain.count || self.head != chain.head {
            return Err(CheckpointError::ChainMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> DualSigningKey {
        DualSigningKey::from_seeds(&[n; 32], &[n ^ 0x5a; 32])
    }

    fn chain(key: &DualSigningKey, verdicts: u8) -> VerdictChain {
        let mut chain = VerdictChain::new(&key.public().fingerprint());
        for i in 0..verdicts {
            chain.append(&[i; 10], &[i.wrapping_mul(3); 32]);
        }
        chain
    }

    #[test]
    fn signed_checkpoint_round_trips_and_verifies() {
        let k = key(1);
        let c = chain(&k, 5);
        let cp = GuardCheckpoint::sign(&c, &k).unwrap();
        let mut bytes = [0u8; LEN];
        cp.encode(&mut bytes);
        let back = GuardCheckpoint::decode(&bytes).unwrap();
        assert_eq!(back, cp);
        back.verify_against(&k.public(), &c).unwrap();
    }

    #[test]
    fn forged_or_foreign_checkpoints_fail() {
        let k = key(1);
        let c = chain(&k, 5);
        let cp = GuardCheckpoint::sign(&c, &k).unwrap();
        let mut bytes = [0u8; LEN];
        cp.encode(&mut bytes);
        // Another key's checkpoint over the same chain.
        let other = GuardCheckpoint::sign(&c, &key(2)).unwrap();
        assert!(matches!(other.verify(&k.public()), Err(CheckpointError::Signature(_))));
        // Count or head changed after signing.
        for at in [8, 20, 47] {
            let mut forged = bytes;
            forged[at] ^= 1;
            let f = GuardCheckpoint::decode(&forged).unwrap();
            assert_eq!(f.verify(&k.public()), Err(CheckpointError::Signature(DualError::BothInvalid)));
        }
        // Each signature half alone corrupted.
        let mut ed = bytes;
        ed[SIGNED_LEN] ^= 1;
        assert_eq!(
            GuardCheckpoint::decode(&ed).unwrap().verify(&k.public()),
            Err(CheckpointError::Signature(DualError::Ed25519Invalid))
        );
        let mut ml = bytes;
        ml[LEN - 100] ^= 1;
        assert!(GuardCheckpoint::decode(&ml).unwrap().verify(&k.public()).is_err());
        // Valid signature, but over a different chain.
        assert_eq!(cp.verify_against(&k.public(), &chain(&k, 4)), Err(CheckpointError::ChainMismatch));
        // Malformed encodings.
        assert_eq!(GuardCheckpoint::decode(&bytes[..LEN - 1]), Err(CheckpointError::Malformed));
        let mut v = bytes;
        v[0] = 2;
        assert_eq!(GuardCheckpoint::decode(&v), Err(CheckpointError::Malformed));
        let mut r = bytes;
        r[3] = 1;
        assert_eq!(GuardCheckpoint::decode(&r), Err(CheckpointError::Malformed));
    }

    #[test]
    fn chain_depends_on_every_input_and_the_key() {
        let k = key(1);
        let base = chain(&k, 3);
        assert_ne!(base, chain(&k, 2));
        assert_ne!(base, chain(&key(2), 3));
        let mut a = VerdictChain::new(&k.public().fingerprint());
        a.append(b"intent", b"verdict");
        let mut b = VerdictChain::new(&k.public().fingerprint());
        b.append(b"intent", b"verdicT");
        assert_ne!(a.head(), b.head());
        assert_eq!(a.count(), 1);
    }
}
