//! `vigil`: the host side of Vigil — VMM, CLI commands, embedded guard image.

pub mod guard_image;
pub mod vmm;
