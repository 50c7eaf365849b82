//! What the VMM does with a guest exit, whatever the hypervisor: a backend
//! ([`super::hypervisor::Vcpu`]) runs the vCPU and decodes each exit into one
//! [`GuestExit`]; [`handle`] carries out the guest ↔ host contract
//! (docs/guest-abi.md, "Ports and hypercalls") — sleep, panic, shutdown,
//! attestation — and turns anything else into the error that stops the VM.

use std::sync::atomic::Ordering;

use vigil_abi::{hypercall, layout, mailbox};

use super::memory::GuestMemory;
use super::shared::Shared;
use super::{FaultReport, VmError};

/// One guest exit, decoded by the backend.
#[derive(Debug)]
pub enum GuestExit {
    /// Nothing for the VMM to do (an interrupted run, console traffic, a
    /// port read): run on.
    Continue,
    /// A hypercall with its code, and where the guest made it.
    Hypercall {
        /// The hypercall code ([`vigil_abi::hypercall`]).
        code: u32,
        /// The guest's program counter.
        pc: u64,
    },
    /// A fault stub reported a fault.
    Fault(FaultReport),
    /// A write to a port (or MMIO address) the guard may not use.
    ForbiddenWrite {
        /// What was written to: `"I/O port"` or `"MMIO address"`.
        space: &'static str,
        /// The port or address.
        address: u64,
        /// Bytes written.
        len: usize,
        /// The guest's program counter.
        pc: u64,
    },
    /// The backend saw the VM end (triple fault, internal error, ...).
    Stop(VmError),
}

/// Handles one exit: `Ok` to run the vCPU again, `Err` with why it stops.
pub fn handle(exit: GuestExit, shared: &Shared) -> Result<(), VmError> {
    match exit {
        GuestExit::Continue => Ok(()),
        GuestExit::Hypercall { code, pc } => match code {
            hypercall::SLEEP => sleep_until_work(shared),
            hypercall::PANIC => Err(VmError::GuestPanicked { message: panic_message(&shared.memory) }),
            hypercall::SHUTDOWN => Err(VmError::GuestShutDown),
            hypercall::ATTEST => {
                super::attestation::serve(&shared.memory, &shared.attestation);
                Ok(())
            }
            other => Err(VmError::GuestProtocol(format!("unknown hypercall {other:#x} at pc {pc:#x}"))),
        },
        GuestExit::Fault(report) => Err(VmError::GuestFault(report)),
        GuestExit::ForbiddenWrite { space, address, len, pc } => {
            Err(VmError::GuestProtocol(format!("write of {len} bytes to {space} {address:#x} at pc {pc:#x}")))
        }
        GuestExit::Stop(reason) => Err(reason),
    }
}

/// `SLEEP`: block until the host posts a request the guest has not seen.
fn sleep_until_work(shared: &Shared) -> Result<(), VmError> {
    shared.sleeps.fetch_add(1, Ordering::Relaxed);
    let seen = shared
        .memory
        .atomic_u64(layout::MAILBOX_BASE + mailbox::control::SEEN_SEQ)
        .map_err(|e| VmError::GuestProtocol(e.to_string()))?
        .load(Ordering::SeqCst);
    let mut guard = shared.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
    shared.sleeping.store(true, Ordering::SeqCst);
    let posted = shared.posted.load(Ordering::SeqCst);
    if seen > posted {
        shared.sleeping.store(false, Ordering::SeqCst);
        return Err(VmError::GuestProtocol(format!(
            "guest claims to have seen request {seen}, the host posted only {posted}"
        )));
    }
    while shared.posted.load(Ordering::SeqCst) == seen && !shared.stop.load(Ordering::SeqCst) {
        guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
    }
    shared.sleeping.store(false, Ordering::SeqCst);
    Ok(())
}

/// The panic message from the control block, bounded, lossy and escaped.
fn panic_message(memory: &GuestMemory) -> String {
    let base = layout::MAILBOX_BASE + mailbox::control::PANIC_LEN;
    let len = memory.atomic_u32(base).map(|w| w.load(Ordering::Acquire) as usize).unwrap_or(0);
    let len = len.min(mailbox::control::PANIC_CAPACITY);
    let mut bytes = vec![0; len];
    if memory.read(layout::MAILBOX_BASE + mailbox::control::PANIC_MESSAGE, &mut bytes).is_err() {
        return "(panic message unreadable)".into();
    }
    super::guest_text::escape(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_panic_message_comes_out_escaped() {
        let memory = GuestMemory::new(layout::MEMORY_SIZE as usize).unwrap();
        // What a compromised guard could write: clear the screen, move the
        // cursor home, overwrite the line with CR, reorder with U+202E.
        let hostile = "\x1b[2J\x1b[Hpanicked\rall good \u{202e}ti deifirev\x08\u{9b}0m";
        memory.write(layout::MAILBOX_BASE + mailbox::control::PANIC_MESSAGE, hostile.as_bytes()).unwrap();
        memory
            .atomic_u32(layout::MAILBOX_BASE + mailbox::control::PANIC_LEN)
            .unwrap()
            .store(hostile.len() as u32, Ordering::Release);
        let message = panic_message(&memory);
        assert_eq!(message, "\\x1b[2J\\x1b[Hpanicked\\x0dall good \\u{202e}ti deifirev\\x08\\u{9b}0m");
        assert!(!message.chars().any(|c| c.is_control() || c == '\u{202e}'));
        // A length beyond the capacity is bounded, not trusted.
        memory
            .atomic_u32(layout::MAILBOX_BASE + mailbox::control::PANIC_LEN)
            .unwrap()
            .store(u32::MAX, Ordering::Release);
        assert!(panic_message(&memory).len() <= 4 * mailbox::control::PANIC_CAPACITY);
    }
}
