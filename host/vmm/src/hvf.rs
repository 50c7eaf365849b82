//! Hypervisor.framework back end (macOS on Apple Silicon), through
//! `applevisor` (the `hypervisor` crate binds only the Intel-Mac VMX API).
//!
//! The framework allows one VM per process, with one guest-physical
//! address space. Each guard gets its own 256 MiB window of it: its memory
//! is mapped at the window's base, and its stage-1 tables (built by
//! [`crate::aarch64::system_region_at`]) translate the guard's usual
//! virtual addresses into that window only. A guard cannot name another
//! guard's window: its tables are not writable from EL0 and EL1 holds only
//! the vectors. Stage 2 mirrors the stage-1 permissions
//! ([`crate::aarch64::stage2_regions`]).
//!
//! A vCPU belongs to the thread that created it; [`Hypervisor::create`]
//! runs on the vCPU thread. Doorbell stores trap as stage-2 data aborts:
//! the syndrome, the guest-physical address and the register give the
//! store ([`crate::aarch64::trapped_access`]), decoded exactly as for KVM.
//!
//! The binary needs the `com.apple.security.hypervisor` entitlement
//! (`contrib/macos/vigil.entitlements`). Built and checked in CI for
//! `aarch64-apple-darwin`; not run there (no Mac): docs/design.md.

use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use applevisor::prelude::{
    FeatureReg, GicDisabled, HypervisorError, Reg, SysReg, Vcpu as HvVcpu, VcpuConfig, VcpuHandle, VirtualMachine,
    VirtualMachineInstance,
};
use applevisor_sys::{HV_MEMORY_EXEC, HV_MEMORY_READ, HV_MEMORY_WRITE, hv_exit_reason_t, hv_vm_map, hv_vm_unmap};
use vigil_abi::layout;

use crate::VmError;
use crate::aarch64::{self as arch, Doorbell, Exception, system};
use crate::exits::GuestExit;
use crate::hypervisor::{Hypervisor, Kick, MadeVm, Vcpu, VcpuFacts, VcpuStart};
use crate::memory::GuestMemory;
use crate::shared::Shared;

/// Bytes of guest-physical address space per guard.
pub const WINDOW: u64 = 256 << 20;
/// Windows (guards at once per process): 64 × 256 MiB = 16 GiB, inside
/// the 36-bit default address space.
pub const WINDOWS: usize = 64;

/// The process's one VM.
pub struct HvfPlatform {
    vm: VirtualMachineInstance<GicDisabled>,
    counter_khz: OnceLock<Option<u32>>,
    windows: Mutex<u64>,
}

static PLATFORM: OnceLock<Result<HvfPlatform, HypervisorError>> = OnceLock::new();

/// Creates the process's VM once.
pub fn platform() -> Result<&'static HvfPlatform, VmError> {
    let cached = PLATFORM.get_or_init(|| {
        VirtualMachine::new().map(|vm| HvfPlatform { vm, counter_khz: OnceLock::new(), windows: Mutex::new(0) })
    });
    cached.as_ref().map_err(|err| VmError::HypervisorUnavailable {
        hypervisor: "Hypervisor.framework",
        message: format!("hv_vm_create failed: {err}"),
        hint: hint(*err),
    })
}

/// What to do about a failure to create the VM.
fn hint(err: HypervisorError) -> &'static str {
    match err {
        HypervisorError::Denied => {
            "the binary lacks the com.apple.security.hypervisor entitlement: sign it with `codesign --force --sign - --entitlements contrib/macos/vigil.entitlements PATH-TO-vigil`"
        }
        HypervisorError::Unsupported => {
            "this Mac cannot run Hypervisor.framework VMs (it needs Apple Silicon and macOS 12.1 or later, and no nested VM without virtualisation)"
        }
        HypervisorError::Busy => "another VM already exists in this process",
        _ => {
            "check that this is macOS 12.1 or later on Apple Silicon and that the binary is signed with the hypervisor entitlement"
        }
    }
}

fn hvf_err(what: &'static str) -> impl Fn(HypervisorError) -> VmError {
    move |err| VmError::Hypervisor { what, source: std::io::Error::other(err.to_string()) }
}

/// The next ASID (never 0; 8 or 16 bits): one per guard boot, so a
/// translation a finished guard left in a TLB serves no later one until
/// the counter wraps (65,535 boots with 16-bit ASIDs).
fn next_asid(wide: bool) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let modulus = if wide { 0xFFFF } else { 0xFF };
    NEXT.fetch_add(1, Ordering::Relaxed) % modulus + 1
}

