//! CPU-specific code of the guest. Only built for the guard image. Each
//! architecture's module offers the same functions; [`cpu`] is this
//! build's.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "aarch64")]
pub use aarch64 as cpu;
#[cfg(target_arch = "x86_64")]
pub use x86_64 as cpu;
