//! Dual signatures: every signed artifact of Vigil carries an Ed25519 and an
//! ML-DSA-65 signature, and is valid only if **both** verify (AND, never
//! OR). A missing, extra or malformed signature is an error.
//!
//! Both algorithms sign the same 32 bytes: SHA-256 of the domain-separated
//! message `"vigil-dual-v1" || len(context) as u8 || context || message`
//! (Ed25519 as in RFC 8032; ML-DSA-65 deterministic, empty FIPS 204
//! context), so a signature made for one purpose (`context`) never verifies
//! for another, and signing needs no allocation whatever the message size.

use ed25519_dalek::Signer as _;
use ml_dsa::{EncodedSignature, EncodedVerifyingKey, MlDsa65, Signature as MlSignature};
use sha2::{Digest, Sha256};
use zeroize::Zeroize as _;

/// Ed25519 public key length.
pub const ED25519_PUBLIC_LEN: usize = 32;
/// Ed25519 signature length.
pub const ED25519_SIGNATURE_LEN: usize = 64;
/// ML-DSA-65 public key length (FIPS 204).
pub const ML_DSA_65_PUBLIC_LEN: usize = 1952;
/// ML-DSA-65 signature length (FIPS 204).
pub const ML_DSA_65_SIGNATURE_LEN: usize = 3309;
/// Length of each secret seed.
pub const SEED_LEN: usize = 32;
/// Longest context string.
pub const MAX_CONTEXT: usize = 255;

const DOMAIN: &[u8] = b"vigil-dual-v1";

/// Why a dual signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DualError {
    /// The Ed25519 signature does not verify.
    Ed25519Invalid,
    /// The ML-DSA-65 signature does not verify.
    MlDsaInvalid,
    /// Neither verifies.
    BothInvalid,
    /// A signature is missing or has the wrong length.
    MalformedSignature,
    /// A public key is malformed.
    MalformedPublicKey,
    /// The context is longer than [`MAX_CONTEXT`].
    ContextTooLong,
}

impl DualError {
    /// Human-readable description.
    pub fn as_str(self) -> &'static str {
        match self {
            DualError::Ed25519Invalid => "the Ed25519 signature does not verify",
            DualError::MlDsaInvalid => "the ML-DSA-65 signature does not verify",
            DualError::BothInvalid => "neither the Ed25519 nor the ML-DSA-65 signature verifies",
            DualError::MalformedSignature => "a signature is missing or malformed",
            DualError::MalformedPublicKey => "a public key is malformed",
            DualError::ContextTooLong => "the signing context is too long",
        }
    }
}

/// Feeds the domain-separated message to `f` in pieces.
fn framed(context: &[u8], message: &[u8], mut f: impl FnMut(&[u8])) -> Result<(), DualError> {
    let len = u8::try_from(context.len()).map_err(|_| DualError::ContextTooLong)?;
    f(DOMAIN);
    f(&[len]);
    f(context);
    f(message);
    Ok(())
}

/// A dual public key.
#[derive(Clone, PartialEq, Eq)]
pub struct DualPublicKey {
    /// Ed25519 public key.
    pub ed25519: [u8; ED25519_PUBLIC_LEN],
    /// ML-DSA-65 public key (encoded).
    pub ml_dsa_65: [u8; ML_DSA_65_PUBLIC_LEN],
}

impl core::fmt::Debug for DualPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DualPublicKey(fingerprint ")?;
        for b in &self.fingerprint()[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A dual signature.
#[derive(Clone, PartialEq, Eq)]
pub struct DualSignature {
    /// Ed25519 signature.
    pub ed25519: [u8; ED25519_SIGNATURE_LEN],
    /// ML-DSA-65 signature.
    pub ml_dsa_65: [u8; ML_DSA_65_SIGNATURE_LEN],
}

impl core::fmt::Debug for DualSignature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DualSignature(ed25519 + ml-dsa-65)")
    }
}

