//! The guard's entropy: the host seed from boot info mixed with whatever the
//! CPU's own generators deliver. The result is a 32-byte seed and a record of
//! which sources contributed (reported by `Info`, later in evidence).

use sha2::{Digest, Sha256};

use crate::abi::entropy;

/// Domain separation for the seed derivation.
const DOMAIN: &[u8] = b"vigil guard entropy v1";

/// Accumulates entropy sources into a seed.
pub struct EntropyPool {
    hash: Sha256,
    sources: u32,
}

impl EntropyPool {
    /// Starts a pool from the host's 32-byte seed.
    pub fn new(host_seed: &[u8; 32]) -> Self {
        let mut hash = Sha256::new();
        hash.update(DOMAIN);
        hash.update(host_seed);
        let sources = if host_seed.iter().any(|&b| b != 0) { entropy::HOST_SEED } else { 0 };
        EntropyPool { hash, sources }
    }

    /// Mixes in one 64-bit word delivered by the source `bit`
    /// (an [`entropy`] constant).
    pub fn mix(&mut self, bit: u32, word: u64) {
        self.hash.update(bit.to_le_bytes());
        self.hash.update(word.to_le_bytes());
        self.sources |= bit;
    }

    /// Bitmask of the sources that contributed.
    pub fn sources(&self) -> u32 {
        self.sources
    }

    /// The final seed and the sources bitmask.
    pub fn finish(self) -> ([u8; 32], u32) {
        (self.hash.finalize().into(), self.sources)
    }
}

/// How many times a CPU generator is retried before it counts as failed
/// (Intel recommends 10 for RDRAND).
pub const RETRIES: usize = 10;

/// Draws `words` words from `generator` (which returns `None` when the CPU
/// reported no data) into `pool`. Returns how many words were delivered.
pub fn draw(pool: &mut EntropyPool, bit: u32, words: usize, mut generator: impl FnMut() -> Option<u64>) -> usize {
    let mut delivered = 0;
    for _ in 0..words {
        if let Some(word) = (0..RETRIES).find_map(|_| generator()) {
            pool.mix(bit, word);
            delivered += 1;
        }
    }
    delivered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_recorded_only_when_they_deliver() {
        let mut pool = EntropyPool::new(&[7; 32]);
        assert_eq!(draw(&mut pool, entropy::RDSEED, 4, || None), 0);
        assert_eq!(draw(&mut pool, entropy::RDRAND, 4, || Some(42)), 4);
        let (_, sources) = pool.finish();
        assert_eq!(sources, entropy::HOST_SEED | entropy::RDRAND);
    }

    #[test]
    fn zero_host_seed_is_not_a_source() {
        assert_eq!(EntropyPool::new(&[0; 32]).sources(), 0);
    }

    #[test]
    fn seed_depends_on_every_input() {
        let seed = |host: u8, word: u64| {
            let mut pool = EntropyPool::new(&[host; 32]);
            pool.mix(entropy::RDRAND, word);
            pool.finish().0
        };
        assert_ne!(seed(1, 1), seed(2, 1));
        assert_ne!(seed(1, 1), seed(1, 2));
        assert_eq!(seed(1, 1), seed(1, 1));
    }

    #[test]
    fn flaky_generator_is_retried() {
        let mut calls = 0;
        let mut pool = EntropyPool::new(&[0; 32]);
        let got = draw(&mut pool, entropy::RDSEED, 1, || {
            calls += 1;
            (calls == 3).then_some(9)
        });
        assert_eq!(got, 1);
        assert_eq!(calls, 3);
    }
}
