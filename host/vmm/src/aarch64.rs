//! aarch64 guests: the system region the VMM builds (stage-1 translation
//! tables and the EL1 vector table), the system-register values the vCPU
//! starts with, and the decoding of a fault the vectors report. Shared by
//! every aarch64 backend (KVM, Hypervisor.framework); pure data, tested on
//! any host. docs/guest-abi.md §9 is the specification.

use vigil_abi::{LARGE_PAGE, layout, mmio};

use crate::image::{PagePermissions, WINDOW_PAGES};

/// Addresses inside the system region `[0, 2 MiB)`.
pub mod system {
    /// Level-1 table (`TTBR0_EL1`): one entry, `[0, 1 GiB)`.
    pub const L1: u64 = 0x1000;
    /// Level-2 table for `[0, 1 GiB)`: 2 MiB blocks.
    pub const L2: u64 = 0x2000;
    /// Level-3 table for `[0, 2 MiB)`: 4 KiB pages (only the vectors).
    pub const L3: u64 = 0x3000;
    /// The EL1 vector table (`VBAR_EL1`), 16 entries of 0x80 bytes.
    pub const VECTORS: u64 = 0x8000;
    /// Bytes of the region the VMM writes.
    pub const USED: usize = 0x9000;
}

/// The virtual address size: 39 bits (`T0SZ` = 25), so a walk starts at
/// level 1.
pub const T0SZ: u64 = 25;

/// `TCR_EL1`: `T0SZ` 25, inner/outer write-back write-allocate walks,
/// inner shareable, 4 KiB granule; `TTBR1` walks disabled (`EPD1`, and
/// `T1SZ` 25); 36-bit intermediate physical addresses (`IPS` = 1).
pub const TCR_EL1: u64 = T0SZ | (1 << 8) | (1 << 10) | (3 << 12) | (T0SZ << 16) | (1 << 23) | (1 << 32);

/// `MAIR_EL1`: attribute 0 normal memory write-back (0xFF), attribute 1
/// Device-nGnRE (0x04).
pub const MAIR_EL1: u64 = 0x04FF;

/// Attribute index of normal memory.
const ATTR_NORMAL: u64 = 0;
/// Attribute index of device memory.
const ATTR_DEVICE: u64 = 1;

/// `SCTLR_EL1`: the ARMv8.0 RES1 bits (11, 20, 22, 23 = `SPAN`: PAN is not
/// set on exception entry, 28, 29), MMU (`M`), data and instruction caches
/// (`C`, `I`), stack alignment checks at EL1 and EL0 (`SA`, `SA0`), EL0
/// `DC ZVA` (`DZE`) and `CTR_EL0` (`UCT`), and `WXN`: a writable page is
/// never executable.
pub const SCTLR_EL1: u64 = (1 << 11)
    | (1 << 20)
    | (1 << 22)
    | (1 << 23)
    | (1 << 28)
    | (1 << 29)
    | 1
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 12)
    | (1 << 14)
    | (1 << 15)
    | (1 << 19);

/// `CPACR_EL1`: FP/SIMD at EL0 and EL1 without traps (`FPEN` = 3).
pub const CPACR_EL1: u64 = 3 << 20;

/// `CNTKCTL_EL1`: EL0 reads the virtual counter (`EL0VCTEN`).
pub const CNTKCTL_EL1: u64 = 1 << 1;

/// `PSTATE` at the first instruction: EL0t, D, A, I, F masked.
pub const PSTATE_EL0: u64 = 0x3C0;

// Stage-1 descriptor bits (4 KiB granule).
const VALID: u64 = 1 << 0;
/// Level 1/2: a table; level 3: a page.
const TABLE_OR_PAGE: u64 = 1 << 1;
const ACCESS_FLAG: u64 = 1 << 10;
const INNER_SHAREABLE: u64 = 3 << 8;
/// AP = 01: EL1 and EL0 read-write.
const AP_RW: u64 = 1 << 6;
/// AP = 10: EL1 read-only, EL0 none.
const AP_EL1_RO: u64 = 2 << 6;
/// AP = 11: EL1 and EL0 read-only.
const AP_RO: u64 = 3 << 6;
/// Never executable at EL1.
const PXN: u64 = 1 << 53;
/// Never executable at EL0.
const UXN: u64 = 1 << 54;

