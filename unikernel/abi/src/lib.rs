//! `vigil-abi`: the guest ↔ host contract — guest-physical layout, boot
//! info, I/O ports, hypercalls, the mailbox, and ([`batch`]) the batch
//! messages carried over the attested channel. `docs/guest-abi.md` and
//! `docs/protocol.md` are the normative specs; this crate is their single
//! Rust definition, used by the guest (`vigil-unikernel`) and the VMM
//! (`vigil`). `no_std`, no dependencies, no `unsafe`.
//!
//! Everything is little-endian. Offsets are in bytes. Version: [`ABI_VERSION`].

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;

/// Version of this ABI. The host refuses a guest reporting another one and
/// the guest refuses a boot info with another one.
pub const ABI_VERSION: u32 = 4;

/// `b"VIGILBI1"` read as a little-endian u64.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"VIGILBI1");

const MIB: u64 = 1024 * 1024;

/// Size of one large page; every user-visible region is a whole number of them.
pub const LARGE_PAGE: u64 = 2 * MIB;

/// Guest-physical layout (identity-mapped: virtual = physical).
pub mod layout {
    use super::MIB;

    /// `[0, 2 MiB)`: supervisor-only system region (descriptor tables, TSS,
    /// fault stubs, ring-0 stack; page tables are not mapped at all).
    pub const SYSTEM_BASE: u64 = 0;
    /// Boot info page: user read-only, no-execute.
    pub const BOOT_INFO: u64 = 2 * MIB;
    /// The guard image's PT_LOAD segments must lie in `[IMAGE_BASE, IMAGE_END)`.
    pub const IMAGE_BASE: u64 = 4 * MIB;
    /// End of the image window.
    pub const IMAGE_END: u64 = 16 * MIB;
    /// `[16, 18) MiB` stays unmapped: a stack overflow faults here.
    pub const STACK_GUARD: u64 = 16 * MIB;
    /// Lowest stack address (user read-write, no-execute).
    pub const STACK_BASE: u64 = 18 * MIB;
    /// One past the highest stack address; the initial `rsp` is `STACK_TOP - 8`.
    pub const STACK_TOP: u64 = 20 * MIB;
    /// Mailbox region (user read-write, no-execute), see [`super::mailbox`].
    pub const MAILBOX_BASE: u64 = 20 * MIB;
    /// Size of the mailbox region.
    pub const MAILBOX_SIZE: u64 = 4 * MIB;
    /// Policy bundle region (user read-only, no-execute): the VMM copies the
    /// measured bundle here before the first instruction.
    pub const POLICY_BASE: u64 = 24 * MIB;
    /// Largest policy bundle the region holds.
    pub const POLICY_MAX: u64 = 8 * MIB;
    /// Guest memory size the host gives the guard.
    pub const MEMORY_SIZE: u64 = 32 * MIB;
}

/// Boot info: the page the host fills before the first instruction. The
/// guest receives its address in `rdi` (x86_64) or `x0` (aarch64).
pub mod boot_info {
    /// `u64`: [`super::BOOT_INFO_MAGIC`].
    pub const MAGIC: usize = 0x00;
    /// `u32`: [`super::ABI_VERSION`].
    pub const VERSION: usize = 0x08;
    /// `u32`: flags, see [`super::boot_flags`].
    pub const FLAGS: usize = 0x0C;
    /// `u64`: guest memory size in bytes.
    pub const MEMORY_SIZE: usize = 0x10;
    /// `u64`: guest-physical address of the mailbox region.
    pub const MAILBOX_ADDR: usize = 0x18;
    /// `u64`: size of the mailbox region.
    pub const MAILBOX_SIZE: usize = 0x20;
    /// `u64`: guest-physical address of the policy bundle (0 = none yet).
    pub const POLICY_ADDR: usize = 0x28;
    /// `u64`: policy bundle length in bytes.
    pub const POLICY_LEN: usize = 0x30;
    /// `u64`: how long the guard polls an idle mailbox before it sleeps,
    /// in TSC ticks.
    pub const IDLE_TSC_TICKS: usize = 0x38;
    /// `u64`: the TSC frequency in kHz as the host knows it (0 = unknown).
    pub const TSC_KHZ: usize = 0x40;
    /// `[u8; 32]`: fresh host entropy, mixed into the guard's pool.
    pub const HOST_SEED: usize = 0x48;
    /// `u64`: the guard signs a checkpoint of its verdict chain after this
    /// many verdicts (at the end of the batch that reaches it); ≥ 1.
    pub const CHECKPOINT_INTERVAL: usize = 0x68;
    /// Bytes of boot info that are defined; the rest of the page is zero.
    pub const LEN: usize = 0x70;
}