impl DualSignature {
    /// Builds a signature from its two parts; each must be present and have
    /// its exact length.
    pub fn from_parts(ed25519: Option<&[u8]>, ml_dsa_65: Option<&[u8]>) -> Result<Self, DualError> {
        let ed = ed25519.ok_or(DualError::MalformedSignature)?;
        let ml = ml_dsa_65.ok_or(DualError::MalformedSignature)?;
        Ok(DualSignature {
            ed25519: ed.try_into().map_err(|_| DualError::MalformedSignature)?,
            ml_dsa_65: ml.try_into().map_err(|_| DualError::MalformedSignature)?,
        })
    }
}

impl DualPublicKey {
    /// Builds a public key from its two encodings.
    pub fn from_parts(ed25519: &[u8], ml_dsa_65: &[u8]) -> Result<Self, DualError> {
        let key = DualPublicKey {
            ed25519: ed25519.try_into().map_err(|_| DualError::MalformedPublicKey)?,
            ml_dsa_65: ml_dsa_65.try_into().map_err(|_| DualError::MalformedPublicKey)?,
        };
        ed25519_dalek::VerifyingKey::from_bytes(&key.ed25519).map_err(|_| DualError::MalformedPublicKey)?;
        Ok(key)
    }

    /// SHA-256 over both public keys (`"vigil-key-v1" || ed25519 || ml-dsa-65`):
    /// what users compare and pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"vigil-key-v1");
        h.update(self.ed25519);
        h.update(self.ml_dsa_65);
        h.finalize().into()
    }

    /// Key id of the Ed25519 half (first 16 bytes of SHA-256 of the key).
    pub fn ed25519_kid(&self) -> [u8; 16] {
        kid(&self.ed25519)
    }

    /// Key id of the ML-DSA-65 half.
    pub fn ml_dsa_65_kid(&self) -> [u8; 16] {
        kid(&self.ml_dsa_65)
    }

    /// Both halves decoded, for verifying: the ML-DSA-65 key's expanded
    /// matrix costs about as much as a verification, so a key that
    /// verifies often (or before its signatures arrive) is decoded once.
    pub fn decode(&self) -> Result<DecodedPublicKey, DualError> {
        let ed25519 =
            ed25519_dalek::VerifyingKey::from_bytes(&self.ed25519).map_err(|_| DualError::MalformedPublicKey)?;
        Ok(DecodedPublicKey { key: self.clone(), ed25519, ml_dsa_65: self.decode_ml_dsa_65()? })
    }

    fn decode_ml_dsa_65(&self) -> Result<ml_dsa::VerifyingKey<MlDsa65>, DualError> {
        let encoded =
            EncodedVerifyingKey::<MlDsa65>::try_from(&self.ml_dsa_65[..]).map_err(|_| DualError::MalformedPublicKey)?;
        Ok(ml_dsa::VerifyingKey::<MlDsa65>::decode(&encoded))
    }

    /// Verifies a raw Ed25519 signature over `message` (COSE EdDSA, −8).
    pub fn verify_ed25519_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.ed25519) else { return false };
        verify_ed25519_with(&key, message, signature)
    }

    /// Verifies a raw ML-DSA-65 signature over `message` with an empty
    /// context (COSE ML-DSA-65, −49).
    pub fn verify_ml_dsa_65_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        self.decode_ml_dsa_65().is_ok_and(|key| verify_ml_dsa_65_with(&key, message, signature))
    }

    /// Verifies `signature` over `message` for `context`: both halves must
    /// verify.
    pub fn verify(&self, context: &[u8], message: &[u8], signature: &DualSignature) -> Result<(), DualError> {
        self.decode()?.verify(context, message, signature)
    }
}

/// A [`DualPublicKey`] with both halves decoded ([`DualPublicKey::decode`]).
pub struct DecodedPublicKey {
    key: DualPublicKey,
    ed25519: ed25519_dalek::VerifyingKey,
    ml_dsa_65: ml_dsa::VerifyingKey<MlDsa65>,
}

impl core::fmt::Debug for DecodedPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Decoded{:?}", self.key)
    }
}

impl DecodedPublicKey {
    /// The key as encoded.
    pub fn public(&self) -> &DualPublicKey {
        &self.key
    }

