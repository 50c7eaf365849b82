//! Probe for a usable hardware PMU: can this process count retired
//! instructions with `perf_event_open`? (Nested VMs here have none: the call
//! fails with ENOENT; cost records then say `source: "tsc"`.)

/// The outcome of the probe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PmuProbe {
    /// Hardware instruction counting works.
    pub hardware: bool,
    /// What happened.
    pub detail: String,
}

/// Tries to open a hardware instruction counter for this thread: only
/// Linux has `perf_event_open`.
#[cfg(not(target_os = "linux"))]
pub fn probe() -> PmuProbe {
    PmuProbe { hardware: false, detail: "perf_event_open is Linux-only; not counted on this system".into() }
}

/// Tries to open a hardware instruction counter for this thread.
#[cfg(target_os = "linux")]
pub fn probe() -> PmuProbe {
    // perf_event_attr for PERF_TYPE_HARDWARE / PERF_COUNT_HW_INSTRUCTIONS,
    // disabled, user space only.
    let mut attr = [0u8; 128];
    let size = attr.len() as u32;
    attr[0..4].copy_from_slice(&0u32.to_le_bytes()); // type: PERF_TYPE_HARDWARE
    attr[4..8].copy_from_slice(&size.to_le_bytes()); // size
    attr[8..16].copy_from_slice(&1u64.to_le_bytes()); // config: PERF_COUNT_HW_INSTRUCTIONS
    let flags: u64 = 1 | (1 << 5) | (1 << 6); // disabled, exclude_kernel, exclude_hv
    attr[40..48].copy_from_slice(&flags.to_le_bytes());
    // SAFETY: perf_event_open reads `size` bytes of `attr`, which lives for
    // the call; the returned descriptor is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return PmuProbe { hardware: false, detail: format!("perf_event_open(instructions) failed: {err}") };
    }
    // SAFETY: `fd` is a descriptor this function owns.
    unsafe { libc::close(fd as i32) };
    PmuProbe { hardware: true, detail: "perf_event_open(instructions) works".into() }
}