/// A reserved window, released on drop.
struct Window {
    platform: &'static HvfPlatform,
    index: usize,
}

impl Window {
    fn reserve(platform: &'static HvfPlatform) -> Result<Self, VmError> {
        let mut used = platform.windows.lock().unwrap_or_else(|e| e.into_inner());
        let index = (0..WINDOWS).find(|i| *used & (1 << i) == 0).ok_or_else(|| VmError::Hypervisor {
            what: "reserving a guest-physical window",
            source: std::io::Error::other(format!(
                "all {WINDOWS} windows are in use: at most {WINDOWS} guards at once"
            )),
        })?;
        *used |= 1 << index;
        Ok(Window { platform, index })
    }

    fn base(&self) -> u64 {
        self.index as u64 * WINDOW
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let mut used = self.platform.windows.lock().unwrap_or_else(|e| e.into_inner());
        *used &= !(1 << self.index);
    }
}

/// Guest memory mapped into a window, unmapped on drop; the window is
/// released only when every range was unmapped (else it stays reserved:
/// no later guard may be placed over a stale mapping).
struct Mapping {
    ranges: Vec<(u64, usize)>,
    window: Option<Window>,
}

impl Mapping {
    fn new(memory: &GuestMemory, window: Window, start: VcpuStart<'_>) -> Result<Self, VmError> {
        let base = window.base();
        let mut mapping = Mapping { ranges: Vec::new(), window: Some(window) };
        for region in arch::stage2_regions(start.pages) {
            let mut flags = HV_MEMORY_READ;
            if region.write {
                flags |= HV_MEMORY_WRITE;
            }
            if region.execute {
                flags |= HV_MEMORY_EXEC;
            }
            let (Ok(offset), Ok(len)) = (usize::try_from(region.start), usize::try_from(region.len)) else {
                return Err(hvf_err("hv_vm_map")(HypervisorError::BadArgument));
            };
            if offset.checked_add(len).is_none_or(|end| end > memory.len()) {
                return Err(hvf_err("hv_vm_map")(HypervisorError::BadArgument));
            }
            let host = (memory.host_address() as usize + offset) as *const c_void;
            // SAFETY: `host..host + len` lies inside `memory`, a live
            // mapping aligned to 2 MiB (a multiple of the 16 KiB host
            // page); the guard VM drops this mapping (and so unmaps it)
            // before the memory: the vCPU is dropped on its thread before
            // the last reference to the shared state goes.
            let status = unsafe { hv_vm_map(host, base + region.start, len, flags) };
            check(status).map_err(hvf_err("hv_vm_map"))?;
            mapping.ranges.push((base + region.start, len));
        }
        Ok(mapping)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let mut unmapped = true;
        for &(ipa, len) in &self.ranges {
            // SAFETY: unmaps a range this value mapped; the vCPU that used
            // it is already destroyed (field order in `HvfVcpu`).
            unmapped &= check(unsafe { hv_vm_unmap(ipa, len) }).is_ok();
        }
        if !unmapped {
            // Keep the window reserved for the life of the process.
            std::mem::forget(self.window.take());
        }
    }
}

fn check(status: applevisor_sys::hv_return_t) -> Result<(), HypervisorError> {
    if status == applevisor_sys::hv_error_t::HV_SUCCESS as applevisor_sys::hv_return_t {
        Ok(())
    } else {
        Err(HypervisorError::from(status))
    }
}

/// The vCPU with its mapped window. Fields drop in order: vCPU, then the
/// mapping (which releases the window).
struct HvfVcpu {
    vcpu: HvVcpu,
    mapping: Mapping,
}

impl HvfVcpu {
    fn window(&self) -> &Window {
        self.mapping.window.as_ref().expect("the window lives as long as the vCPU")
    }
}

/// The rate of the generic timer's counter (`CNTFRQ_EL0`), in kHz.
fn counter_khz() -> Option<u32> {
    let hz: u64;
    // SAFETY: CNTFRQ_EL0 is readable at EL0 (macOS lets user space read
    // the counter frequency); the read has no side effect.
    unsafe { core::arch::asm!("mrs {hz}, cntfrq_el0", hz = out(reg) hz, options(nomem, nostack, preserves_flags)) };
    u32::try_from(hz / 1000).ok().filter(|&khz| khz > 0)
}

