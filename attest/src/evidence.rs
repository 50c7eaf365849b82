//! Evidence: a tagged COSE_Sign (RFC 9052, tag 98) whose payload is the
//! claims map of docs/evidence.md, signed by the platform key twice — EdDSA
//! (alg −8) and ML-DSA-65 (alg −49), each with its `kid`. A verifier checks
//! **both** signatures against the pinned platform key, then the nonce and
//! the measurements. Host side (feature `std`).

extern crate std;

use std::string::{String, ToString};
use std::vec::Vec;

use coset::CborSerializable;
use coset::cbor::value::Value;

use crate::MEASUREMENT_LEN;
use crate::cose_dual::{self, CoseError};
use crate::dual::{DecodedPublicKey, DualPublicKey, DualSigningKey};

/// Claims format version (claim key `"version"`; 2 adds `policy_signer`
/// and `features`).
pub const CLAIMS_VERSION: u64 = 2;
/// Claims in a version-2 claims map.
const CLAIM_COUNT: usize = 15;
/// EAT `eat_nonce` claim key (RFC 9711).
pub const NONCE_KEY: i64 = 10;

/// What the platform vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The verifier's nonce (8–64 bytes).
    pub nonce: Vec<u8>,
    /// SHA-384 of the guard image.
    pub image: [u8; MEASUREMENT_LEN],
    /// SHA-384 of the boot configuration.
    pub config: [u8; MEASUREMENT_LEN],
    /// SHA-384 of the policy bundle.
    pub policy: [u8; MEASUREMENT_LEN],
    /// `x86_64` or `aarch64`.
    pub arch: String,
    /// `kvm` or `hvf`.
    pub hypervisor: String,
    /// `none` (no confidential-computing platform).
    pub platform: String,
    /// The guard's per-boot X25519 public key.
    pub guard_x25519: [u8; 32],
    /// The guard's per-boot dual signing key.
    pub guard_key: DualPublicKey,
    /// Boot identifier.
    pub boot_id: [u8; 16],
    /// Seconds since the Unix epoch when the evidence was made.
    pub timestamp: u64,
    /// Vigil version.
    pub vigil_version: String,
    /// Entropy sources the guard used.
    pub entropy: Vec<String>,
    /// Fingerprint of the dual key that signed the policy bundle; `None`
    /// for an unsigned bundle (the pack built into vigil, or a TOML policy
    /// where no signer is pinned).
    pub policy_signer: Option<[u8; 32]>,
    /// The image's build features, read by the VMM from the image itself
    /// (`[]` in production; `test-hooks` marks an image never to trust).
    pub features: Vec<String>,
}

/// Why evidence was refused. Each case is distinct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceError {
    /// Not a tagged COSE_Sign.
    NotCoseSign(String),
    /// The EdDSA or ML-DSA-65 signature is missing, or one is duplicated, or
    /// another algorithm is present.
    Signatures(&'static str),
    /// A signature's kid does not name the trusted platform key.
    UnknownKey(&'static str),
    /// The EdDSA signature does not verify.
    Ed25519Invalid,
    /// The ML-DSA-65 signature does not verify.
    MlDsaInvalid,
    /// The payload is not a valid claims map.
    BadClaims(String),
    /// The nonce differs from the verifier's.
    WrongNonce,
    /// The image measurement differs from the reference.
    WrongImage,
    /// The policy measurement differs from the expected bundle.
    WrongPolicy,
    /// The boot configuration measurement differs from the reference.
    WrongConfig,
    /// The architecture differs from the reference.
    WrongArch(String),
    /// The hypervisor is not one the reference allows.
    WrongHypervisor(String),
    /// The confidential-computing platform differs from the reference.
    WrongPlatform(String),
    /// The policy was not signed by the expected signer.
    WrongPolicySigner,
    /// The image's build features differ from the reference's.
    WrongFeatures(String),
    /// The image is a test image (feature `test-hooks`).
    TestImage,
}

impl core::fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EvidenceError::NotCoseSign(e) => write!(f, "not a tagged COSE_Sign: {e}"),
            EvidenceError::Signatures(e) => write!(f, "signature set: {e}"),
            EvidenceError::UnknownKey(alg) => {
                write!(f, "the {alg} signature is not by the trusted platform key (kid mismatch)")
            }
            EvidenceError::Ed25519Invalid => write!(f, "the EdDSA (Ed25519) signature does not verify"),
            EvidenceError::MlDsaInvalid => write!(f, "the ML-DSA-65 signature does not verify"),
            EvidenceError::BadClaims(e) => write!(f, "malformed claims: {e}"),
            EvidenceError::WrongNonce => write!(f, "the nonce is not the one requested (replayed or foreign evidence)"),
            EvidenceError::WrongImage => {
                write!(f, "the guard image measurement differs from the reference measurements.json")
            }
            EvidenceError::WrongPolicy => write!(f, "the policy measurement differs from the expected bundle"),
            EvidenceError::WrongConfig => {
                write!(
                    f,
                    "the boot configuration measurement differs from the reference (another VMM configuration, \
                     or a guard of another guest ABI version: evidence recorded by an older vigil is checked \
                     with that vigil)"
                )
            }
            EvidenceError::WrongArch(a) => write!(f, "the guard's architecture `{a}` is not the reference's"),
            EvidenceError::WrongHypervisor(h) => write!(f, "the hypervisor `{h}` is not one the reference allows"),
            EvidenceError::WrongPlatform(p) => write!(f, "the platform `{p}` is not the reference's"),
            EvidenceError::WrongPolicySigner => write!(f, "the policy was not signed by the expected signer"),
            EvidenceError::WrongFeatures(f2) => {
                write!(f, "the image's build features [{f2}] are not the reference's")
            }
            EvidenceError::TestImage => {
                write!(f, "the guard is a test-hooks image, which must never be trusted")
            }
        }
    }
}

