//! The counter-based generator behind [`Op::Random`](crate::ir::Op::Random), defined exactly so
//! that every backend draws the same numbers for the same `(seed, stream, element)`.
//!
//! For element `i` (row-major position in the result) of stream `stream` with seed `seed`:
//!
//! ```text
//! h(i)       = splitmix64(seed as u64 ^ stream * 0x9E3779B97F4A7C15 ^ i * 0xD1B54A32D192ED03)
//! uniform(i) = (h(i) >> 40) as f64 / 2^24          // in [0, 1), exactly representable in f32
//! normal(i)  = sqrt(-2 ln(1 - uniform(2i))) * cos(2 pi uniform(2i + 1))   // Box–Muller
//! ```
//!
//! Multiplications are wrapping (mod 2^64), `seed as u64` is the two's-complement bit pattern.
//! `Uniform` results are `uniform(i)`; `Normal` results are `normal(i)`, computed in f64 and
//! rounded once to f32 in f32 runs (a backend computing Box–Muller in f32 will differ by an ulp
//! or so; uniforms agree bit for bit). `1 - u` lies in `(0, 1]`, so the logarithm is finite.

use crate::ir::Distribution;

/// The multiplier that spreads stream numbers apart (the golden-ratio constant).
pub const STREAM_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
/// The multiplier that spreads element indices apart.
pub const INDEX_MULTIPLIER: u64 = 0xD1B5_4A32_D192_ED03;

/// SplitMix64 (Steele, Lea and Flood): the output for generator state `x`, i.e. the state is
/// first advanced by `0x9E3779B97F4A7C15` and then mixed (shifts 30/27/31, multipliers
/// `0xBF58476D1CE4E5B9` and `0x94D049BB133111EB`). `splitmix64(0) == 0xE220A8397B1DCDAF`, the
/// first output of the reference generator seeded with 0. A good 64-bit mixer, so nearby
/// counters give unrelated outputs.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64 random bits of element `i` in `stream` under `seed`.
pub fn bits(seed: i64, stream: u64, i: u64) -> u64 {
    splitmix64(
        seed as u64 ^ stream.wrapping_mul(STREAM_MULTIPLIER) ^ i.wrapping_mul(INDEX_MULTIPLIER),
    )
}

/// Uniform on `[0, 1)` with 24 random bits, so exactly representable in f32.
pub fn uniform(seed: i64, stream: u64, i: u64) -> f64 {
    (bits(seed, stream, i) >> 40) as f64 / (1u64 << 24) as f64
}

/// Standard normal by Box–Muller from the uniforms of indices `2i` and `2i + 1`.
pub fn normal(seed: i64, stream: u64, i: u64) -> f64 {
    let u1 = uniform(seed, stream, 2 * i);
    let u2 = uniform(seed, stream, 2 * i + 1);
    (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The first `n` elements of `dist` in `stream` under `seed`, in f64.
pub fn generate(dist: Distribution, seed: i64, stream: u64, n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|i| match dist {
            Distribution::Uniform => uniform(seed, stream, i),
            Distribution::Normal => normal(seed, stream, i),
        })
        .collect()
}
