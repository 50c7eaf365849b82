//! The guard images built into this binary by `build.rs` (the same
//! reproducible build as `cargo xtask build-guard`).

/// The production x86_64 guard image.
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

use std::path::Path;

use anyhow::Context;

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

/// Loads, validates and prepares the guard image: `path` if given, the
/// embedded production image otherwise.
pub fn load(path: Option<&Path>) -> anyhow::Result<(BootTemplate, ImageSource)> {
    let (bytes, origin) = match path {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the guard image {} (--guard-image)", path.display()))?;
            (std::borrow::Cow::Owned(bytes), path.display().to_string())
        }
        None => (std::borrow::Cow::Borrowed(production()), "embedded".to_string()),
    };
    let template = BootTemplate::from_elf(&bytes).with_context(|| format!("guard image {origin}"))?;
    let source =
        ImageSource { origin, sha384: hex::encode(template.image().measurement()), size: template.image().size() };
    Ok((template, source))
}
