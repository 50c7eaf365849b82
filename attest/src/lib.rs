//! `vigil-attest`: measurements of what the VMM loads into the guard, and
//! dual signatures (Ed25519 + ML-DSA-65, both must verify).
//!
//! COSE evidence and the attested channel build on these; this crate is
//! `no_std` and allocation-free so the guest links it too.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

pub mod channel;
pub mod checkpoint;
#[cfg(feature = "std")]
pub mod cose_dual;
pub mod dual;
#[cfg(feature = "std")]
pub mod evidence;
#[cfg(feature = "std")]
pub mod reference;

use sha2::{Digest, Sha384};

/// Length of a measurement (SHA-384) in bytes.
pub const MEASUREMENT_LEN: usize = 48;

/// A SHA-384 measurement.
pub type Measurement = [u8; MEASUREMENT_LEN];

/// Measures `bytes` (SHA-384), as the VMM does for the guard image.
pub fn measure(bytes: &[u8]) -> Measurement {
    Sha384::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha384_of_abc() {
        // FIPS 180-2 appendix D.1 test vector.
        let expected = "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                        8086072ba1e7cc2358baeca134c825a7";
        let got: String = super::measure(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
    }
}