    /// Verifies a raw Ed25519 signature over `message` (COSE EdDSA, −8).
    pub fn verify_ed25519_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        verify_ed25519_with(&self.ed25519, message, signature)
    }

    /// Verifies a raw ML-DSA-65 signature over `message` with an empty
    /// context (COSE ML-DSA-65, −49).
    pub fn verify_ml_dsa_65_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        verify_ml_dsa_65_with(&self.ml_dsa_65, message, signature)
    }

    /// Verifies `signature` over `message` for `context`: both halves must
    /// verify.
    pub fn verify(&self, context: &[u8], message: &[u8], signature: &DualSignature) -> Result<(), DualError> {
        let digest = framed_digest(context, message)?;
        let ed_ok = self.verify_ed25519_raw(&digest, &signature.ed25519);
        let ml_ok = self.verify_ml_dsa_65_raw(&digest, &signature.ml_dsa_65);
        match (ed_ok, ml_ok) {
            (true, true) => Ok(()),
            (false, true) => Err(DualError::Ed25519Invalid),
            (true, false) => Err(DualError::MlDsaInvalid),
            (false, false) => Err(DualError::BothInvalid),
        }
    }
}

/// ML-DSA-65 over `message`, empty context.
fn verify_ml_dsa_65_with(key: &ml_dsa::VerifyingKey<MlDsa65>, message: &[u8], signature: &[u8]) -> bool {
    match EncodedSignature::<MlDsa65>::try_from(signature).ok().and_then(|e| MlSignature::<MlDsa65>::decode(&e)) {
        Some(sig) => key.verify_with_context(message, &[], &sig),
        None => false,
    }
}

/// Ed25519 (strict: RFC 8032 with canonical encodings) over `message`.
fn verify_ed25519_with(key: &ed25519_dalek::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = <[u8; ED25519_SIGNATURE_LEN]>::try_from(signature) else { return false };
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
}

