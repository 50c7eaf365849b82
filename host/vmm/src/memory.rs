//! Guest memory: one anonymous mapping, identity-mapped into the guest at
//! guest-physical address 0. All accesses are bounds-checked; the guest may
//! write anything anywhere in it, so nothing read from it is trusted.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// An access outside guest memory or misaligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest memory access at {address:#x} (+{len}) is out of bounds or misaligned")]
pub struct OutOfBounds {
    /// Guest-physical address.
    pub address: u64,
    /// Access length.
    pub len: usize,
}

/// The guest's RAM.
pub struct GuestMemory {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; every access goes
// through raw pointers with bounds checks, and concurrent access with the
// vCPU is by design (sequence words are atomics).
unsafe impl Send for GuestMemory {}
// SAFETY: see `Send`; no method hands out `&mut` to the memory.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Maps `len` bytes of zeroed anonymous memory (reserved lazily),
    /// starting on a 2 MiB boundary so that ranges advised with
    /// [`Self::advise_huge_pages`] can be backed by huge pages.
    pub fn new(len: usize) -> io::Result<Self> {
        const ALIGN: usize = 2 * 1024 * 1024;
        let reserve = len.checked_add(ALIGN).ok_or_else(|| io::Error::other("guest memory size overflows"))?;
        // SAFETY: an anonymous private mapping at a kernel-chosen address;
        // the result is checked before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(ALIGN);
        let head = aligned - start;
        let tail = reserve - head - len;
        // SAFETY: both ranges lie inside the mapping just made and outside
        // `[aligned, aligned + len)`, which is kept; zero-length ranges are
        // skipped.
        unsafe {
            if head != 0 {
                libc::munmap(raw, head);
            }
            if tail != 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        let ptr = NonNull::new(aligned as *mut u8).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(GuestMemory { ptr, len })
    }

    /// Asks the kernel to back `[address, address + len)` with transparent
    /// huge pages (one EPT entry per 2 MiB instead of 512). Advisory: an
    /// error only means small pages. Linux only (elsewhere nothing).
    #[cfg(not(target_os = "linux"))]
    pub fn advise_huge_pages(&self, _address: u64, _len: usize) {}

    /// Asks the kernel to back `[address, address + len)` with transparent
    /// huge pages (one EPT entry per 2 MiB instead of 512). Advisory: an
    /// error only means small pages.
    #[cfg(target_os = "linux")]
    pub fn advise_huge_pages(&self, address: u64, len: usize) {
        if let Ok(start) = self.range(address, len, 2 * 1024 * 1024) {
            // SAFETY: madvise on a range inside our own mapping; MADV_HUGEPAGE
            // changes no contents.
            unsafe { libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE) };
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the memory is empty (never, for a guard).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Host virtual address of guest-physical 0 (for KVM's memory slot).
    pub fn host_address(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    fn range(&self, address: u64, len: usize, align: usize) -> Result<*mut u8, OutOfBounds> {
        let err = OutOfBounds { address, len };
        let start = usize::try_from(address).map_err(|_| err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.len || start % align != 0 {
            return Err(err);
        }
        // SAFETY: `start + len <= self.len`, inside the mapping.
        Ok(unsafe { self.ptr.as_ptr().add(start) })
    }

    /// Copies `bytes` to guest-physical `address`.
    pub fn write(&self, address: u64, bytes: &[u8]) -> Result<(), OutOfBounds> {
        let dst = self.range(address, bytes.len(), 1)?;
        // SAFETY: `dst..dst+len` is inside the mapping and cannot overlap a
        // host slice (the mapping is never handed out as a slice).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Copies guest-physical `address..+out.len()` to `out`.
    pub fn read(&self, address: u64, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let src = self.range(address, out.len(), 1)?;
        // SAFETY: as for `write`.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Reads a little-endian u64 (plain load).
    pub fn read_u64(&self, address: u64) -> Result<u64, OutOfBounds> {
        let mut bytes = [0; 8];
        self.read(address, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// An 8-byte aligned word as an atomic, shared with the guest.
    pub fn atomic_u64(&self, address: u64) -> Result<&AtomicU64, OutOfBounds> {
        let ptr = self.range(address, 8, 8)?;
        // SAFETY: in bounds, 8-aligned, lives as long as `self`; AtomicU64
        // has the layout of u64 and tolerates concurrent guest access.
        Ok(unsafe { &*ptr.cast::<AtomicU64>() })
    }

    /// A 4-byte aligned word as an atomic, shared with the guest.
    pub fn atomic_u32(&self, address: u64) -> Result<&AtomicU32, OutOfBounds> {
        let ptr = self.range(address, 4, 4)?;
        // SAFETY: as for `atomic_u64`, 4-aligned.
        Ok(unsafe { &*ptr.cast::<AtomicU32>() })
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no references to
        // it outlive `self` (atomics borrow `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_alignment_are_checked() {
        let mem = GuestMemory::new(8192).unwrap();
        mem.write(8190, &[1, 2]).unwrap();
        assert!(mem.write(8191, &[1, 2]).is_err());
        assert!(mem.write(u64::MAX, &[1]).is_err());
        assert!(mem.atomic_u64(4).is_err());
        assert!(mem.atomic_u64(8192 - 8).is_ok());
        assert!(mem.atomic_u32(8190).is_err());
        let mut out = [0; 2];
        mem.read(8190, &mut out).unwrap();
        assert_eq!(out, [1, 2]);
        assert_eq!(mem.read_u64(0).unwrap(), 0);
    }
}