/// The access permission bits of a descriptor.
pub const AP_MASK: u64 = 3 << 6;

/// A 2 MiB block of normal memory for EL0.
fn user_block(address: u64, write: bool, execute: bool) -> u64 {
    let ap = if write { AP_RW } else { AP_RO };
    let exec = if execute { PXN } else { PXN | UXN };
    address | VALID | (ATTR_NORMAL << 2) | INNER_SHAREABLE | ACCESS_FLAG | ap | exec
}

fn put_u32(buf: &mut [u8], at: u64, value: u32) {
    buf[at as usize..at as usize + 4].copy_from_slice(&value.to_le_bytes());
}
fn put_u64(buf: &mut [u8], at: u64, value: u64) {
    buf[at as usize..at as usize + 8].copy_from_slice(&value.to_le_bytes());
}

/// The instructions of vector entry `index`: `mov w0, #index; movz x1,
/// #FAULT[31:16], lsl 16; movk x1, #FAULT[15:0]; str w0, [x1]; b .` — a
/// store to the fault register, which exits to the VMM.
pub fn vector_stub(index: u32) -> [u32; 5] {
    let fault = mmio::FAULT;
    let movz_w0 = 0x5280_0000 | (index << 5);
    let movz_x1_hi = 0xD2A0_0000 | (((fault >> 16) as u32 & 0xFFFF) << 5) | 1;
    let movk_x1_lo = 0xF280_0000 | ((fault as u32 & 0xFFFF) << 5) | 1;
    let str_w0_x1 = 0xB900_0020;
    let branch_self = 0x1400_0000;
    [movz_w0, movz_x1_hi, movk_x1_lo, str_w0_x1, branch_self]
}

/// Builds the system region's used bytes `[0, system::USED)` for an image
/// whose window pages have `pages` permissions, with guest memory at
/// guest-physical 0.
pub fn system_region(pages: &[PagePermissions; WINDOW_PAGES]) -> Vec<u8> {
    system_region_leaves(pages, 0)
}

/// Not global (`nG`): a translation cached under one ASID serves no other.
pub const NOT_GLOBAL: u64 = 1 << 11;

/// `TCR_EL1.AS`: 16-bit ASIDs.
pub const TCR_AS16: u64 = 1 << 36;

/// [`system_region`] for guest memory placed at guest-physical `base` (a
/// multiple of the 2 MiB block size): every virtual address `va` of the
/// layout translates to `base + va`, so the guard sees the same addresses
/// wherever its memory is. Its tables are found at `base + system::L1`
/// (`TTBR0_EL1`). This is for guards that share one guest-physical space
/// (Hypervisor.framework): every translation is marked not global — the
/// window at 0 too — so that, each with its own ASID in `TTBR0_EL1`, no
/// guard can hit a TLB entry of another.
pub fn system_region_at(pages: &[PagePermissions; WINDOW_PAGES], base: u64) -> Vec<u8> {
    let mut buf = system_region_leaves(pages, base);
    {
        // Leaves only: table descriptors have no nG bit (bit 11 is ignored
        // in them, but stays clear).
        for at in (system::L2..system::L2 + 0x1000).step_by(8) {
            let d = u64::from_le_bytes(buf[at as usize..at as usize + 8].try_into().unwrap_or_default());
            if d & 0b11 == 0b01 {
                put_u64(&mut buf, at, d | NOT_GLOBAL);
            }
        }
        for at in (system::L3..system::L3 + 0x1000).step_by(8) {
            let d = u64::from_le_bytes(buf[at as usize..at as usize + 8].try_into().unwrap_or_default());
            if d & 0b11 == 0b11 {
                put_u64(&mut buf, at, d | NOT_GLOBAL);
            }
        }
    }
    buf
}

