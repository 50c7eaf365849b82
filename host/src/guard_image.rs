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
