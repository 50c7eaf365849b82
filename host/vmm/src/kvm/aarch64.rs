//! KVM on aarch64: the VM with the vCPU at EL0 behind VMM-built
//! translation tables and vectors (docs/guest-abi.md §9), and the decoding
//! of its exits: stores to the MMIO doorbells.

use kvm_bindings::kvm_vcpu_init;
use kvm_ioctls::{Cap, IoEventAddress, VcpuExit, VcpuFd, VmFd};
use vigil_abi::{layout, mmio};

use super::{KvmPlatform, buffer_console, drain_console, hypervisor_error, kvm_err};
use crate::VmError;
use crate::aarch64::{self as arch, Doorbell, Exception, system};
use crate::exits::GuestExit;
use crate::hypervisor::{Kick, Vcpu, VcpuFacts};
use crate::shared::Shared;

/// `KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE`: a core register
/// is this plus its byte offset in `struct kvm_regs` / 4.
const CORE: u64 = 0x6030_0000_0010_0000;
/// `KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG`.
const SYSREG: u64 = 0x6030_0000_0013_0000;

const fn core(offset: u64) -> u64 {
    CORE | (offset / 4)
}

const fn sysreg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    SYSREG | (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2
}

// `struct kvm_regs`: `regs[31]`, `sp` (SP_EL0), `pc`, `pstate`, then
// `sp_el1`, `elr_el1`, `spsr[5]`.
const X0: u64 = core(0);
const SP_EL0: u64 = core(31 * 8);
const PC: u64 = core(32 * 8);
const PSTATE: u64 = core(33 * 8);
const SP_EL1: u64 = core(34 * 8);
const ELR_EL1: u64 = core(35 * 8);
const SPSR_EL1: u64 = core(36 * 8);

const SCTLR_EL1: u64 = sysreg(3, 0, 1, 0, 0);
const CPACR_EL1: u64 = sysreg(3, 0, 1, 0, 2);
const TTBR0_EL1: u64 = sysreg(3, 0, 2, 0, 0);
const TCR_EL1: u64 = sysreg(3, 0, 2, 0, 2);
const ESR_EL1: u64 = sysreg(3, 0, 5, 2, 0);
const FAR_EL1: u64 = sysreg(3, 0, 6, 0, 0);
const MAIR_EL1: u64 = sysreg(3, 0, 10, 2, 0);
const VBAR_EL1: u64 = sysreg(3, 0, 12, 0, 0);
const CNTKCTL_EL1: u64 = sysreg(3, 0, 14, 1, 0);
const ID_AA64ISAR0_EL1: u64 = sysreg(3, 0, 0, 6, 0);

/// The vCPU and its VM.
struct KvmVcpu {
    vcpu: VcpuFd,
    // Dropped after the vCPU (field order).
    _vm: VmFd,
}

fn set(vcpu: &VcpuFd, id: u64, value: u64, what: &'static str) -> Result<(), VmError> {
    vcpu.set_one_reg(id, &value.to_le_bytes()).map(|_| ()).map_err(kvm_err(what))
}

fn get(vcpu: &VcpuFd, id: u64) -> Option<u64> {
    let mut bytes = [0u8; 8];
    vcpu.get_one_reg(id, &mut bytes).ok().map(|_| u64::from_le_bytes(bytes))
}

/// The rate of the generic timer's counter (`CNTFRQ_EL0`), in kHz.
fn counter_khz() -> Option<u32> {
    let hz: u64;
    // SAFETY: CNTFRQ_EL0 is readable at EL0 (Linux lets user space read
    // the counter frequency); the read has no side effect.
    unsafe { core::arch::asm!("mrs {hz}, cntfrq_el0", hz = out(reg) hz, options(nomem, nostack, preserves_flags)) };
    u32::try_from(hz / 1000).ok().filter(|&khz| khz > 0)
}

