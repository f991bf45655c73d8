//! The seeded permutations behind `split` and `shuffle`.
//!
//! Determinism is a contract here: the same seed must give the same split and the same epoch
//! order on every machine and in every version, because resuming from a checkpoint replays the
//! data order from `(seed, epoch)`. So the generator is written out in this file (SplitMix64,
//! Steele, Lea and Flood 2014) rather than taken from a crate whose stream may change between
//! versions.

/// SplitMix64: a 64-bit generator whose whole state is one counter. Small, fast, and with good
/// statistical quality for permuting data sets; not for cryptography.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A generator started from `seed`; equal seeds give equal streams.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's multiply-and-reject
    /// method), so every permutation is equally likely.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// Combine key parts into one seed, so that distinct uses of the same user seed (the split, and
/// each epoch's shuffle) draw independent streams.
pub fn key(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6E65_7463_0000_0000, |h, &p| {
        mix(h.wrapping_add(GOLDEN) ^ p)
    })
}

/// Domain tags for [`key`]: keep the split's permutation unrelated to epoch 0's shuffle even
/// when both use the same seed.
pub const SPLIT_TAG: u64 = 1;
/// See [`SPLIT_TAG`].
pub const SHUFFLE_TAG: u64 = 2;

/// A uniformly random permutation of `0..n` (Fisher–Yates), fully determined by `seed`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // First outputs of the reference C implementation seeded with 1234567.
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn permutations_are_deterministic_and_complete() {
        let a = permutation(1000, 42);
        let b = permutation(1000, 42);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, permutation(1000, 43));
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        assert!(permutation(0, 1).is_empty());
        assert_eq!(permutation(1, 1), vec![0]);
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut r = SplitMix64::new(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[r.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }
}