fn system_region_leaves(pages: &[PagePermissions; WINDOW_PAGES], base: u64) -> Vec<u8> {
    let mut buf = vec![0u8; system::USED];
    // L1[0] -> L2; L2[0] -> L3 (EL1-only 4 KiB pages: the vectors alone);
    // other L2 entries: 2 MiB blocks with the permissions of §1/§2.
    put_u64(&mut buf, system::L1, (base + system::L2) | VALID | TABLE_OR_PAGE);
    put_u64(&mut buf, system::L2, (base + system::L3) | VALID | TABLE_OR_PAGE);
    let vectors = (base + system::VECTORS)
        | VALID
        | TABLE_OR_PAGE
        | (ATTR_NORMAL << 2)
        | INNER_SHAREABLE
        | ACCESS_FLAG
        | AP_EL1_RO
        | UXN;
    put_u64(&mut buf, system::L3 + (system::VECTORS / 0x1000) * 8, vectors);
    let mut block = |address: u64, descriptor: u64| {
        put_u64(&mut buf, system::L2 + (address / LARGE_PAGE) * 8, descriptor);
    };
    block(layout::BOOT_INFO, user_block(base + layout::BOOT_INFO, false, false));
    for (i, perms) in pages.iter().enumerate() {
        if perms.present {
            let address = layout::IMAGE_BASE + i as u64 * LARGE_PAGE;
            block(address, user_block(base + address, perms.write, perms.execute));
        }
    }
    for (start, size, write) in [
        (layout::STACK_BASE, layout::STACK_TOP - layout::STACK_BASE, true),
        (layout::MAILBOX_BASE, layout::MAILBOX_SIZE, true),
        (layout::POLICY_BASE, layout::POLICY_MAX, false),
    ] {
        let mut address = start;
        while address < start + size {
            block(address, user_block(base + address, write, false));
            address += LARGE_PAGE;
        }
    }
    // The doorbell block: device memory, EL0 and EL1 read-write, never
    // executable. No guest memory backs it.
    let device = (base + mmio::BASE) | VALID | (ATTR_DEVICE << 2) | ACCESS_FLAG | AP_RW | PXN | UXN;
    block(mmio::BASE, device);
    // Vectors: four groups (current EL with SP0, current EL with SPx,
    // lower EL AArch64, lower EL AArch32) of synchronous, IRQ, FIQ, SError.
    for index in 0..16u32 {
        let entry = system::VECTORS + u64::from(index) * 0x80;
        for (i, word) in vector_stub(index).iter().enumerate() {
            put_u32(&mut buf, entry + i as u64 * 4, *word);
        }
    }
    buf
}

/// Stage-2 access to one range of guest memory (read is always allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2 {
    /// Guest-physical offset from the memory's base.
    pub start: u64,
    /// Bytes.
    pub len: u64,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

/// The stage-2 mapping of guest memory, for a hypervisor that lets the
/// VMM choose it per range (Hypervisor.framework; KVM maps one read-write
/// slot and relies on stage 1): the same permissions as the stage-1
/// tables, so that W^X and the read-only regions hold even if stage 1
/// were subverted. The stack guard and absent image pages are not mapped.
pub fn stage2_regions(pages: &[PagePermissions; WINDOW_PAGES]) -> Vec<Stage2> {
    let region = |start: u64, len: u64, write: bool, execute: bool| Stage2 { start, len, write, execute };
    let mut regions = vec![
        // Tables (read by the walker) and vectors (executed at EL1).
        region(layout::SYSTEM_BASE, LARGE_PAGE, false, true),
        region(layout::BOOT_INFO, LARGE_PAGE, false, false),
    ];
    for (i, perms) in pages.iter().enumerate() {
        if perms.present {
            let start = layout::IMAGE_BASE + i as u64 * LARGE_PAGE;
            regions.push(region(start, LARGE_PAGE, perms.write, perms.execute && !perms.write));
        }
    }
    regions.extend([
        region(layout::STACK_BASE, layout::STACK_TOP - layout::STACK_BASE, true, false),
        region(layout::MAILBOX_BASE, layout::MAILBOX_SIZE, true, false),
        region(layout::POLICY_BASE, layout::POLICY_MAX, false, false),
    ]);
    regions
}

