//! `vigil-fpga`: the register-level interface of the FPGA judge.
//!
//! The RTL (`rtl/`), its Verilator model and the driver arrive with the FPGA
//! issue. Today this crate only names the register map version so that the
//! workspace layout of `DESIGN.md` is in place.
#![forbid(unsafe_code)]

/// Version of the judge's register map. Bumped on any incompatible change.
pub const REGISTER_MAP_VERSION: u32 = 0;
