//! The x86_64 privileged environment the host builds for the guard: GDT,
//! IDT, TSS with an I/O permission bitmap, fault stubs and identity page
//! tables, all in the supervisor-only system region `[0, 2 MiB)`. The vCPU
//! starts at CPL3; ring 0 runs only the fault stubs. Layout and encodings are
//! specified in docs/guest-abi.md.

use vigil_abi::{LARGE_PAGE, layout, mailbox, ports};

use super::image::{PagePermissions, WINDOW_PAGES};

/// Addresses inside the system region (4 KiB pages).
pub mod system {
    /// PML4 (not mapped in the guest's address space).
    pub const PML4: u64 = 0x1000;
    /// PDPT (not mapped).
    pub const PDPT: u64 = 0x2000;
    /// Page directory (not mapped).
    pub const PD: u64 = 0x3000;
    /// Page table for the first 2 MiB (not mapped).
    pub const PT: u64 = 0x4000;
    /// GDT (supervisor read-write).
    pub const GDT: u64 = 0x5000;
    /// TSS and I/O bitmap (supervisor read-write).
    pub const TSS: u64 = 0x6000;
    /// IDT (supervisor read-only).
    pub const IDT: u64 = 0x7000;
    /// Fault stubs (supervisor read-execute).
    pub const STUBS: u64 = 0x8000;
    /// Ring-0 stack, `[STACK, STACK_TOP)` (supervisor read-write).
    pub const STACK: u64 = 0x9000;
    /// TSS.RSP0.
    pub const STACK_TOP: u64 = 0x10000;
    /// Bytes of the system region that hold anything.
    pub const USED: usize = STACK_TOP as usize;
}

/// GDT selectors.
pub mod selector {
    /// Ring-0 64-bit code (fault stubs).
    pub const KERNEL_CODE: u16 = 0x08;
    /// Ring-0 data.
    pub const KERNEL_DATA: u16 = 0x10;
    /// Ring-3 data, RPL 3.
    pub const USER_DATA: u16 = 0x18 | 3;
    /// Ring-3 64-bit code, RPL 3.
    pub const USER_CODE: u16 = 0x20 | 3;
    /// 64-bit TSS.
    pub const TSS: u16 = 0x28;
}

/// GDT descriptors (accessed bits preset so the CPU never writes them).
const GDT_ENTRIES: [u64; 5] = [
    0,
    0x00AF_9B00_0000_FFFF, // ring-0 code: P, DPL0, code exec/read accessed, L
    0x00CF_9300_0000_FFFF, // ring-0 data: P, DPL0, data r/w accessed, G, D/B
    0x00CF_F300_0000_FFFF, // ring-3 data: P, DPL3, data r/w accessed, G, D/B
    0x00AF_FB00_0000_FFFF, // ring-3 code: P, DPL3, code exec/read accessed, L
];

/// GDT limit (5 descriptors + the 16-byte TSS descriptor).
pub const GDT_LIMIT: u16 = (GDT_ENTRIES.len() * 8 + 16 - 1) as u16;

/// Offset of the I/O permission bitmap inside the TSS.
const IO_BITMAP_OFFSET: u16 = 0x68;

/// TSS limit: header + bitmap + the terminating 0xFF byte.
pub const TSS_LIMIT: u32 = IO_BITMAP_OFFSET as u32 + ports::BITMAP_PORTS / 8;

/// Vectors with an IDT gate and a stub: the architectural exceptions.
pub const VECTORS: usize = 32;

/// IDT limit.
pub const IDT_LIMIT: u16 = (VECTORS * 16 - 1) as u16;

/// Bytes per fault stub.
pub const STUB_SIZE: u64 = 8;

/// Exceptions that push an error code.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Short name of an exception vector.
pub fn exception_name(vector: u8) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE divide error",
        "#DB debug",
        "NMI",
        "#BP breakpoint",
        "#OF overflow",
        "#BR bound range",
        "#UD invalid opcode",
        "#NM device not available",
        "#DF double fault",
        "coprocessor segment overrun",
        "#TS invalid TSS",
        "#NP segment not present",
        "#SS stack fault",
        "#GP general protection",
        "#PF page fault",
        "reserved",
        "#MF x87 error",
        "#AC alignment check",
        "#MC machine check",
        "#XM SIMD error",
        "#VE virtualization",
        "#CP control protection",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "#HV hypervisor injection",
        "#VC VMM communication",
        "#SX security",
        "reserved",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("unknown vector")
}

// Page-table entry bits.
const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const LARGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;