/// Boot info flags.
pub mod boot_flags {
    /// The host CPU implements RDRAND: the guest may try it.
    pub const RDRAND_PRESENT: u32 = 1 << 0;
    /// The host CPU implements RDSEED: the guest may try it.
    pub const RDSEED_PRESENT: u32 = 1 << 1;
    /// aarch64: the vCPU implements RNDR (`ID_AA64ISAR0_EL1.RNDR` ≥ 1, as
    /// the VMM reads it): the guest may try it.
    pub const RNDR_PRESENT: u32 = 1 << 2;
}

/// aarch64 doorbells: registers in an MMIO block that no guest memory
/// backs, so that every store to them exits to the VMM (a data abort the
/// hypervisor decodes). Stage 1 maps the block as device memory,
/// read-write for EL0 and EL1, never executable.
pub mod mmio {
    /// Base of the 2 MiB MMIO block.
    pub const BASE: u64 = 0x0900_0000;
    /// Size of the block.
    pub const SIZE: u64 = 2 * super::MIB;
    /// Console: each byte stored here (8-bit store) is one console byte
    /// (the data register of a PL011 at the same address as QEMU's).
    pub const CONSOLE: u64 = BASE;
    /// Hypercall doorbell: a 32-bit store of a [`super::hypercall`] code.
    pub const HYPERCALL: u64 = BASE + 0x1000;
    /// Fault report, stored by the EL1 vectors: the 32-bit vector index
    /// (0–15, see docs/guest-abi.md §9).
    pub const FAULT: u64 = BASE + 0x2000;
}

/// x86_64 I/O ports. The TSS I/O permission bitmap lets ring 3 reach only
/// [`ports::COM1_BASE`]`..+8` and [`ports::HYPERCALL`].
pub mod ports {
    /// 16550 UART (COM1): the guest writes console bytes to `COM1_BASE`.
    pub const COM1_BASE: u16 = 0x3F8;
    /// Hypercall doorbell: the guest writes a 32-bit [`super::hypercall`] code.
    pub const HYPERCALL: u16 = 0x510;
    /// Fault report port, reachable from ring 0 only: the fault stubs write
    /// the vector number (8 bits) here.
    pub const FAULT: u16 = 0xF1;
    /// Number of ports the I/O permission bitmap covers; higher ports are
    /// denied by the TSS limit.
    pub const BITMAP_PORTS: u32 = 0x800;
}

/// Hypercall codes: written to [`ports::HYPERCALL`] (x86_64) or stored to
/// the doorbell page (aarch64). Arguments live in the mailbox control block.
pub mod hypercall {
    /// No request is pending and the idle budget is spent: block the vCPU
    /// until the request sequence word differs from `control::SEEN_SEQ`.
    pub const SLEEP: u32 = 1;
    /// The guard panicked: the message is in the control block's panic area.
    /// The host ends the VM.
    pub const PANIC: u32 = 2;
    /// The guard answered a `Shutdown` request and stops. The host ends the VM.
    pub const SHUTDOWN: u32 = 3;
    /// The guard asks the VMM for evidence: its public keys and the nonce
    /// are in [`super::mailbox::ATTEST`] ([`super::attest_request`] layout);
    /// the VMM answers in [`super::mailbox::EVIDENCE`] ([`super::evidence_reply`]
    /// layout) before the vCPU resumes.
    pub const ATTEST: u32 = 4;
}