impl Hypervisor for HvfPlatform {
    fn name(&self) -> &'static str {
        "hvf"
    }

    /// Makes the VM and its vCPU together (`make_vm` makes nothing here:
    /// `made` is always `None`).
    fn create(
        &self,
        _made: Option<MadeVm>,
        memory: &GuestMemory,
        start: VcpuStart<'_>,
    ) -> Result<(Box<dyn Vcpu>, VcpuFacts), VmError> {
        let platform: &'static HvfPlatform = platform()?;
        let window = Window::reserve(platform)?;
        let base = window.base();
        memory
            .write(layout::SYSTEM_BASE, &arch::system_region_at(start.pages, base))
            .map_err(|e| VmError::GuestProtocol(e.to_string()))?;
        let mapping = Mapping::new(memory, window, start)?;
        let config = VcpuConfig::default();
        let isar0 = config.get_feature_reg(FeatureReg::ID_AA64ISAR0_EL1).unwrap_or(0);
        // Every guard's translations carry an ASID of its own (its tables
        // mark them not global): 16-bit ASIDs where the CPU has them.
        let mmfr0 = config.get_feature_reg(FeatureReg::ID_AA64MMFR0_EL1).unwrap_or(0);
        let wide = (mmfr0 >> 4) & 0xF == 2;
        let asid = next_asid(wide);
        let tcr = if wide { arch::TCR_EL1 | arch::TCR_AS16 } else { arch::TCR_EL1 };
        let vcpu = self.vm.vcpu_with_config(config).map_err(hvf_err("hv_vcpu_create"))?;
        for (reg, value, what) in [
            (SysReg::MAIR_EL1, arch::MAIR_EL1, "setting MAIR_EL1"),
            (SysReg::TCR_EL1, tcr, "setting TCR_EL1"),
            (SysReg::TTBR0_EL1, (base + system::L1) | (asid << 48), "setting TTBR0_EL1"),
            (SysReg::VBAR_EL1, system::VECTORS, "setting VBAR_EL1"),
            (SysReg::CPACR_EL1, arch::CPACR_EL1, "setting CPACR_EL1"),
            (SysReg::CNTKCTL_EL1, arch::CNTKCTL_EL1, "setting CNTKCTL_EL1"),
            (SysReg::SCTLR_EL1, arch::SCTLR_EL1, "setting SCTLR_EL1"),
            (SysReg::SP_EL1, 0, "setting SP_EL1"),
            (SysReg::SP_EL0, layout::STACK_TOP, "setting SP_EL0"),
        ] {
            vcpu.set_sys_reg(reg, value).map_err(hvf_err(what))?;
        }
        for (reg, value, what) in [
            (Reg::X0, layout::BOOT_INFO, "setting X0"),
            (Reg::PC, start.entry, "setting PC"),
            (Reg::CPSR, arch::PSTATE_EL0, "setting CPSR"),
        ] {
            vcpu.set_reg(reg, value).map_err(hvf_err(what))?;
        }
        let facts = VcpuFacts { entropy_flags: arch::entropy_flags(isar0), counter_khz: counter_khz() };
        self.counter_khz.get_or_init(|| facts.counter_khz);
        Ok((Box::new(HvfVcpu { vcpu, mapping }), facts))
    }

    fn counter_khz(&self) -> Option<u32> {
        self.counter_khz.get().copied().flatten()
    }
}

/// Kicks with `hv_vcpus_exit`: the run returns with `CANCELED`.
struct HvfKick {
    vm: VirtualMachineInstance<GicDisabled>,
    vcpu: VcpuHandle,
}

impl Kick for HvfKick {
    fn kick(&self, _thread: &JoinHandle<()>) {
        // A vCPU already destroyed is skipped by `vcpus_exit`.
        let _ = self.vm.vcpus_exit(std::slice::from_ref(&self.vcpu));
    }
}

/// General register `n` (0–30).
fn x(n: u8) -> Option<Reg> {
    const X: [Reg; 31] = [
        Reg::X0,
        Reg::X1,
        Reg::X2,
        Reg::X3,
        Reg::X4,
        Reg::X5,
        Reg::X6,
        Reg::X7,
        Reg::X8,
        Reg::X9,
        Reg::X10,
        Reg::X11,
        Reg::X12,
        Reg::X13,
        Reg::X14,
        Reg::X15,
        Reg::X16,
        Reg::X17,
        Reg::X18,
        Reg::X19,
        Reg::X20,
        Reg::X21,
        Reg::X22,
        Reg::X23,
        Reg::X24,
        Reg::X25,
        Reg::X26,
        Reg::X27,
        Reg::X28,
        Reg::X29,
        Reg::X30,
    ];
    X.get(usize::from(n)).copied()
}

