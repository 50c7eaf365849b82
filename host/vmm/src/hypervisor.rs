//! The one interface a hypervisor backend implements: create the VM with
//! guest memory mapped at guest-physical 0, create and initialise its one
//! vCPU to start unprivileged at the image's entry, run it and report each
//! exit decoded as a [`GuestExit`]. Everything else — image validation,
//! measurement, attestation, the mailbox, the exit handling, the judge
//! client — is shared and arch-neutral.
//!
//! Backends: KVM on x86_64 and on aarch64 (`super::kvm`), and
//! Hypervisor.framework on Apple Silicon (`super::hvf`).

use std::sync::Arc;

use super::VmError;
use super::exits::{self, GuestExit};
use super::memory::GuestMemory;
use super::shared::Shared;

/// What a created vCPU tells the boot info.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuFacts {
    /// Boot-info entropy flags: the generators the vCPU has.
    pub entropy_flags: u32,
    /// Rate of the counter the guest reads (TSC, `CNTVCT_EL0`), in kHz,
    /// when known.
    pub counter_khz: Option<u32>,
}

/// A hypervisor this host can use.
pub trait Hypervisor: Sync {
    /// Its name as the evidence gives it (`kvm`, `hvf`).
    fn name(&self) -> &'static str;

    /// Creates the VM with `memory` mapped at guest-physical 0 and its one
    /// vCPU, set up to start unprivileged at `entry` (the system region
    /// is already in `memory`).
    fn create(&self, memory: &GuestMemory, entry: u64) -> Result<(Box<dyn Vcpu>, VcpuFacts), VmError>;
}

/// A created vCPU (with its VM: dropping it closes both).
pub trait Vcpu: Send {
    /// Runs the vCPU until its next exit and decodes that exit.
    fn run(&mut self, shared: &Shared) -> Result<GuestExit, VmError>;

    /// Moves console bytes the hypervisor buffered into the log.
    fn drain_console(&mut self, shared: &Shared);
}

/// The vCPU thread: runs the guest until it stops, then records why.
pub fn run_vcpu(mut vcpu: Box<dyn Vcpu>, shared: Arc<Shared>) {
    let reason = run_loop(vcpu.as_mut(), &shared);
    vcpu.drain_console(&shared);
    // Close the vCPU and the VM before the last reference to guest memory
    // can go away (the memory slot must never outlive its mapping).
    drop(vcpu);
    let _ = shared.ended.set(reason);
    shared.wake();
}

fn run_loop(vcpu: &mut dyn Vcpu, shared: &Shared) -> VmError {
    use std::sync::atomic::Ordering;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return VmError::Stopped;
        }
        let exit = match vcpu.run(shared) {
            Ok(exit) => exit,
            Err(reason) => return reason,
        };
        shared.exits.fetch_add(1, Ordering::Relaxed);
        vcpu.drain_console(shared);
        if let Err(reason) = exits::handle(exit, shared) {
            return reason;
        }
    }
}
