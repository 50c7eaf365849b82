//! The guard image: an ELF64 executable, validated before anything of it
//! reaches guest memory, and measured (SHA-384).
//!
//! Rules (docs/guest-abi.md, "Image"): x86_64 `ET_EXEC`; `PT_LOAD` segments
//! inside the image window `[4 MiB, 16 MiB)`, not overlapping, file bytes
//! inside the file; no dynamic linking; the entry point inside an executable
//! segment; no 2 MiB page both writable and executable (the host maps the
//! window with 2 MiB pages whose permissions come from the segments).

use object::LittleEndian;
use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use vigil_abi::{self as abi, LARGE_PAGE, layout};
use vigil_attest::{Measurement, measure};

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Not a readable ELF64 little-endian file.
    #[error("not a guard image: {0} (expected an ELF64 file from `cargo xtask build-guard`)")]
    NotElf(String),
    /// Built for another machine.
    #[error("guard image is for ELF machine {found} ({name}), this host boots {host} ({expected}) images")]
    WrongMachine {
        /// `e_machine` found.
        found: u16,
        /// Its name when known.
        name: &'static str,
        /// The architecture this host boots.
        host: &'static str,
        /// Its `e_machine`.
        expected: u16,
    },
    /// Not a static executable.
    #[error("guard image has ELF type {0}, expected a static executable (ET_EXEC = 2)")]
    NotExecutable(u16),
    /// Needs a dynamic loader.
    #[error("guard image segment {index} is of type {kind}: dynamic linking and TLS are not supported")]
    UnsupportedSegment {
        /// Program header index.
        index: usize,
        /// Segment type name.
        kind: &'static str,
    },
    /// A segment's file bytes lie past the end of the file.
    #[error(
        "guard image is truncated: segment {index} needs file bytes {offset:#x}..+{size:#x}, the file has {file_len:#x}"
    )]
    Truncated {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        size: u64,
        /// File length.
        file_len: usize,
    },
    /// `p_filesz > p_memsz`.
    #[error("guard image segment {index} has more file bytes ({file:#x}) than memory ({mem:#x})")]
    FileLargerThanMemory {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        file: u64,
        /// `p_memsz`.
        mem: u64,
    },
    /// A segment outside the image window.
    #[error(
        "guard image segment {index} at {start:#x}..{end:#x} lies outside the guest's image window {:#x}..{:#x}",
        layout::IMAGE_BASE,
        layout::IMAGE_END
    )]
    SegmentOutsideWindow {
        /// Program header index.
        index: usize,
        /// First address.
        start: u64,
        /// One past the last address (saturated).
        end: u64,
    },
    /// Two segments overlap.
    #[error("guard image segments {first} and {second} overlap")]
    SegmentsOverlap {
        /// Program header index.
        first: usize,
        /// Program header index.
        second: usize,
    },
    /// A 2 MiB page would be both writable and executable.
    #[error("guard image puts writable and executable segments in the same 2 MiB page at {0:#x} (W^X)")]
    WritableAndExecutable(u64),
    /// No loadable segments.
    #[error("guard image has no loadable segments")]
    NoLoadableSegments,
    /// Entry point not inside an executable segment.
    #[error("guard image entry point {0:#x} is not inside an executable segment")]
    EntryOutsideCode(u64),
}

/// Permissions of one 2 MiB page of the image window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagePermissions {
    /// Mapped at all.
    pub present: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

/// Number of 2 MiB pages in the image window.
pub const WINDOW_PAGES: usize = ((layout::IMAGE_END - layout::IMAGE_BASE) / LARGE_PAGE) as usize;

/// One loadable segment.
#[derive(Clone)]
pub struct Segment {
    /// Guest address.
    pub address: u64,
    /// File bytes (the rest of `memory_size` is zero).
    pub bytes: Vec<u8>,
    /// Size in memory.
    pub memory_size: u64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("address", &format_args!("{:#x}", self.address))
            .field("file_bytes", &self.bytes.len())
            .field("memory_size", &self.memory_size)
            .finish()
    }
}