impl HvfVcpu {
    fn pc(&self) -> u64 {
        self.vcpu.get_reg(Reg::PC).unwrap_or(0)
    }

    /// Steps over the trapped instruction (every one is 4 bytes).
    fn skip(&self, pc: u64) -> Result<(), VmError> {
        self.vcpu.set_reg(Reg::PC, pc.wrapping_add(4)).map_err(hvf_err("setting PC"))
    }

    fn exception(&mut self, syndrome: u64, ipa: u64, shared: &Shared) -> Result<GuestExit, VmError> {
        let pc = self.pc();
        let unexpected = |exit: String| Ok(GuestExit::Stop(VmError::UnexpectedExit { exit, pc }));
        let access = match arch::trapped_access(syndrome) {
            Ok(access) => access,
            Err(why) => {
                let class = (syndrome >> 26) & 0x3F;
                return unexpected(format!("exception class {class:#x} (syndrome {syndrome:#x}): {why}"));
            }
        };
        // The address in the guard's own terms (its window's offset).
        let Some(address) = ipa.checked_sub(self.window().base()).filter(|&a| a < WINDOW) else {
            return unexpected(format!("an access at guest-physical {ipa:#x}, outside the guard's window"));
        };
        if !access.write {
            // Nothing there to read: zeros.
            if let Some(reg) = x(access.register) {
                self.vcpu.set_reg(reg, 0).map_err(hvf_err("setting a register"))?;
            }
            self.skip(pc)?;
            return Ok(GuestExit::Continue);
        }
        let value = match x(access.register) {
            Some(reg) => self.vcpu.get_reg(reg).map_err(hvf_err("reading a register"))?,
            None => 0,
        };
        let bytes = arch::stored_bytes(&access, value);
        self.skip(pc)?;
        Ok(match arch::doorbell(address, &bytes) {
            Doorbell::Console(byte) => {
                shared.console.lock().unwrap_or_else(|e| e.into_inner()).push(&[byte]);
                GuestExit::Continue
            }
            Doorbell::Hypercall(code) => GuestExit::Hypercall { code, pc },
            Doorbell::Fault(vector) => GuestExit::Fault(self.fault_report(shared, vector, pc)),
            Doorbell::Forbidden { address, len } => {
                GuestExit::ForbiddenWrite { space: "MMIO address", address, len, pc }
            }
        })
    }

    fn fault_report(&self, shared: &Shared, vector: u32, pc: u64) -> crate::FaultReport {
        let sys = |reg: SysReg| self.vcpu.get_sys_reg(reg).unwrap_or(0);
        let exception = Exception {
            vector,
            esr: sys(SysReg::ESR_EL1),
            far: sys(SysReg::FAR_EL1),
            elr: sys(SysReg::ELR_EL1),
            spsr: sys(SysReg::SPSR_EL1),
            sp: sys(SysReg::SP_EL0),
        };
        exception.vector_report(pc, |at| shared.image.symbolize(at).map(|(name, offset)| format!("{name}+{offset:#x}")))
    }
}

impl Vcpu for HvfVcpu {
    fn run(&mut self, shared: &Shared) -> Result<GuestExit, VmError> {
        self.vcpu.run().map_err(hvf_err("hv_vcpu_run"))?;
        let exit = self.vcpu.get_exit_info();
        match exit.reason {
            hv_exit_reason_t::CANCELED => Ok(GuestExit::Continue),
            hv_exit_reason_t::EXCEPTION => {
                self.exception(exit.exception.syndrome, exit.exception.physical_address, shared)
            }
            // The guard arms no timer; a pending one changes nothing.
            hv_exit_reason_t::VTIMER_ACTIVATED => Ok(GuestExit::Continue),
            hv_exit_reason_t::UNKNOWN => {
                Ok(GuestExit::Stop(VmError::UnexpectedExit { exit: "HV_EXIT_REASON_UNKNOWN".into(), pc: self.pc() }))
            }
        }
    }

    fn drain_console(&mut self, _shared: &Shared) {
        // Every console byte is a trapped store, logged as it happens.
    }

    fn kicker(&self) -> Box<dyn Kick> {
        Box::new(HvfKick { vm: self.window().platform.vm.clone(), vcpu: self.vcpu.get_handle() })
    }
}
