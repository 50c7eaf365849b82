//! KVM back end: the process-wide KVM handle (with `KVM_GET_SUPPORTED_CPUID`
//! cached), VM and vCPU creation, and the vCPU thread's run loop.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_segment, kvm_userspace_memory_region};
use kvm_ioctls::{Cap, IoEventAddress, Kvm, VcpuExit, VcpuFd, VmFd};
use vigil_abi::{layout, ports};

use super::exits::{self, GuestExit};
use super::memory::GuestMemory;
use super::shared::Shared;
use super::x86_64::{self, selector, system};
use super::{FaultReport, VmError};

/// The process-wide KVM state.
pub struct KvmPlatform {
    kvm: Kvm,
    cpuid: CpuId,
    tsc_khz: OnceLock<Option<u32>>,
}

impl KvmPlatform {
    /// `KVM_GET_API_VERSION`.
    pub fn api_version(&self) -> i32 {
        self.kvm.get_api_version()
    }

    /// TSC frequency as KVM reports it (known after the first vCPU).
    pub fn tsc_khz(&self) -> Option<u32> {
        self.tsc_khz.get().copied().flatten()
    }
}

static PLATFORM: OnceLock<Result<KvmPlatform, (std::io::ErrorKind, i32, String)>> = OnceLock::new();

/// Opens `/dev/kvm` once per process and caches the supported CPUID (that
/// ioctl alone costs about half a millisecond here).
pub fn platform() -> Result<&'static KvmPlatform, VmError> {
    let cached = PLATFORM.get_or_init(|| {
        let kvm = Kvm::new().map_err(|e| (std::io::Error::from(e).kind(), e.errno(), e.to_string()))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| (std::io::ErrorKind::Other, e.errno(), format!("KVM_GET_SUPPORTED_CPUID: {e}")))?;
        Ok(KvmPlatform { kvm, cpuid, tsc_khz: OnceLock::new() })
    });
    cached
        .as_ref()
        .map_err(|(_, errno, message)| VmError::KvmUnavailable { message: message.clone(), hint: kvm_hint(*errno) })
}