/// A validated, measured guard image, ready to be copied into any number of
/// VMs.
#[derive(Clone, Debug)]
pub struct GuestImage {
    entry: u64,
    segments: Vec<Segment>,
    pages: [PagePermissions; WINDOW_PAGES],
    measurement: Measurement,
    size: usize,
    symbols: Vec<(u64, u64, String)>,
    features: Vec<String>,
}

/// The feature list of an image without a valid `.vigil_features`
/// section: a pseudo-feature no reference lists, so such an image is never
/// taken for a production one.
pub const UNMARKED: &str = "unmarked";

fn machine_name(machine: u16) -> &'static str {
    match elf::Machine(machine) {
        elf::EM_X86_64 => "x86_64",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_386 => "i386",
        elf::EM_RISCV => "riscv",
        _ => "unknown",
    }
}

/// The architecture of a guard image (and of the host that boots it: a
/// hypervisor runs guests of its own architecture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestArch {
    /// x86_64 (`EM_X86_64`).
    X86_64,
    /// aarch64 (`EM_AARCH64`).
    Aarch64,
}

impl GuestArch {
    /// The architecture this host boots.
    pub const HOST: GuestArch = if cfg!(target_arch = "aarch64") { GuestArch::Aarch64 } else { GuestArch::X86_64 };

    /// Its ELF `e_machine`.
    pub fn machine(self) -> u16 {
        match self {
            GuestArch::X86_64 => elf::EM_X86_64.0,
            GuestArch::Aarch64 => elf::EM_AARCH64.0,
        }
    }

    /// Its name, as the evidence and references give it.
    pub fn name(self) -> &'static str {
        match self {
            GuestArch::X86_64 => "x86_64",
            GuestArch::Aarch64 => "aarch64",
        }
    }
}

impl GuestImage {
    /// Validates and measures an ELF image for this host's architecture.
    pub fn from_elf(bytes: &[u8]) -> Result<Self, ImageError> {
        Self::from_elf_for(bytes, GuestArch::HOST)
    }

