//! x86_64 at CPL3: the few instructions the guard needs, each behind a safe
//! function. The host granted ring 3 exactly the COM1 ports and the
//! hypercall port in the TSS I/O bitmap; everything privileged traps to the
//! host's fault stubs.

use core::arch::asm;

use crate::abi::{self, ports};

pub mod mem;

/// [`abi::arch`] code of this architecture.
pub const ARCH: u32 = abi::arch::X86_64;

/// The privilege level all guard code runs at.
pub const PRIVILEGE: u32 = 3;

/// How the boot banner names the CPU and privilege level.
pub const NAME: &str = "x86_64 cpl3";

/// Draws `words` words from each generator the vCPU has (boot info
/// `flags`) into `pool`: RDSEED, then RDRAND.
pub fn draw_entropy(pool: &mut crate::entropy::EntropyPool, flags: u32, words: usize) {
    use crate::abi::boot_flags;
    if flags & boot_flags::RDSEED_PRESENT != 0 {
        crate::entropy::draw(pool, abi::entropy::RDSEED, words, rdseed);
    }
    if flags & boot_flags::RDRAND_PRESENT != 0 {
        crate::entropy::draw(pool, abi::entropy::RDRAND, words, rdrand);
    }
}

/// Reads the time stamp counter.
#[inline(always)]
pub fn tsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the TSC (CR4.TSD is clear: allowed at CPL3).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Makes a hypercall: a 32-bit write of `code` to the hypercall port. The
/// vCPU exits to the host, which resumes it when the call is done.
#[inline(always)]
pub fn hypercall(code: u32) {
    // SAFETY: the TSS I/O bitmap grants this port to ring 3; the write has no
    // effect on guest memory the compiler can see (the host may change the
    // mailbox, which is only accessed through atomics).
    unsafe { asm!("out dx, eax", in("dx") ports::HYPERCALL, in("eax") code, options(nostack, preserves_flags)) };
}

/// Writes `bytes` to the console (COM1 data register) with one string I/O.
pub fn console_write(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: `rep outsb` reads exactly `bytes.len()` bytes from `bytes`
    // (direction flag clear per the ABI) and writes them to COM1, a port the
    // TSS grants to ring 3.
    unsafe {
        asm!(
            "cld",
            "rep outsb",
            in("dx") ports::COM1_BASE,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, readonly),
        )
    };
}

/// One RDRAND attempt. Only call when the host reported the instruction
/// (otherwise it raises #UD).
pub fn rdrand() -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: RDRAND writes a register and CF only.
    unsafe { asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack)) };
    (ok != 0).then_some(value)
}

/// One RDSEED attempt. Only call when the host reported the instruction.
pub fn rdseed() -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: RDSEED writes a register and CF only.
    unsafe { asm!("rdseed {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack)) };
    (ok != 0).then_some(value)
}

/// Raises an invalid-opcode trap (#UD): the way ring 3 reports a fatal error
/// (`int n` is #UD under nested KVM anyway).
#[inline(always)]
pub fn trap() -> ! {
    // SAFETY: `ud2` only raises #UD, handled by the host's fault stub, which
    // ends the VM.
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}

/// Test hook: stores a byte to `address`. Every address the guard may not
/// write (supervisor pages, read-only pages, unmapped pages) page-faults.
pub fn write_to(address: u64) -> ! {
    // SAFETY: deliberately writes to an address chosen by the host's test;
    // used only by the test-hooks image to check that the page tables
    // protect what they must. If the write succeeds, the guard traps.
    unsafe { core::ptr::write_volatile(address as usize as *mut u8, 0xA5) };
    trap()
}

/// Test hook: writes to port 0x80, which the TSS does not grant (#GP).
pub fn forbidden_port() -> ! {
    // SAFETY: the write faults before it has any effect.
    unsafe { asm!("out 0x80, al", in("al") 0u8, options(nomem, nostack)) };
    trap()
}
