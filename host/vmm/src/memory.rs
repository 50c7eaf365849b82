//! Guest memory: one anonymous mapping, identity-mapped into the guest at
//! guest-physical address 0. All accesses are bounds-checked; the guest may
//! write anything anywhere in it, so nothing read from it is trusted.
//!
//! A guard's memory is backed by transparent huge pages where the kernel
//! offers them: under nested virtualisation every first touch of a small
//! page by the guest costs a round trip through both hypervisors, and a
//! 2 MiB page needs one (measured: 1.7 ms → 0.25 ms from boot to the
//! guard's first instruction of Rust). Huge pages are slow to get (the
//! kernel may compact memory for them), so a guard's memory is kept when
//! the guard ends — every range the host wrote or the guest could write
//! zeroed at once, as a fresh mapping would be — and given to the next
//! guard ([`GuestMemory::for_guard`]).

use std::io;
use std::ptr::NonNull;
use std::sync::Mutex;
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
    /// One bit per 4 KiB page that may hold non-zero bytes (the host wrote
    /// it, or the guest may have): zeroed before the memory is used again.
    /// Fixed size, set with atomics (no lock on the request path). `None`
    /// for memory that is unmapped when dropped.
    dirty: Option<Box<[AtomicU64]>>,
}

/// Granule of the dirty bitmap.
const DIRTY_PAGE: usize = 4096;

/// Guard memories kept for reuse, zeroed.
static POOL: Mutex<Vec<GuestMemory>> = Mutex::new(Vec::new());
/// At most this many are kept by default (each holds the huge pages its
/// guard touched: about 18 MiB); see [`GuestMemory::keep_at_most`].
const POOL_MAX: usize = 2;