/// What the 16 vector entries are, by index.
pub fn vector_name(index: u32) -> &'static str {
    const NAMES: [&str; 16] = [
        "synchronous (EL1, SP0)",
        "IRQ (EL1, SP0)",
        "FIQ (EL1, SP0)",
        "SError (EL1, SP0)",
        "synchronous (EL1)",
        "IRQ (EL1)",
        "FIQ (EL1)",
        "SError (EL1)",
        "synchronous (EL0)",
        "IRQ (EL0)",
        "FIQ (EL0)",
        "SError (EL0)",
        "synchronous (EL0, AArch32)",
        "IRQ (EL0, AArch32)",
        "FIQ (EL0, AArch32)",
        "SError (EL0, AArch32)",
    ];
    NAMES.get(index as usize).copied().unwrap_or("unknown vector")
}

/// The exception class of `ESR_EL1`, named.
pub fn exception_class_name(esr: u64) -> &'static str {
    match (esr >> 26) & 0x3F {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "WFI/WFE trapped",
        0x07 => "FP/SIMD access trapped",
        0x0E => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "system register access trapped",
        0x20 => "instruction abort from EL0",
        0x21 => "instruction abort from EL1",
        0x22 => "PC alignment fault",
        0x24 => "data abort from EL0",
        0x25 => "data abort from EL1",
        0x26 => "SP alignment fault",
        0x2F => "SError",
        0x3C => "BRK",
        _ => "other exception",
    }
}

/// Whether `esr` is an instruction or data abort, whose `FAR_EL1` holds
/// the faulting address.
pub fn has_fault_address(esr: u64) -> bool {
    matches!((esr >> 26) & 0x3F, 0x20 | 0x21 | 0x24 | 0x25 | 0x22)
}

/// The boot-info entropy flags for a vCPU whose `ID_AA64ISAR0_EL1` is
/// `isar0`: RNDR when its field (bits 63:60) is at least 1.
pub fn entropy_flags(isar0: u64) -> u32 {
    if (isar0 >> 60) & 0xF >= 1 { vigil_abi::boot_flags::RNDR_PRESENT } else { 0 }
}

/// What a store to the MMIO block means (a data-abort exit, decoded the
/// same by every aarch64 backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doorbell {
    /// A console byte.
    Console(u8),
    /// A hypercall code.
    Hypercall(u32),
    /// The vectors reported exception entry `n`.
    Fault(u32),
    /// A store the ABI does not define (another address or width).
    Forbidden {
        /// Where.
        address: u64,
        /// How many bytes.
        len: usize,
    },
}

/// Decodes a store of `data` to `address`.
pub fn doorbell(address: u64, data: &[u8]) -> Doorbell {
    let word = |d: &[u8]| u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    match (address, data.len()) {
        (mmio::CONSOLE, 1) => Doorbell::Console(data[0]),
        (mmio::HYPERCALL, 4) => Doorbell::Hypercall(word(data)),
        (mmio::FAULT, 4) => Doorbell::Fault(word(data)),
        (address, len) => Doorbell::Forbidden { address, len },
    }
}

/// A guest memory access that trapped to the hypervisor (a stage-2 data
/// abort), as its syndrome (`ESR_EL2` on Hypervisor.framework) describes
/// it. KVM decodes this itself; Hypervisor.framework hands the VMM the
/// syndrome, the faulting address and the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrappedAccess {
    /// A store (else a load).
    pub write: bool,
    /// The general register holding (or receiving) the value: 0–30, or 31
    /// for the zero register.
    pub register: u8,
    /// Bytes accessed: 1, 2, 4 or 8.
    pub len: usize,
}

/// Decodes the syndrome of a data abort from a lower exception level.
/// Refused: another exception class, or a syndrome without a valid
/// instruction description (`ISV` = 0: a load/store pair, writeback, SIMD —
/// nothing the guard does to its doorbells), which cannot be emulated.
pub fn trapped_access(esr: u64) -> Result<TrappedAccess, &'static str> {
    if (esr >> 26) & 0x3F != 0x24 {
        return Err("not a data abort from a lower exception level");
    }
    if esr & (1 << 24) == 0 {
        return Err("a data abort without a valid instruction syndrome (ISV = 0)");
    }
    Ok(TrappedAccess {
        write: esr & (1 << 6) != 0,
        register: ((esr >> 16) & 0x1F) as u8,
        len: 1 << ((esr >> 22) & 0x3),
    })
}