impl std::error::Error for EvidenceError {}

fn text(key: &str) -> Value {
    Value::Text(key.to_string())
}

impl Claims {
    /// The claims as a CBOR map (docs/evidence.md).
    pub fn to_value(&self) -> Value {
        let measurements = Value::Map(vec![
            (text("image"), Value::Bytes(self.image.to_vec())),
            (text("config"), Value::Bytes(self.config.to_vec())),
            (text("policy"), Value::Bytes(self.policy.to_vec())),
        ]);
        Value::Map(vec![
            (Value::Integer(NONCE_KEY.into()), Value::Bytes(self.nonce.clone())),
            (text("version"), Value::Integer(CLAIMS_VERSION.into())),
            (text("measurements"), measurements),
            (text("arch"), text(&self.arch)),
            (text("hypervisor"), text(&self.hypervisor)),
            (text("platform"), text(&self.platform)),
            (text("guard_x25519"), Value::Bytes(self.guard_x25519.to_vec())),
            (text("guard_ed25519"), Value::Bytes(self.guard_key.ed25519.to_vec())),
            (text("guard_ml_dsa_65"), Value::Bytes(self.guard_key.ml_dsa_65.to_vec())),
            (text("boot_id"), Value::Bytes(self.boot_id.to_vec())),
            (text("timestamp"), Value::Integer(self.timestamp.into())),
            (text("vigil_version"), text(&self.vigil_version)),
            (text("entropy"), Value::Array(self.entropy.iter().map(|s| text(s)).collect())),
            (text("policy_signer"), self.policy_signer.map_or(Value::Null, |fp| Value::Bytes(fp.to_vec()))),
            (text("features"), Value::Array(self.features.iter().map(|s| text(s)).collect())),
        ])
    }

