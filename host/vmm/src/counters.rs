//! Counting what a thread costs: its CPU time (the kernel's task clock,
//! read through the thread's CPU-time clock), and, where a PMU exists,
//! hardware events counted with `perf_event_open` — for a vCPU thread,
//! guest-only (`exclude_host`). A counter that cannot be had is absent,
//! with the reason; nothing is estimated (docs/cost.md).

use std::thread::JoinHandle;

/// A hardware event counted with `perf_event_open`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardwareEvent {
    /// The counter's name in cost records.
    pub name: &'static str,
    /// `PERF_COUNT_HW_*`.
    config: u64,
}

/// The hardware events cost records carry.
pub const HARDWARE_EVENTS: [HardwareEvent; 3] = [
    HardwareEvent { name: "cycles", config: 0 },
    HardwareEvent { name: "instructions", config: 1 },
    HardwareEvent { name: "branch_misses", config: 5 },
];

/// A counter that could not be opened, and why (`no PMU`, `not
/// permitted`, `unsupported`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Absent {
    /// The counter.
    pub name: &'static str,
    /// Why.
    pub reason: String,
}

/// One reading of a thread's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// CPU time of the thread so far, in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Hardware counts so far, in [`ThreadCounters::hardware`] order;
    /// `None` where the counter could not be read (a pinned event that
    /// lost its counter is in error and reads nothing).
    pub hardware: Vec<Option<u64>>,
}

/// The counters of one thread.
pub struct ThreadCounters {
    cpu_clock: Option<libc::clockid_t>,
    hardware: Vec<(HardwareEvent, std::os::fd::OwnedFd, &'static str)>,
    absent: Vec<Absent>,
    /// `absent`, shared with what each batch's cost carries.
    shared_absent: std::sync::OnceLock<std::sync::Arc<[Absent]>>,
}

impl ThreadCounters {
    /// Counters of the thread behind `thread`, whose kernel thread id is
    /// `tid` when known. `guest_only` counts hardware events in the guest
    /// only (a vCPU thread). The caller reads them only while the thread
    /// runs (once it has ended, its CPU clock no longer names it).
    pub fn for_thread(thread: &JoinHandle<()>, tid: Option<i32>, guest_only: bool) -> Self {
        let (cpu_clock, why) = match thread_cpu_clock(thread) {
            Ok(clock) => (Some(clock), None),
            Err(why) => (None, Some(why)),
        };
        let mut counters =
            ThreadCounters { cpu_clock, hardware: Vec::new(), absent: Vec::new(), shared_absent: Default::default() };
        if let Some(reason) = why {
            counters.absent.push(Absent { name: "cpu_ns", reason });
        }
        counters.open_hardware(tid, guest_only);
        counters
    }

    /// Counters of the calling thread (the in-process judge).
    pub fn for_current_thread() -> Self {
        let mut counters = ThreadCounters {
            cpu_clock: Some(libc::CLOCK_THREAD_CPUTIME_ID),
            hardware: Vec::new(),
            absent: Vec::new(),
            shared_absent: Default::default(),
        };
        counters.open_hardware(Some(0), false);
        counters
    }

    /// The hardware counters open, with their source.
    pub fn hardware(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.hardware.iter().map(|(event, _, source)| (event.name, *source))
    }

    /// The counters that could not be had, and why.
    pub fn absent(&self) -> &[Absent] {
        &self.absent
    }

    /// [`ThreadCounters::absent`], shared (a reference count, no copy).
    pub fn absent_shared(&self) -> std::sync::Arc<[Absent]> {
        self.shared_absent.get_or_init(|| self.absent.clone().into()).clone()
    }

