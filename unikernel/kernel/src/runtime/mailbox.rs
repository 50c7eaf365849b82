//! The guest side of the mailbox in shared memory (layout in [`abi::mailbox`]).
//!
//! Sequence words are accessed as atomics: the host writes request fields
//! and then the request `SEQ` (release); the guest answers in the response
//! area and then stores the response `SEQ` (release).

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::abi::mailbox::{self, control, header};
use crate::abi::{attest_request, evidence_reply};
use crate::platform::AttestRequest;

/// The mailbox region at a fixed guest address.
pub struct Mailbox {
    base: usize,
}

impl Mailbox {
    /// # Safety
    /// `base` must be the mailbox region from boot info: `MAILBOX_SIZE`
    /// bytes, mapped user read-write, 4 KiB aligned, shared only with the
    /// host, for the life of the guard.
    pub unsafe fn new(base: usize) -> Self {
        Mailbox { base }
    }

    fn u64_at(&self, offset: u64) -> &AtomicU64 {
        // SAFETY: every offset used is a constant of `abi::mailbox`, 8-byte
        // aligned and inside the region `new` was given.
        unsafe { &*((self.base + offset as usize) as *const AtomicU64) }
    }

    fn u32_at(&self, offset: u64) -> &AtomicU32 {
        // SAFETY: as for `u64_at`, 4-byte aligned.
        unsafe { &*((self.base + offset as usize) as *const AtomicU32) }
    }

    /// The request sequence word.
    #[inline(always)]
    pub fn request_seq(&self) -> u64 {
        self.u64_at(mailbox::REQUEST + header::SEQ).load(Ordering::Acquire)
    }

    /// The request sequence word, in the total order of `SeqCst` accesses
    /// (used right before sleeping, see `main_loop::run`).
    pub fn request_seq_seqcst(&self) -> u64 {
        self.u64_at(mailbox::REQUEST + header::SEQ).load(Ordering::SeqCst)
    }

    /// Kind and length of the pending request.
    pub fn request_header(&self) -> (u32, usize) {
        let kind = self.u32_at(mailbox::REQUEST + header::KIND_OR_STATUS).load(Ordering::Relaxed);
        let len = self.u32_at(mailbox::REQUEST + header::LEN).load(Ordering::Relaxed);
        (kind, len as usize)
    }

    /// Copies `len` request payload bytes into the guard's own memory, so
    /// that what it judges cannot change under it, and returns them.
    pub fn copy_request<'a>(
        &self,
        scratch: &'a mut MaybeUninit<[u8; mailbox::REQUEST_CAPACITY]>,
        len: usize,
    ) -> &'a mut [u8] {
        let len = len.min(mailbox::REQUEST_CAPACITY);
        let src = (self.base + mailbox::REQUEST_PAYLOAD as usize) as *const u8;
        let dst = scratch.as_mut_ptr().cast::<u8>();
        // SAFETY: the request payload area holds REQUEST_CAPACITY bytes and
        // `len` is bounded by it; `scratch` is guard-private memory that does
        // not overlap the mailbox. The returned slice covers exactly the
        // bytes just written.
        unsafe {
            core::ptr::copy_nonoverlapping(src, dst, len);
            core::slice::from_raw_parts_mut(dst, len)
        }
    }

    /// The response payload area.
    pub fn response_area(&mut self) -> &mut [u8] {
        let start = (self.base + mailbox::RESPONSE_PAYLOAD as usize) as *mut u8;
        // SAFETY: the response payload area holds RESPONSE_CAPACITY bytes;
        // the host does not touch it while a request is outstanding, and
        // `&mut self` makes this the only guest reference.
        unsafe { core::slice::from_raw_parts_mut(start, mailbox::RESPONSE_CAPACITY) }
    }

    /// Publishes a response to request `seq`.
    pub fn respond(&mut self, seq: u64, status: u32, len: usize) {
        self.u32_at(mailbox::RESPONSE + header::KIND_OR_STATUS).store(status, Ordering::Relaxed);
        self.u32_at(mailbox::RESPONSE + header::LEN).store(len as u32, Ordering::Relaxed);
        self.u64_at(mailbox::RESPONSE + header::SEQ).store(seq, Ordering::Release);
    }

    /// Records the last request answered (read by the host on `SLEEP`).
    pub fn set_seen(&self, seq: u64) {
        self.u64_at(control::SEEN_SEQ).store(seq, Ordering::Release);
    }

    /// Records the last request answered, in the total order of `SeqCst`
    /// accesses (right before deciding to sleep).
    pub fn set_seen_seqcst(&self, seq: u64) {
        self.u64_at(control::SEEN_SEQ).store(seq, Ordering::SeqCst);
    }

    /// Writes the attestation request area (read by the VMM on `ATTEST`).
    pub fn write_attest_request(&mut self, request: &AttestRequest<'_>) {
        let nonce_len = request.nonce.len().min(attest_request::NONCE_MAX);
        let base = self.base + mailbox::ATTEST as usize;
        let put = |at: usize, bytes: &[u8]| {
            // SAFETY: every field lies inside the attestation request area
            // (`attest_request::LEN` bytes at `mailbox::ATTEST`, checked at
            // compile time in `abi`); bytes are copied from guard memory.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), (base + at) as *mut u8, bytes.len()) }
        };
        put(attest_request::NONCE_LEN, &(nonce_len as u32).to_le_bytes());
        put(attest_request::ENTROPY, &request.entropy.to_le_bytes());
        put(attest_request::NONCE, &request.nonce[..nonce_len]);
        put(attest_request::X25519, request.x25519);
        put(attest_request::ED25519, &request.key.ed25519);
        put(attest_request::ML_DSA_65, &request.key.ml_dsa_65);
    }

    /// Copies the VMM's evidence into `out`; `None` when the VMM refused or
    /// the evidence does not fit.
    pub fn read_evidence(&self, out: &mut [u8]) -> Option<usize> {
        let base = mailbox::EVIDENCE;
        let status = self.u32_at(base + evidence_reply::STATUS as u64).load(Ordering::Acquire);
        let len = self.u32_at(base + evidence_reply::LEN as u64).load(Ordering::Acquire) as usize;
        if status != crate::abi::status::OK || len > evidence_reply::CAPACITY || len > out.len() {
            return None;
        }
        let src = (self.base + (base as usize) + evidence_reply::BYTES) as *const u8;
        // SAFETY: `len` is bounded by the evidence area's capacity and by
        // `out`; the area lies inside the mailbox region.
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), len) };
        Some(len)
    }

    /// Announces the guest's ABI version.
    pub fn set_guest_abi(&self, version: u32) {
        self.u32_at(control::GUEST_ABI).store(version, Ordering::Release);
    }

    /// Writes the panic message area (cut to capacity at a char boundary).
    pub fn set_panic_message(&self, message: &[u8]) {
        let len = message.len().min(control::PANIC_CAPACITY);
        let dst = (self.base + control::PANIC_MESSAGE as usize) as *mut u8;
        // SAFETY: the panic area holds PANIC_CAPACITY bytes.
        unsafe { core::ptr::copy_nonoverlapping(message.as_ptr(), dst, len) };
        self.u32_at(control::PANIC_LEN).store(len as u32, Ordering::Release);
    }
}
