//! Build tasks shared by the `xtask` command and the `vigil` build script.
//!
//! [`guard_build`] builds the guard unikernel reproducibly and measures it.

pub mod guard_build;