/// The mailbox region: a control block, a request area and a response area.
///
/// Request: the host writes `KIND`, `LEN` and the payload, then stores the
/// new sequence number (previous + 1) to `SEQ` with release ordering. The
/// guest polls `SEQ` with acquire ordering. Response: the guest writes
/// `STATUS`, `LEN` and the payload, then stores the request's sequence number
/// to the response `SEQ` with release ordering.
pub mod mailbox {
    /// Control block offset (guest → host: seen sequence, panic message).
    pub const CONTROL: u64 = 0;
    /// Request header offset.
    pub const REQUEST: u64 = 0x1000;
    /// Request payload offset.
    pub const REQUEST_PAYLOAD: u64 = 0x2000;
    /// Maximum request payload.
    pub const REQUEST_CAPACITY: usize = 1024 * 1024;
    /// Response header offset.
    pub const RESPONSE: u64 = 0x20_0000;
    /// Response payload offset.
    pub const RESPONSE_PAYLOAD: u64 = 0x20_1000;
    /// Maximum response payload.
    pub const RESPONSE_CAPACITY: usize = 1024 * 1024;
    /// Attestation request area (guest → VMM), see [`super::super::attest_request`].
    pub const ATTEST: u64 = 0x10_4000;
    /// Evidence area (VMM → guest), see [`super::super::evidence_reply`].
    pub const EVIDENCE: u64 = 0x10_8000;

    /// Header field offsets (request and response headers alike).
    pub mod header {
        /// `u64`: sequence number (see the module docs).
        pub const SEQ: u64 = 0x00;
        /// `u32`: request kind ([`super::super::kind`]) or response status
        /// ([`super::super::status`]).
        pub const KIND_OR_STATUS: u64 = 0x40;
        /// `u32`: payload length in bytes.
        pub const LEN: u64 = 0x44;
    }

    /// Control block field offsets.
    pub mod control {
        /// `u64`: the last request sequence number the guest has answered;
        /// the host reads it on `SLEEP`.
        pub const SEEN_SEQ: u64 = 0x00;
        /// `u32`: the guest's ABI version, written before the first poll.
        pub const GUEST_ABI: u64 = 0x40;
        /// `u32`: panic message length (≤ [`PANIC_CAPACITY`]).
        pub const PANIC_LEN: u64 = 0x80;
        /// Panic message bytes (UTF-8, possibly cut at a char boundary).
        pub const PANIC_MESSAGE: u64 = 0x100;
        /// Maximum panic message length.
        pub const PANIC_CAPACITY: usize = 0xE00;
    }
}

/// Request kinds.
pub mod kind {
    /// Payload: any bytes. Reply: [`super::ping`] layout.
    pub const PING: u32 = 1;
    /// Payload: empty. Reply: [`super::info`] layout.
    pub const INFO: u32 = 2;
    /// Payload: empty. Reply: the final guard checkpoint (docs/protocol.md),
    /// or empty when the guard has no valid policy; then the guest stops.
    pub const SHUTDOWN: u32 = 3;
    /// Payload: the verifier's nonce (8–64 bytes). The guard asks the VMM
    /// for evidence over its per-boot keys and the nonce. Reply: the
    /// evidence (tagged COSE_Sign, docs/evidence.md).
    pub const ATTEST: u32 = 4;
    /// Payload: evidence digest (SHA-384, 48 bytes) || client X25519 public
    /// key (32) || the client's key-confirmation record. Reply: the guard's
    /// confirmation record. Replaces any open session.
    pub const CHANNEL_OPEN: u32 = 5;
    /// Payload: one channel record (client → guard) holding a batch message.
    /// Reply: one record (guard → client) holding the batch reply.
    pub const CHANNEL_RECORD: u32 = 6;
    /// Test-hooks images only: panic with a fixed message.
    pub const TEST_PANIC: u32 = 0xD001;
    /// Test-hooks images only: write to an unmapped address (page fault).
    pub const TEST_FAULT: u32 = 0xD002;
    /// Test-hooks images only: spin forever without answering.
    pub const TEST_SPIN: u32 = 0xD003;
    /// Test-hooks images only: execute `ud2` (invalid opcode trap).
    pub const TEST_TRAP: u32 = 0xD004;
    /// Test-hooks images only: write a byte to an I/O port the TSS bitmap
    /// does not grant (general-protection fault).
    pub const TEST_FORBIDDEN_PORT: u32 = 0xD005;
    /// Test-hooks images only: answer with a response length far beyond the
    /// response capacity (the host must refuse it).
    pub const TEST_BAD_REPLY: u32 = 0xD006;
    /// Test hook: from now on the guard reports 1,000 times the judge
    /// ticks it measured (a guard that lies about its cost; the host's
    /// cross-check must flag it).
    pub const TEST_INFLATE_COST: u32 = 0xD007;
}