/// The bytes a trapped store wrote: the low `access.len` bytes of the
/// value of its register (`value` — ignored for the zero register).
pub fn stored_bytes(access: &TrappedAccess, value: u64) -> Vec<u8> {
    let value = if access.register == 31 { 0 } else { value };
    value.to_le_bytes()[..access.len].to_vec()
}

/// An exception the vectors reported, as the VMM read it: the vector
/// index (0–15) and the registers the exception set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exception {
    /// Vector entry index.
    pub vector: u32,
    /// `ESR_EL1`: the syndrome.
    pub esr: u64,
    /// `FAR_EL1`: the faulting address (aborts only).
    pub far: u64,
    /// `ELR_EL1`: where the exception was taken.
    pub elr: u64,
    /// `SPSR_EL1`: the state it was taken from.
    pub spsr: u64,
    /// `SP_EL0` at the time.
    pub sp: u64,
}

impl Exception {
    /// Whether it came from the guard (EL0): `SPSR_EL1.M[3:0]` = 0.
    pub fn from_user(&self) -> bool {
        self.spsr & 0xF == 0
    }

    /// The report of a store to the fault register made at `pc`: the
    /// exception when the store came from the vector table (as only the
    /// vectors store there), else a report saying that the guard stored
    /// there itself. Every aarch64 backend decodes a fault this way.
    pub fn vector_report(&self, pc: u64, symbolize: impl Fn(u64) -> Option<String>) -> crate::FaultReport {
        let in_vectors = (system::VECTORS..system::VECTORS + 16 * 0x80).contains(&pc) && self.vector < 16;
        let mut report = self.report(symbolize);
        if !in_vectors {
            report.name = "a store to the fault register outside the vectors";
            report.pc = pc;
            report.from_user = true;
        }
        report
    }

