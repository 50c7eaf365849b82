//! Journal keys and frame sealing: the master-key fingerprint, the per-epoch
//! AES-256-GCM key and sealing/opening one frame body (docs/journal.md,
//! "Keys" and "Frames").

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use super::format::{JOURNAL_ID_LEN, SALT_LEN, TAG_LEN, nonce};

const FINGERPRINT_INFO: &[u8] = b"vigil-journal-fingerprint-v1";
const EPOCH_INFO: &[u8] = b"vigil-journal-epoch-v1";

/// The 32-byte journal master key (`journal.key`). Not `Clone`: one copy,
/// on the heap (moving a `MasterKey` moves a pointer, not the key), zeroed
/// when dropped.
pub struct MasterKey(Box<[u8; 32]>);

impl Drop for MasterKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.0);
    }
}

impl MasterKey {
    /// Wraps raw key bytes (the caller's array is the caller's to zeroize;
    /// prefer [`MasterKey::from_bytes`]).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self::from_bytes(&bytes)
    }

    /// Copies the key from `bytes` straight into its own zeroized-on-drop
    /// heap allocation.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut key = Box::new([0u8; 32]);
        key.copy_from_slice(bytes);
        MasterKey(key)
    }

    /// `HKDF-SHA256(salt = none, ikm = master, info = "vigil-journal-fingerprint-v1")`,
    /// 32 bytes: identifies the key in the file header without revealing it.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(None, &self.0[..])
            .expand(FINGERPRINT_INFO, &mut out)
            .expect("32 bytes is a valid HKDF length");
        out
    }

    /// The key of one epoch: `HKDF-SHA256(salt, ikm = master,
    /// info = "vigil-journal-epoch-v1" || journal id)`.
    pub fn epoch_key(&self, salt: &[u8; SALT_LEN], journal_id: &[u8; JOURNAL_ID_LEN]) -> EpochKey {
        let mut info = [0u8; EPOCH_INFO.len() + JOURNAL_ID_LEN];
        info[..EPOCH_INFO.len()].copy_from_slice(EPOCH_INFO);
        info[EPOCH_INFO.len()..].copy_from_slice(journal_id);
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(salt), &self.0[..])
            .expand(&info, &mut key[..])
            .expect("32 bytes is a valid HKDF length");
        EpochKey(Aes256Gcm::new(&(*key).into()))
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", hex::encode(self.fingerprint()))
    }
}

/// The AES-256-GCM key of one epoch.
#[derive(Clone)]
pub struct EpochKey(Aes256Gcm);

impl EpochKey {
    /// Encrypts `body` in place; returns the tag.
    pub fn seal(&self, epoch: u32, seq: u64, aad: &[u8], body: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(nonce(epoch, seq)), aad, body.into())
            .expect("AES-GCM seals any body shorter than 64 GiB");
        tag.into()
    }

    /// Decrypts `body` in place; `false` when the tag does not verify (the
    /// body is then left scrambled).
    pub fn open(&self, epoch: u32, seq: u64, aad: &[u8], body: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let tag = Tag::from(*tag);
        self.0.decrypt_inout_detached(&Nonce::from(nonce(epoch, seq)), aad, body.into(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let master = MasterKey::new([3; 32]);
        let key = master.epoch_key(&[1; SALT_LEN], &[2; JOURNAL_ID_LEN]);
        let mut body = *b"a verdict body";
        let tag = key.seal(1, 7, b"aad", &mut body);
        assert_ne!(&body, b"a verdict body");
        let sealed = body;
        assert!(key.open(1, 7, b"aad", &mut body, &tag));
        assert_eq!(&body, b"a verdict body");
        for (epoch, seq, aad) in [(2, 7, &b"aad"[..]), (1, 8, b"aad"), (1, 7, b"aae")] {
            let mut b = sealed;
            assert!(!key.open(epoch, seq, aad, &mut b, &tag));
        }
        let other = master.epoch_key(&[9; SALT_LEN], &[2; JOURNAL_ID_LEN]);
        let mut b = sealed;
        assert!(!other.open(1, 7, b"aad", &mut b, &tag));
        assert_ne!(master.fingerprint(), MasterKey::new([4; 32]).fingerprint());
    }
}
