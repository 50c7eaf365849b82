//! `vigil-unikernel`: the guard unikernel.
//!
//! - [`abi`]: the guest ↔ host ABI (layout, boot info, ports, mailbox); the
//!   VMM links this crate for it.
//! - [`service`]: the request handler, safe and portable, tested on the host;
//! - [`judging`]: per-boot identity, evidence, the attested channel, batch
//!   judgement, the verdict chain and checkpoints (safe, host-tested);
//! - [`batch`]: the batch messages carried inside channel records.
//! - [`entropy`]: mixing of the entropy sources into the guard's seed.
//! - `arch`, `runtime` (bare-metal targets only): the CPU-specific code, the
//!   mailbox transport and the main loop. All `unsafe` of the guest lives in
//!   those modules.
#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod batch;
pub mod entropy;
pub mod judging;
pub mod service;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod runtime;

/// The image version reported by `Info` (and later in evidence).
pub const VERSION: &str = if cfg!(feature = "test-hooks") {
    concat!(env!("CARGO_PKG_VERSION"), "+test-hooks")
} else {
    env!("CARGO_PKG_VERSION")
};
