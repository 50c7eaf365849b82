//! The guard's main loop on x86_64: boot info, entropy, the exitless mailbox
//! and the panic path. Only built for bare-metal targets.

#[cfg(target_arch = "x86_64")]
mod mailbox;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use x86_64::{panic, run};

#[cfg(target_arch = "aarch64")]
pub use crate::arch::aarch64::run;

/// Panic path on aarch64: print the message and power off.
#[cfg(target_arch = "aarch64")]
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    struct Uart;
    impl Write for Uart {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            crate::arch::aarch64::console_write(s.as_bytes());
            Ok(())
        }
    }
    let _ = writeln!(Uart, "vigil guard panicked: {info}");
    crate::arch::aarch64::power_off()
}