    /// The fault report of it (`symbolize` names code addresses).
    pub fn report(&self, symbolize: impl Fn(u64) -> Option<String>) -> crate::FaultReport {
        crate::FaultReport {
            vector: self.vector as u8,
            name: if self.vector.is_multiple_of(4) { exception_class_name(self.esr) } else { vector_name(self.vector) },
            error_code: Some(self.esr),
            pc: self.elr,
            from_user: self.from_user(),
            sp: self.sp,
            fault_address: has_fault_address(self.esr).then_some(self.far),
            symbol: symbolize(self.elr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Vec<u8> {
        let mut pages = [PagePermissions::default(); WINDOW_PAGES];
        pages[0] = PagePermissions { present: true, write: false, execute: true };
        pages[2] = PagePermissions { present: true, write: true, execute: false };
        system_region(&pages)
    }

    fn u64_at(buf: &[u8], at: u64) -> u64 {
        u64::from_le_bytes(buf[at as usize..at as usize + 8].try_into().unwrap())
    }

    fn block(buf: &[u8], address: u64) -> u64 {
        u64_at(buf, system::L2 + address / LARGE_PAGE * 8)
    }

    #[test]
    fn tables_are_unmapped_and_vectors_are_el1_read_execute_only() {
        let buf = region();
        for page in 0..0x200u64 {
            let entry = u64_at(&buf, system::L3 + page * 8);
            if page * 0x1000 == system::VECTORS {
                assert_eq!(entry & AP_MASK, AP_EL1_RO, "vectors: EL1 read-only, EL0 no access");
                assert_eq!(entry & (UXN | PXN), UXN, "vectors: EL1 executable only");
            } else {
                assert_eq!(entry, 0, "page {:#x} of the system region must be unmapped", page * 0x1000);
            }
        }
        assert_eq!(u64_at(&buf, system::L1) & !0xFFF, system::L2);
        assert_eq!(u64_at(&buf, system::L2) & 0x3, 0x3, "the first 2 MiB go through a table");
    }

    #[test]
    fn blocks_follow_the_layout_and_segment_permissions() {
        let buf = region();
        let text = block(&buf, layout::IMAGE_BASE);
        assert_eq!(text & AP_MASK, AP_RO);
        assert_eq!(text & (UXN | PXN), PXN, "text: executable at EL0 only");
        assert_eq!(block(&buf, layout::IMAGE_BASE + LARGE_PAGE), 0, "gap unmapped");
        let data = block(&buf, layout::IMAGE_BASE + 2 * LARGE_PAGE);
        assert_eq!((data & AP_MASK, data & (UXN | PXN)), (AP_RW, UXN | PXN));
        assert_eq!(block(&buf, layout::STACK_GUARD), 0, "stack guard unmapped");
        assert_eq!(block(&buf, layout::MAILBOX_BASE) & AP_MASK, AP_RW);
        assert_eq!(block(&buf, layout::BOOT_INFO) & AP_MASK, AP_RO);
        assert_eq!(block(&buf, layout::POLICY_BASE) & AP_MASK, AP_RO);
        assert_eq!(block(&buf, layout::POLICY_BASE + layout::POLICY_MAX - LARGE_PAGE) & AP_MASK, AP_RO);
        let device = block(&buf, mmio::BASE);
        assert_eq!((device >> 2) & 7, ATTR_DEVICE);
        assert_eq!(device & (UXN | PXN), UXN | PXN);
        // Every writable block is never executable (and WXN is on anyway).
        for i in 0..512u64 {
            let d = block(&buf, i * LARGE_PAGE);
            if d & AP_MASK == AP_RW {
                assert_eq!(d & (UXN | PXN), UXN | PXN, "block {i}");
            }
        }
        assert_ne!(SCTLR_EL1 & (1 << 19), 0, "WXN");
        // The values docs/guest-abi.md §9 gives.
        assert_eq!((SCTLR_EL1, TCR_EL1, MAIR_EL1, PSTATE_EL0), (0x30D8_D81D, 0x1_0099_3519, 0x04FF, 0x3C0));
    }

    #[test]
    fn tables_for_memory_placed_elsewhere_translate_every_address_into_its_window() {
        // Hypervisor.framework places each guard's memory at its own
        // guest-physical window; the guard's virtual addresses stay.
        let mut pages = [PagePermissions::default(); WINDOW_PAGES];
        pages[0] = PagePermissions { present: true, write: false, execute: true };
        let base = 3 << 28;
        let at_zero = system_region(&pages);
        // Shared-space tables at 0 differ from KVM's only by nG.
        let shared_at_zero = system_region_at(&pages, 0);
        for at in (0..system::USED).step_by(8) {
            let (a, b) = (u64_at(&at_zero, at as u64), u64_at(&shared_at_zero, at as u64));
            assert_eq!(a & !NOT_GLOBAL, b & !NOT_GLOBAL, "{at:#x}");
        }
        let moved = system_region_at(&pages, base);
        assert_ne!(at_zero, moved);
        let output = |d: u64| d & 0x0000_FFFF_FFFF_F000;
        let mut valid = 0;
        for table in [system::L1, system::L2, system::L3] {
            for i in 0..512u64 {
                let (d0, d) = (u64_at(&at_zero, table + i * 8), u64_at(&moved, table + i * 8));
                assert_eq!(d0 & 1, d & 1, "same entries valid");
                if d & 1 == 1 {
                    valid += 1;
                    assert_eq!(output(d), output(d0) + base, "table {table:#x} entry {i}");
                    let leaf = (table == system::L2 && d & 0b11 == 0b01) || table == system::L3;
                    // Leaves become not global (each guard has its ASID);
                    // everything else stays.
                    assert_eq!(d & NOT_GLOBAL != 0, leaf, "table {table:#x} entry {i}");
                    assert_eq!(d & !output(d) & !NOT_GLOBAL, d0 & !output(d0), "same attributes");
                    assert!((base..base + (256 << 20)).contains(&output(d)), "inside the 256 MiB window");
                }
            }
        }
        assert!(valid > 10);
        // The vectors are the same instructions (they store to virtual
        // addresses).
        let v = system::VECTORS as usize;
        assert_eq!(at_zero[v..], moved[v..]);
    }

    #[test]
    fn stage2_mirrors_stage1_and_never_grants_write_and_execute() {
        let mut pages = [PagePermissions::default(); WINDOW_PAGES];
        pages[0] = PagePermissions { present: true, write: false, execute: true };
        pages[2] = PagePermissions { present: true, write: true, execute: false };
        // A hostile image asking for both gets write only.
        pages[3] = PagePermissions { present: true, write: true, execute: true };
        let regions = stage2_regions(&pages);
        let find = |at: u64| regions.iter().find(|r| (r.start..r.start + r.len).contains(&at)).copied();
        for r in &regions {
            assert!(!(r.write && r.execute), "{r:?}");
            assert!(r.start % LARGE_PAGE == 0 && r.len % LARGE_PAGE == 0);
            assert!(r.start + r.len <= layout::MEMORY_SIZE);
        }
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                assert!(a.start + a.len <= b.start || b.start + b.len <= a.start, "{a:?} overlaps {b:?}");
            }
        }
        assert_eq!(find(layout::STACK_GUARD), None, "the stack guard is unmapped");
        assert_eq!(find(layout::IMAGE_BASE + LARGE_PAGE), None, "absent image pages are unmapped");
        assert!(find(layout::IMAGE_BASE).unwrap().execute && !find(layout::IMAGE_BASE).unwrap().write);
        assert!(find(layout::IMAGE_BASE + 2 * LARGE_PAGE).unwrap().write);
        assert!(!find(layout::IMAGE_BASE + 3 * LARGE_PAGE).unwrap().execute);
        for read_only in [layout::SYSTEM_BASE, layout::BOOT_INFO, layout::POLICY_BASE, layout::MEMORY_SIZE - 1] {
            assert!(!find(read_only).unwrap().write, "{read_only:#x}");
        }
        assert!(find(layout::MAILBOX_BASE).unwrap().write && find(layout::STACK_TOP - 1).unwrap().write);
    }

    #[test]
    fn a_fault_store_counts_as_an_exception_only_from_the_vectors() {
        let e = Exception { vector: 8, esr: 0x24 << 26, far: 0x10, elr: 0x40_0040, spsr: 0x3C0, sp: 0 };
        let from_vectors = e.vector_report(system::VECTORS + 8 * 0x80 + 12, |_| None);
        assert_eq!(from_vectors.name, "data abort from EL0");
        assert_eq!(from_vectors.pc, 0x40_0040);
        // The guard storing a made-up vector number itself.
        let forged = e.vector_report(0x40_1000, |_| None);
        assert_eq!(forged.name, "a store to the fault register outside the vectors");
        assert_eq!(forged.pc, 0x40_1000);
        let bad_index = Exception { vector: 99, ..e }.vector_report(system::VECTORS, |_| None);
        assert_eq!(bad_index.name, "a store to the fault register outside the vectors");
    }

    #[test]
    fn vector_stubs_store_their_index_to_the_fault_register() {
        // Known encodings: `mov w0, #0x102` is 0x52802040 and `str w0,
        // [x8]` 0xb9000100 (kvm-ioctls' own aarch64 test program).
        assert_eq!(0x5280_0000 | (0x102 << 5), 0x5280_2040);
        let stub = vector_stub(9);
        assert_eq!(stub[0], 0x5280_0120, "mov w0, #9");
        assert_eq!(stub[1], 0xD2A1_2001, "movz x1, #0x0900, lsl #16");
        assert_eq!(stub[2], 0xF284_0001, "movk x1, #0x2000");
        assert_eq!(stub[3], 0xB900_0020, "str w0, [x1]");
        let buf = region();
        let at = (system::VECTORS + 8 * 0x80) as usize;
        assert_eq!(u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()), vector_stub(8)[0]);
    }

