//! KVM on x86_64: the VM with the vCPU at CPL3 (docs/guest-abi.md §3),
//! and the decoding of its exits.

use kvm_bindings::kvm_segment;
use kvm_ioctls::{Cap, IoEventAddress, SyncReg, VcpuExit, VcpuFd, VmFd};
use vigil_abi::{layout, ports};

use super::{KvmPlatform, buffer_console, drain_console, hypervisor_error, kvm_err};
use crate::exits::GuestExit;
use crate::hypervisor::{Kick, Vcpu, VcpuFacts};
use crate::shared::Shared;
use crate::x86_64::{self, selector, system};
use crate::{FaultReport, VmError};

/// The vCPU and its VM.
struct KvmVcpu {
    vcpu: VcpuFd,
    // Dropped after the vCPU (field order).
    _vm: VmFd,
}

/// Creates the vCPU in `vm` (guest memory already mapped) and sets it up
/// to start at CPL3.
pub(super) fn create(platform: &KvmPlatform, vm: VmFd, entry: u64) -> Result<(Box<dyn Vcpu>, VcpuFacts), VmError> {
    let mut vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
    buffer_console(platform, &vm, &mut vcpu, Cap::CoalescedPio, IoEventAddress::Pio(u64::from(ports::COM1_BASE)))?;
    vcpu.set_cpuid2(&platform.cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
    // Each vCPU ioctl costs ≈ 10 µs under nested KVM: what every vCPU has
    // alike (the TSC rate, the reset state) is asked of the first one only,
    // and the general registers and XCR0 are written whole, not read first.
    let counter_khz = match platform.counter_khz.get() {
        Some(Some(khz)) => Some(*khz),
        _ => vcpu.get_tsc_khz().ok().filter(|&khz| khz > 0),
    };
    let mut sregs = match platform.reset_sregs.get() {
        Some(sregs) => *sregs,
        None => {
            let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
            *platform.reset_sregs.get_or_init(|| sregs)
        }
    };
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
    let xcr0 = supported_xcr0(&platform.cpuid) & x86_64::XCR0_WANTED;
    // x87 and SSE state are the least XSAVE may enable.
    let xsave = xcr0 & 0b11 == 0b11;
    sregs.cr4 = x86_64::CR4 | if xsave { x86_64::CR4_OSXSAVE } else { 0 };
    sregs.efer = x86_64::EFER;
    // With `KVM_CAP_SYNC_REGS` the special and general registers go in
    // `kvm_run`'s register area, which the first `KVM_RUN` loads (two
    // vCPU ioctls fewer); without it, each is set by its ioctl.
    let sync_regs = platform.kvm.check_extension(Cap::SyncRegs);
    if !sync_regs {
        vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;
    }
    if xsave {
        let mut xcrs = kvm_bindings::kvm_xcrs { nr_xcrs: 1, ..Default::default() };
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = xcr0;
        vcpu.set_xcrs(&xcrs).map_err(kvm_err("KVM_SET_XCRS"))?;
    }

    // Every general register zero but these (docs/guest-abi.md §3).
    let regs = kvm_bindings::kvm_regs {
        rip: entry,
        rsp: layout::STACK_TOP,
        rdi: layout::BOOT_INFO,
        rflags: x86_64::RFLAGS,
        ..Default::default()
    };
    if sync_regs {
        let area = vcpu.sync_regs_mut();
        area.sregs = sregs;
        area.regs = regs;
        vcpu.set_sync_dirty_reg(SyncReg::SystemRegister);
        vcpu.set_sync_dirty_reg(SyncReg::Register);
    } else {
        vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
    }
    let facts = VcpuFacts { entropy_flags: x86_64::entropy_flags(), counter_khz };
    Ok((Box::new(KvmVcpu { vcpu, _vm: vm }), facts))
}

/// The XCR0 bits the vCPU supports (CPUID leaf 0xD, sub-leaf 0, EAX),
/// when its CPUID says it has XSAVE (leaf 1, ECX bit 26); 0 otherwise.
fn supported_xcr0(cpuid: &kvm_bindings::CpuId) -> u64 {
    let entries = cpuid.as_slice();
    let has_xsave = entries.iter().any(|e| e.function == 1 && e.ecx & (1 << 26) != 0);
    let leaf = entries.iter().find(|e| e.function == 0xD && e.index == 0);
    match leaf {
        Some(leaf) if has_xsave => u64::from(leaf.eax) | (u64::from(leaf.edx) << 32),
        _ => 0,
    }
}

/// An exit, copied out of `kvm_run` so the vCPU can be used again.
enum Exit {
    /// Bytes written to the console port.
    Console(Vec<u8>),
    Out(u16, [u8; 8], usize),
    In,
    Hlt,
    Shutdown,
    InternalError,
    FailEntry(u64),
    Interrupted,
    Other(String),
}

fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}