/// `TEST_FAULT` payload: an optional `u64` guest address to write to; when
/// the payload is empty the guest writes to [`layout::STACK_GUARD`].
pub mod test_fault {
    /// Offset of the target address.
    pub const ADDRESS: usize = 0;
}

/// Response status codes.
pub mod status {
    /// Success.
    pub const OK: u32 = 0;
    /// The request kind is unknown to this guard (or a test hook on a
    /// production image).
    pub const UNKNOWN_KIND: u32 = 1;
    /// The request length exceeds the request capacity.
    pub const BAD_LENGTH: u32 = 2;
    /// The payload is malformed for its kind.
    pub const MALFORMED: u32 = 3;
    /// The reply would not fit the response area.
    pub const TOO_LARGE: u32 = 4;
    /// The VMM gave no evidence (no platform key, or signing failed).
    pub const NO_EVIDENCE: u32 = 5;
    /// The channel failed (no session, bad record, failed confirmation, an
    /// evidence digest this guard did not issue): the session is closed.
    pub const CHANNEL_FAILED: u32 = 6;
    /// The guard has no valid policy bundle: it judges nothing.
    pub const NO_POLICY: u32 = 7;
}

/// The attestation request the guard writes to [`mailbox::ATTEST`].
pub mod attest_request {
    /// `u32`: nonce length (8–64).
    pub const NONCE_LEN: usize = 0x00;
    /// `u32`: [`super::entropy`] bits of the sources that delivered.
    pub const ENTROPY: usize = 0x04;
    /// `[u8; 64]`: the nonce (first `NONCE_LEN` bytes).
    pub const NONCE: usize = 0x08;
    /// `[u8; 32]`: the guard's X25519 public key.
    pub const X25519: usize = 0x48;
    /// `[u8; 32]`: the guard's Ed25519 public key.
    pub const ED25519: usize = 0x68;
    /// `[u8; 1952]`: the guard's ML-DSA-65 public key.
    pub const ML_DSA_65: usize = 0x88;
    /// Bytes defined.
    pub const LEN: usize = ML_DSA_65 + 1952;
    /// Shortest nonce.
    pub const NONCE_MIN: usize = 8;
    /// Longest nonce.
    pub const NONCE_MAX: usize = 64;
}

/// The VMM's answer in [`mailbox::EVIDENCE`].
pub mod evidence_reply {
    /// `u32`: [`super::status::OK`] or [`super::status::NO_EVIDENCE`].
    pub const STATUS: usize = 0x00;
    /// `u32`: evidence length.
    pub const LEN: usize = 0x04;
    /// The evidence bytes.
    pub const BYTES: usize = 0x08;
    /// Most evidence bytes.
    pub const CAPACITY: usize = 64 * 1024;
}