    /// Parses a claims map strictly: every claim present once, with its type
    /// and length; no other keys.
    pub fn from_value(value: &Value) -> Result<Claims, EvidenceError> {
        let bad = |m: &str| EvidenceError::BadClaims(m.to_string());
        let map = value.as_map().ok_or_else(|| bad("the payload is not a map"))?;
        let get = |key: &Value| -> Result<&Value, EvidenceError> {
            let mut found = map.iter().filter(|(k, _)| k == key);
            let v = found.next().map(|(_, v)| v).ok_or_else(|| bad(&std::format!("missing {key:?}")))?;
            if found.next().is_some() {
                return Err(bad(&std::format!("duplicate {key:?}")));
            }
            Ok(v)
        };
        if map.len() != CLAIM_COUNT {
            return Err(bad("unexpected number of claims"));
        }
        let bytes =
            |v: &Value, what: &str| v.as_bytes().cloned().ok_or_else(|| bad(&std::format!("{what} must be bytes")));
        let fixed = |v: &Value, what: &str| -> Result<[u8; MEASUREMENT_LEN], EvidenceError> {
            bytes(v, what)?.try_into().map_err(|_| bad(&std::format!("{what} must be 48 bytes")))
        };
        let string = |v: &Value, what: &str| {
            v.as_text().map(str::to_string).ok_or_else(|| bad(&std::format!("{what} must be text")))
        };
        if get(&text("version"))?.as_integer().and_then(|i| u64::try_from(i).ok()) != Some(CLAIMS_VERSION) {
            return Err(bad("unsupported claims version"));
        }
        let nonce = bytes(get(&Value::Integer(NONCE_KEY.into()))?, "nonce")?;
        if !(8..=64).contains(&nonce.len()) {
            return Err(bad("the nonce must be 8 to 64 bytes"));
        }
        let m = get(&text("measurements"))?.as_map().ok_or_else(|| bad("measurements must be a map"))?;
        if m.len() != 3 {
            return Err(bad("measurements must hold image, config and policy"));
        }
        let mget = |k: &str| {
            m.iter()
                .find(|(key, _)| *key == text(k))
                .map(|(_, v)| v)
                .ok_or_else(|| bad(&std::format!("missing measurement {k}")))
        };
        let guard_key = DualPublicKey::from_parts(
            &bytes(get(&text("guard_ed25519"))?, "guard_ed25519")?,
            &bytes(get(&text("guard_ml_dsa_65"))?, "guard_ml_dsa_65")?,
        )
        .map_err(|e| bad(e.as_str()))?;
        Ok(Claims {
            nonce,
            image: fixed(mget("image")?, "image")?,
            config: fixed(mget("config")?, "config")?,
            policy: fixed(mget("policy")?, "policy")?,
            arch: string(get(&text("arch"))?, "arch")?,
            hypervisor: string(get(&text("hypervisor"))?, "hypervisor")?,
            platform: string(get(&text("platform"))?, "platform")?,
            guard_x25519: bytes(get(&text("guard_x25519"))?, "guard_x25519")?
                .try_into()
                .map_err(|_| bad("guard_x25519 must be 32 bytes"))?,
            guard_key,
            boot_id: bytes(get(&text("boot_id"))?, "boot_id")?
                .try_into()
                .map_err(|_| bad("boot_id must be 16 bytes"))?,
            timestamp: get(&text("timestamp"))?
                .as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| bad("timestamp must be an unsigned integer"))?,
            vigil_version: string(get(&text("vigil_version"))?, "vigil_version")?,
            entropy: get(&text("entropy"))?
                .as_array()
                .ok_or_else(|| bad("entropy must be an array"))?
                .iter()
                .map(|v| string(v, "entropy source"))
                .collect::<Result<_, _>>()?,
            policy_signer: match get(&text("policy_signer"))? {
                Value::Null => None,
                v => Some(bytes(v, "policy_signer")?.try_into().map_err(|_| bad("policy_signer must be 32 bytes"))?),
            },
            features: get(&text("features"))?
                .as_array()
                .ok_or_else(|| bad("features must be an array"))?
                .iter()
                .map(|v| string(v, "feature"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Signs `claims` with the platform key: a tagged COSE_Sign with an EdDSA
/// and an ML-DSA-65 signature ([`crate::cose_dual`], no external AAD).
pub fn sign(claims: &Claims, platform: &DualSigningKey) -> Result<Vec<u8>, String> {
    let payload = claims.to_value().to_vec().map_err(|e| std::format!("encoding claims: {e:?}"))?;
    cose_dual::sign(payload, platform, &[]).map_err(|e| e.as_str().to_string())
}

/// What the verifier expects.
#[derive(Clone, Debug)]
pub struct Expectations<'a> {
    /// The pinned platform key.
    pub trust: &'a DualPublicKey,
    /// The same key decoded beforehand ([`DualPublicKey::decode`]), to
    /// save that work; used only if it is `trust`.
    pub decoded_trust: Option<&'a DecodedPublicKey>,
    /// The nonce the verifier sent.
    pub nonce: &'a [u8],
    /// The reference image measurement (measurements.json).
    pub image: &'a [u8; MEASUREMENT_LEN],
    /// The expected policy bundle measurement, if checked.
    pub policy: Option<&'a [u8; MEASUREMENT_LEN]>,
    /// The expected boot configuration measurement, if checked.
    pub config: Option<&'a [u8; MEASUREMENT_LEN]>,
    /// The reference architecture, if checked.
    pub arch: Option<&'a str>,
    /// The hypervisors the reference allows, if checked.
    pub hypervisors: Option<&'a [String]>,
    /// The reference platform, if checked.
    pub platform: Option<&'a str>,
    /// The expected policy signer: `Some(None)` requires an unsigned
    /// bundle, `Some(Some(fp))` that signer; `None` does not check.
    pub policy_signer: Option<Option<&'a [u8; 32]>>,
    /// The reference's build features, if checked.
    pub features: Option<&'a [String]>,
    /// Accept a test-hooks image (tests only).
    pub allow_test_image: bool,
}

impl<'a> Expectations<'a> {
    /// Expects a trusted signature, the nonce and the image; nothing else
    /// is checked until set.
    pub fn new(trust: &'a DualPublicKey, nonce: &'a [u8], image: &'a [u8; MEASUREMENT_LEN]) -> Self {
        Expectations {
            trust,
            decoded_trust: None,
            nonce,
            image,
            policy: None,
            config: None,
            arch: None,
            hypervisors: None,
            platform: None,
            policy_signer: None,
            features: None,
            allow_test_image: false,
        }
    }
}

/// The guard's X25519 key as `evidence` claims it, **without checking any
/// signature or expectation**: for starting the channel handshake while
/// [`verify`] runs. Nothing may be sent through a channel keyed this way
/// until [`verify`] returned claims naming the same key. `None` when the
/// evidence does not parse.
pub fn claimed_x25519_unverified(evidence: &[u8]) -> Option<[u8; 32]> {
    use coset::TaggedCborSerializable;
    let sign = coset::CoseSign::from_tagged_slice(evidence).ok()?;
    let value = Value::from_slice(sign.payload.as_deref()?).ok()?;
    Some(Claims::from_value(&value).ok()?.guard_x25519)
}

/// Verifies evidence offline; returns the claims.
pub fn verify(evidence: &[u8], expect: &Expectations<'_>) -> Result<Claims, EvidenceError> {
    let verified = match expect.decoded_trust {
        Some(decoded) if decoded.public() == expect.trust => cose_dual::verify_decoded(evidence, decoded, &[]),
        _ => cose_dual::verify(evidence, expect.trust, &[]),
    };
    let payload = verified.map_err(|e| match e {
        CoseError::NotCoseSign(e) => EvidenceError::NotCoseSign(e),
        CoseError::Signatures(what) => EvidenceError::Signatures(what),
        CoseError::UnknownKey(alg) => EvidenceError::UnknownKey(alg),
        CoseError::Ed25519Invalid => EvidenceError::Ed25519Invalid,
        CoseError::MlDsaInvalid => EvidenceError::MlDsaInvalid,
        CoseError::NoPayload => EvidenceError::BadClaims("no payload".into()),
    })?;
    let value = Value::from_slice(&payload).map_err(|e| EvidenceError::BadClaims(std::format!("{e:?}")))?;
    let claims = Claims::from_value(&value)?;
    if claims.nonce != expect.nonce {
        return Err(EvidenceError::WrongNonce);
    }
    if &claims.image != expect.image {
        return Err(EvidenceError::WrongImage);
    }
    if let Some(policy) = expect.policy
        && &claims.policy != policy
    {
        return Err(EvidenceError::WrongPolicy);
    }
    if !expect.allow_test_image && claims.features.iter().any(|f| f == "test-hooks") {
        return Err(EvidenceError::TestImage);
    }
    if let Some(features) = expect.features
        && claims.features != features
    {
        return Err(EvidenceError::WrongFeatures(claims.features.join(",")));
    }
    if let Some(config) = expect.config
        && &claims.config != config
    {
        return Err(EvidenceError::WrongConfig);
    }
    if let Some(arch) = expect.arch
        && claims.arch != arch
    {
        return Err(EvidenceError::WrongArch(claims.arch));
    }
    if let Some(hypervisors) = expect.hypervisors
        && !hypervisors.contains(&claims.hypervisor)
    {
        return Err(EvidenceError::WrongHypervisor(claims.hypervisor));
    }
    if let Some(platform) = expect.platform
        && claims.platform != platform
    {
        return Err(EvidenceError::WrongPlatform(claims.platform));
    }
    if let Some(signer) = expect.policy_signer
        && claims.policy_signer.as_ref() != signer
    {
        return Err(EvidenceError::WrongPolicySigner);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coset::{CoseSign, TaggedCborSerializable};

    fn platform() -> DualSigningKey {
        DualSigningKey::from_seeds(&[1; 32], &[2; 32])
    }

    fn claims() -> Claims {
        Claims {
            nonce: vec![0xAB; 16],
            image: [1; 48],
            config: [2; 48],
            policy: [3; 48],
            arch: "x86_64".into(),
            hypervisor: "kvm".into(),
            platform: "none".into(),
            guard_x25519: [4; 32],
            guard_key: DualSigningKey::from_seeds(&[5; 32], &[6; 32]).public(),
            boot_id: [7; 16],
            timestamp: 1_790_000_000,
            vigil_version: "0.1.0".into(),
            entropy: vec!["host-seed".into(), "rdrand".into()],
            policy_signer: Some([8; 32]),
            features: Vec::new(),
        }
    }

    fn expect<'a>(trust: &'a DualPublicKey, c: &'a Claims) -> Expectations<'a> {
        Expectations { policy: Some(&c.policy), ..Expectations::new(trust, &c.nonce, &c.image) }
    }

    #[test]
    fn a_decoded_trust_key_is_used_only_if_it_is_the_pinned_one() {
        let key = platform();
        let trust = key.public();
        let c = claims();
        let evidence = sign(&c, &key).unwrap();
        let decoded = trust.decode().unwrap();
        let e = Expectations { decoded_trust: Some(&decoded), ..expect(&trust, &c) };
        assert_eq!(verify(&evidence, &e).unwrap(), c);
        // Evidence signed by another platform, pinned key ours, decoded key
        // theirs: the pinned key decides, and refuses it.
        let attacker = DualSigningKey::from_seeds(&[9; 32], &[10; 32]);
        let forged = sign(&c, &attacker).unwrap();
        let theirs = attacker.public().decode().unwrap();
        let e = Expectations { decoded_trust: Some(&theirs), ..expect(&trust, &c) };
        assert_eq!(verify(&forged, &e).unwrap_err(), EvidenceError::UnknownKey("EdDSA"));
        // Our evidence with their decoded key: still ours, still verified.
        assert_eq!(verify(&evidence, &e).unwrap(), c);
        // The unverified peek reads the claimed key of either, and nothing
        // from what is not evidence.
        assert_eq!(claimed_x25519_unverified(&forged), Some(c.guard_x25519));
        assert_eq!(claimed_x25519_unverified(&evidence[..evidence.len() - 1]), None);
        assert_eq!(claimed_x25519_unverified(b"not evidence"), None);
    }

    #[test]
    fn evidence_verifies_and_every_tamper_is_caught() {
        let key = platform();
        let trust = key.public();
        let c = claims();
        let evidence = sign(&c, &key).unwrap();
        assert_eq!(verify(&evidence, &expect(&trust, &c)).unwrap(), c);

        // Wrong nonce, image, policy, trust.
        let mut e = expect(&trust, &c);
        let other_nonce = [0u8; 16];
        e.nonce = &other_nonce;
        assert_eq!(verify(&evidence, &e).unwrap_err(), EvidenceError::WrongNonce);
        let other = [9u8; 48];
        let mut e = expect(&trust, &c);
        e.image = &other;
        assert_eq!(verify(&evidence, &e).unwrap_err(), EvidenceError::WrongImage);
        let mut e = expect(&trust, &c);
        e.policy = Some(&other);
        assert_eq!(verify(&evidence, &e).unwrap_err(), EvidenceError::WrongPolicy);
        let stranger = DualSigningKey::from_seeds(&[8; 32], &[9; 32]).public();
        assert!(matches!(verify(&evidence, &expect(&stranger, &c)).unwrap_err(), EvidenceError::UnknownKey(_)));

        // Each claim modified (re-encoded payload, signatures kept).
        let mut parsed = CoseSign::from_tagged_slice(&evidence).unwrap();
        let original = parsed.payload.clone().unwrap();
        for i in 0..original.len() {
            let mut p = original.clone();
            p[i] ^= 0x01;
            parsed.payload = Some(p);
            let bytes = parsed.clone().to_tagged_vec().unwrap();
            assert!(verify(&bytes, &expect(&trust, &c)).is_err(), "payload byte {i} flip accepted");
        }

        // Each signature removed; swapped; duplicated.
        let full = CoseSign::from_tagged_slice(&evidence).unwrap();
        for drop in 0..2 {
            let mut s = full.clone();
            s.signatures.remove(drop);
            let err = verify(&s.to_tagged_vec().unwrap(), &expect(&trust, &c)).unwrap_err();
            assert!(matches!(err, EvidenceError::Signatures(_)), "{err}");
        }
        let mut s = full.clone();
        let (a, b) = (s.signatures[0].signature.clone(), s.signatures[1].signature.clone());
        s.signatures[0].signature = b;
        s.signatures[1].signature = a;
        assert_eq!(
            verify(&s.to_tagged_vec().unwrap(), &expect(&trust, &c)).unwrap_err(),
            EvidenceError::Ed25519Invalid
        );
        let mut s = full.clone();
        s.signatures[1].signature[10] ^= 1;
        assert_eq!(verify(&s.to_tagged_vec().unwrap(), &expect(&trust, &c)).unwrap_err(), EvidenceError::MlDsaInvalid);
        let mut s = full.clone();
        s.signatures.push(full.signatures[0].clone());
        assert!(matches!(
            verify(&s.to_tagged_vec().unwrap(), &expect(&trust, &c)).unwrap_err(),
            EvidenceError::Signatures(_)
        ));

        // Untagged or garbage.
        assert!(matches!(
            verify(&full.clone().to_vec().unwrap(), &expect(&trust, &c)).unwrap_err(),
            EvidenceError::NotCoseSign(_)
        ));
        assert!(matches!(verify(b"junk", &expect(&trust, &c)).unwrap_err(), EvidenceError::NotCoseSign(_)));
    }

    #[test]
    fn reference_values_are_each_checked_with_their_own_error() {
        let key = platform();
        let trust = key.public();
        let c = claims();
        let evidence = sign(&c, &key).unwrap();
        let hv = vec!["kvm".to_string()];
        let none: Vec<String> = Vec::new();
        let full = Expectations {
            policy: Some(&c.policy),
            config: Some(&c.config),
            arch: Some("x86_64"),
            hypervisors: Some(&hv),
            platform: Some("none"),
            policy_signer: Some(Some(&[8; 32])),
            features: Some(&none),
            ..Expectations::new(&trust, &c.nonce, &c.image)
        };
        verify(&evidence, &full).unwrap();
        let other = [9u8; 48];
        let hvf = vec!["hvf".to_string()];
        let hooks = vec!["test-hooks".to_string()];
        let cases: [(Expectations<'_>, EvidenceError); 7] = [
            (Expectations { config: Some(&other), ..full.clone() }, EvidenceError::WrongConfig),
            (Expectations { arch: Some("aarch64"), ..full.clone() }, EvidenceError::WrongArch("x86_64".into())),
            (Expectations { hypervisors: Some(&hvf), ..full.clone() }, EvidenceError::WrongHypervisor("kvm".into())),
            (Expectations { platform: Some("sev-snp"), ..full.clone() }, EvidenceError::WrongPlatform("none".into())),
            (Expectations { policy_signer: Some(Some(&[7; 32])), ..full.clone() }, EvidenceError::WrongPolicySigner),
            (Expectations { policy_signer: Some(None), ..full.clone() }, EvidenceError::WrongPolicySigner),
            (Expectations { features: Some(&hooks), ..full.clone() }, EvidenceError::WrongFeatures(String::new())),
        ];
        for (expect, error) in cases {
            assert_eq!(verify(&evidence, &expect).unwrap_err(), error);
        }
        // A test-hooks image: refused unless explicitly allowed.
        let test = Claims { features: hooks.clone(), ..c.clone() };
        let evidence = sign(&test, &key).unwrap();
        assert_eq!(
            verify(&evidence, &Expectations { features: None, ..full.clone() }).unwrap_err(),
            EvidenceError::TestImage
        );
        let allowed = Expectations { features: Some(&hooks), allow_test_image: true, ..full.clone() };
        assert_eq!(verify(&evidence, &allowed).unwrap().features, hooks);
    }
}
