//! The reference values a guard is checked against: `measurements.json`
//! (docs/measurements.md) — image, arch, hypervisors, platform, features —
//! and the boot configuration this vigil's VMM writes. Used by the VM
//! judge, `verify evidence` and replay alike.

use std::path::Path;

use crate::Measurement;
use crate::dual::DualPublicKey;
use crate::evidence::Expectations;

/// Why reference values could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text is not a version-2 `measurements.json`.
    #[error("{name}: {problem}")]
    Invalid {
        /// Where the text came from.
        name: String,
        /// What is wrong, and what to do.
        problem: String,
    },
}

/// The reference values of a guard build: `measurements.json` (format
/// version 2, docs/measurements.md), written by `cargo xtask build-guard`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// SHA-384 of the image.
    pub image: Measurement,
    /// `x86_64` or `aarch64`.
    pub arch: String,
    /// Hypervisors the image is built to run under.
    pub hypervisors: Vec<String>,
    /// Confidential-computing platform (`none`).
    pub platform: String,
    /// Build features (`[]` for production).
    pub features: Vec<String>,
    /// Where the values came from, for messages.
    pub source: String,
}

impl Reference {
    /// Parses `measurements.json` text; `name` says where it came from.
    pub fn parse(text: &str, name: &str) -> Result<Reference, ReferenceError> {
        let invalid = |problem: String| ReferenceError::Invalid { name: name.to_string(), problem };
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON ({e})")))?;
        match json.get("version").and_then(|v| v.as_u64()) {
            Some(2) => {}
            Some(v) => {
                return Err(invalid(format!(
                    "a version-{v} measurements.json; this vigil reads version 2 (rebuild with `cargo xtask build-guard`)"
                )));
            }
            None => return Err(invalid("not a measurements.json (no version)".into())),
        }
        let text_field = |key: &str| -> Result<String, ReferenceError> {
            json.get(key).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| invalid(format!("no {key}")))
        };
        let list = |key: &str| -> Result<Vec<String>, ReferenceError> {
            json.get(key)
                .and_then(|v| v.as_array())
                .ok_or_else(|| invalid(format!("no {key} list")))?
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| invalid(format!("{key} must hold strings"))))
                .collect()
        };
        let bytes = hex::decode(text_field("image_sha384")?).map_err(|_| invalid("image_sha384 is not hex".into()))?;
        Ok(Reference {
            image: bytes.try_into().map_err(|_| invalid("image_sha384 must be 48 bytes".into()))?,
            arch: text_field("arch")?,
            hypervisors: list("hypervisors")?,
            platform: text_field("platform")?,
            features: list("features")?,
            source: name.to_string(),
        })
    }

    /// Reads a `measurements.json` file.
    pub fn read(path: &Path) -> Result<Reference, ReferenceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ReferenceError::Read { path: path.display().to_string(), source })?;
        Reference::parse(&text, &path.display().to_string())
    }

    /// Expectations for evidence checked against this reference: the
    /// image, architecture, hypervisor, platform and features; the caller
    /// adds policy, config and signer.
    pub fn expectations<'a>(&'a self, trust: &'a DualPublicKey, nonce: &'a [u8]) -> Expectations<'a> {
        Expectations {
            arch: Some(&self.arch),
            hypervisors: Some(&self.hypervisors),
            platform: Some(&self.platform),
            features: Some(&self.features),
            allow_test_image: false,
            ..Expectations::new(trust, nonce, &self.image)
        }
    }
}

/// The boot-configuration measurement this vigil's VMM makes for a policy
/// bundle of `policy_len` bytes with its default checkpoint interval
/// (docs/guest-abi.md, "Boot configuration"): the reference value of the
/// evidence's `config` claim.
pub fn expected_config(policy_len: usize) -> Measurement {
    expected_config_with(policy_len, vigil_abi::DEFAULT_CHECKPOINT_INTERVAL)
}

/// The same, for another checkpoint interval.
pub fn expected_config_with(policy_len: usize, checkpoint_interval: u64) -> Measurement {
    crate::measure(&vigil_abi::boot_config(policy_len as u64, checkpoint_interval.max(1)))
}