impl Vcpu for KvmVcpu {
    fn kicker(&self) -> Box<dyn Kick> {
        super::kicker()
    }

    fn drain_console(&mut self, shared: &Shared) {
        drain_console(&mut self.vcpu, shared, u64::from(ports::COM1_BASE));
    }

    fn run(&mut self, shared: &Shared) -> Result<GuestExit, VmError> {
        let vcpu = &mut self.vcpu;
        let exit = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                if port == ports::COM1_BASE {
                    Exit::Console(data.to_vec())
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
            Err(source) => return Err(hypervisor_error("KVM_RUN", source)),
        };
        Ok(match exit {
            Exit::Interrupted | Exit::In => GuestExit::Continue,
            Exit::Console(bytes) => {
                // KVM exits for a console write when the ring is full: what
                // the ring holds was written before it.
                drain_console(vcpu, shared, u64::from(ports::COM1_BASE));
                shared.console.lock().unwrap_or_else(|e| e.into_inner()).push(&bytes);
                GuestExit::Continue
            }
            Exit::Out(port, _, _) if port == ports::COM1_BASE => GuestExit::Continue,
            Exit::Out(port, _, _) if (ports::COM1_BASE + 1..ports::COM1_BASE + 8).contains(&port) => {
                GuestExit::Continue
            }
            Exit::Out(ports::HYPERCALL, bytes, 4) => GuestExit::Hypercall {
                code: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                pc: rip(vcpu),
            },
            Exit::Out(ports::FAULT, bytes, 1) => GuestExit::Fault(fault_report(vcpu, shared, bytes[0])),
            Exit::Out(port, _, len) => {
                GuestExit::ForbiddenWrite { space: "I/O port", address: u64::from(port), len, pc: rip(vcpu) }
            }
            Exit::Hlt => GuestExit::Stop(VmError::UnexpectedExit { exit: "HLT".into(), pc: rip(vcpu) }),
            Exit::Shutdown => GuestExit::Stop(VmError::TripleFault { pc: rip(vcpu) }),
            Exit::InternalError => GuestExit::Stop(VmError::InternalError { pc: rip(vcpu) }),
            Exit::FailEntry(reason) => GuestExit::Stop(VmError::FailEntry { reason }),
            Exit::Other(name) => GuestExit::Stop(VmError::UnexpectedExit { exit: name, pc: rip(vcpu) }),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::{CpuId, kvm_cpuid_entry2};

    fn cpuid(xsave: bool, leaf_d: Option<u32>) -> CpuId {
        let mut entries =
            vec![kvm_cpuid_entry2 { function: 1, ecx: if xsave { 1 << 26 } else { 0 }, ..Default::default() }];
        if let Some(eax) = leaf_d {
            entries.push(kvm_cpuid_entry2 { function: 0xD, index: 0, eax, ..Default::default() });
        }
        CpuId::from_entries(&entries).unwrap()
    }

    #[test]
    fn xcr0_is_what_the_vcpu_supports_and_nothing_past_avx() {
        // x87, SSE, AVX, MPX, AVX-512 supported: AVX-512 stays off.
        assert_eq!(supported_xcr0(&cpuid(true, Some(0x2FF))) & x86_64::XCR0_WANTED, 0b111);
        // No AVX: x87 and SSE only.
        assert_eq!(supported_xcr0(&cpuid(true, Some(0b11))) & x86_64::XCR0_WANTED, 0b11);
        // No XSAVE, or no leaf 0xD: nothing (CR4.OSXSAVE stays clear).
        assert_eq!(supported_xcr0(&cpuid(false, Some(0x2FF))), 0);
        assert_eq!(supported_xcr0(&cpuid(true, None)), 0);
    }
}
