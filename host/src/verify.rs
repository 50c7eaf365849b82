//! `vigil verify evidence`: offline verification of guard evidence against a
//! pinned platform key, the reference measurements and the verifier's nonce.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vigil_attest::MEASUREMENT_LEN;
use vigil_attest::evidence::{self, Claims, Expectations};

use crate::keys::read_cose_key_set;

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
        }
    }
}

/// Reads `image_sha384` from a `measurements.json` (format version 1).
pub fn reference_image(path: &Path) -> Result<[u8; MEASUREMENT_LEN]> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    reference_image_from(&text, &path.display().to_string())
}

/// Reads `image_sha384` from `measurements.json` text; `name` says where
/// the text came from in error messages.
pub fn reference_image_from(text: &str, name: &str) -> Result<[u8; MEASUREMENT_LEN]> {
    let json: serde_json::Value = serde_json::from_str(text).with_context(|| format!("{name} is not JSON"))?;
    if json.get("version").and_then(|v| v.as_u64()) != Some(1) {
        bail!("{name} is not a version-1 measurements.json");
    }
    let hex_digest =
        json.get("image_sha384").and_then(|v| v.as_str()).with_context(|| format!("{name} has no image_sha384"))?;
    let bytes = hex::decode(hex_digest).with_context(|| format!("{name}: image_sha384 is not hex"))?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("{name}: image_sha384 must be 48 bytes"))
}

/// Verifies an evidence file; every failure is an error with its own message.
pub fn verify_file(
    evidence: &Path,
    trust: &Path,
    reference: &Path,
    nonce_hex: &str,
    policy: Option<&Path>,
) -> Result<VerifiedEvidence> {
    let bytes = std::fs::read(evidence).with_context(|| format!("reading the evidence {}", evidence.display()))?;
    let trust_bytes = std::fs::read(trust).with_context(|| format!("reading the trusted key {}", trust.display()))?;
    let trust_key = read_cose_key_set(&trust_bytes).with_context(|| format!("{} (--trust)", trust.display()))?;
    let image = reference_image(reference)?;
    let nonce = hex::decode(nonce_hex.trim()).context("--nonce must be hex")?;
    let policy_digest = match policy {
        Some(path) => {
            let bundle =
                std::fs::read(path).with_context(|| format!("reading the policy bundle {}", path.display()))?;
            Some(vigil_attest::measure(&bundle))
        }
        None => None,
    };
    let claims = evidence::verify(
        &bytes,
        &Expectations { trust: &trust_key, nonce: &nonce, image: &image, policy: policy_digest.as_ref() },
    )
    .map_err(|e| anyhow::anyhow!("evidence {} rejected: {e}", evidence.display()))?;
    Ok(VerifiedEvidence::from(&claims))
}