/// Creates the vCPU in `vm` (guest memory already mapped) and sets it up
/// to start at EL0.
pub(super) fn create(platform: &KvmPlatform, vm: VmFd, entry: u64) -> Result<(Box<dyn Vcpu>, VcpuFacts), VmError> {
    let mut vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
    let mut init = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut init).map_err(kvm_err("KVM_ARM_PREFERRED_TARGET"))?;
    vcpu.vcpu_init(&init).map_err(kvm_err("KVM_ARM_VCPU_INIT"))?;
    buffer_console(platform, &vm, &mut vcpu, Cap::CoalescedMmio, IoEventAddress::Mmio(mmio::CONSOLE))?;
    for (id, value, what) in [
        (MAIR_EL1, arch::MAIR_EL1, "setting MAIR_EL1"),
        (TCR_EL1, arch::TCR_EL1, "setting TCR_EL1"),
        (TTBR0_EL1, system::L1, "setting TTBR0_EL1"),
        (VBAR_EL1, system::VECTORS, "setting VBAR_EL1"),
        (CPACR_EL1, arch::CPACR_EL1, "setting CPACR_EL1"),
        (CNTKCTL_EL1, arch::CNTKCTL_EL1, "setting CNTKCTL_EL1"),
        (SCTLR_EL1, arch::SCTLR_EL1, "setting SCTLR_EL1"),
        (SP_EL1, 0, "setting SP_EL1"),
        (SP_EL0, layout::STACK_TOP, "setting SP_EL0"),
        (X0, layout::BOOT_INFO, "setting X0"),
        (PC, entry, "setting PC"),
        (PSTATE, arch::PSTATE_EL0, "setting PSTATE"),
    ] {
        set(&vcpu, id, value, what)?;
    }
    let isar0 = get(&vcpu, ID_AA64ISAR0_EL1).unwrap_or(0);
    let facts = VcpuFacts { entropy_flags: arch::entropy_flags(isar0), counter_khz: counter_khz() };
    Ok((Box::new(KvmVcpu { vcpu, _vm: vm }), facts))
}

/// An exit, copied out of `kvm_run` so the vCPU can be used again.
enum Exit {
    /// A byte written to the console register.
    Console(u8),
    Store(Doorbell),
    Read,
    Interrupted,
    Stop(String),
}

impl Vcpu for KvmVcpu {
    fn kicker(&self) -> Box<dyn Kick> {
        super::kicker()
    }

    fn drain_console(&mut self, shared: &Shared) {
        drain_console(&mut self.vcpu, shared, mmio::CONSOLE);
    }

    fn run(&mut self, shared: &Shared) -> Result<GuestExit, VmError> {
        let vcpu = &mut self.vcpu;
        let exit = match vcpu.run() {
            Ok(VcpuExit::MmioWrite(address, data)) => match arch::doorbell(address, data) {
                Doorbell::Console(byte) => Exit::Console(byte),
                other => Exit::Store(other),
            },
            Ok(VcpuExit::MmioRead(_, data)) => {
                // Nothing there to read: zeros.
                data.fill(0);
                Exit::Read
            }
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(other) => Exit::Stop(format!("{other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Interrupted,
            Err(source) => return Err(hypervisor_error("KVM_RUN", source)),
        };
        if let Exit::Console(byte) = exit {
            // KVM exits for a console write when the ring is full: what the
            // ring holds was written before it.
            drain_console(vcpu, shared, mmio::CONSOLE);
            shared.console.lock().unwrap_or_else(|e| e.into_inner()).push(&[byte]);
            return Ok(GuestExit::Continue);
        }
        let pc = get(vcpu, PC).unwrap_or(0);
        Ok(match exit {
            Exit::Interrupted | Exit::Read => GuestExit::Continue,
            Exit::Store(Doorbell::Hypercall(code)) => GuestExit::Hypercall { code, pc },
            Exit::Store(Doorbell::Fault(vector)) => GuestExit::Fault(fault_report(vcpu, shared, vector, pc)),
            Exit::Store(Doorbell::Forbidden { address, len }) => {
                GuestExit::ForbiddenWrite { space: "MMIO address", address, len, pc }
            }
            Exit::Console(_) | Exit::Store(Doorbell::Console(_)) => GuestExit::Continue,
            Exit::Stop(name) => GuestExit::Stop(VmError::UnexpectedExit { exit: name, pc }),
        })
    }
}

/// What the vectors reported: the vector index from the store, and the
/// exception registers.
fn fault_report(vcpu: &VcpuFd, shared: &Shared, vector: u32, pc: u64) -> crate::FaultReport {
    let exception = Exception {
        vector,
        esr: get(vcpu, ESR_EL1).unwrap_or(0),
        far: get(vcpu, FAR_EL1).unwrap_or(0),
        elr: get(vcpu, ELR_EL1).unwrap_or(0),
        spsr: get(vcpu, SPSR_EL1).unwrap_or(0),
        sp: get(vcpu, SP_EL0).unwrap_or(0),
    };
    exception.vector_report(pc, |at| shared.image.symbolize(at).map(|(name, offset)| format!("{name}+{offset:#x}")))
}
