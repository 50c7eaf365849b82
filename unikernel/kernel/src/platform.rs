//! What the guard's logic needs from the machine it runs on, and the
//! shapes it answers in: the [`Platform`] trait (implemented by the arch
//! runtime, and by tests on the host), the ATTEST request, and the reply
//! header. Both [`crate::service`] and [`crate::judging`] build on this
//! module; neither imports the other's internals through it.

use vigil_attest::dual::DualPublicKey;

/// What the guard asks the VMM to attest.
pub struct AttestRequest<'a> {
    /// The verifier's nonce.
    pub nonce: &'a [u8],
    /// Entropy source bits.
    pub entropy: u32,
    /// Guard X25519 public key.
    pub x25519: &'a [u8; 32],
    /// Guard dual public key.
    pub key: &'a DualPublicKey,
}

/// What the handler needs from the CPU.
pub trait Platform {
    /// The CPU's time stamp counter.
    fn tsc(&mut self) -> u64;
    /// Asks the VMM for evidence over `request` (the `ATTEST` hypercall);
    /// writes it to `out` and returns its length, or `None` when the VMM
    /// gave none.
    fn attest(&mut self, request: &AttestRequest<'_>, out: &mut [u8]) -> Option<usize>;
    /// Test hook: write to `address` (expected to fault).
    fn write_to(&mut self, address: u64) -> !;
    /// Test hook: execute an invalid instruction.
    fn trap(&mut self) -> !;
    /// Test hook: access an I/O port the guard is not granted.
    fn forbidden_port(&mut self) -> !;
}

/// The reply header: status and payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// An [`crate::abi::status`] code.
    pub status: u32,
    /// Payload bytes written to the response area.
    pub len: usize,
}

impl Reply {
    /// A reply with `status` and no payload.
    pub fn status(status: u32) -> Self {
        Reply { status, len: 0 }
    }
}
