//! The attested channel's key schedule and record layer (docs/protocol.md).
//! `no_std`, no allocation: the same code runs in the guard and the host.
//!
//! Handshake: the client makes an ephemeral X25519 key `C`; the guard's
//! X25519 key `G` is the one its evidence vouches for. Both compute
//! `ss = X25519(c, G) = X25519(g, C)` and
//! `transcript = SHA-256("vigil-channel-v1" || evidence digest || G || C)`,
//! then `HKDF-SHA256(salt = transcript, ikm = ss)` expanded with
//! `"vigil c2g"` and `"vigil g2c"` gives one ChaCha20-Poly1305 key per
//! direction. Key confirmation: the first record each way must carry the
//! transcript (see [`Session::confirm`] / [`Session::check_confirmation`]).
//!
//! Records: `version u8 (1) || direction u8 (1 = client→guard, 2 =
//! guard→client) || counter u64 LE || ciphertext || tag(16)`; nonce =
//! `0u32 || counter LE`; AAD = the 10-byte header. Counters start at 0 and
//! must arrive exactly in order; a record replayed, reordered, truncated,
//! modified or sent under the other direction's key fails and ends the
//! session.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Record format version.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 10;
/// Tag length.
pub const TAG_LEN: usize = 16;
/// Record overhead (header + tag).
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Evidence digest length (SHA-384).
pub const EVIDENCE_DIGEST_LEN: usize = 48;

/// Which side a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The client (agent side).
    Client,
    /// The guard.
    Guard,
}

impl Role {
    fn send_direction(self) -> u8 {
        match self {
            Role::Client => 1,
            Role::Guard => 2,
        }
    }
}

/// Why a channel operation failed. Every failure ends the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// The peer's key is a low-order point (no shared secret).
    WeakKey,
    /// The session already failed.
    Closed,
    /// A record shorter than its header and tag, or with a bad version.
    Malformed,
    /// A record for the other direction.
    WrongDirection,
    /// A counter other than the next expected one (replay, reorder, drop).
    OutOfOrder,
    /// Authentication failed (modified, truncated, wrong key).
    BadRecord,
    /// The output buffer is too small.
    BufferTooSmall,
    /// The counter would wrap.
    Exhausted,
    /// The first record did not confirm the transcript.
    ConfirmationFailed,
}

impl core::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ChannelError::WeakKey => "the peer's X25519 key is a low-order point (no shared secret)",
            ChannelError::Closed => "the channel session already failed and is closed",
            ChannelError::Malformed => "a channel record is shorter than its header and tag, or has a bad version",
            ChannelError::WrongDirection => "a channel record for the other direction (reflected)",
            ChannelError::OutOfOrder => "a channel record out of order (replayed, reordered or dropped)",
            ChannelError::BadRecord => "a channel record does not authenticate (modified, truncated or another key)",
            ChannelError::BufferTooSmall => "the channel output buffer is too small",
            ChannelError::Exhausted => "the channel record counter would wrap",
            ChannelError::ConfirmationFailed => "the key confirmation does not match the transcript",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ChannelError {}

/// One side of an established channel.
pub struct Session {
    role: Role,
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    send_counter: u64,
    recv_counter: u64,
    transcript: [u8; 32],
    closed: bool,
}

fn transcript(evidence_digest: &[u8; EVIDENCE_DIGEST_LEN], guard: &[u8; 32], client: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"vigil-channel-v1");
    h.update(evidence_digest);
    h.update(guard);
    h.update(client);
    h.finalize().into()
}

/// The two direction keys, zeroized once the ciphers are keyed (which
/// zeroize their own copies on drop: `chacha20poly1305`'s `zeroize`).
fn keys(shared: &[u8; 32], transcript: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let hk = Hkdf::<Sha256>::new(Some(transcript), shared);
    let (mut c2g, mut g2c) = (Zeroizing::new([0u8; 32]), Zeroizing::new([0u8; 32]));
    // 32-byte outputs never exceed HKDF's limit.
    let _ = hk.expand(b"vigil c2g", &mut c2g[..]);
    let _ = hk.expand(b"vigil g2c", &mut g2c[..]);
    (c2g, g2c)
}

