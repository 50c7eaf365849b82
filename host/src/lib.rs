//! `vigil`: the host side of Vigil — the VMM, the CLI commands and the
//! embedded guard image.
//!
//! `unsafe` code lives only in [`vmm`] (KVM ioctls, guest memory); every
//! other module is denied it. Nothing here prints or reads the environment:
//! the front ends (the `vigil` binary, later the daemon) do.

#![deny(unsafe_code)]
// A library reports, the `vigil` binary (`main.rs`, `cli/`) prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod audit;
pub mod eval;
pub mod guard_image;
pub mod journal;
pub mod judge;
pub mod keys;
pub mod output_file;
pub mod policy;
pub mod policy_signature;
pub mod progress;
pub mod random;
pub mod recording;
pub mod reference;
pub mod stats;
pub mod verdict_report;
pub mod verify;
pub mod vm_judge;
#[allow(unsafe_code)]
pub mod vmm;
