//! CPU-specific code of the guest. Only built for bare-metal targets.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;