/// Ping reply: `counter: u64`, `tsc: u64`, then the request payload.
/// `counter` starts at 1 and grows by one per `Ping` served; `tsc` is read by
/// the guest when it serves the request.
pub mod ping {
    /// Offset of the running counter.
    pub const COUNTER: usize = 0;
    /// Offset of the guest TSC value.
    pub const TSC: usize = 8;
    /// Offset of the echoed payload.
    pub const PAYLOAD: usize = 16;
}

/// Info reply layout.
pub mod info {
    /// `u32`: the guest's [`super::ABI_VERSION`].
    pub const ABI_VERSION: usize = 0x00;
    /// `u32`: [`super::arch`] code.
    pub const ARCH: usize = 0x04;
    /// `u32`: [`super::entropy`] bitmask of the sources that delivered.
    pub const ENTROPY: usize = 0x08;
    /// `u32`: privilege level the guard runs at (3 = CPL3, 0 = EL0).
    pub const PRIVILEGE: usize = 0x0C;
    /// `u64`: memory size the guest was told.
    pub const MEMORY_SIZE: usize = 0x10;
    /// `u64`: guest TSC when the guard started.
    pub const BOOT_TSC: usize = 0x18;
    /// `u64`: requests served so far (all kinds).
    pub const REQUESTS: usize = 0x20;
    /// `u64`: number of `SLEEP` hypercalls made so far.
    pub const SLEEPS: usize = 0x28;
    /// `u64`: bytes of dense copies of the bundle's sparse DFAs the judge
    /// has made so far (made when idle, once a channel is open).
    pub const DENSE_BYTES: usize = 0x30;
    /// `u32`: length of the version string that follows.
    pub const VERSION_LEN: usize = 0x38;
    /// Version string (UTF-8), at most [`VERSION_CAPACITY`] bytes.
    pub const VERSION: usize = 0x3C;
    /// Maximum version string length.
    pub const VERSION_CAPACITY: usize = 64;
}

/// Architecture codes.
pub mod arch {
    /// x86_64.
    pub const X86_64: u32 = 1;
    /// aarch64.
    pub const AARCH64: u32 = 2;
}

/// Entropy source bits.
pub mod entropy {
    /// The host seed from boot info.
    pub const HOST_SEED: u32 = 1 << 0;
    /// RDSEED delivered.
    pub const RDSEED: u32 = 1 << 1;
    /// RDRAND delivered.
    pub const RDRAND: u32 = 1 << 2;
    /// aarch64 RNDR delivered.
    pub const RNDR: u32 = 1 << 3;
}

// Compile-time checks of the layout: the stack has an unmapped guard page
// below it and is at least 512 KiB (ML-DSA-65 key generation needs ~250 KiB).
const _: () = assert!(layout::STACK_GUARD + LARGE_PAGE <= layout::STACK_BASE);
const _: () = assert!(layout::STACK_TOP - layout::STACK_BASE >= 512 * 1024);
const _: () = assert!(layout::IMAGE_END <= layout::STACK_GUARD);
const _: () = assert!(layout::POLICY_BASE + layout::POLICY_MAX <= layout::MEMORY_SIZE);
const _: () = assert!(mailbox::ATTEST + attest_request::LEN as u64 <= mailbox::EVIDENCE);
const _: () =
    assert!(mailbox::EVIDENCE + (evidence_reply::BYTES + evidence_reply::CAPACITY) as u64 <= mailbox::RESPONSE);

/// Length of [`boot_config`].
pub const BOOT_CONFIG_LEN: usize = 20 + 4 + 7 * 8;