fn kid(key: &[u8]) -> [u8; 16] {
    let digest: [u8; 32] = Sha256::digest(key).into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// SHA-256 of the framed message: what both algorithms sign.
fn framed_digest(context: &[u8], message: &[u8]) -> Result<[u8; 32], DualError> {
    let mut h = Sha256::new();
    framed(context, message, |piece| h.update(piece))?;
    Ok(h.finalize().into())
}

/// Stack that libcrux's ML-DSA-65 key generation or signing may leave its
/// working buffers in (the expanded matrix, secret and masking vectors):
/// measured ≈ 127 KiB below the caller's frame on x86_64 (AVX2 and
/// portable alike), with a margin.
const ML_DSA_STACK: usize = 160 * 1024;

/// Overwrites with zeros the [`ML_DSA_STACK`] bytes of stack just below the
/// caller's frame, where the ML-DSA-65 call that just returned kept its
/// working buffers (libcrux does not wipe them). Best effort: a frame of
/// this size starts where that call's frames did, and `black_box` makes the
/// zeros be written; ≈ 5 µs.
#[inline(never)]
fn scrub_ml_dsa_stack() {
    let mut zeros = [0u8; ML_DSA_STACK];
    core::hint::black_box(&mut zeros);
}

/// The ML-DSA-65 half of a signing key: libcrux's encoded signing key
/// (FIPS 204 `skEncode`), zeroized when dropped.
struct MlDsa65Secret(libcrux_ml_dsa::ml_dsa_65::MLDSA65SigningKey);

impl MlDsa65Secret {
    fn wipe(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

impl Drop for MlDsa65Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl zeroize::ZeroizeOnDrop for MlDsa65Secret {}

/// A dual signing key (secret). Not `Clone`; both halves are zeroized when
/// it is dropped.
///
/// ML-DSA-65 keys are generated and signatures made by libcrux (formally
/// verified, with an AVX2 code path chosen at run time where the CPU and
/// the OS enable it; portable code elsewhere), and every signature is
/// checked by RustCrypto's `ml-dsa` ([`DualPublicKey::verify`]): two
/// independent implementations of FIPS 204, so a signature Vigil makes that
/// another reader would refuse cannot pass unnoticed (docs/design.md,
/// "ML-DSA-65").
pub struct DualSigningKey {
    ed25519: ed25519_dalek::SigningKey,
    ml_dsa_65: MlDsa65Secret,
    ml_dsa_65_public: [u8; ML_DSA_65_PUBLIC_LEN],
}

impl DualSigningKey {
    /// Derives both keys from their 32-byte seeds (keep the seeds secret):
    /// Ed25519 as in RFC 8032, ML-DSA-65 by FIPS 204 `ML-DSA.KeyGen_internal`
    /// with the seed as ξ. The caller's seeds are left to the caller. Both
    /// secret keys zeroize themselves on drop (`ed25519-dalek`'s `zeroize`
    /// feature; [`MlDsa65Secret`]).
    pub fn from_seeds(ed25519_seed: &[u8; SEED_LEN], ml_dsa_65_seed: &[u8; SEED_LEN]) -> Self {
        let pair = libcrux_ml_dsa::ml_dsa_65::generate_key_pair(*ml_dsa_65_seed);
        scrub_ml_dsa_stack();
        DualSigningKey {
            ed25519: ed25519_dalek::SigningKey::from_bytes(ed25519_seed),
            ml_dsa_65: MlDsa65Secret(pair.signing_key),
            ml_dsa_65_public: *pair.verification_key.as_ref(),
        }
    }

    /// The public half.
    pub fn public(&self) -> DualPublicKey {
        DualPublicKey { ed25519: self.ed25519.verifying_key().to_bytes(), ml_dsa_65: self.ml_dsa_65_public }
    }

    /// Raw Ed25519 signature over `message` (for COSE, which frames the
    /// message itself).
    pub fn sign_ed25519_raw(&self, message: &[u8]) -> [u8; ED25519_SIGNATURE_LEN] {
        self.ed25519.sign(message).to_bytes()
    }

    /// Raw ML-DSA-65 signature over `message` (deterministic: FIPS 204
    /// hedging randomness all zeros; empty context).
    pub fn sign_ml_dsa_65_raw(&self, message: &[u8]) -> Result<[u8; ML_DSA_65_SIGNATURE_LEN], DualError> {
        let signed = libcrux_ml_dsa::ml_dsa_65::sign(
            &self.ml_dsa_65.0,
            message,
            &[],
            [0; libcrux_ml_dsa::SIGNING_RANDOMNESS_SIZE],
        );
        scrub_ml_dsa_stack();
        signed.map(|sig| *sig.as_ref()).map_err(|_| DualError::MalformedSignature)
    }

    /// Signs `message` for `context` with both keys.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> Result<DualSignature, DualError> {
        let digest = framed_digest(context, message)?;
        Ok(DualSignature { ed25519: self.sign_ed25519_raw(&digest), ml_dsa_65: self.sign_ml_dsa_65_raw(&digest)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> DualSigningKey {
        DualSigningKey::from_seeds(&[n; 32], &[n.wrapping_add(100); 32])
    }

    #[test]
    fn both_halves_must_verify() {
        let k = key(1);
        let public = k.public();
        let sig = k.sign(b"test", b"hello").unwrap();
        assert_eq!(public.verify(b"test", b"hello", &sig), Ok(()));
        assert_eq!(public.verify(b"test", b"hellO", &sig), Err(DualError::BothInvalid));
        assert_eq!(public.verify(b"other", b"hello", &sig), Err(DualError::BothInvalid), "context binds");

        let mut bad_ed = sig.clone();
        bad_ed.ed25519[5] ^= 1;
        assert_eq!(public.verify(b"test", b"hello", &bad_ed), Err(DualError::Ed25519Invalid));
        let mut bad_ml = sig.clone();
        bad_ml.ml_dsa_65[100] ^= 1;
        assert_eq!(public.verify(b"test", b"hello", &bad_ml), Err(DualError::MlDsaInvalid));

        // Halves from another key: swapping either half breaks it.
        let other = key(2).sign(b"test", b"hello").unwrap();
        let swapped = DualSignature { ed25519: other.ed25519, ml_dsa_65: sig.ml_dsa_65 };
        assert_eq!(public.verify(b"test", b"hello", &swapped), Err(DualError::Ed25519Invalid));
        let swapped = DualSignature { ed25519: sig.ed25519, ml_dsa_65: other.ml_dsa_65 };
        assert_eq!(public.verify(b"test", b"hello", &swapped), Err(DualError::MlDsaInvalid));
        assert_eq!(key(2).public().verify(b"test", b"hello", &sig), Err(DualError::BothInvalid));
    }

    #[test]
    fn missing_or_malformed_parts_are_errors() {
        let sig = key(3).sign(b"c", b"m").unwrap();
        assert!(DualSignature::from_parts(Some(&sig.ed25519), Some(&sig.ml_dsa_65)).is_ok());
        assert_eq!(DualSignature::from_parts(None, Some(&sig.ml_dsa_65)).unwrap_err(), DualError::MalformedSignature);
        assert_eq!(DualSignature::from_parts(Some(&sig.ed25519), None).unwrap_err(), DualError::MalformedSignature);
        assert_eq!(
            DualSignature::from_parts(Some(&sig.ed25519[..63]), Some(&sig.ml_dsa_65)).unwrap_err(),
            DualError::MalformedSignature
        );
        assert_eq!(
            DualPublicKey::from_parts(&[0; 31], &[0; ML_DSA_65_PUBLIC_LEN]).unwrap_err(),
            DualError::MalformedPublicKey
        );
        assert_eq!(key(3).sign(&[0; 256], b"m").unwrap_err(), DualError::ContextTooLong);
    }

    #[test]
    fn both_signing_keys_zeroize_on_drop() {
        // Fails to compile if the `zeroize` features of ed25519-dalek or
        // ml-dsa are dropped from Cargo.toml.
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroized_on_drop::<ed25519_dalek::SigningKey>();
        zeroized_on_drop::<MlDsa65Secret>();
        // And what its drop does wipes every byte of the ML-DSA half.
        let mut secret = MlDsa65Secret(libcrux_ml_dsa::ml_dsa_65::generate_key_pair([9; SEED_LEN]).signing_key);
        assert!(secret.0.as_ref().iter().any(|&b| b != 0));
        secret.wipe();
        assert!(secret.0.as_ref().iter().all(|&b| b == 0));
    }

    #[test]
    fn keys_and_signatures_are_those_of_an_independent_implementation() {
        // FIPS 204 fixes both the key from its seed and the deterministic
        // signature: RustCrypto's `ml-dsa` must produce the very same bytes
        // as the libcrux signer, for several seeds and messages.
        for n in [0u8, 1, 77, 255] {
            let seed = [n; SEED_LEN];
            let ours = DualSigningKey::from_seeds(&[n; SEED_LEN], &seed);
            let theirs = ml_dsa::SigningKey::<MlDsa65>::from_seed(&seed.into());
            assert_eq!(ours.public().ml_dsa_65[..], theirs.expanded_key().verifying_key().encode()[..]);
            for message in [&b""[..], b"m", &[n; 1000]] {
                let sig = ours.sign_ml_dsa_65_raw(message).unwrap();
                let expected = theirs.expanded_key().sign_deterministic(message, &[]).unwrap().encode();
                assert_eq!(sig[..], expected[..], "seed {n}, message of {} bytes", message.len());
                assert!(ours.public().verify_ml_dsa_65_raw(message, &sig));
            }
        }
    }

    #[test]
    fn deterministic_and_fingerprinted() {
        let a = key(4).sign(b"c", b"m").unwrap();
        let b = key(4).sign(b"c", b"m").unwrap();
        assert_eq!(a, b);
        assert_eq!(key(4).public().fingerprint(), key(4).public().fingerprint());
        assert_ne!(key(4).public().fingerprint(), key(5).public().fingerprint());
        let p = key(4).public();
        assert_eq!(DualPublicKey::from_parts(&p.ed25519, &p.ml_dsa_65).unwrap(), p);
    }
}
