//! Where the vCPU thread runs: off the core of the thread that waits for
//! its answers. The guard spins on the mailbox while busy; sharing a core
//! with the thread that waits for its answer would cost a scheduler time
//! slice per request. Linux only (macOS has no CPU affinity): elsewhere
//! these do nothing.

/// The CPU the calling thread runs on.
#[cfg(target_os = "linux")]
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no arguments and only returns a number.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// The CPU the calling thread runs on: not known here.
#[cfg(not(target_os = "linux"))]
pub fn current_cpu() -> Option<usize> {
    None
}

/// Keeps the calling thread off `cpu` when it may run elsewhere.
#[cfg(target_os = "linux")]
pub fn avoid_cpu(cpu: usize) {
    // SAFETY: `set` is a plain bitmask owned by this frame; the libc calls
    // read/write exactly `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return;
        }
        if cpu < libc::CPU_SETSIZE as usize && libc::CPU_ISSET(cpu, &set) && libc::CPU_COUNT(&set) > 1 {
            libc::CPU_CLR(cpu, &mut set);
            libc::sched_setaffinity(0, size, &set);
        }
    }
}

/// Keeps the calling thread off `cpu`: not possible here.
#[cfg(not(target_os = "linux"))]
pub fn avoid_cpu(_cpu: usize) {}