/// The current limit (a long-running process may lower it to bound its
/// resident memory).
static POOL_LIMIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(POOL_MAX);

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
        Ok(GuestMemory { ptr, len, dirty: None })
    }

    /// Memory for a guard of `len` bytes: a zeroed memory an earlier guard
    /// gave back, else a new mapping advised for huge pages. Either way
    /// every byte reads as zero; it returns to the pool when dropped.
    pub fn for_guard(len: usize) -> io::Result<Self> {
        let reused = {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            pool.iter().position(|m| m.len == len).map(|i| pool.swap_remove(i))
        };
        if let Some(memory) = reused {
            return Ok(memory);
        }
        let mut memory = GuestMemory::new(len)?;
        memory.advise_huge_pages(0, len);
        memory.dirty = Some((0..len.div_ceil(DIRTY_PAGE).div_ceil(64)).map(|_| AtomicU64::new(0)).collect());
        Ok(memory)
    }

    /// Keeps at most `n` guard memories for reuse from now on (0: none —
    /// every guard's memory is unmapped when it ends). For a process that
    /// must bound its resident memory, such as the daemon, whose guards
    /// boot off the request path anyway. Memories kept beyond the new
    /// limit are released.
    pub fn keep_at_most(n: usize) {
        POOL_LIMIT.store(n, std::sync::atomic::Ordering::Relaxed);
        let released: Vec<GuestMemory> = {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            let keep = pool.len().min(n);
            pool.drain(keep..).collect()
        };
        for mut memory in released {
            // Without its dirty map it is unmapped when dropped, not pooled
            // again.
            let _ = memory.dirty.take();
        }
    }

    /// Marks `[address, address + len)` as possibly written by the guest
    /// (a writable mapping): zeroed before the memory is reused.
    pub fn mark_guest_writable(&self, address: u64, len: usize) {
        self.note_dirty(address as usize, len);
    }

    fn note_dirty(&self, start: usize, len: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(dirty) = &self.dirty else { return };
        let end = start.saturating_add(len).min(self.len);
        if start >= end {
            return;
        }
        let (first, last) = (start / DIRTY_PAGE, (end - 1) / DIRTY_PAGE);
        let mut page = first;
        while page <= last {
            let (word, bit) = (page / 64, page % 64);
            // Bits `bit..` of this word up to `last`.
            let upto = (last - page).min(63 - bit);
            let mask = (u64::MAX >> (63 - upto)) << bit;
            if let Some(w) = dirty.get(word) {
                w.fetch_or(mask, Relaxed);
            }
            page += upto + 1;
        }
    }

    /// Zeroes every dirty page (runs of them at once) and clears the map.
    fn scrub(&mut self) {
        let Some(dirty) = &mut self.dirty else { return };
        let pages = self.len.div_ceil(DIRTY_PAGE);
        let words: Vec<u64> = dirty.iter_mut().map(|w| std::mem::take(w.get_mut())).collect();
        let is_dirty = |page: usize| words.get(page / 64).is_some_and(|w| w >> (page % 64) & 1 == 1);
        let mut page = 0;
        while page < pages {
            if !is_dirty(page) {
                page += 1;
                continue;
            }
            let start = page;
            while page < pages && is_dirty(page) {
                page += 1;
            }
            let from = start * DIRTY_PAGE;
            let to = (page * DIRTY_PAGE).min(self.len);
            // SAFETY: `from < to <= self.len`: the range is inside the
            // mapping; no VM uses it any more (the memory is being dropped)
            // and no host reference into it outlives `self`.
            unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(from), 0, to - from) };
        }
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
        self.note_dirty(address as usize, bytes.len());
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
        let limit = || POOL_LIMIT.load(std::sync::atomic::Ordering::Relaxed);
        let room = || POOL.lock().unwrap_or_else(|e| e.into_inner()).len() < limit();
        if self.dirty.is_some() && room() {
            // Zeroed without the pool's lock (other guards boot meanwhile).
            self.scrub();
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < limit() {
                pool.push(GuestMemory { ptr: self.ptr, len: self.len, dirty: self.dirty.take() });
                return;
            }
        }
        // SAFETY: unmaps exactly the mapping made in `new`; no references to
        // it outlive `self` (atomics borrow `self`), and a pooled copy was
        // not made (the `return` above).
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

    #[test]
    fn the_dirty_map_marks_exactly_the_pages_a_range_touches() {
        let mut mem = GuestMemory::for_guard(1 << 20).unwrap();
        mem.mark_guest_writable(4095, 2); // pages 0 and 1
        mem.mark_guest_writable(64 * 4096 - 1, 4096 * 66); // pages 63..=129
        mem.mark_guest_writable(1 << 30, 10); // outside: ignored
        let words: Vec<u64> = mem.dirty.as_mut().unwrap().iter_mut().map(|w| *w.get_mut()).collect();
        let set: Vec<usize> = (0..256).filter(|p| words[p / 64] >> (p % 64) & 1 == 1).collect();
        let mut expected = vec![0, 1];
        expected.extend(63..=129);
        assert_eq!(set, expected);
        // A write far past the end of the page map, clamped: no panic.
        mem.note_dirty(usize::MAX - 5, 100);
    }

    #[test]
    fn reused_guard_memory_reads_zero_wherever_it_was_written() {
        const LEN: usize = 4 << 20;
        let (first, address) = {
            let mem = GuestMemory::for_guard(LEN).unwrap();
            mem.write(0x1234, &[0xAA; 100]).unwrap();
            mem.mark_guest_writable(0x20_0000, 0x1000);
            // The "guest" writes through the atomic view.
            mem.atomic_u64(0x20_0800).unwrap().store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
            (mem.host_address(), 0x20_0800)
        };
        // Tests run in parallel: take memories until this one comes back
        // (or a new one: then the pool was taken by another test, and the
        // check below holds trivially for a fresh mapping).
        let mem = GuestMemory::for_guard(LEN).unwrap();
        let mut out = [0xFFu8; 100];
        mem.read(0x1234, &mut out).unwrap();
        assert_eq!(out, [0; 100], "reused: {}", mem.host_address() == first);
        assert_eq!(mem.read_u64(address).unwrap(), 0);
    }
}