/// Runs the channel's cipher once over a throwaway key and an empty
/// message. The first use of a cipher runs its CPU feature detection
/// (`CPUID`, which in a VM is an exit to the hypervisor, tens of
/// microseconds under nested KVM); the guard calls this when idle so that
/// opening a channel does not pay for it.
pub fn detect_cpu_features() {
    let cipher = ChaCha20Poly1305::new(&[0u8; 32].into());
    let _ = cipher.encrypt_inout_detached(&Nonce::default(), &[], (&mut [0u8; 0][..]).into());
}

/// The client's ephemeral X25519 key, made before the guard's key is known
/// (its public half costs a scalar multiplication); it keys one session.
/// The secret is zeroized when dropped.
pub struct ClientKey {
    secret: StaticSecret,
    public: [u8; 32],
}

impl ClientKey {
    /// `ephemeral_seed` must be fresh random bytes for every session.
    pub fn new(ephemeral_seed: [u8; 32]) -> Self {
        let secret = StaticSecret::from(ephemeral_seed);
        let public = PublicKey::from(&secret).to_bytes();
        ClientKey { secret, public }
    }

    /// The public key to send.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The client's session with the guard whose key is `guard_public`, for
    /// the evidence whose digest is `evidence_digest`.
    pub fn session(
        self,
        guard_public: &[u8; 32],
        evidence_digest: &[u8; EVIDENCE_DIGEST_LEN],
    ) -> Result<Session, ChannelError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*guard_public));
        if !shared.was_contributory() {
            return Err(ChannelError::WeakKey);
        }
        let t = transcript(evidence_digest, guard_public, &self.public);
        let (c2g, g2c) = keys(shared.as_bytes(), &t);
        Ok(Session::new(Role::Client, &c2g, &g2c, t))
    }
}

impl Session {
    /// Client side: `ephemeral_seed` must be fresh random bytes for every
    /// session. Returns the client public key to send and the session.
    pub fn client(
        ephemeral_seed: [u8; 32],
        guard_public: &[u8; 32],
        evidence_digest: &[u8; EVIDENCE_DIGEST_LEN],
    ) -> Result<([u8; 32], Session), ChannelError> {
        let key = ClientKey::new(ephemeral_seed);
        let public = key.public();
        Ok((public, key.session(guard_public, evidence_digest)?))
    }

    /// Guard side, with the guard's attested X25519 secret.
    pub fn guard(
        guard_secret: &[u8; 32],
        client_public: &[u8; 32],
        evidence_digest: &[u8; EVIDENCE_DIGEST_LEN],
    ) -> Result<Session, ChannelError> {
        let secret = StaticSecret::from(*guard_secret);
        let guard_public = PublicKey::from(&secret).to_bytes();
        let shared = secret.diffie_hellman(&PublicKey::from(*client_public));
        if !shared.was_contributory() {
            return Err(ChannelError::WeakKey);
        }
        let t = transcript(evidence_digest, &guard_public, client_public);
        let (c2g, g2c) = keys(shared.as_bytes(), &t);
        Ok(Session::new(Role::Guard, &g2c, &c2g, t))
    }

    fn new(role: Role, send: &[u8; 32], recv: &[u8; 32], transcript: [u8; 32]) -> Session {
        Session {
            role,
            send: ChaCha20Poly1305::new(send.into()),
            recv: ChaCha20Poly1305::new(recv.into()),
            send_counter: 0,
            recv_counter: 0,
            transcript,
            closed: false,
        }
    }

    /// The handshake transcript hash.
    pub fn transcript(&self) -> &[u8; 32] {
        &self.transcript
    }

    /// Records sent so far (the next send counter).
    pub fn sent(&self) -> u64 {
        self.send_counter
    }

