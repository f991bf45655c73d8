//! Test data shared by the gradient-check suites: a small deterministic generator, so every
//! check runs on the same reproducible, non-zero values.

#![allow(dead_code, reason = "each test binary uses the part it needs")]

/// Xorshift64: reproducible test data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1], kept away from 0 so kinks (relu, abs, max) and exact zeros are not hit.
    pub fn value(&mut self) -> f64 {
        let v = self.next() * 2.0 - 1.0;
        if v.abs() < 0.05 {
            v + 0.1_f64.copysign(v)
        } else {
            v
        }
    }

    /// `n` values from [`Rng::value`].
    pub fn values(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.value()).collect()
    }

    /// Uniform in [-1, 1] (zero allowed).
    pub fn signed(&mut self) -> f64 {
        self.next() * 2.0 - 1.0
    }
}
