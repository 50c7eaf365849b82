//! `vigil-unikernel`: the guard unikernel.
//!
//! - [`abi`]: the guest ↔ host ABI (layout, boot info, ports, mailbox); the
//!   VMM links this crate for it.
//! - [`service`]: the request handler, safe and portable, tested on the host;
//! - [`judging`]: per-boot identity, evidence, the attested channel, batch
//!   judgement, the verdict chain and checkpoints (safe, host-tested);
//! - [`batch`]: the batch messages carried inside channel records.
//! - [`entropy`]: mixing of the entropy sources into the guard's seed.
//! - `arch`, `runtime` (the guard image build only, `cfg(vigil_guest)`):
//!   the CPU-specific code, the mailbox transport and the main loop. All
//!   `unsafe` of the guest lives in those modules.
#![cfg_attr(not(test), no_std)]

pub use vigil_abi as abi;
pub use vigil_abi::batch;
pub mod entropy;
pub mod judging;
pub mod platform;
pub mod service;

#[cfg(vigil_guest)]
pub mod arch;
#[cfg(vigil_guest)]
pub mod runtime;
/// The guard's memory functions, tested on an x86_64 host (in the image
/// they are `arch::cpu::mem`).
#[cfg(all(test, not(vigil_guest), target_arch = "x86_64"))]
#[path = "arch/x86_64/mem.rs"]
mod x86_64_mem;

/// The build features of this image, as the VMM reads them from the
/// image's `.vigil_features` section into the evidence (docs/guest-abi.md,
/// "Image features"): `"vigil-features-v1:"` then the comma-separated
/// features, zero-padded to [`abi::FEATURES_NOTE_LEN`] bytes. A verifier
/// refuses an image whose features are not the reference's; `test-hooks`
/// marks an image that must never be trusted.
// SAFETY: the attribute only names the section: 64 plain bytes that nothing
// executes or writes, kept in the read-only segment by the linker scripts.
#[cfg(vigil_guest)]
#[unsafe(link_section = ".vigil_features")]
#[used]
pub static FEATURES_NOTE: [u8; abi::FEATURES_NOTE_LEN] =
    abi::features_note(if cfg!(feature = "test-hooks") { "test-hooks" } else { "" });

/// The image version reported by `Info` (and later in evidence).
pub const VERSION: &str = if cfg!(feature = "test-hooks") {
    concat!(env!("CARGO_PKG_VERSION"), "+test-hooks")
} else {
    env!("CARGO_PKG_VERSION")
};
