//! `vigil-os`: what Vigil takes from the host operating system, taken with
//! care — randomness from the kernel's CSPRNG ([`random`]) and private,
//! atomic, link-refusing output files ([`output_file`]), the CPU model
//! ([`cpu_model`]). The lowest host
//! layer: the journal, the keys and the front ends all write through it.

#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cpu_model;
pub mod output_file;
pub mod random;
