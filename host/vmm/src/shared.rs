//! The state the client side of a guard VM and its vCPU thread share,
//! whatever the hypervisor: guest memory, the image, the mailbox hand-off
//! counters, the sleep/wake hand-off, console output, the attestation
//! context, and why the vCPU stopped.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::VmError;
use super::console::ConsoleLog;
use super::image::GuestImage;
use super::memory::GuestMemory;

/// State shared between the client and the vCPU thread.
pub struct Shared {
    /// Guest RAM.
    pub memory: GuestMemory,
    /// The image, for fault symbolization.
    pub image: Arc<GuestImage>,
    /// The last request sequence number the host posted.
    pub posted: AtomicU64,
    /// The vCPU thread waits for a request (after a `SLEEP` hypercall).
    pub sleeping: AtomicBool,
    /// Asked to stop.
    pub stop: AtomicBool,
    /// Number of `SLEEP` hypercalls served.
    pub sleeps: AtomicU64,
    /// Number of VM exits.
    pub exits: AtomicU64,
    /// Set once, when the vCPU thread ends.
    pub ended: OnceLock<VmError>,
    /// Guards the sleep/wake hand-off.
    pub wake_lock: Mutex<()>,
    /// Signalled on a new request, on stop, and when the vCPU thread ends.
    pub wake: Condvar,
    /// Console output.
    pub console: Mutex<ConsoleLog>,
    /// Measurements and platform key for the `ATTEST` hypercall.
    pub attestation: super::attestation::AttestationContext,
}

impl Shared {
    /// Wakes the vCPU thread if it sleeps (or is about to).
    pub fn wake(&self) {
        let _guard = self.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }
}
