//! aarch64 at EL0: the few instructions the guard needs, each behind a safe
//! function. The VMM built the translation tables, the EL1 vectors and the
//! system registers (docs/guest-abi.md §9) and started the vCPU at EL0;
//! doorbells and the console are stores to an MMIO block no memory backs,
//! so each one exits to the VMM. Everything privileged traps to the EL1
//! vectors, which report the fault and stop.

use core::arch::asm;

use crate::abi::{self, mmio};

/// [`abi::arch`] code of this architecture.
pub const ARCH: u32 = abi::arch::AARCH64;

/// The exception level all guard code runs at.
pub const PRIVILEGE: u32 = 0;

/// How the boot banner names the CPU and privilege level.
pub const NAME: &str = "aarch64 el0";

/// Draws `words` words from RNDR into `pool` when the vCPU has it (boot
/// info `flags`).
pub fn draw_entropy(pool: &mut crate::entropy::EntropyPool, flags: u32, words: usize) {
    if flags & abi::boot_flags::RNDR_PRESENT != 0 {
        crate::entropy::draw(pool, abi::entropy::RNDR, words, rndr);
    }
}

/// Reads the virtual counter (`CNTVCT_EL0`; the VMM set
/// `CNTKCTL_EL1.EL0VCTEN`). Its rate is boot info's `TSC_KHZ`.
#[inline(always)]
pub fn tsc() -> u64 {
    let value: u64;
    // SAFETY: reads a counter register EL0 may read; no memory access.
    unsafe { asm!("isb", "mrs {v}, cntvct_el0", v = out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Makes a hypercall: a 32-bit store of `code` to the doorbell. The vCPU
/// exits to the VMM, which resumes it when the call is done.
#[inline(always)]
pub fn hypercall(code: u32) {
    // SAFETY: the doorbell lies in the MMIO block stage 1 maps EL0-writable
    // and no guest memory backs: the store only exits to the VMM (the
    // mailbox it may change is only accessed through atomics).
    unsafe {
        asm!("str {code:w}, [{at}]", code = in(reg) code, at = in(reg) mmio::HYPERCALL, options(nostack, preserves_flags))
    };
}

/// Writes `bytes` to the console register, a byte per store (the VMM
/// buffers them without an exit where the hypervisor can).
pub fn console_write(bytes: &[u8]) {
    for &byte in bytes {
        // SAFETY: the console register lies in the EL0-writable MMIO block;
        // a store has no effect on guest memory.
        unsafe {
            asm!("strb {b:w}, [{at}]", b = in(reg) u32::from(byte), at = in(reg) mmio::CONSOLE, options(nostack, preserves_flags))
        };
    }
}

/// One RNDR attempt. Only call when boot info says the vCPU has it
/// (otherwise it is an undefined instruction).
pub fn rndr() -> Option<u64> {
    let value: u64;
    let ok: u64;
    // SAFETY: reads the RNDR register (EL0-readable when implemented) and
    // sets NZCV only.
    unsafe {
        asm!("mrs {v}, s3_3_c2_c4_0", "cset {ok}, ne", v = out(reg) value, ok = out(reg) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(value)
}

/// Raises an undefined-instruction exception: the way EL0 reports a fatal
/// error (the EL1 vector reports it to the VMM, which ends the VM).
#[inline(always)]
pub fn trap() -> ! {
    // SAFETY: `udf` only raises an exception, taken to the VMM-built EL1
    // vector, which stops the VM.
    unsafe { asm!("udf #0", options(noreturn, nomem, nostack)) }
}

/// Test hook: stores a byte to `address`. Every address the guard may not
/// write (EL1-only pages, read-only pages, unmapped addresses) faults.
pub fn write_to(address: u64) -> ! {
    // SAFETY: deliberately writes to an address chosen by the host's test;
    // used only by the test-hooks image to check that the translation
    // tables protect what they must. If the write succeeds, the guard traps.
    unsafe { core::ptr::write_volatile(address as usize as *mut u8, 0xA5) };
    trap()
}

/// Test hook: stores to an MMIO address that is no register (the VMM
/// refuses it, as x86_64's VMM refuses a port the TSS does not grant).
pub fn forbidden_port() -> ! {
    // SAFETY: the store goes to the MMIO block, which no memory backs; the
    // VMM ends the VM on it.
    unsafe {
        asm!("str {v:w}, [{at}]", v = in(reg) 0u32, at = in(reg) mmio::BASE + 0x3000, options(nostack, preserves_flags))
    };
    trap()
}