    #[test]
    fn faults_decode_to_a_report() {
        // A data abort from EL0 at 0x1000 (a translation fault).
        let e = Exception { vector: 8, esr: 0x24 << 26 | 0x7, far: 0x1000, elr: 0x40_0040, spsr: 0x3C0, sp: 0 };
        let report = e.report(|_| Some("f+0x40".into()));
        assert!(report.from_user);
        assert_eq!(report.name, "data abort from EL0");
        assert_eq!(report.fault_address, Some(0x1000));
        assert_eq!(report.pc, 0x40_0040);
        let udf = Exception { vector: 8, esr: 0, ..e };
        assert_eq!(udf.report(|_| None).fault_address, None);
        assert!(udf.report(|_| None).name.contains("undefined"));
        let el1 = Exception { vector: 4, spsr: 0x3C5, esr: 0x25 << 26, ..e };
        assert!(!el1.report(|_| None).from_user);
        assert_eq!(entropy_flags(1 << 60), vigil_abi::boot_flags::RNDR_PRESENT);
        assert_eq!(entropy_flags(2 << 60), vigil_abi::boot_flags::RNDR_PRESENT);
        assert_eq!(entropy_flags(0), 0);
    }

    #[test]
    fn doorbells_decode_by_address_and_width_only() {
        assert_eq!(doorbell(mmio::CONSOLE, b"x"), Doorbell::Console(b'x'));
        assert_eq!(doorbell(mmio::HYPERCALL, &4u32.to_le_bytes()), Doorbell::Hypercall(4));
        assert_eq!(doorbell(mmio::FAULT, &8u32.to_le_bytes()), Doorbell::Fault(8));
        // Wrong widths and other addresses are refused, never guessed at.
        assert_eq!(doorbell(mmio::HYPERCALL, &[1, 0]), Doorbell::Forbidden { address: mmio::HYPERCALL, len: 2 });
        assert_eq!(doorbell(mmio::CONSOLE, &[1, 0, 0, 0]), Doorbell::Forbidden { address: mmio::CONSOLE, len: 4 });
        assert_eq!(doorbell(mmio::FAULT, &[0; 8]), Doorbell::Forbidden { address: mmio::FAULT, len: 8 });
        assert_eq!(
            doorbell(mmio::BASE + 0x3000, &[0; 4]),
            Doorbell::Forbidden { address: mmio::BASE + 0x3000, len: 4 }
        );
        assert_eq!(
            doorbell(mmio::HYPERCALL + 1, &[0; 4]),
            Doorbell::Forbidden { address: mmio::HYPERCALL + 1, len: 4 }
        );
    }

