//! aarch64: builds today and runs under QEMU (`-M virt`): prints a banner on
//! the PL011 UART and powers off through PSCI. The mailbox transport and the
//! drop to EL0 come with the Hypervisor.framework / KVM-arm issue.

use core::arch::asm;

use crate::abi;

/// [`abi::arch`] code of this architecture.
pub const ARCH: u32 = abi::arch::AARCH64;

/// PL011 data register on QEMU's `virt` machine.
const PL011_DATA: usize = 0x0900_0000;

/// PSCI `SYSTEM_OFF` function id.
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// Writes `bytes` to the PL011 UART.
pub fn console_write(bytes: &[u8]) {
    for &byte in bytes {
        // SAFETY: the PL011 data register of the `virt` machine; a store is
        // how a byte is sent. QEMU's model needs no FIFO polling.
        unsafe { core::ptr::write_volatile(PL011_DATA as *mut u32, u32::from(byte)) };
    }
}

/// One RNDR attempt (FEAT_RNG). Only call when the CPU has it.
pub fn rndr() -> Option<u64> {
    let value: u64;
    let ok: u64;
    // SAFETY: reads the RNDR system register and NZCV only.
    unsafe {
        asm!("mrs {v}, s3_3_c2_c4_0", "cset {ok}, ne", v = out(reg) value, ok = out(reg) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(value)
}

/// Asks the firmware/hypervisor to power off (PSCI `SYSTEM_OFF` via `hvc`).
pub fn power_off() -> ! {
    // SAFETY: PSCI SYSTEM_OFF does not return when the platform implements
    // it; otherwise the core waits for interrupts forever.
    unsafe {
        asm!("hvc #0", in("x0") PSCI_SYSTEM_OFF, options(nomem, nostack));
        loop {
            asm!("wfi", options(nomem, nostack));
        }
    }
}

/// Boots the aarch64 image: banner, then power off.
pub fn run() -> ! {
    console_write(b"vigil guard ");
    console_write(crate::VERSION.as_bytes());
    console_write(b" aarch64: booted at EL1; mailbox transport not yet available on this arch\n");
    power_off()
}