/// The boot configuration the VMM measures (SHA-384) into the evidence's
/// `config` claim: `"vigil-boot-config" (17 bytes) || 0 0 0 || ABI version
/// u32 || memory size || mailbox address || mailbox size || policy address
/// || policy length || checkpoint interval || vCPU count` (each u64 LE).
pub fn boot_config(policy_len: u64, checkpoint_interval: u64) -> [u8; BOOT_CONFIG_LEN] {
    let mut out = [0u8; BOOT_CONFIG_LEN];
    out[..17].copy_from_slice(b"vigil-boot-config");
    out[20..24].copy_from_slice(&ABI_VERSION.to_le_bytes());
    let words = [
        layout::MEMORY_SIZE,
        layout::MAILBOX_BASE,
        layout::MAILBOX_SIZE,
        layout::POLICY_BASE,
        policy_len,
        checkpoint_interval,
        1,
    ];
    for (i, word) in words.iter().enumerate() {
        out[24 + 8 * i..32 + 8 * i].copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// Length of an image's `.vigil_features` section.
pub const FEATURES_NOTE_LEN: usize = 64;
/// Prefix of the `.vigil_features` section.
pub const FEATURES_PREFIX: &[u8] = b"vigil-features-v1:";

/// The `.vigil_features` section for a comma-separated feature list.
pub const fn features_note(features: &str) -> [u8; FEATURES_NOTE_LEN] {
    let mut out = [0u8; FEATURES_NOTE_LEN];
    let mut i = 0;
    while i < FEATURES_PREFIX.len() {
        out[i] = FEATURES_PREFIX[i];
        i += 1;
    }
    let bytes = features.as_bytes();
    let mut j = 0;
    while j < bytes.len() {
        out[i + j] = bytes[j];
        j += 1;
    }
    out
}

/// Parses a `.vigil_features` section: the features, or `None` when it is
/// not one.
pub fn parse_features_note(note: &[u8]) -> Option<impl Iterator<Item = &str>> {
    if note.len() != FEATURES_NOTE_LEN || !note.starts_with(FEATURES_PREFIX) {
        return None;
    }
    let body = &note[FEATURES_PREFIX.len()..];
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    if body[end..].iter().any(|&b| b != 0) {
        return None;
    }
    let text = core::str::from_utf8(&body[..end]).ok()?;
    Some(text.split(',').filter(|f| !f.is_empty()))
}

/// The guard's default checkpoint interval (verdicts between two signed
/// guard checkpoints), what the VMM writes to `boot_info::CHECKPOINT_INTERVAL`
/// unless told otherwise; part of the measured boot configuration.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 4096;

/// Names for the entropy bits, in bit order.
pub fn entropy_source_names(bits: u32) -> impl Iterator<Item = &'static str> {
    [
        (entropy::HOST_SEED, "host-seed"),
        (entropy::RDSEED, "rdseed"),
        (entropy::RDRAND, "rdrand"),
        (entropy::RNDR, "rndr"),
    ]
    .into_iter()
    .filter(move |(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_regions_do_not_overlap_and_are_large_page_aligned() {
        use layout::*;
        let regions = [
            (BOOT_INFO, LARGE_PAGE),
            (IMAGE_BASE, IMAGE_END - IMAGE_BASE),
            (STACK_BASE, STACK_TOP - STACK_BASE),
            (MAILBOX_BASE, MAILBOX_SIZE),
            (POLICY_BASE, POLICY_MAX),
        ];
        for (i, (a, alen)) in regions.iter().enumerate() {
            assert_eq!(a % LARGE_PAGE, 0);
            assert_eq!(alen % LARGE_PAGE, 0);
            assert!(a + alen <= MEMORY_SIZE);
            for (b, blen) in regions.iter().skip(i + 1) {
                assert!(a + alen <= *b || b + blen <= *a, "{a:#x} overlaps {b:#x}");
            }
        }
    }

    #[test]
    fn mailbox_areas_fit() {
        use mailbox::*;
        assert!(REQUEST_PAYLOAD + REQUEST_CAPACITY as u64 <= RESPONSE);
        assert!(RESPONSE_PAYLOAD + RESPONSE_CAPACITY as u64 <= layout::MAILBOX_SIZE);
        assert!(control::PANIC_MESSAGE + control::PANIC_CAPACITY as u64 <= REQUEST);
    }

    #[test]
    fn entropy_names() {
        let names: Vec<_> = entropy_source_names(entropy::HOST_SEED | entropy::RDRAND).collect();
        assert_eq!(names, ["host-seed", "rdrand"]);
    }
}
