//! Build tasks shared by the `xtask` command and the `vigil` build script.
//!
//! [`guard_build`] builds the guard unikernel reproducibly and measures it;
//! [`layers`] checks that crates and modules point one way; [`arm64_vm`]
//! runs the aarch64 guard under KVM-arm64 inside QEMU.

#![forbid(unsafe_code)]

pub mod arm64_vm;
pub mod guard_build;
pub mod layers;