// Control register bits.
/// CR0: PE | MP | ET | NE | WP | PG.
pub const CR0: u64 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31);
/// CR4: PAE | OSFXSR | OSXMMEXCPT: SSE on (the guard is compiled with
/// SSE2, the x86_64 baseline).
pub const CR4: u64 = (1 << 5) | (1 << 9) | (1 << 10);
/// CR4.OSXSAVE: `XGETBV` and the XCR0 state bits, set when the vCPU has
/// XSAVE, so that code which checks for AVX finds it enabled.
pub const CR4_OSXSAVE: u64 = 1 << 18;
/// XCR0 state the guard may use (of what the vCPU supports): x87, SSE, AVX.
/// AVX-512 state is left off.
pub const XCR0_WANTED: u64 = 0b111;
/// EFER: LME | LMA | NXE.
pub const EFER: u64 = (1 << 8) | (1 << 10) | (1 << 11);
/// RFLAGS at entry: reserved bit 1 only (IF = 0, IOPL = 0).
pub const RFLAGS: u64 = 0x2;

fn put_u16(buf: &mut [u8], at: u64, value: u16) {
    buf[at as usize..at as usize + 2].copy_from_slice(&value.to_le_bytes());
}
fn put_u32(buf: &mut [u8], at: u64, value: u32) {
    buf[at as usize..at as usize + 4].copy_from_slice(&value.to_le_bytes());
}
fn put_u64(buf: &mut [u8], at: u64, value: u64) {
    buf[at as usize..at as usize + 8].copy_from_slice(&value.to_le_bytes());
}

/// The boot-info flags for the entropy instructions this CPU has (the guard
/// probes them itself too; the flags only say what the host saw).
#[cfg(target_arch = "x86_64")]
pub fn entropy_flags() -> u32 {
    use vigil_abi::boot_flags;
    let mut flags = 0;
    if std::arch::is_x86_feature_detected!("rdrand") {
        flags |= boot_flags::RDRAND_PRESENT;
    }
    if std::arch::is_x86_feature_detected!("rdseed") {
        flags |= boot_flags::RDSEED_PRESENT;
    }
    flags
}

