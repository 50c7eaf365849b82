//! The guard images built into this binary by `build.rs` (the same
//! reproducible build as `cargo xtask build-guard`).

/// The production guard image, for the architecture `vigil` is built for.
pub fn production() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/vigil-guard.elf"))
}

/// `measurements.json` of the production image.
pub fn production_measurements() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/measurements.json"))
}

/// The test-hooks image (extra request kinds that panic, fault, trap or
/// spin), embedded only with the `test-hooks` feature; never booted by the CLI.
#[cfg(feature = "test-hooks")]
pub fn test_hooks() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/vigil-guard-test-hooks.elf"))
}

use anyhow::Context;

use crate::reference::Reference;
use crate::vmm::BootTemplate;

/// Where the booted image came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageSource {
    /// `embedded` or the file path.
    pub origin: String,
    /// SHA-384 of the image, hex.
    pub sha384: String,
    /// Image size in bytes.
    pub size: usize,
}

/// The reference of the production image built into this binary.
pub fn production_reference() -> Result<Reference, vigil_attest::reference::ReferenceError> {
    Reference::parse(production_measurements(), "measurements.json of the reproducible build embedded in vigil")
}

/// Which guard image to boot, and what to check it against.
#[derive(Clone, Debug, Default)]
pub struct GuardChoice {
    /// `--guard-image`: boot this file instead of the embedded image.
    pub path: Option<std::path::PathBuf>,
    /// `--reference`: the `measurements.json` the image (and its evidence)
    /// must match. Required with `path`; defaults to the embedded one.
    pub reference: Option<std::path::PathBuf>,
    /// `--allow-test-image`: boot and accept a test-hooks image.
    pub allow_test_image: bool,
    /// `--guard-deadline-ms`: how long a guard may take per request
    /// (default: [`crate::vmm::VmConfig`]'s).
    pub deadline: Option<std::time::Duration>,
}

impl GuardChoice {
    /// The VM settings every guard of this choice starts from.
    pub fn vm_config(&self) -> crate::vmm::VmConfig {
        let defaults = crate::vmm::VmConfig::default();
        crate::vmm::VmConfig { deadline: self.deadline.unwrap_or(defaults.deadline), ..defaults }
    }
}

/// Loads, validates and prepares the guard image chosen, and the reference
/// it must match: the embedded production image against the embedded
/// `measurements.json`, or `--guard-image` against `--reference` — never a
/// custom image against itself. The image must have the reference's
/// measurement and build features; a test-hooks image is refused unless
/// `allow_test_image`.
pub fn load(choice: &GuardChoice) -> anyhow::Result<(BootTemplate, ImageSource, Reference)> {
    let (bytes, origin) = match &choice.path {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the guard image {} (--guard-image)", path.display()))?;
            (std::borrow::Cow::Owned(bytes), path.display().to_string())
        }
        None => (std::borrow::Cow::Borrowed(production()), "embedded".to_string()),
    };
    let template = BootTemplate::from_elf(&bytes).with_context(|| format!("guard image {origin}"))?;
    let reference = match (&choice.reference, &choice.path) {
        (Some(path), _) => Reference::read(path).context("--reference")?,
        (None, None) => production_reference()?,
        (None, Some(path)) => anyhow::bail!(
            "--guard-image {} needs --reference measurements.json (from `cargo xtask build-guard`): a custom image is verified against what was built, never against itself",
            path.display()
        ),
    };
    let image = template.image();
    let features = image.features();
    if features.iter().any(|f| f == "test-hooks") && !choice.allow_test_image {
        anyhow::bail!(
            "guard image {origin} is a test-hooks image (extra request kinds that panic, fault and spin): it must never be trusted, and is refused; --allow-test-image boots it for testing"
        );
    }
    if image.measurement() != &reference.image {
        anyhow::bail!(
            "guard image {origin} (SHA-384 {}) is not the image of the reference {} ({})",
            hex::encode(image.measurement()),
            reference.source,
            hex::encode(reference.image)
        );
    }
    if features != reference.features.as_slice() {
        anyhow::bail!(
            "guard image {origin} declares features [{}], the reference {} [{}]",
            features.join(","),
            reference.source,
            reference.features.join(",")
        );
    }
    let source = ImageSource { origin, sha384: hex::encode(image.measurement()), size: image.size() };
    Ok((template, source, reference))
}
