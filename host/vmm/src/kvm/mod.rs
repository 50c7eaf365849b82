//! KVM back end: the process-wide KVM handle, the kick that takes a vCPU
//! thread out of `KVM_RUN`, and the per-architecture VM and vCPU set-up
//! and exit decoding ([`x86_64`] and [`aarch64`]: the guest's architecture
//! is the host's).

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use std::sync::OnceLock;
use std::thread::JoinHandle;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Cap, IoEventAddress, Kvm, VcpuFd, VmFd};

use super::VmError;
use super::hypervisor::{Hypervisor, Kick, MadeVm, Vcpu, VcpuFacts, VcpuStart};
use super::memory::GuestMemory;
use super::shared::Shared;

/// The process-wide KVM state.
pub struct KvmPlatform {
    kvm: Kvm,
    /// x86_64: `KVM_GET_SUPPORTED_CPUID`, cached (that ioctl alone costs
    /// about half a millisecond here).
    #[cfg(target_arch = "x86_64")]
    cpuid: kvm_bindings::CpuId,
    /// The guest counter's rate, known after the first vCPU.
    counter_khz: OnceLock<Option<u32>>,
    /// x86_64: an empty VM with one vCPU that never runs, kept for the
    /// process's lifetime (`None` if it could not be made: then nothing is
    /// lost but speed). KVM gives every x86 vCPU a local APIC, created
    /// software-disabled, and counts those in a kernel static key: the
    /// first vCPU of the system patches kernel text (with an IPI to every
    /// CPU) and the last one to go patches it back. Without a vCPU that
    /// stays, every guard boot and every shutdown pays both: measured here,
    /// boot → first answered ping 1.23–1.38 ms p50 without it, 1.03–1.27 ms
    /// with it (3 interleaved runs of 200 boots).
    #[cfg(target_arch = "x86_64")]
    _keeper: Option<(VmFd, VcpuFd)>,
    /// x86_64: the special registers of a vCPU fresh from `KVM_CREATE_VCPU`
    /// (the reset state, the same for every VM's vCPU 0), read from the
    /// first guard's vCPU: later vCPUs are set up without reading theirs
    /// (each vCPU ioctl costs ≈ 10 µs under nested KVM).
    #[cfg(target_arch = "x86_64")]
    reset_sregs: OnceLock<kvm_bindings::kvm_sregs>,
}

impl KvmPlatform {
    /// `KVM_GET_API_VERSION`.
    pub fn api_version(&self) -> i32 {
        self.kvm.get_api_version()
    }
}

impl Hypervisor for KvmPlatform {
    fn name(&self) -> &'static str {
        "kvm"
    }

    /// `KVM_CREATE_VM` and the memory slot: KVM lets any thread make them.
    fn make_vm(&self, memory: &GuestMemory) -> Result<Option<MadeVm>, VmError> {
        Ok(Some(Box::new(make_vm(self, memory)?)))
    }

    fn create(
        &self,
        made: Option<MadeVm>,
        memory: &GuestMemory,
        start: VcpuStart<'_>,
    ) -> Result<(Box<dyn Vcpu>, VcpuFacts), VmError> {
        let vm = match made.map(|made| made.downcast::<VmFd>()) {
            Some(Ok(vm)) => *vm,
            Some(Err(_)) => {
                return Err(VmError::Hypervisor {
                    what: "creating a vCPU in a VM another back end made",
                    source: std::io::ErrorKind::InvalidInput.into(),
                });
            }
            None => make_vm(self, memory)?,
        };
        install_kick_handler();
        #[cfg(target_arch = "x86_64")]
        let created = x86_64::create(self, vm, start.entry);
        #[cfg(target_arch = "aarch64")]
        let created = aarch64::create(self, vm, start.entry);
        let (vcpu, facts) = created?;
        self.counter_khz.get_or_init(|| facts.counter_khz);
        Ok((vcpu, facts))
    }

    /// The guest counter's rate (the TSC on x86_64, `CNTVCT` on aarch64)
    /// as KVM reports it (known after the first vCPU).
    fn counter_khz(&self) -> Option<u32> {
        self.counter_khz.get().copied().flatten()
    }
}

static PLATFORM: OnceLock<Result<KvmPlatform, (std::io::ErrorKind, i32, String)>> = OnceLock::new();

