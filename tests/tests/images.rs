//! Bad guard images are refused with distinct, clear errors — never a crash.
//! (No KVM needed: images are validated before any VM exists.)

use vigil::guard_image;
use vigil::vmm::{GuestArch, GuestImage, ImageError};
use vigil_unikernel::abi::layout;

// ELF64 header and program header field offsets.
const E_MACHINE: usize = 0x12;
const E_ENTRY: usize = 0x18;
const E_PHOFF: usize = 0x20;
const E_PHENTSIZE: usize = 0x36;
const E_PHNUM: usize = 0x38;
const P_TYPE: usize = 0x00;
const P_FLAGS: usize = 0x04;
const P_VADDR: usize = 0x10;
const P_PADDR: usize = 0x18;
const P_FILESZ: usize = 0x20;
const P_MEMSZ: usize = 0x28;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offsets of the PT_LOAD program headers.
fn load_headers(elf: &[u8]) -> Vec<usize> {
    let (off, size, num) = (u64_at(elf, E_PHOFF) as usize, u16_at(elf, E_PHENTSIZE) as usize, u16_at(elf, E_PHNUM));
    (0..num as usize).map(|i| off + i * size).filter(|&ph| u32_at(elf, ph + P_TYPE) == PT_LOAD).collect()
}

fn image() -> Vec<u8> {
    guard_image::production().to_vec()
}

#[test]
fn the_real_image_is_accepted_and_measured() {
    let image = GuestImage::from_elf(guard_image::production()).expect("valid image");
    assert_eq!(image.size(), guard_image::production().len());
    assert!(image.pages().iter().any(|p| p.execute && !p.write));
    assert!(!image.pages().iter().any(|p| p.execute && p.write));
    let measurements: serde_json_lite::Value = serde_json_lite::parse(guard_image::production_measurements());
    assert_eq!(measurements.get("image_sha384"), Some(hex(image.measurement())));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Just enough JSON to read one string field without another dependency.
mod serde_json_lite {
    pub struct Value(String);
    pub fn parse(text: &str) -> Value {
        Value(text.to_string())
    }
    impl Value {
        pub fn get(&self, key: &str) -> Option<String> {
            let at = self.0.find(&format!("\"{key}\""))?;
            let rest = &self.0[at + key.len() + 2..];
            let start = rest.find('"')? + 1;
            let end = start + rest[start..].find('"')?;
            Some(rest[start..end].to_string())
        }
    }
}

#[test]
fn truncated_images_are_refused() {
    let elf = image();
    // Cut inside the header, inside the program headers, inside a segment.
    let last_segment_end = load_headers(&elf)
        .iter()
        .filter(|&&ph| u64_at(&elf, ph + P_FILESZ) > 0)
        .map(|&ph| u64_at(&elf, ph + 0x08) + u64_at(&elf, ph + P_FILESZ))
        .max()
        .unwrap() as usize;
    for cut in [0, 10, 63, 64 + 20, last_segment_end - 1] {
        let Err(err) = GuestImage::from_elf(&elf[..cut]) else { panic!("image cut at {cut} accepted") };
        assert!(matches!(err, ImageError::NotElf(_) | ImageError::Truncated { .. }), "cut at {cut}: {err}");
    }
    let err = GuestImage::from_elf(&elf[..last_segment_end - 1]).unwrap_err();
    assert!(matches!(err, ImageError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn wrong_machine_is_refused() {
    let mut elf = image();
    elf[E_MACHINE..E_MACHINE + 2].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    let err = GuestImage::from_elf(&elf).unwrap_err();
    assert_eq!(err, ImageError::WrongMachine { found: 183, name: "aarch64", host: "x86_64", expected: 62 });
    assert!(err.to_string().contains("aarch64"), "{err}");
    // The same bytes are refused for aarch64 only because of the machine.
    let x86 = image();
    let err = GuestImage::from_elf_for(&x86, GuestArch::Aarch64).unwrap_err();
    assert!(matches!(err, ImageError::WrongMachine { found: 62, expected: 183, .. }), "{err}");
}

#[test]
fn segment_outside_guest_ram_is_refused() {
    for address in [0u64, layout::BOOT_INFO, layout::IMAGE_END, layout::MAILBOX_BASE, 1 << 40, u64::MAX - 8] {
        let mut elf = image();
        let ph = load_headers(&elf)[0];
        put_u64(&mut elf, ph + P_VADDR, address);
        put_u64(&mut elf, ph + P_PADDR, address);
        let err = GuestImage::from_elf(&elf).unwrap_err();
        assert!(matches!(err, ImageError::SegmentOutsideWindow { .. }), "{address:#x}: {err}");
    }
    // A segment that starts inside the window but runs past its end.
    let mut elf = image();
    let ph = *load_headers(&elf).last().unwrap();
    put_u64(&mut elf, ph + P_MEMSZ, layout::IMAGE_END);
    assert!(matches!(GuestImage::from_elf(&elf).unwrap_err(), ImageError::SegmentOutsideWindow { .. }));
}

#[test]
fn entry_outside_code_is_refused() {
    let data_segment = {
        let elf = image();
        let ph = *load_headers(&elf).iter().find(|&&ph| u32_at(&elf, ph + P_FLAGS) & PF_X == 0).unwrap();
        u64_at(&elf, ph + P_VADDR)
    };
    for entry in [0u64, layout::IMAGE_END + 5, data_segment] {
        let mut elf = image();
        put_u64(&mut elf, E_ENTRY, entry);
        assert_eq!(GuestImage::from_elf(&elf).unwrap_err(), ImageError::EntryOutsideCode(entry));
    }
}

#[test]
fn writable_and_executable_page_is_refused() {
    let mut elf = image();
    let ph = load_headers(&elf)[0];
    elf[ph + P_FLAGS..ph + P_FLAGS + 4].copy_from_slice(&7u32.to_le_bytes()); // RWX
    assert!(matches!(GuestImage::from_elf(&elf).unwrap_err(), ImageError::WritableAndExecutable(_)));
}

#[test]
fn overlapping_segments_are_refused() {
    let mut elf = image();
    let phs = load_headers(&elf);
    let first = u64_at(&elf, phs[0] + P_VADDR);
    put_u64(&mut elf, phs[1] + P_VADDR, first);
    put_u64(&mut elf, phs[1] + P_PADDR, first);
    assert!(matches!(GuestImage::from_elf(&elf).unwrap_err(), ImageError::SegmentsOverlap { .. }));
}

#[test]
fn garbage_never_panics() {
    let elf = image();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..2000 {
        let mut bytes = elf.clone();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % 512.min(bytes.len());
            bytes[at] = (state >> 32) as u8;
        }
        let _ = GuestImage::from_elf(&bytes);
    }
    for len in 0..200 {
        let _ = GuestImage::from_elf(&vec![0x7f; len]);
    }
    assert!(matches!(GuestImage::from_elf(b"not an elf").unwrap_err(), ImageError::NotElf(_)));
}
