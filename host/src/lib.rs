//! `vigil`: the host side of Vigil — the VMM, the CLI commands and the
//! embedded guard image.
//!
//! `unsafe` code lives only in the VMM crate (`vigil-vmm`, re-exported as
//! [`vmm`]: KVM ioctls, guest memory); this crate forbids it. Nothing here prints or reads the environment:
//! the front ends (the `vigil` binary, later the daemon) do.

#![forbid(unsafe_code)]
// A library reports, the `vigil` binary (`main.rs`, `cli/`) prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod audit;
pub mod claude_code;
pub mod cost;
pub mod cost_audit;
pub mod daemon;
pub mod eval;
pub mod guard_image;
pub mod judge;
pub mod keys;
pub mod policy;
pub mod policy_signature;
pub mod progress;
pub mod recording;
pub mod stats;
pub mod suggest;
pub mod verdict_records;
pub mod verify;
pub mod vm_judge;

pub use vigil_attest::reference;
pub use vigil_journal as journal;
pub use vigil_journal::verdict_report;
pub use vigil_os::{output_file, random};
pub use vigil_vmm as vmm;
