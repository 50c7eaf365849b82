//! `vigil verify evidence`: offline verification of guard evidence against a
//! pinned platform key, the reference measurements and the verifier's nonce.

use std::path::Path;

use serde::Serialize;
use vigil_attest::Measurement;
use vigil_attest::evidence::{self, Claims, Expectations};

use crate::keys::read_cose_key_set;
use crate::reference::{Reference, expected_config};

/// Verified claims, as printed.
#[derive(Debug, Serialize)]
pub struct VerifiedEvidence {
    /// Always true when printed (failures are errors).
    pub verified: bool,
    /// Image measurement.
    pub image_sha384: String,
    /// Config measurement.
    pub config_sha384: String,
    /// Policy measurement.
    pub policy_sha384: String,
    /// Architecture.
    pub arch: String,
    /// Hypervisor.
    pub hypervisor: String,
    /// Platform.
    pub platform: String,
    /// Guard X25519 key.
    pub guard_x25519: String,
    /// Guard signing key fingerprint.
    pub guard_key_fingerprint: String,
    /// Boot id.
    pub boot_id: String,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// Vigil version.
    pub vigil_version: String,
    /// Entropy sources.
    pub entropy: Vec<String>,
    /// Fingerprint of the policy signer attested (`null`: unsigned).
    pub policy_signer: Option<String>,
    /// The image's build features.
    pub features: Vec<String>,
    /// Whether the policy measurement was checked (`--policy` or
    /// `--policy-digest`); when false, the evidence says nothing about
    /// which policy the guard ran.
    pub policy_checked: bool,
    /// Whether the boot configuration was checked (needs `--policy`).
    pub config_checked: bool,
}

impl From<&Claims> for VerifiedEvidence {
    fn from(c: &Claims) -> Self {
        VerifiedEvidence {
            verified: true,
            image_sha384: hex::encode(c.image),
            config_sha384: hex::encode(c.config),
            policy_sha384: hex::encode(c.policy),
            arch: c.arch.clone(),
            hypervisor: c.hypervisor.clone(),
            platform: c.platform.clone(),
            guard_x25519: hex::encode(c.guard_x25519),
            guard_key_fingerprint: hex::encode(c.guard_key.fingerprint()),
            boot_id: hex::encode(c.boot_id),
            timestamp: c.timestamp,
            vigil_version: c.vigil_version.clone(),
            entropy: c.entropy.clone(),
            policy_signer: c.policy_signer.map(hex::encode),
            features: c.features.clone(),
            policy_checked: false,
            config_checked: false,
        }
    }
}

/// What `verify evidence` knows about the policy the guard must run.
pub enum PolicyExpectation {
    /// The bundle (and its signer, when signed): policy measurement, boot
    /// configuration and policy signer are checked.
    Bundle(crate::policy::LoadedPolicy),
    /// Only its SHA-384: the policy measurement is checked.
    Digest(Measurement),
    /// Nothing: the policy is not checked (said loudly).
    Unchecked,
}

/// Why evidence was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("reading {what}")]
    Read {
        /// Which file.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The pinned key set is not valid.
    #[error("{path} (--trust)")]
    Trust {
        /// The `--trust` file.
        path: String,
        /// Why.
        #[source]
        source: crate::keys::KeyError,
    },
    /// `--nonce` is not hex.
    #[error("--nonce must be hex")]
    Nonce,
    /// The evidence failed a check (signature, nonce, measurement, claim).
    #[error("evidence {path} rejected: {reason}")]
    Rejected {
        /// The evidence file.
        path: String,
        /// The check that failed.
        reason: String,
    },
}

/// The evidence a file holds: its bytes, or — when the whole file is hex
/// digits (surrounding white space aside), as `vigil attest` prints it and
/// the daemon's `/v1/evidence` gives it — the bytes they spell. Evidence
/// itself never reads as hex: a tagged COSE_Sign starts with 0xD8.
fn evidence_bytes(file: Vec<u8>) -> Vec<u8> {
    let text = file.trim_ascii();
    if !text.is_empty() && text.len().is_multiple_of(2) && text.iter().all(u8::is_ascii_hexdigit) {
        return hex::decode(text).unwrap_or(file);
    }
    file
}

/// Verifies an evidence file against the pinned platform key, the
/// reference and the nonce, and the policy as far as `policy` allows; every
/// failure is an error with its own message.
pub fn verify_file(
    evidence: &Path,
    trust: &Path,
    reference: &Reference,
    nonce_hex: &str,
    policy: &PolicyExpectation,
    allow_test_image: bool,
) -> Result<VerifiedEvidence, VerifyError> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|source| VerifyError::Read { what: format!("{what} {}", path.display()), source })
    };
    let bytes = evidence_bytes(read(evidence, "the evidence")?);
    let trust_bytes = read(trust, "the trusted key")?;
    let trust_key = read_cose_key_set(&trust_bytes)
        .map_err(|source| VerifyError::Trust { path: trust.display().to_string(), source })?;
    let nonce = hex::decode(nonce_hex.trim()).map_err(|_| VerifyError::Nonce)?;
    let (digest, config, signer) = match policy {
        PolicyExpectation::Bundle(p) => {
            (Some(vigil_attest::measure(&p.bundle)), Some(expected_config(p.bundle.len())), Some(p.signer.as_ref()))
        }
        PolicyExpectation::Digest(d) => (Some(*d), None, None),
        PolicyExpectation::Unchecked => (None, None, None),
    };
    let expect = Expectations {
        policy: digest.as_ref(),
        config: config.as_ref(),
        policy_signer: signer,
        allow_test_image,
        ..reference.expectations(&trust_key, &nonce)
    };
    let claims = evidence::verify(&bytes, &expect)
        .map_err(|e| VerifyError::Rejected { path: evidence.display().to_string(), reason: e.to_string() })?;
    let mut verified = VerifiedEvidence::from(&claims);
    verified.policy_checked = digest.is_some();
    verified.config_checked = config.is_some();
    Ok(verified)
}