/// Builds the system region's used bytes `[0, system::USED)` for an image
/// whose window pages have `pages` permissions.
pub fn system_region(pages: &[PagePermissions; WINDOW_PAGES]) -> Vec<u8> {
    let mut buf = vec![0u8; system::USED];

    // Page tables: PML4[0] -> PDPT[0] -> PD; PD[0] -> PT (4 KiB pages for
    // the supervisor region), PD[1..] 2 MiB pages.
    put_u64(&mut buf, system::PML4, system::PDPT | PRESENT | WRITABLE | USER);
    put_u64(&mut buf, system::PDPT, system::PD | PRESENT | WRITABLE | USER);
    put_u64(&mut buf, system::PD, system::PT | PRESENT | WRITABLE); // supervisor only
    let small_pages = [
        (system::GDT, PRESENT | WRITABLE | NO_EXECUTE),
        (system::TSS, PRESENT | WRITABLE | NO_EXECUTE),
        (system::IDT, PRESENT | NO_EXECUTE),
        (system::STUBS, PRESENT),
    ];
    for (address, flags) in small_pages {
        put_u64(&mut buf, system::PT + (address / 0x1000) * 8, address | flags);
    }
    let mut page = system::STACK;
    while page < system::STACK_TOP {
        put_u64(&mut buf, system::PT + (page / 0x1000) * 8, page | PRESENT | WRITABLE | NO_EXECUTE);
        page += 0x1000;
    }
    let mut large = |address: u64, flags: u64| {
        put_u64(&mut buf, system::PD + (address / LARGE_PAGE) * 8, address | flags | PRESENT | USER | LARGE);
    };
    large(layout::BOOT_INFO, NO_EXECUTE);
    for (i, perms) in pages.iter().enumerate() {
        if perms.present {
            let flags = if perms.write { WRITABLE } else { 0 } | if perms.execute { 0 } else { NO_EXECUTE };
            large(layout::IMAGE_BASE + i as u64 * LARGE_PAGE, flags);
        }
    }
    let mut address = layout::STACK_BASE;
    while address < layout::STACK_TOP {
        large(address, WRITABLE | NO_EXECUTE);
        address += LARGE_PAGE;
    }
    let mut address = layout::MAILBOX_BASE;
    while address < layout::MAILBOX_BASE + layout::MAILBOX_SIZE {
        large(address, WRITABLE | NO_EXECUTE);
        address += LARGE_PAGE;
    }
    let mut address = layout::POLICY_BASE;
    while address < layout::POLICY_BASE + layout::POLICY_MAX {
        large(address, NO_EXECUTE);
        address += LARGE_PAGE;
    }
    debug_assert_eq!(mailbox::CONTROL, 0);

    // GDT and the TSS descriptor.
    for (i, entry) in GDT_ENTRIES.iter().enumerate() {
        put_u64(&mut buf, system::GDT + i as u64 * 8, *entry);
    }
    let (base, limit) = (system::TSS, u64::from(TSS_LIMIT));
    let tss_low = (limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (0x8B << 40) // P, DPL0, type 0xB: busy 64-bit TSS
        | (((limit >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56);
    put_u64(&mut buf, system::GDT + u64::from(selector::TSS), tss_low);
    put_u64(&mut buf, system::GDT + u64::from(selector::TSS) + 8, base >> 32);

    // TSS: RSP0, I/O bitmap denying everything but COM1 and the hypercall port.
    put_u64(&mut buf, system::TSS + 4, system::STACK_TOP);
    put_u16(&mut buf, system::TSS + 0x66, IO_BITMAP_OFFSET);
    let bitmap = system::TSS + u64::from(IO_BITMAP_OFFSET);
    for i in 0..=u64::from(ports::BITMAP_PORTS / 8) {
        buf[(bitmap + i) as usize] = 0xFF; // the last byte terminates the map
    }
    let allowed = (ports::COM1_BASE..ports::COM1_BASE + 8).chain(ports::HYPERCALL..ports::HYPERCALL + 4);
    for port in allowed {
        buf[(bitmap + u64::from(port / 8)) as usize] &= !(1 << (port % 8));
    }

    // IDT: interrupt gates to the stubs; #BP is reachable from ring 3 (int3).
    for vector in 0..VECTORS as u64 {
        let stub = system::STUBS + vector * STUB_SIZE;
        let gate = system::IDT + vector * 16;
        let dpl3 = if vector == 3 { 0x60 } else { 0 };
        put_u16(&mut buf, gate, (stub & 0xFFFF) as u16);
        put_u16(&mut buf, gate + 2, selector::KERNEL_CODE);
        buf[(gate + 5) as usize] = 0x8E | dpl3; // P, 64-bit interrupt gate
        put_u16(&mut buf, gate + 6, ((stub >> 16) & 0xFFFF) as u16);
        put_u32(&mut buf, gate + 8, (stub >> 32) as u32);
        // Stub: mov al, vector; out FAULT, al; hlt; jmp back to hlt.
        let code = [0xB0, vector as u8, 0xE6, ports::FAULT as u8, 0xF4, 0xEB, 0xFD, 0xCC];
        let at = stub as usize;
        buf[at..at + code.len()].copy_from_slice(&code);
    }
    buf
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

    #[test]
    fn system_region_is_supervisor_only_and_tables_unmapped() {
        let buf = region();
        assert_eq!(u64_at(&buf, system::PD) & USER, 0);
        for table in [0, system::PML4, system::PDPT, system::PD, system::PT] {
            assert_eq!(u64_at(&buf, system::PT + table / 0x1000 * 8), 0, "{table:#x} must be unmapped");
        }
        assert_eq!(u64_at(&buf, system::PT + system::IDT / 0x1000 * 8) & WRITABLE, 0);
        assert_eq!(u64_at(&buf, system::PT + system::STUBS / 0x1000 * 8) & NO_EXECUTE, 0);
    }

    #[test]
    fn image_pages_follow_segment_permissions() {
        let buf = region();
        let pde = |address: u64| u64_at(&buf, system::PD + address / LARGE_PAGE * 8);
        let text = pde(layout::IMAGE_BASE);
        assert_eq!(text & (WRITABLE | NO_EXECUTE), 0);
        assert_ne!(text & USER, 0);
        assert_eq!(pde(layout::IMAGE_BASE + LARGE_PAGE), 0, "gap page unmapped");
        assert_eq!(pde(layout::IMAGE_BASE + 2 * LARGE_PAGE) & (WRITABLE | NO_EXECUTE), WRITABLE | NO_EXECUTE);
        assert_eq!(pde(layout::STACK_GUARD), 0, "stack guard unmapped");
        assert_ne!(pde(layout::MAILBOX_BASE) & WRITABLE, 0);
        assert_eq!(pde(layout::BOOT_INFO) & WRITABLE, 0);
        let policy = pde(layout::POLICY_BASE);
        assert_eq!(policy & (USER | WRITABLE | NO_EXECUTE), USER | NO_EXECUTE, "policy: user read-only");
    }

    #[test]
    fn io_bitmap_grants_exactly_the_guard_ports() {
        let buf = region();
        let bitmap = system::TSS + u64::from(IO_BITMAP_OFFSET);
        let allowed = |port: u32| buf[(bitmap + u64::from(port / 8)) as usize] & (1 << (port % 8)) == 0;
        let granted: Vec<u32> = (0..ports::BITMAP_PORTS).filter(|&p| allowed(p)).collect();
        let mut expected: Vec<u32> = (0x3F8..0x400).collect();
        expected.extend(0x510..0x514);
        assert_eq!(granted, expected);
        assert_eq!(buf[(bitmap + u64::from(ports::BITMAP_PORTS / 8)) as usize], 0xFF);
        assert!(!allowed(u32::from(ports::FAULT)));
    }
}
