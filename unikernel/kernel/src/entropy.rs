//! The guard's entropy: the host seed from boot info mixed with whatever the
//! CPU's own generators deliver. The result is a 32-byte seed and a record of
//! which sources contributed (reported by `Info`, later in evidence).

use sha2::{Digest, Sha256};

use crate::abi::entropy;

/// Domain separation for the seed derivation.
const DOMAIN: &[u8] = b"vigil guard entropy v1";

/// Words of CPU entropy a pool holds (more than the guard draws: 4 per
/// source, at most 2 sources).
pub const MAX_WORDS: usize = 16;

/// Bytes a pool holds: the domain, the host seed, then 12 bytes per word.
const CAPACITY: usize = DOMAIN.len() + 32 + MAX_WORDS * 12;

/// Accumulates entropy sources into a seed.
///
/// The inputs are kept as they come and hashed (SHA-256) only by
/// [`EntropyPool::finish`]: the first hash runs the SHA code's CPU
/// detection (`CPUID`, an exit to the hypervisor), which the guard's boot
/// should not wait for; the guard finishes its pool when it first needs its
/// keys.
pub struct EntropyPool {
    input: [u8; CAPACITY],
    len: usize,
    sources: u32,
}

impl EntropyPool {
    /// Starts a pool from the host's 32-byte seed.
    pub fn new(host_seed: &[u8; 32]) -> Self {
        let mut pool = EntropyPool { input: [0; CAPACITY], len: 0, sources: 0 };
        pool.push(DOMAIN);
        pool.push(host_seed);
        if host_seed.iter().any(|&b| b != 0) {
            pool.sources = entropy::HOST_SEED;
        }
        pool
    }

    fn push(&mut self, bytes: &[u8]) {
        self.input[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Mixes in one 64-bit word delivered by the source `bit` (an
    /// [`entropy`] constant). Returns `false`, and records nothing, when
    /// the pool already holds [`MAX_WORDS`] words.
    pub fn mix(&mut self, bit: u32, word: u64) -> bool {
        if self.len + 12 > CAPACITY {
            return false;
        }
        self.push(&bit.to_le_bytes());
        self.push(&word.to_le_bytes());
        self.sources |= bit;
        true
    }

    /// Bitmask of the sources that contributed.
    pub fn sources(&self) -> u32 {
        self.sources
    }

    /// The final seed (SHA-256 over the domain, the host seed and every
    /// word mixed in, each as source bit u32 LE then word u64 LE) and the
    /// sources bitmask.
    pub fn finish(&self) -> ([u8; 32], u32) {
        (Sha256::digest(&self.input[..self.len]).into(), self.sources)
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
        if let Some(word) = (0..RETRIES).find_map(|_| generator())
            && pool.mix(bit, word)
        {
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
    fn the_seed_is_sha256_of_the_inputs_and_a_full_pool_takes_no_more() {
        let mut pool = EntropyPool::new(&[3; 32]);
        assert_eq!(draw(&mut pool, entropy::RDSEED, MAX_WORDS + 5, || Some(7)), MAX_WORDS);
        let mut expected = Sha256::new();
        expected.update(DOMAIN);
        expected.update([3; 32]);
        for _ in 0..MAX_WORDS {
            expected.update(entropy::RDSEED.to_le_bytes());
            expected.update(7u64.to_le_bytes());
        }
        let (seed, sources) = pool.finish();
        assert_eq!(seed, <[u8; 32]>::from(expected.finalize()));
        assert_eq!(sources, entropy::HOST_SEED | entropy::RDSEED);
        let mut full = EntropyPool::new(&[0; 32]);
        for _ in 0..MAX_WORDS {
            assert!(full.mix(entropy::RDRAND, 1));
        }
        assert!(!full.mix(entropy::RNDR, 1), "a full pool took a word");
        assert_eq!(full.sources(), entropy::RDRAND, "a source that mixed nothing was recorded");
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
