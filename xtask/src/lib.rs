//! Build tasks shared by the `xtask` command and the `vigil` build script.
//!
//! [`guard_build`] builds the guard unikernel reproducibly and measures it;
//! [`layers`] checks that crates and modules point one way.

#![forbid(unsafe_code)]

pub mod guard_build;
pub mod layers;