    fn nonce(counter: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_le_bytes());
        Nonce::from(n)
    }

    fn fail<T>(&mut self, e: ChannelError) -> Result<T, ChannelError> {
        self.closed = true;
        Err(e)
    }

    /// Encrypts `plaintext` as the next record into `out`; returns its length.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        if out.len() < plaintext.len() + OVERHEAD {
            return Err(ChannelError::BufferTooSmall);
        }
        out[HEADER_LEN..HEADER_LEN + plaintext.len()].copy_from_slice(plaintext);
        self.seal_in_place(out, plaintext.len())
    }

    /// Encrypts in place: `buf[HEADER_LEN..HEADER_LEN + plaintext_len]`
    /// holds the plaintext; the record is written over `buf` and its length
    /// returned. Saves a copy when the plaintext is built where the record
    /// goes.
    pub fn seal_in_place(&mut self, buf: &mut [u8], plaintext_len: usize) -> Result<usize, ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        let len = plaintext_len.checked_add(OVERHEAD).ok_or(ChannelError::BufferTooSmall)?;
        if buf.len() < len {
            return Err(ChannelError::BufferTooSmall);
        }
        if self.send_counter == u64::MAX {
            return self.fail(ChannelError::Exhausted);
        }
        let counter = self.send_counter;
        buf[0] = VERSION;
        buf[1] = self.role.send_direction();
        buf[2..HEADER_LEN].copy_from_slice(&counter.to_le_bytes());
        let (header, rest) = buf.split_at_mut(HEADER_LEN);
        let (body, tail) = rest.split_at_mut(plaintext_len);
        let tag = match self.send.encrypt_inout_detached(&Self::nonce(counter), header, body.into()) {
            Ok(tag) => tag,
            Err(_) => return self.fail(ChannelError::BadRecord),
        };
        tail[..TAG_LEN].copy_from_slice(&tag);
        self.send_counter += 1;
        Ok(len)
    }

    /// Authenticates and decrypts `record` in place; returns the plaintext.
    pub fn open<'r>(&mut self, record: &'r mut [u8]) -> Result<&'r [u8], ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        if record.len() < OVERHEAD || record[0] != VERSION {
            return self.fail(ChannelError::Malformed);
        }
        let expected_direction = match self.role {
            Role::Client => Role::Guard.send_direction(),
            Role::Guard => Role::Client.send_direction(),
        };
        if record[1] != expected_direction {
            return self.fail(ChannelError::WrongDirection);
        }
        let mut counter_bytes = [0u8; 8];
        counter_bytes.copy_from_slice(&record[2..HEADER_LEN]);
        let counter = u64::from_le_bytes(counter_bytes);
        if counter != self.recv_counter {
            return self.fail(ChannelError::OutOfOrder);
        }
        let body_len = record.len() - OVERHEAD;
        let (header, rest) = record.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(body_len);
        let Ok(tag) = Tag::try_from(&tag[..]) else { return self.fail(ChannelError::Malformed) };
        if self.recv.decrypt_inout_detached(&Self::nonce(counter), header, (&mut *body).into(), &tag).is_err() {
            return self.fail(ChannelError::BadRecord);
        }
        self.recv_counter += 1;
        Ok(body)
    }

    /// The confirmation record payload: the transcript hash.
    pub fn confirm(&mut self, out: &mut [u8]) -> Result<usize, ChannelError> {
        let t = self.transcript;
        self.seal(&t, out)
    }

    /// Checks the peer's first record: it must be the transcript hash.
    pub fn check_confirmation(&mut self, record: &mut [u8]) -> Result<(), ChannelError> {
        let t = self.transcript;
        let plain = self.open(record)?;
        if plain != t {
            return self.fail(ChannelError::ConfirmationFailed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const DIGEST: [u8; 48] = [7; 48];
    const GUARD_SECRET: [u8; 32] = [9; 32];

    fn pair() -> (Session, Session) {
        let guard_public = PublicKey::from(&StaticSecret::from(GUARD_SECRET)).to_bytes();
        let (client_public, client) = Session::client([3; 32], &guard_public, &DIGEST).unwrap();
        let guard = Session::guard(&GUARD_SECRET, &client_public, &DIGEST).unwrap();
        (client, guard)
    }

    fn seal(s: &mut Session, msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; msg.len() + OVERHEAD];
        let n = s.seal(msg, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn round_trip_and_confirmation() {
        let (mut c, mut g) = pair();
        assert_eq!(c.transcript(), g.transcript());
        let mut buf = [0u8; 64];
        let n = c.confirm(&mut buf).unwrap();
        g.check_confirmation(&mut buf[..n]).unwrap();
        let n = g.confirm(&mut buf).unwrap();
        c.check_confirmation(&mut buf[..n]).unwrap();
        for i in 0..100u32 {
            let mut r = seal(&mut c, &i.to_le_bytes());
            assert_eq!(g.open(&mut r).unwrap(), i.to_le_bytes());
            let mut r = seal(&mut g, b"verdict");
            assert_eq!(c.open(&mut r).unwrap(), b"verdict");
        }
    }

    #[test]
    fn replay_reorder_flip_truncate_and_direction_swap_are_rejected() {
        // Replay.
        let (mut c, mut g) = pair();
        let r0 = seal(&mut c, b"a");
        g.open(&mut r0.clone()).unwrap();
        assert_eq!(g.open(&mut r0.clone()), Err(ChannelError::OutOfOrder));
        assert_eq!(g.open(&mut seal(&mut c, b"b")), Err(ChannelError::Closed), "a failed session stays closed");
        // Reorder.
        let (mut c, mut g) = pair();
        let _r0 = seal(&mut c, b"a");
        let mut r1 = seal(&mut c, b"b");
        assert_eq!(g.open(&mut r1), Err(ChannelError::OutOfOrder));
        // Every single-bit flip.
        let (mut c, _) = pair();
        let r = seal(&mut c, b"intent bytes");
        for bit in 0..r.len() * 8 {
            let (_, mut g) = pair();
            let mut bad = r.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(g.open(&mut bad).is_err(), "flip of bit {bit} accepted");
        }
        // Truncation at every length.
        for len in 0..r.len() {
            let (_, mut g) = pair();
            let mut cut = r[..len].to_vec();
            assert!(g.open(&mut cut).is_err(), "truncation to {len} accepted");
        }
        // Direction swap: a client record fed back to the client, and a
        // guard record whose direction byte is rewritten.
        let (mut c, mut g) = pair();
        let mut own = seal(&mut c, b"x");
        assert_eq!(c.open(&mut own), Err(ChannelError::WrongDirection));
        let mut from_guard = seal(&mut g, b"x");
        from_guard[1] = 1;
        let (_, mut g2) = pair();
        assert!(g2.open(&mut from_guard).is_err());
    }

    #[test]
    fn wrong_evidence_or_key_gives_no_channel() {
        let guard_public = PublicKey::from(&StaticSecret::from(GUARD_SECRET)).to_bytes();
        let (client_public, mut c) = Session::client([3; 32], &guard_public, &DIGEST).unwrap();
        let mut other_evidence = Session::guard(&GUARD_SECRET, &client_public, &[8; 48]).unwrap();
        let mut r = seal(&mut c, b"x");
        assert_eq!(other_evidence.open(&mut r), Err(ChannelError::BadRecord));
        let mut impostor = Session::guard(&[10; 32], &client_public, &DIGEST).unwrap();
        let mut r = seal(&mut pair().0, b"x");
        assert_eq!(impostor.open(&mut r), Err(ChannelError::BadRecord));
        assert_eq!(Session::client([3; 32], &[0; 32], &DIGEST).err(), Some(ChannelError::WeakKey));
    }

    #[test]
    fn no_key_nonce_pair_repeats() {
        // Keys differ per direction and per session; counters never repeat
        // within one. Track (key, nonce) over many sessions and records.
        let mut seen = HashSet::new();
        for s in 0..20u8 {
            let guard_public = PublicKey::from(&StaticSecret::from(GUARD_SECRET)).to_bytes();
            let (cp, mut c) = Session::client([s.wrapping_add(1); 32], &guard_public, &DIGEST).unwrap();
            let mut g = Session::guard(&GUARD_SECRET, &cp, &DIGEST).unwrap();
            for _ in 0..50 {
                for (session, dir) in [(&mut c, 1u8), (&mut g, 2u8)] {
                    let counter = session.sent();
                    let r = seal(session, b"m");
                    assert_eq!(r[2..10], counter.to_le_bytes());
                    let key_id = (*session.transcript(), dir);
                    assert!(seen.insert((key_id, counter)), "(key, nonce) reused");
                }
            }
        }
        assert_eq!(seen.len(), 20 * 50 * 2);
    }
}
