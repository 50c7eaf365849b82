//! Random bytes from the kernel's CSPRNG (`/dev/urandom`): key seeds,
//! journal ids and salts, nonces, temporary file names. One place, so that
//! every layer that needs randomness takes it from here and not from the
//! modules above it.

use std::fs::File;
use std::io::Read;

/// `N` bytes from the kernel's CSPRNG.
pub fn bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut out))?;
    Ok(out)
}
