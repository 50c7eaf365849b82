//! How the threads around a guard are scheduled. Where the vCPU thread
//! runs: off the core of the thread that waits for its answers (the guard
//! spins on the mailbox while busy; sharing a core with the thread that
//! waits for its answer would cost a scheduler time slice per request).
//! And how the waiting thread sleeps: its short sleeps end on time
//! ([`PreciseSleeps`]). Linux only (macOS has no CPU affinity and no timer
//! slack): elsewhere these do nothing.

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

/// Keeps `thread` off `cpu` when it may run elsewhere. Called by the
/// thread that spawned it, before it runs: the kernel queues it on another
/// core at once, so it starts there while its spawner works on, rather than
/// waiting on the spawner's core (where the scheduler queues a new thread)
/// and then moving itself.
#[cfg(target_os = "linux")]
pub fn keep_off_cpu(thread: &std::thread::JoinHandle<()>, cpu: usize) {
    use std::os::unix::thread::JoinHandleExt;
    // `pthread_t` is an integer in glibc and a pointer in musl.
    #[allow(clippy::unnecessary_cast)]
    let handle = thread.as_pthread_t() as libc::pthread_t;
    // SAFETY: `handle` names a thread that has not been joined or detached
    // (its `JoinHandle` is borrowed), so it is valid; `set` is a plain
    // bitmask owned by this frame, and the libc calls read/write exactly
    // `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::pthread_getaffinity_np(handle, size, &mut set) != 0 {
            return;
        }
        if cpu < libc::CPU_SETSIZE as usize && libc::CPU_ISSET(cpu, &set) && libc::CPU_COUNT(&set) > 1 {
            libc::CPU_CLR(cpu, &mut set);
            libc::pthread_setaffinity_np(handle, size, &set);
        }
    }
}

/// Keeps `thread` off `cpu`: not possible here.
#[cfg(not(target_os = "linux"))]
pub fn keep_off_cpu(_thread: &std::thread::JoinHandle<()>, _cpu: usize) {}

/// While it lives, the calling thread's sleeps end as soon as the kernel
/// can end them (its timer slack is 1 ns, not the default 50 µs): a thread
/// that sleeps 10 µs at a time waiting for the guard wakes after ≈ 10 µs,
/// not ≈ 60. The thread's own slack comes back when it is dropped. Linux
/// only (elsewhere it does nothing).
pub struct PreciseSleeps {
    #[cfg(target_os = "linux")]
    previous: Option<libc::c_ulong>,
}

impl PreciseSleeps {
    /// Sets the calling thread's timer slack to 1 ns, remembering its own.
    #[cfg(target_os = "linux")]
    pub fn new() -> Self {
        let previous = timer_slack();
        if previous.is_some() {
            set_timer_slack(1);
        }
        PreciseSleeps { previous }
    }

    /// Nothing to set here.
    #[cfg(not(target_os = "linux"))]
    pub fn new() -> Self {
        PreciseSleeps {}
    }
}

impl Default for PreciseSleeps {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PreciseSleeps {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(previous) = self.previous {
            set_timer_slack(previous);
        }
    }
}

/// The calling thread's timer slack, ns.
#[cfg(target_os = "linux")]
fn timer_slack() -> Option<libc::c_ulong> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack.
    let slack = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    libc::c_ulong::try_from(slack).ok()
}

/// Sets the calling thread's timer slack, ns.
#[cfg(target_os = "linux")]
fn set_timer_slack(ns: libc::c_ulong) {
    // SAFETY: PR_SET_TIMERSLACK takes the slack by value and changes only
    // the calling thread's timers.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn precise_sleeps_last_as_long_as_their_guard() {
        std::thread::spawn(|| {
            let own = timer_slack();
            assert!(own.is_some_and(|ns| ns > 1), "{own:?}");
            {
                let _precise = PreciseSleeps::new();
                assert_eq!(timer_slack(), Some(1));
            }
            assert_eq!(timer_slack(), own);
        })
        .join()
        .unwrap();
    }
}