    /// Reads every counter.
    pub fn read(&self) -> Reading {
        let cpu_ns = self.cpu_clock.and_then(|clock| {
            let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: `now` is a valid timespec the call writes.
            let status = unsafe { libc::clock_gettime(clock, &mut now) };
            (status == 0).then(|| now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
        });
        let hardware = self.hardware.iter().map(|(_, fd, _)| read_count(fd)).collect();
        Reading { cpu_ns, hardware }
    }

    #[cfg(target_os = "linux")]
    fn open_hardware(&mut self, tid: Option<i32>, guest_only: bool) {
        let Some(tid) = tid else {
            for event in HARDWARE_EVENTS {
                self.absent.push(Absent { name: event.name, reason: "the thread's id is not known".into() });
            }
            return;
        };
        for event in HARDWARE_EVENTS {
            let opened =
                open_event(event, tid, guest_only).map(|fd| (fd, if guest_only { "perf:guest" } else { "perf:user" }));
            match opened {
                Ok((fd, source)) => self.hardware.push((event, fd, source)),
                Err(reason) => self.absent.push(Absent { name: event.name, reason }),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open_hardware(&mut self, _tid: Option<i32>, _guest_only: bool) {
        for event in HARDWARE_EVENTS {
            self.absent.push(Absent { name: event.name, reason: "unsupported (perf_event_open is Linux-only)".into() });
        }
    }
}

/// The CPU-time clock of `thread` (not joined).
#[cfg(target_os = "linux")]
fn thread_cpu_clock(thread: &JoinHandle<()>) -> Result<libc::clockid_t, String> {
    use std::os::unix::thread::JoinHandleExt;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread has not been joined (the caller holds its handle),
    // so its pthread_t is valid; `clock` is written on success.
    let status = unsafe { libc::pthread_getcpuclockid(thread.as_pthread_t() as libc::pthread_t, &mut clock) };
    if status == 0 { Ok(clock) } else { Err(format!("pthread_getcpuclockid failed ({status})")) }
}

/// Another thread's CPU-time clock: not offered by this system.
#[cfg(not(target_os = "linux"))]
fn thread_cpu_clock(_thread: &JoinHandle<()>) -> Result<libc::clockid_t, String> {
    Err("unsupported (no CPU-time clock for another thread on this system)".into())
}

/// The kernel thread id of the calling thread (Linux).
#[cfg(target_os = "linux")]
pub fn current_tid() -> Option<i32> {
    // SAFETY: gettid has no arguments and only returns a number.
    Some(unsafe { libc::gettid() })
}

/// The kernel thread id of the calling thread: not used off Linux.
#[cfg(not(target_os = "linux"))]
pub fn current_tid() -> Option<i32> {
    None
}

/// `PERF_FLAG_FD_CLOEXEC` (not in the `libc` crate).
#[cfg(target_os = "linux")]
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

#[cfg(target_os = "linux")]
fn open_event(event: HardwareEvent, tid: i32, guest_only: bool) -> Result<std::os::fd::OwnedFd, String> {
    use std::os::fd::FromRawFd;
    // struct perf_event_attr (PERF_ATTR_SIZE_VER5 and later accept 128
    // bytes, zero beyond what a kernel knows): type, size, config, then
    // the flag bits at offset 40.
    let mut attr = [0u8; 128];
    let size = attr.len() as u32;
    attr[0..4].copy_from_slice(&0u32.to_le_bytes()); // PERF_TYPE_HARDWARE
    attr[4..8].copy_from_slice(&size.to_le_bytes());
    attr[8..16].copy_from_slice(&event.config.to_le_bytes());
    // pinned (2): the event has a counter of its own or reads nothing —
    // never a multiplexed, scaled-down count; exclude_hv (6); guest only:
    // exclude_host (19); else exclude_kernel (5).
    let flags: u64 = (1 << 2) | (1 << 6) | if guest_only { 1 << 19 } else { 1 << 5 };
    attr[40..48].copy_from_slice(&flags.to_le_bytes());
    // SAFETY: perf_event_open reads `size` bytes of `attr`, which lives
    // for the call; a returned descriptor is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), tid, -1, -1, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let reason = match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENODEV) => "no PMU, or the PMU lacks this event",
            Some(libc::EACCES | libc::EPERM) => "not permitted",
            _ => "unsupported",
        };
        return Err(format!("{reason} (perf_event_open: {err})"));
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

fn read_count(fd: &std::os::fd::OwnedFd) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut value = [0u8; 8];
    // SAFETY: reads at most 8 bytes into `value`, from a descriptor we own.
    let n = unsafe { libc::read(fd.as_raw_fd(), value.as_mut_ptr().cast(), value.len()) };
    (n == 8).then(|| u64::from_ne_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_clock_of_a_busy_thread_advances_and_absent_counters_say_why() {
        let counters = ThreadCounters::for_current_thread();
        let before = counters.read();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = counters.read();
        assert!(after.cpu_ns.unwrap() > before.cpu_ns.unwrap());
        assert_eq!(after.hardware.len(), counters.hardware().count());
        // Every hardware event is either open or absent with a reason.
        assert_eq!(counters.hardware().count() + counters.absent().len(), HARDWARE_EVENTS.len());
        for absent in counters.absent() {
            assert!(!absent.reason.is_empty());
        }
    }
}
