//! Signed policy bundles (docs/bundle.md, "Signed bundles"): a bundle file
//! may carry, after the bundle's last byte, a signature trailer — the
//! policy signer's public key and a dual signature (Ed25519 + ML-DSA-65)
//! over the bundle's SHA-384 — so that a key directory can pin who may
//! write the policies it runs. The bundle itself, and so its measurement,
//! does not change when it is signed.

use minicbor::{Decode, Encode};
use vigil_attest::dual::{DualSignature, DualSigningKey};
use vigil_attest::{Measurement, measure};
use vigil_guard::bundle::{HEADER_LEN, MAGIC};

use crate::keys::{self, KeyError};

/// Why a bundle file could not be split, signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum PolicySignatureError {
    /// The file is not a bundle, or its length does not match its header.
    #[error("{0}")]
    NotABundle(String),
    /// The bundle does not load; it is not signed.
    #[error("not signing an invalid bundle: {0}")]
    InvalidBundle(&'static str),
    /// The trailer is not a well-formed signature block of a known version.
    #[error("{0}")]
    Malformed(String),
    /// The signer's key set in the trailer is not valid.
    #[error("the policy signer's key")]
    SignerKey(#[source] KeyError),
    /// Signing failed.
    #[error("signing the policy: {0}")]
    Signing(String),
    /// A signature does not verify: the bundle or its signature was altered.
    #[error("the policy signature does not verify ({0}): the bundle or its signature was altered")]
    BadSignature(&'static str),
}

/// Results of this module.
pub type Result<T, E = PolicySignatureError> = std::result::Result<T, E>;

/// The trailer's magic.
pub const TRAILER_MAGIC: [u8; 8] = *b"VGPSIG01";
/// Signing context.
pub const CONTEXT: &[u8] = b"vigil-policy-bundle-v1";
/// Signature block version.
pub const VERSION: u8 = 1;
/// The largest trailer read (a key set and two signatures: about 5.5 KB).
const MAX_TRAILER: usize = 64 << 10;

/// The CBOR body of a signature trailer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct SignatureBlock {
    /// [`VERSION`].
    #[n(0)]
    pub version: u8,
    /// The signer's public key, a COSE_KeySet (docs/keys.md).
    #[cbor(n(1), with = "minicbor::bytes")]
    pub signer: Vec<u8>,
    /// Ed25519 half of the dual signature.
    #[cbor(n(2), with = "minicbor::bytes")]
    pub ed25519: Vec<u8>,
    /// ML-DSA-65 half of the dual signature.
    #[cbor(n(3), with = "minicbor::bytes")]
    pub ml_dsa_65: Vec<u8>,
}

/// A bundle file split into the bundle and its trailer, if any.
pub fn split(file: &[u8]) -> Result<(&[u8], Option<&[u8]>)> {
    if file.len() < HEADER_LEN || file[..8] != MAGIC {
        return Err(PolicySignatureError::NotABundle("not a policy bundle (no VGPOLICY header)".into()));
    }
    let total = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes")) as usize;
    if total < HEADER_LEN || total > file.len() {
        return Err(PolicySignatureError::NotABundle(format!(
            "the bundle header gives a length of {total} bytes, but the file has {}",
            file.len()
        )));
    }
    let (bundle, rest) = file.split_at(total);
    Ok((bundle, (!rest.is_empty()).then_some(rest)))
}

/// The message signed: the bundle's SHA-384.
fn message(bundle: &[u8]) -> Measurement {
    measure(bundle)
}

/// Signs `bundle` (unsigned, or re-signed: an old trailer is dropped) with
/// the policy key; returns the signed file.
pub fn sign(file: &[u8], key: &DualSigningKey) -> Result<Vec<u8>> {
    let (bundle, _) = split(file)?;
    vigil_guard::bundle::Bundle::load(bundle).map_err(|e| PolicySignatureError::InvalidBundle(e.as_str()))?;
    let sig = key.sign(CONTEXT, &message(bundle)).map_err(|e| PolicySignatureError::Signing(e.as_str().into()))?;
    let block = SignatureBlock {
        version: VERSION,
        signer: keys::cose_key_set(&key.public()).map_err(|e| PolicySignatureError::Signing(e.to_string()))?,
        ed25519: sig.ed25519.to_vec(),
        ml_dsa_65: sig.ml_dsa_65.to_vec(),
    };
    let cbor = minicbor::to_vec(&block)
        .map_err(|e| PolicySignatureError::Signing(format!("encoding the signature block: {e}")))?;
    let mut out = Vec::with_capacity(bundle.len() + 12 + cbor.len());
    out.extend_from_slice(bundle);
    out.extend_from_slice(&TRAILER_MAGIC);
    out.extend_from_slice(&(cbor.len() as u32).to_le_bytes());
    out.extend_from_slice(&cbor);
    Ok(out)
}

/// Verifies a trailer over `bundle`; returns the signer's fingerprint.
/// Both signatures must verify; nothing may follow the block.
pub fn verify(bundle: &[u8], trailer: &[u8]) -> Result<[u8; 32]> {
    if trailer.len() < 12 || trailer[..8] != TRAILER_MAGIC {
        return Err(PolicySignatureError::Malformed(
            "bytes after the bundle are not a policy signature (VGPSIG01)".into(),
        ));
    }
    let len = u32::from_le_bytes(trailer[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_TRAILER || trailer.len() != 12 + len {
        return Err(PolicySignatureError::Malformed(
            "the policy signature block's length does not match the file".into(),
        ));
    }
    let block: SignatureBlock = minicbor::decode(&trailer[12..])
        .map_err(|e| PolicySignatureError::Malformed(format!("the policy signature block is not valid CBOR: {e}")))?;
    if block.version != VERSION {
        return Err(PolicySignatureError::Malformed(format!(
            "policy signature version {}; this vigil reads {VERSION}",
            block.version
        )));
    }
    let signer = keys::read_cose_key_set(&block.signer).map_err(PolicySignatureError::SignerKey)?;
    let sig = DualSignature::from_parts(Some(&block.ed25519), Some(&block.ml_dsa_65))
        .map_err(|e| PolicySignatureError::Malformed(format!("policy signature: {}", e.as_str())))?;
    signer.verify(CONTEXT, &message(bundle), &sig).map_err(|e| PolicySignatureError::BadSignature(e.as_str()))?;
    Ok(signer.fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bundles_verify_and_every_flip_or_swap_is_refused() {
        let bundle = vigil_guard::compile::compile(
            "version = 1\nname = \"s\"\ndefault = \"allow\"\n[tools]\nallow = [\"shell\"]\n",
            "s.toml",
        )
        .unwrap()
        .bundle;
        let key = DualSigningKey::from_seeds(&[1; 32], &[2; 32]);
        let signed = sign(&bundle, &key).unwrap();
        let (b, trailer) = split(&signed).unwrap();
        assert_eq!(b, &bundle[..]);
        assert_eq!(verify(b, trailer.unwrap()).unwrap(), key.public().fingerprint());
        // Every single-bit flip of the signed file is refused: by the
        // bundle digest, the split, the block's decoding or a signature.
        for bit in (0..signed.len() * 8).step_by(5) {
            let mut bad = signed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let ok = split(&bad).ok().and_then(|(b, t)| {
                vigil_guard::bundle::Bundle::load(b).ok()?;
                verify(b, t?).ok()
            });
            assert_eq!(ok, None, "bit {bit}");
        }
        // Another key's signature over the same bundle names another signer;
        // a signature moved to another bundle does not verify.
        let other = DualSigningKey::from_seeds(&[3; 32], &[4; 32]);
        let by_other = sign(&signed, &other).unwrap();
        let (b2, t2) = split(&by_other).unwrap();
        assert_eq!(verify(b2, t2.unwrap()).unwrap(), other.public().fingerprint());
        let another = vigil_guard::compile::compile(
            "version = 1\nname = \"t\"\ndefault = \"deny\"\n[tools]\nallow = [\"shell\"]\n",
            "t.toml",
        )
        .unwrap()
        .bundle;
        assert!(verify(&another, trailer.unwrap()).is_err());
        // Trailing garbage after the block.
        let mut long = signed.clone();
        long.push(0);
        let (b, t) = split(&long).unwrap();
        assert!(verify(b, t.unwrap()).is_err());
    }
}