    #[test]
    fn a_trapped_store_is_decoded_from_its_syndrome() {
        // `str w0, [x1]`: EC 0x24, IL, ISV, SAS = word, SRT = 0, WnR,
        // DFSC = translation fault level 2 (what a store to the doorbell
        // block gives on a hypervisor that leaves it unmapped in stage 2).
        let esr = (0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (1 << 6) | 0x06; // SRT = 0
        let access = trapped_access(esr).unwrap();
        assert_eq!(access, TrappedAccess { write: true, register: 0, len: 4 });
        let bytes = stored_bytes(&access, 0xDEAD_0000_0000_0004);
        assert_eq!(doorbell(mmio::HYPERCALL, &bytes), Doorbell::Hypercall(4));
        // `strb w2, [x3]`.
        let esr = (0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 16) | (1 << 6) | 0x06;
        let access = trapped_access(esr).unwrap();
        assert_eq!((access.register, access.len), (2, 1));
        assert_eq!(doorbell(mmio::CONSOLE, &stored_bytes(&access, u64::from(b'v'))), Doorbell::Console(b'v'));
        // The zero register stores zeros whatever the value read.
        let xzr = TrappedAccess { write: true, register: 31, len: 8 };
        assert_eq!(stored_bytes(&xzr, u64::MAX), vec![0; 8]);
        // Loads are loads; no syndrome, or another class, is refused.
        assert!(!trapped_access(esr & !(1 << 6)).unwrap().write);
        assert!(trapped_access(esr & !(1 << 24)).is_err());
        assert!(trapped_access(0x16 << 26).is_err());
    }
}
