//! A payload signed twice with one dual key: a tagged COSE_Sign (RFC 9052,
//! tag 98) with an EdDSA (alg −8) and an ML-DSA-65 (alg −49) signature,
//! each with its `kid`. Evidence signs with an empty external AAD; other
//! statements (cost statements) bind their own, so that no signature of
//! one kind verifies as another. Host side (feature `std`).

extern crate std;

use std::string::String;
use std::vec::Vec;

use coset::{CoseSign, CoseSignBuilder, CoseSignatureBuilder, HeaderBuilder, TaggedCborSerializable, iana};

use crate::dual::{DecodedPublicKey, DualError, DualPublicKey, DualSigningKey};

/// Why a dual COSE_Sign was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoseError {
    /// Not a tagged COSE_Sign.
    NotCoseSign(String),
    /// The EdDSA or ML-DSA-65 signature is missing, or one is duplicated,
    /// or another algorithm is present.
    Signatures(&'static str),
    /// A signature's kid does not name the trusted key.
    UnknownKey(&'static str),
    /// The EdDSA signature does not verify.
    Ed25519Invalid,
    /// The ML-DSA-65 signature does not verify.
    MlDsaInvalid,
    /// No payload.
    NoPayload,
}

impl core::fmt::Display for CoseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CoseError::NotCoseSign(e) => write!(f, "not a tagged COSE_Sign: {e}"),
            CoseError::Signatures(what) => write!(f, "signatures: {what}"),
            CoseError::UnknownKey(alg) => write!(f, "the {alg} signature is by another key than the trusted one"),
            CoseError::Ed25519Invalid => write!(f, "the EdDSA signature does not verify"),
            CoseError::MlDsaInvalid => write!(f, "the ML-DSA-65 signature does not verify"),
            CoseError::NoPayload => write!(f, "no payload"),
        }
    }
}

impl std::error::Error for CoseError {}

/// Signs `payload` with both halves of `key`, binding `external_aad`.
pub fn sign(payload: Vec<u8>, key: &DualSigningKey, external_aad: &[u8]) -> Result<Vec<u8>, DualError> {
    let public = key.public();
    let ed_header =
        HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA).key_id(public.ed25519_kid().to_vec()).build();
    let ml_header =
        HeaderBuilder::new().algorithm(iana::Algorithm::ML_DSA_65).key_id(public.ml_dsa_65_kid().to_vec()).build();
    let mut ml_error = None;
    let sign = CoseSignBuilder::new()
        .payload(payload)
        .add_created_signature(CoseSignatureBuilder::new().protected(ed_header).build(), external_aad, |tbs| {
            key.sign_ed25519_raw(tbs).to_vec()
        })
        .add_created_signature(CoseSignatureBuilder::new().protected(ml_header).build(), external_aad, |tbs| match key
            .sign_ml_dsa_65_raw(tbs)
        {
            Ok(sig) => sig.to_vec(),
            Err(e) => {
                ml_error = Some(e);
                Vec::new()
            }
        })
        .build();
    if let Some(e) = ml_error {
        return Err(e);
    }
    sign.to_tagged_vec().map_err(|_| DualError::MalformedSignature)
}

/// Verifies both signatures of `bytes` against `trust` with
/// `external_aad`; returns the payload.
pub fn verify(bytes: &[u8], trust: &DualPublicKey, external_aad: &[u8]) -> Result<Vec<u8>, CoseError> {
    // A trust key that does not decode verifies nothing (its Ed25519 half
    // is the one that can be malformed).
    let trust = trust.decode().map_err(|_| CoseError::Ed25519Invalid)?;
    verify_decoded(bytes, &trust, external_aad)
}

/// [`verify`] with the trusted key decoded beforehand
/// ([`DualPublicKey::decode`]).
pub fn verify_decoded(bytes: &[u8], trust: &DecodedPublicKey, external_aad: &[u8]) -> Result<Vec<u8>, CoseError> {
    let sign = CoseSign::from_tagged_slice(bytes).map_err(|e| CoseError::NotCoseSign(std::format!("{e:?}")))?;
    let alg = |i: usize| sign.signatures[i].protected.header.alg.clone();
    let (mut ed, mut ml) = (None, None);
    for i in 0..sign.signatures.len() {
        match alg(i) {
            Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) if ed.is_none() => ed = Some(i),
            Some(coset::Algorithm::Assigned(iana::Algorithm::ML_DSA_65)) if ml.is_none() => ml = Some(i),
            Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA | iana::Algorithm::ML_DSA_65)) => {
                return Err(CoseError::Signatures("an algorithm is present twice"));
            }
            _ => return Err(CoseError::Signatures("a signature has an unexpected algorithm")),
        }
    }
    let ed = ed.ok_or(CoseError::Signatures("the EdDSA signature is missing"))?;
    let ml = ml.ok_or(CoseError::Signatures("the ML-DSA-65 signature is missing"))?;
    if sign.signatures[ed].protected.header.key_id != trust.public().ed25519_kid() {
        return Err(CoseError::UnknownKey("EdDSA"));
    }
    if sign.signatures[ml].protected.header.key_id != trust.public().ml_dsa_65_kid() {
        return Err(CoseError::UnknownKey("ML-DSA-65"));
    }
    sign.verify_signature(ed, external_aad, |sig, tbs| {
        if trust.verify_ed25519_raw(tbs, sig) { Ok(()) } else { Err(CoseError::Ed25519Invalid) }
    })?;
    sign.verify_signature(ml, external_aad, |sig, tbs| {
        if trust.verify_ml_dsa_65_raw(tbs, sig) { Ok(()) } else { Err(CoseError::MlDsaInvalid) }
    })?;
    sign.payload.ok_or(CoseError::NoPayload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aad_binds_and_both_signatures_must_verify() {
        let key = DualSigningKey::from_seeds(&[1; 32], &[2; 32]);
        let signed = sign(b"payload".to_vec(), &key, b"ctx-a").unwrap();
        assert_eq!(verify(&signed, &key.public(), b"ctx-a").unwrap(), b"payload");
        assert_eq!(verify(&signed, &key.public(), b"ctx-b").unwrap_err(), CoseError::Ed25519Invalid);
        let other = DualSigningKey::from_seeds(&[3; 32], &[4; 32]);
        assert_eq!(verify(&signed, &other.public(), b"ctx-a").unwrap_err(), CoseError::UnknownKey("EdDSA"));
        for i in 0..signed.len() {
            let mut bad = signed.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad, &key.public(), b"ctx-a").is_err(), "byte {i}");
        }
    }
}
