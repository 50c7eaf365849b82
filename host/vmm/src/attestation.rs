//! The VMM as the guard's root of trust: what it measured at boot, and the
//! `ATTEST` hypercall that turns the guard's public keys and a verifier's
//! nonce into evidence signed with the platform key (docs/evidence.md).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use vigil_abi::{self as abi, attest_request, evidence_reply, layout, mailbox, status};
use vigil_attest::dual::{DualPublicKey, DualSigningKey, ML_DSA_65_PUBLIC_LEN};
use vigil_attest::evidence::{self, Claims};
use vigil_attest::{Measurement, measure};

use super::memory::GuestMemory;

/// A policy bundle with its measurement, computed once.
#[derive(Clone)]
pub struct PolicyImage {
    bytes: Arc<Vec<u8>>,
    measurement: Measurement,
    signer: Option<[u8; 32]>,
}

impl std::fmt::Debug for PolicyImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyImage({} bytes, sha384 {})", self.bytes.len(), hex::encode(&self.measurement[..8]))
    }
}

impl PolicyImage {
    /// Measures `bytes` (the bundle is validated by the guard, not here).
    pub fn new(bytes: Vec<u8>) -> Self {
        let measurement = measure(&bytes);
        PolicyImage { bytes: Arc::new(bytes), measurement, signer: None }
    }

    /// A bundle whose policy signature the caller verified: `signer` is the
    /// fingerprint of the key that signed it, attested as `policy_signer`.
    pub fn signed(bytes: Vec<u8>, signer: Option<[u8; 32]>) -> Self {
        PolicyImage { signer, ..PolicyImage::new(bytes) }
    }

    /// The fingerprint of the policy signer, if the bundle was signed.
    pub fn signer(&self) -> Option<&[u8; 32]> {
        self.signer.as_ref()
    }

    /// The bundle.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-384 of the bundle.
    pub fn measurement(&self) -> &Measurement {
        &self.measurement
    }
}

/// The platform key the VMM signs evidence with.
#[derive(Clone)]
pub struct PlatformSigner(pub Arc<DualSigningKey>);

impl std::fmt::Debug for PlatformSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlatformSigner({})", hex::encode(&self.0.public().fingerprint()[..8]))
    }
}

/// What the VMM measured for one boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootMeasurements {
    /// SHA-384 of the image file.
    pub image: Measurement,
    /// SHA-384 of [`abi::boot_config`].
    pub config: Measurement,
    /// SHA-384 of the policy bundle (of zero bytes when none was loaded).
    pub policy: Measurement,
}

impl BootMeasurements {
    /// Measurements of a boot with this image, bundle and checkpoint interval.
    pub fn new(image: &Measurement, policy: Option<&PolicyImage>, checkpoint_interval: u64) -> Self {
        let policy_len = policy.map_or(0, |p| p.bytes.len() as u64);
        BootMeasurements {
            image: *image,
            config: measure(&abi::boot_config(policy_len, checkpoint_interval)),
            policy: policy.map_or_else(|| measure(&[]), |p| p.measurement),
        }
    }
}

/// Everything the `ATTEST` hypercall needs.
#[derive(Debug)]
pub struct AttestationContext {
    /// The platform key, if this VMM may attest.
    pub signer: Option<PlatformSigner>,
    /// This boot's measurements.
    pub measurements: BootMeasurements,
    /// Random per-boot identifier.
    pub boot_id: [u8; 16],
    /// The policy signer attested (`None`: unsigned or no policy).
    pub policy_signer: Option<[u8; 32]>,
    /// The image's build features, from its `.vigil_features` section.
    pub features: Vec<String>,
    /// The guest's architecture (`x86_64`, `aarch64`).
    pub arch: &'static str,
    /// The hypervisor running it (`kvm`, `hvf`).
    pub hypervisor: &'static str,
}

/// Serves one `ATTEST` hypercall: reads the guard's request from the
/// mailbox, signs evidence, writes it (or `NO_EVIDENCE`) to the evidence
/// area. The guard's request is untrusted input: every field is checked.
pub fn serve(memory: &GuestMemory, context: &AttestationContext) {
    let base = layout::MAILBOX_BASE + mailbox::EVIDENCE;
    let reply = match sign_request(memory, context) {
        Ok(evidence) if evidence.len() <= evidence_reply::CAPACITY => {
            memory.write(base + evidence_reply::BYTES as u64, &evidence).map(|_| (status::OK, evidence.len()))
        }
        Ok(evidence) => {
            tracing::warn!(len = evidence.len(), "evidence larger than the evidence area");
            Ok((status::NO_EVIDENCE, 0))
        }
        Err(reason) => {
            tracing::warn!(%reason, "no evidence for the guard");
            Ok((status::NO_EVIDENCE, 0))
        }
    };
    let (code, len) = reply.unwrap_or((status::NO_EVIDENCE, 0));
    let _ = memory.write(base + evidence_reply::LEN as u64, &(len as u32).to_le_bytes());
    let _ = memory.write(base + evidence_reply::STATUS as u64, &code.to_le_bytes());
}

fn sign_request(memory: &GuestMemory, context: &AttestationContext) -> Result<Vec<u8>, String> {
    let signer = context.signer.as_ref().ok_or("this VMM has no platform key (run `vigil init`)")?;
    let mut request = vec![0u8; attest_request::LEN];
    memory.read(layout::MAILBOX_BASE + mailbox::ATTEST, &mut request).map_err(|e| e.to_string())?;
    let u32_at = |at: usize| u32::from_le_bytes(request[at..at + 4].try_into().unwrap_or_default());
    let nonce_len = u32_at(attest_request::NONCE_LEN) as usize;
    if !(attest_request::NONCE_MIN..=attest_request::NONCE_MAX).contains(&nonce_len) {
        return Err(format!("nonce length {nonce_len} is outside 8..=64"));
    }
    let nonce = request[attest_request::NONCE..attest_request::NONCE + nonce_len].to_vec();
    let mut guard_x25519 = [0u8; 32];
    guard_x25519.copy_from_slice(&request[attest_request::X25519..attest_request::X25519 + 32]);
    let guard_key = DualPublicKey::from_parts(
        &request[attest_request::ED25519..attest_request::ED25519 + 32],
        &request[attest_request::ML_DSA_65..attest_request::ML_DSA_65 + ML_DSA_65_PUBLIC_LEN],
    )
    .map_err(|e| e.as_str().to_string())?;
    let claims = Claims {
        nonce,
        image: context.measurements.image,
        config: context.measurements.config,
        policy: context.measurements.policy,
        arch: context.arch.into(),
        hypervisor: context.hypervisor.into(),
        platform: "none".into(),
        guard_x25519,
        guard_key,
        boot_id: context.boot_id,
        timestamp: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        vigil_version: env!("CARGO_PKG_VERSION").into(),
        entropy: abi::entropy_source_names(u32_at(attest_request::ENTROPY)).map(String::from).collect(),
        policy_signer: context.policy_signer,
        features: context.features.clone(),
    };
    evidence::sign(&claims, &signer.0)
}