/// What to do about a failure to open `/dev/kvm`.
pub fn kvm_hint(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => {
            "/dev/kvm does not exist: enable hardware virtualisation (VT-x/AMD-V, or nested virtualisation for a VM) and load the kvm module (`modprobe kvm_intel` or `modprobe kvm_amd`)"
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

/// Creates the VM, maps guest memory and sets up the vCPU at CPL3.
pub fn create(platform: &KvmPlatform, memory: &GuestMemory, entry: u64) -> Result<(VmFd, VcpuFd), VmError> {
    let kvm_err = |what: &'static str| move |source: kvm_ioctls::Error| hypervisor_error(what, source);
    let vm = platform.kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    // No KVM_SET_TSS_ADDR: the guard never runs in real mode, and on these
    // machines that ioctl alone adds ~1 ms to a cold start.
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: memory.len() as u64,
        userspace_addr: memory.host_address(),
    };
    // SAFETY: `memory` is a live anonymous mapping of `memory.len()` bytes
    // that outlives the VM: `GuardVm` drops the VM (and joins the vCPU
    // thread) before the memory.
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
    // Console bytes are buffered by KVM in the coalesced ring (no exit per
    // byte: under nested KVM each exit from ring 3 costs ~30 µs); the ring
    // is drained at every exit. Without the capability every byte exits.
    if platform.kvm.check_extension(Cap::CoalescedPio) {
        vm.register_coalesced_mmio(IoEventAddress::Pio(u64::from(ports::COM1_BASE)), 1)
            .map_err(kvm_err("KVM_REGISTER_COALESCED_MMIO"))?;
        vcpu.map_coalesced_mmio_ring().map_err(kvm_err("mapping the coalesced I/O ring"))?;
    }
    vcpu.set_cpuid2(&platform.cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
    platform.tsc_khz.get_or_init(|| vcpu.get_tsc_khz().ok().filter(|&khz| khz > 0));

    let mut sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    let user = |selector: u16, type_: u8, l: u8, db: u8| kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_,
        present: 1,
        dpl: 3,
        db,
        s: 1,
        l,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.cs = user(selector::USER_CODE, 0xB, 1, 0);
    let data = user(selector::USER_DATA, 0x3, 0, 1);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = kvm_segment {
        base: system::TSS,
        limit: x86_64::TSS_LIMIT,
        selector: selector::TSS,
        type_: 0xB,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.ldt = kvm_segment { unusable: 1, type_: 0x2, present: 0, ..sregs.ldt };
    sregs.gdt.base = system::GDT;
    sregs.gdt.limit = x86_64::GDT_LIMIT;
    sregs.idt.base = system::IDT;
    sregs.idt.limit = x86_64::IDT_LIMIT;
    sregs.cr0 = x86_64::CR0;
    sregs.cr3 = system::PML4;
    sregs.cr4 = x86_64::CR4;
    sregs.efer = x86_64::EFER;
    vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;

    let mut regs = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
    regs.rip = entry;
    regs.rsp = layout::STACK_TOP;
    regs.rdi = layout::BOOT_INFO;
    regs.rflags = x86_64::RFLAGS;
    vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
    Ok((vm, vcpu))
}

/// The signal that kicks a vCPU thread out of `KVM_RUN`.
fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

extern "C" fn ignore_signal(_: i32) {}

/// Installs the (empty) kick signal handler once, without `SA_RESTART`, so
/// that `KVM_RUN` returns `EINTR`.
pub fn install_kick_handler() {
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

/// Sends the kick signal to the vCPU thread.
pub fn kick(thread: &JoinHandle<()>) {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: the thread has not been joined (we hold its handle), so its
    // pthread_t is valid; the signal's handler is installed and empty.
    unsafe { libc::pthread_kill(thread.as_pthread_t(), kick_signal()) };
}

/// An exit, copied out of `kvm_run` so the vCPU can be used again.
enum Exit {
    Out(u16, [u8; 8], usize),
    In,
    Hlt,
    Shutdown,
    InternalError,
    FailEntry(u64),
    Interrupted,
    Other(String),
}

/// The CPU the calling thread runs on.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no arguments and only returns a number.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// Keeps the calling thread off `cpu` when it may run elsewhere. The guard
/// spins on the mailbox while busy: sharing a core with the thread that
/// waits for its answer would cost a scheduler time slice per request.
fn avoid_cpu(cpu: usize) {
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

/// The vCPU thread: runs the guest until it stops, then records why.
/// `client_cpu` is where the booting thread ran: the vCPU avoids it.
pub fn run_vcpu(mut vcpu: VcpuFd, vm: VmFd, shared: Arc<Shared>, client_cpu: Option<usize>) {
    if let Some(cpu) = client_cpu {
        avoid_cpu(cpu);
    }
    let reason = run_loop(&mut vcpu, &shared);
    drain_console(&mut vcpu, &shared);
    // Close the vCPU and the VM before the last reference to guest memory
    // can go away (the memory slot must never outlive its mapping).
    drop(vcpu);
    drop(vm);
    let _ = shared.ended.set(reason);
    shared.wake();
}

/// Moves console bytes KVM buffered in the coalesced ring to the log.
fn drain_console(vcpu: &mut VcpuFd, shared: &Shared) {
    let mut console = None;
    while let Ok(Some(entry)) = vcpu.coalesced_mmio_read() {
        if entry.phys_addr == u64::from(ports::COM1_BASE) {
            let len = (entry.len as usize).min(entry.data.len());
            console
                .get_or_insert_with(|| shared.console.lock().unwrap_or_else(|e| e.into_inner()))
                .push(&entry.data[..len]);
        }
    }
}

fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}

fn run_loop(vcpu: &mut VcpuFd, shared: &Shared) -> VmError {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return VmError::Stopped;
        }
        let exit = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                if port == ports::COM1_BASE {
                    shared.console.lock().unwrap_or_else(|e| e.into_inner()).push(data);
                    Exit::Out(port, [0; 8], 0)
                } else {
                    let mut bytes = [0; 8];
                    let len = data.len().min(8);
                    bytes[..len].copy_from_slice(&data[..len]);
                    Exit::Out(port, bytes, data.len())
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                // COM1 reads: the line status register says "transmitter
                // empty"; everything else reads as zero.
                data.fill(0);
                if port == ports::COM1_BASE + 5 {
                    data.fill(0x60);
                }
                Exit::In
            }
            Ok(VcpuExit::Hlt) => Exit::Hlt,
            Ok(VcpuExit::Shutdown) => Exit::Shutdown,
            Ok(VcpuExit::InternalError) => Exit::InternalError,
            Ok(VcpuExit::FailEntry(reason, _)) => Exit::FailEntry(reason),
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(other) => Exit::Other(format!("{other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Interrupted,
            Err(source) => return hypervisor_error("KVM_RUN", source),
        };
        shared.exits.fetch_add(1, Ordering::Relaxed);
        drain_console(vcpu, shared);
        let exit = match exit {
            Exit::Interrupted | Exit::In => GuestExit::Continue,
            Exit::Out(port, _, _) if port == ports::COM1_BASE => GuestExit::Continue,
            Exit::Out(port, _, _) if (ports::COM1_BASE + 1..ports::COM1_BASE + 8).contains(&port) => {
                GuestExit::Continue
            }
            Exit::Out(ports::HYPERCALL, bytes, 4) => GuestExit::Hypercall {
                code: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                pc: rip(vcpu),
            },
            Exit::Out(ports::FAULT, bytes, 1) => GuestExit::Fault(fault_report(vcpu, shared, bytes[0])),
            Exit::Out(port, _, len) => GuestExit::ForbiddenWrite { port, len, pc: rip(vcpu) },
            Exit::Hlt => GuestExit::Stop(VmError::UnexpectedExit { exit: "HLT".into(), pc: rip(vcpu) }),
            Exit::Shutdown => GuestExit::Stop(VmError::TripleFault { pc: rip(vcpu) }),
            Exit::InternalError => GuestExit::Stop(VmError::InternalError { pc: rip(vcpu) }),
            Exit::FailEntry(reason) => GuestExit::Stop(VmError::FailEntry { reason }),
            Exit::Other(name) => GuestExit::Stop(VmError::UnexpectedExit { exit: name, pc: rip(vcpu) }),
        };
        if let Err(reason) = exits::handle(exit, shared) {
            return reason;
        }
    }
}

/// Reads what a fault stub reported: the vector from the port write, the
/// exception frame from the ring-0 stack, CR2 from the special registers.
fn fault_report(vcpu: &VcpuFd, shared: &Shared, vector: u8) -> FaultReport {
    let regs = vcpu.get_regs().ok();
    let cr2 = vcpu.get_sregs().map(|s| s.cr2).unwrap_or(0);
    let mut frame = [0u64; 6];
    let mut frame_ok = false;
    if let Some(regs) = &regs {
        let words = if x86_64::has_error_code(vector) { 6 } else { 5 };
        // The frame lies on the ring-0 stack; anything else means the stub
        // did not get there the normal way.
        if regs.rsp >= system::STACK && regs.rsp + words as u64 * 8 <= system::STACK_TOP {
            frame_ok = (0..words).all(|i| match shared.memory.read_u64(regs.rsp + i as u64 * 8) {
                Ok(word) => {
                    frame[i] = word;
                    true
                }
                Err(_) => false,
            });
            if frame_ok && words == 5 {
                frame.copy_within(0..5, 1);
                frame[0] = 0;
            }
        }
    }
    let (error_code, rip, cs, rsp) = if frame_ok {
        (x86_64::has_error_code(vector).then_some(frame[0]), frame[1], frame[2], frame[4])
    } else {
        (None, regs.as_ref().map(|r| r.rip).unwrap_or(0), 0, 0)
    };
    FaultReport {
        vector,
        name: x86_64::exception_name(vector),
        error_code,
        pc: rip,
        from_user: cs & 3 == 3,
        sp: rsp,
        fault_address: (vector == 14).then_some(cr2),
        symbol: shared.image.symbolize(rip).map(|(name, offset)| format!("{name}+{offset:#x}")),
    }
}
