//! The one interface a hypervisor backend implements: create the VM with
//! guest memory mapped, create and initialise its one vCPU to start
//! unprivileged at the image's entry, run it and report each exit decoded
//! as a [`GuestExit`], and kick it out of the guest. Everything else —
//! image validation, measurement, attestation, the mailbox, the exit
//! handling, the judge client — is shared and arch-neutral.
//!
//! Backends: KVM on x86_64 and on aarch64 (Linux), and
//! Hypervisor.framework on Apple Silicon (macOS); `crate::backend` picks
//! the host's.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::VmError;
use super::exits::{self, GuestExit};
use super::image::{PagePermissions, WINDOW_PAGES};
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

/// What a backend needs to start the guard's vCPU.
#[derive(Clone, Copy, Debug)]
pub struct VcpuStart<'a> {
    /// The image's entry point.
    pub entry: u64,
    /// The permissions of the image's window pages (a backend that places
    /// guest memory elsewhere than guest-physical 0 rebuilds the system
    /// region's tables for its place).
    pub pages: &'a [PagePermissions; WINDOW_PAGES],
}

/// A VM [`Hypervisor::make_vm`] made, for [`Hypervisor::create`]: only
/// the backend that made it knows its type.
pub type MadeVm = Box<dyn std::any::Any + Send>;

/// A hypervisor this host can use.
pub trait Hypervisor: Sync {
    /// Its name as the evidence gives it (`kvm`, `hvf`).
    fn name(&self) -> &'static str;

    /// Makes the VM with `memory` mapped, on any thread, ahead of its vCPU,
    /// so that the booting thread's work overlaps the vCPU thread's; `None`
    /// where [`Hypervisor::create`] makes the VM with its vCPU (the
    /// default; Hypervisor.framework).
    fn make_vm(&self, memory: &GuestMemory) -> Result<Option<MadeVm>, VmError> {
        let _ = memory;
        Ok(None)
    }

    /// Creates the VM's one vCPU, set up to start unprivileged at
    /// `start.entry` (the system region for guest-physical 0 is already in
    /// `memory`): in `made`, what [`Hypervisor::make_vm`] made, else in a VM
    /// it makes with `memory` mapped.
    ///
    /// Called on the thread that will run the vCPU: Hypervisor.framework
    /// binds a vCPU to the thread that created it.
    fn create(
        &self,
        made: Option<MadeVm>,
        memory: &GuestMemory,
        start: VcpuStart<'_>,
    ) -> Result<(Box<dyn Vcpu>, VcpuFacts), VmError>;

    /// The rate of the guest's counter, in kHz, once known.
    fn counter_khz(&self) -> Option<u32>;
}

/// A created vCPU (with its VM: dropping it closes both). It stays on the
/// thread that created it.
pub trait Vcpu {
    /// Runs the vCPU until its next exit and decodes that exit.
    fn run(&mut self, shared: &Shared) -> Result<GuestExit, VmError>;

    /// Moves console bytes the hypervisor buffered into the log.
    fn drain_console(&mut self, shared: &Shared);

    /// What takes this vCPU out of the guest from another thread.
    fn kicker(&self) -> Box<dyn Kick>;
}

/// Takes a running vCPU out of the guest (it then checks the stop flag).
pub trait Kick: Send + Sync {
    /// Kicks the vCPU run by `thread`, which has not been joined.
    fn kick(&self, thread: &JoinHandle<()>);
}

/// The vCPU thread, once the vCPU exists: runs the guest until it stops,
/// then records why.
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
