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

/// Copies `n` bytes from `src` to `dest`.
///
/// # Safety
/// As C's `memcpy`: `src` readable and `dest` writable for `n` bytes, the
/// two not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
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

/// Copies `n` bytes from `src` to `dest`; the two may overlap.
///
/// # Safety
/// As C's `memmove`: `src` readable and `dest` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src` or past the source: a forward copy never
        // reads a byte it already wrote.
        // SAFETY: the caller's contract.
        return unsafe { memcpy(dest, src, n) };
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

/// Fills `n` bytes at `dest` with the low byte of `c`.
///
/// # Safety
/// As C's `memset`: `dest` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
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
/// byte of `a` is below, equal to or above that of `b`.
///
/// # Safety
/// As C's `memcmp`: both readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
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

/// Compares `n` bytes: zero when equal.
///
/// # Safety
/// As C's `bcmp`: both readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract is `memcmp`'s.
    unsafe { memcmp(a, b, n) }
}
