//! The memory functions compiled code calls: `memcpy`, `memmove`, `memset`,
//! `memcmp` and `bcmp`.
//!
//! The x86_64 guard is built for `x86_64-unknown-linux-gnu` without a C
//! library (docs/guest-abi.md, "Build"): that target has SSE2 and lets the
//! crypto crates detect SHA and AVX2 at run time, which the bare-metal
//! target does not. The compiler's builtins define these symbols only for
//! bare-metal targets, so the guard defines them. Copies and fills use the
//! string instructions, which the compiler never turns back into a call to
//! themselves: bytes up to an 8-byte aligned destination, then eight bytes
//! at a time (`rep movsq`, `rep stosq`), then the rest. Byte-wise `rep
//! movsb` alone was measured 4–12 times slower for a 4 KiB copy in the
//! guest on an AMD EPYC host.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest` (C's `memcpy`).
///
/// # Safety
/// As C's `memcpy`: `src` readable and `dest` writable for `n` bytes, the
/// two not overlapping.
pub unsafe fn copy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // Bytes up to an 8-byte aligned destination, words, the rest.
    let head = dest.align_offset(8).min(n);
    let (words, tail) = ((n - head) / 8, (n - head) % 8);
    // SAFETY: the caller's contract; the direction flag is clear at every
    // call (the ABI requires it), so the three copies run forward, each
    // from where the previous one stopped: `head + 8 words + tail = n`.
    unsafe {
        asm!("rep movsb", "mov rcx, {words}", "rep movsq", "mov ecx, {tail:e}", "rep movsb",
             words = in(reg) words, tail = in(reg) tail,
             inout("rcx") head => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the two may overlap (C's
/// `memmove`).
///
/// # Safety
/// As C's `memmove`: `src` readable and `dest` writable for `n` bytes.
pub unsafe fn copy_overlapping(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src` or past the source: a forward copy never
        // reads a byte it already wrote (the word copy reads each word
        // before it writes it).
        // SAFETY: the caller's contract.
        return unsafe { copy(dest, src, n) };
    }
    // SAFETY: the caller's contract; `dest` lies inside `[src, src + n)`, so
    // `n > 0` and the copy runs backward from the last byte; the direction
    // flag is set only for this copy and cleared again.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
             inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dest
}

/// Fills `n` bytes at `dest` with the low byte of `c` (C's `memset`).
///
/// # Safety
/// As C's `memset`: `dest` writable for `n` bytes.
pub unsafe fn fill(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    let word = u64::from(c as u8) * 0x0101_0101_0101_0101;
    let head = dest.align_offset(8).min(n);
    let (words, tail) = ((n - head) / 8, (n - head) % 8);
    // SAFETY: the caller's contract; the direction flag is clear: bytes up
    // to an aligned address, words of the byte, the rest (`al` is the byte).
    unsafe {
        asm!("rep stosb", "mov rcx, {words}", "rep stosq", "mov ecx, {tail:e}", "rep stosb",
             words = in(reg) words, tail = in(reg) tail,
             inout("rcx") head => _, inout("rdi") dest => _, in("rax") word,
             options(nostack, preserves_flags));
    }
    dest
}

/// Compares `n` bytes: negative, zero or positive as the first differing
/// byte of `a` is below, equal to or above that of `b` (C's `memcmp`).
///
/// # Safety
/// As C's `memcmp`: both readable for `n` bytes.
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`: both words lie in the compared ranges.
        let (x, y) = unsafe { (a.add(i).cast::<u64>().read_unaligned(), b.add(i).cast::<u64>().read_unaligned()) };
        if x != y {
            // Little-endian: the lowest differing bit is in the first
            // differing byte.
            i += ((x ^ y).trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// The C symbols, in the guard image only (a host test binary has its C
/// library's).
#[cfg(vigil_guest)]
mod symbols {
    /// `memcpy`.
    ///
    /// # Safety
    /// As C's `memcpy`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `copy`'s.
        unsafe { super::copy(dest, src, n) }
    }

    /// `memmove`.
    ///
    /// # Safety
    /// As C's `memmove`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `copy_overlapping`'s.
        unsafe { super::copy_overlapping(dest, src, n) }
    }

    /// `memset`.
    ///
    /// # Safety
    /// As C's `memset`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `fill`'s.
        unsafe { super::fill(dest, c, n) }
    }

    /// `memcmp`.
    ///
    /// # Safety
    /// As C's `memcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the caller's contract is `compare`'s.
        unsafe { super::compare(a, b, n) }
    }

    /// `bcmp`: zero when equal.
    ///
    /// # Safety
    /// As C's `bcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the caller's contract is `compare`'s.
        unsafe { super::compare(a, b, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length up to 80 and some longer ones, at every offset within
    /// a word for source and destination.
    fn cases() -> impl Iterator<Item = (usize, usize, usize)> {
        let lens = (0..80).chain([127, 128, 129, 4095, 4096, 4097]);
        lens.flat_map(|n| (0..9).flat_map(move |d| (0..9).map(move |s| (n, d, s))))
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn copy_and_fill_write_exactly_the_range() {
        for (n, d, s) in cases() {
            let src = pattern(n + 16, 1);
            let mut dest = vec![0xEE; n + 32];
            // SAFETY: both ranges lie inside their vectors.
            let returned = unsafe { copy(dest.as_mut_ptr().add(d), src.as_ptr().add(s), n) };
            assert_eq!(returned, dest.as_mut_ptr().wrapping_add(d));
            assert_eq!(&dest[d..d + n], &src[s..s + n], "copy n={n} d={d} s={s}");
            assert!(dest[..d].iter().chain(&dest[d + n..]).all(|&b| b == 0xEE), "copy wrote outside n={n} d={d}");
            let mut dest = vec![0xEE; n + 32];
            // SAFETY: the range lies inside the vector.
            unsafe { fill(dest.as_mut_ptr().add(d), 0x1_37, n) };
            assert!(dest[d..d + n].iter().all(|&b| b == 0x37), "fill n={n} d={d}");
            assert!(dest[..d].iter().chain(&dest[d + n..]).all(|&b| b == 0xEE), "fill wrote outside n={n} d={d}");
        }
    }

    #[test]
    fn overlapping_copies_move_like_copy_within() {
        for (n, d, s) in cases() {
            for shift in [0, 1, 7, 8, 9, 33] {
                for forward in [true, false] {
                    let mut buf = pattern(n + 64, 3);
                    let (from, to) = if forward { (s, s + shift) } else { (s + shift, s) };
                    let to = to + d % 2;
                    let mut expected = buf.clone();
                    expected.copy_within(from..from + n, to);
                    let base = buf.as_mut_ptr();
                    // SAFETY: both ranges lie inside the buffer.
                    unsafe { copy_overlapping(base.add(to), base.add(from), n) };
                    assert_eq!(buf, expected, "n={n} from={from} to={to}");
                }
            }
        }
    }

    #[test]
    fn compare_orders_like_slices() {
        for (n, d, s) in cases() {
            let a = pattern(n + 16, 5);
            let mut b = a.clone();
            let (x, y) = (&a[d.min(a.len())..], &b[d.min(b.len())..]);
            // SAFETY: `n` bytes from `d` lie inside both (16 spare bytes).
            assert_eq!(unsafe { compare(x.as_ptr(), y.as_ptr(), n) }, 0);
            if n == 0 {
                continue;
            }
            let at = d + (s * 7) % n;
            for delta in [1u8, 0x80, 0xFF] {
                b[at] = a[at].wrapping_add(delta);
                // SAFETY: as above.
                let got = unsafe { compare(a.as_ptr().add(d), b.as_ptr().add(d), n) };
                let want = a[d..d + n].cmp(&b[d..d + n]);
                assert_eq!(got.signum(), want as i32, "n={n} at={at} delta={delta}");
                assert_eq!(got, i32::from(a[at]) - i32::from(b[at]));
                b[at] = a[at];
            }
        }
    }
}