/// Opens `/dev/kvm` once per process.
pub fn platform() -> Result<&'static KvmPlatform, VmError> {
    let cached = PLATFORM.get_or_init(|| {
        let kvm = Kvm::new().map_err(|e| (std::io::Error::from(e).kind(), e.errno(), e.to_string()))?;
        #[cfg(target_arch = "x86_64")]
        let cpuid = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| (std::io::ErrorKind::Other, e.errno(), format!("KVM_GET_SUPPORTED_CPUID: {e}")))?;
        #[cfg(target_arch = "x86_64")]
        let keeper = kvm.create_vm().ok().and_then(|vm| vm.create_vcpu(0).ok().map(|vcpu| (vm, vcpu)));
        Ok(KvmPlatform {
            kvm,
            #[cfg(target_arch = "x86_64")]
            cpuid,
            counter_khz: OnceLock::new(),
            #[cfg(target_arch = "x86_64")]
            _keeper: keeper,
            #[cfg(target_arch = "x86_64")]
            reset_sregs: OnceLock::new(),
        })
    });
    cached.as_ref().map_err(|(_, errno, message)| VmError::HypervisorUnavailable {
        hypervisor: "KVM",
        message: message.clone(),
        hint: kvm_hint(*errno),
    })
}

/// What to do about a failure to open `/dev/kvm`.
pub fn kvm_hint(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => {
            "/dev/kvm does not exist: enable hardware virtualisation (VT-x/AMD-V, or nested virtualisation for a VM; on arm64 a kernel booted at EL2) and load the kvm module (`modprobe kvm_intel` or `modprobe kvm_amd`)"
        }
        libc::EACCES | libc::EPERM => {
            "no permission on /dev/kvm: add your user to its group (`sudo usermod -aG kvm $USER`, then log in again) or run as root"
        }
        _ => "check that /dev/kvm exists and is readable and writable by this user",
    }
}

/// A failed KVM ioctl as the arch-neutral [`VmError::Hypervisor`].
fn hypervisor_error(what: &'static str, source: kvm_ioctls::Error) -> VmError {
    VmError::Hypervisor { what, source: std::io::Error::from_raw_os_error(source.errno()) }
}

/// Creates the VM with `memory` at guest-physical 0 (the part both
/// architectures share).
fn make_vm(platform: &KvmPlatform, memory: &GuestMemory) -> Result<VmFd, VmError> {
    let vm = platform.kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: memory.len() as u64,
        userspace_addr: memory.host_address(),
    };
    // SAFETY: `memory` is a live anonymous mapping of `memory.len()` bytes
    // that outlives the VM: the vCPU thread, which comes to own the VM,
    // drops it before its reference to the memory (`run_vcpu`), and a boot
    // that fails drops it while it still holds the memory itself.
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    Ok(vm)
}

/// Has KVM buffer console bytes written to `console` in the coalesced ring
/// (no exit per byte: under nested KVM each exit costs tens of
/// microseconds); [`drain_console`] empties it at every exit. Without the
/// capability (`cap`) every byte exits.
fn buffer_console(
    platform: &KvmPlatform,
    vm: &VmFd,
    vcpu: &mut VcpuFd,
    cap: Cap,
    console: IoEventAddress,
) -> Result<(), VmError> {
    if platform.kvm.check_extension(cap) {
        vm.register_coalesced_mmio(console, 1).map_err(kvm_err("KVM_REGISTER_COALESCED_MMIO"))?;
        vcpu.map_coalesced_mmio_ring().map_err(kvm_err("mapping the coalesced I/O ring"))?;
    }
    Ok(())
}

/// Moves console bytes KVM buffered in the coalesced ring (writes to
/// `console`) to the log.
fn drain_console(vcpu: &mut VcpuFd, shared: &Shared, console: u64) {
    let mut log = None;
    while let Ok(Some(entry)) = vcpu.coalesced_mmio_read() {
        if entry.phys_addr == console {
            let len = (entry.len as usize).min(entry.data.len());
            log.get_or_insert_with(|| shared.console.lock().unwrap_or_else(|e| e.into_inner()))
                .push(&entry.data[..len]);
        }
    }
}

/// `map_err` for a failed KVM ioctl named `what`.
fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VmError {
    move |source| hypervisor_error(what, source)
}

/// The signal that kicks a vCPU thread out of `KVM_RUN`.
fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

extern "C" fn ignore_signal(_: i32) {}

/// Installs the (empty) kick signal handler once, without `SA_RESTART`, so
/// that `KVM_RUN` returns `EINTR`.
fn install_kick_handler() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is an empty
        // `extern "C"` function (async-signal-safe).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as extern "C" fn(i32) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(kick_signal(), &action, std::ptr::null_mut());
        }
    });
}

/// Kicks a KVM vCPU with a signal to its thread: `KVM_RUN` returns `EINTR`.
struct SignalKick;

impl Kick for SignalKick {
    fn kick(&self, thread: &JoinHandle<()>) {
        use std::os::unix::thread::JoinHandleExt;
        // SAFETY: the thread has not been joined (the caller holds its
        // handle), so its pthread_t is valid; the signal's handler is
        // installed and empty.
        unsafe { libc::pthread_kill(thread.as_pthread_t() as libc::pthread_t, kick_signal()) };
    }
}

/// The kicker of every KVM vCPU.
fn kicker() -> Box<dyn Kick> {
    Box::new(SignalKick)
}