    /// Validates and measures an ELF image for `arch`.
    pub fn from_elf_for(bytes: &[u8], arch: GuestArch) -> Result<Self, ImageError> {
        let endian = LittleEndian;
        let header = FileHeader64::<LittleEndian>::parse(bytes).map_err(|e| ImageError::NotElf(e.to_string()))?;
        if !header.is_little_endian() {
            return Err(ImageError::NotElf("big-endian ELF".into()));
        }
        let machine = header.e_machine(endian).0;
        if machine != arch.machine() {
            return Err(ImageError::WrongMachine {
                found: machine,
                name: machine_name(machine),
                host: arch.name(),
                expected: arch.machine(),
            });
        }
        let kind = header.e_type(endian);
        if kind != elf::ET_EXEC {
            return Err(ImageError::NotExecutable(kind.0));
        }
        let headers = header.program_headers(endian, bytes).map_err(|e| ImageError::NotElf(e.to_string()))?;

        let mut segments = Vec::new();
        let mut spans: Vec<(usize, u64, u64, u32)> = Vec::new();
        for (index, ph) in headers.iter().enumerate() {
            match ph.p_type(endian) {
                elf::PT_LOAD => {}
                elf::PT_DYNAMIC => return Err(ImageError::UnsupportedSegment { index, kind: "PT_DYNAMIC" }),
                elf::PT_INTERP => return Err(ImageError::UnsupportedSegment { index, kind: "PT_INTERP" }),
                elf::PT_TLS => return Err(ImageError::UnsupportedSegment { index, kind: "PT_TLS" }),
                _ => continue,
            }
            let (start, mem, file, offset) =
                (ph.p_vaddr(endian), ph.p_memsz(endian), ph.p_filesz(endian), ph.p_offset(endian));
            if mem == 0 {
                continue;
            }
            if file > mem {
                return Err(ImageError::FileLargerThanMemory { index, file, mem });
            }
            let end = start.saturating_add(mem);
            if start < layout::IMAGE_BASE || end > layout::IMAGE_END || ph.p_paddr(endian) != start {
                return Err(ImageError::SegmentOutsideWindow { index, start, end });
            }
            let data = ph.data(endian, bytes).map_err(|()| ImageError::Truncated {
                index,
                offset,
                size: file,
                file_len: bytes.len(),
            })?;
            spans.push((index, start, end, ph.p_flags(endian).0));
            segments.push(Segment { address: start, bytes: data.to_vec(), memory_size: mem });
        }
        if segments.is_empty() {
            return Err(ImageError::NoLoadableSegments);
        }
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                if a.1 < b.2 && b.1 < a.2 {
                    return Err(ImageError::SegmentsOverlap { first: a.0, second: b.0 });
                }
            }
        }

        let mut pages = [PagePermissions::default(); WINDOW_PAGES];
        for &(_, start, end, flags) in &spans {
            let first = ((start - layout::IMAGE_BASE) / LARGE_PAGE) as usize;
            let last = ((end - 1 - layout::IMAGE_BASE) / LARGE_PAGE) as usize;
            for page in &mut pages[first..=last] {
                page.present = true;
                page.write |= flags & elf::PF_W.0 != 0;
                page.execute |= flags & elf::PF_X.0 != 0;
            }
        }
        if let Some(i) = pages.iter().position(|p| p.write && p.execute) {
            return Err(ImageError::WritableAndExecutable(layout::IMAGE_BASE + i as u64 * LARGE_PAGE));
        }

        let entry = header.e_entry(endian);
        let in_code =
            spans.iter().any(|&(_, start, end, flags)| flags & elf::PF_X.0 != 0 && (start..end).contains(&entry));
        if !in_code {
            return Err(ImageError::EntryOutsideCode(entry));
        }

        Ok(GuestImage {
            entry,
            segments,
            pages,
            measurement: measure(bytes),
            size: bytes.len(),
            symbols: function_symbols(header, bytes),
            features: image_features(header, bytes),
        })
    }

    /// The build features the image declares in its `.vigil_features`
    /// section (`["test-hooks"]` for a test image, `[]` for production,
    /// [`UNMARKED`] when the section is missing or malformed).
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// Entry point address.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// Loadable segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Permissions of the image window's 2 MiB pages.
    pub fn pages(&self) -> &[PagePermissions; WINDOW_PAGES] {
        &self.pages
    }

    /// SHA-384 of the image file.
    pub fn measurement(&self) -> &Measurement {
        &self.measurement
    }

    /// Size of the image file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The function containing `address`, with the offset into it, when the
    /// image carries a symbol table (for fault reports).
    pub fn symbolize(&self, address: u64) -> Option<(&str, u64)> {
        let i = self.symbols.partition_point(|s| s.0 <= address).checked_sub(1)?;
        let (start, size, name) = &self.symbols[i];
        (address < start + (*size).max(1)).then(|| (name.as_str(), address - start))
    }
}

/// The features of the `.vigil_features` section (see [`GuestImage::features`]).
fn image_features(header: &FileHeader64<LittleEndian>, bytes: &[u8]) -> Vec<String> {
    let endian = LittleEndian;
    let unmarked = || vec![UNMARKED.to_string()];
    let Ok(sections) = header.sections(endian, bytes) else { return unmarked() };
    let Some((_, section)) = sections.section_by_name(endian, b".vigil_features") else { return unmarked() };
    let Ok(data) = section.data(endian, bytes) else { return unmarked() };
    let Some(features) = abi::parse_features_note(data) else { return unmarked() };
    let features: Vec<String> = features.map(str::to_string).collect();
    if features.iter().any(|f| !f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')) {
        return unmarked();
    }
    features
}

/// Function symbols sorted by address; an image without (or with a broken)
/// symbol table simply has none. Names are escaped: a custom image chooses
/// them.
fn function_symbols(header: &FileHeader64<LittleEndian>, bytes: &[u8]) -> Vec<(u64, u64, String)> {
    let endian = LittleEndian;
    let Ok(sections) = header.sections(endian, bytes) else { return Vec::new() };
    let Ok(table) = sections.symbols(endian, bytes, elf::SHT_SYMTAB) else { return Vec::new() };
    let mut symbols: Vec<_> = table
        .iter()
        .filter(|sym| sym.st_type() == elf::STT_FUNC && sym.st_value(endian) != 0)
        .filter_map(|sym| {
            let name = table.symbol_name(endian, sym).ok()?;
            Some((sym.st_value(endian), sym.st_size(endian), super::guest_text::escape(name)))
        })
        .collect();
    symbols.sort();
    symbols
}
