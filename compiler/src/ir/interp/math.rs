//! Special functions that `std` lacks, accurate to a few f64 ulps so that f64 gradient checks
//! are limited by finite differences, not by the reference.

use std::f64::consts::{FRAC_2_SQRT_PI, PI};

/// The error function `erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt`, with an absolute error
/// below about 1e-15 everywhere (the commonly used Abramowitz–Stegun 7.1.26 fit is only good to
/// 1e-7, too coarse for a reference).
///
/// Method: for `|x| < 2` the everywhere-positive series
/// `erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n (2x^2)^n x / (1 * 3 * ... * (2n+1))`, which has no
/// cancellation; for `2 <= |x| < 6` `1 - erfc(x)` with `erfc` from its continued fraction
/// (`erfc < 0.005` there, so its relative error barely shows); beyond 6, `erf` is ±1 in f64.
/// `exp(-x^2)` uses the exact split `x^2 = hi + lo` so the rounding of `x^2` does not leak in.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let value = if a < 2.0 {
        series(a)
    } else if a < 6.0 {
        1.0 - erfc_continued_fraction(a)
    } else {
        1.0
    };
    value.copysign(x)
}

/// `exp(-a^2)` without the rounding error of forming `a^2`: `exp(-hi) * exp(-lo)`, where
/// `exp(-lo) = 1 - lo` to within `lo^2`.
fn exp_minus_square(a: f64) -> f64 {
    let hi = a * a;
    let lo = a.mul_add(a, -hi);
    (-hi).exp() * (1.0 - lo)
}

/// The positive series for `erf(a)`, `a >= 0` small enough that it converges quickly.
pub(super) fn series(a: f64) -> f64 {
    let two_a2 = 2.0 * a * a;
    let mut term = a;
    // Compensated (Kahan–Babuška–Neumaier) summation: `sum + correction` carries the rounding
    // error of each addition, which would otherwise cost several ulps near a = 2.
    let mut sum = a;
    let mut correction = 0.0;
    let mut k = 1.0;
    while term > sum * 1e-18 {
        k += 2.0;
        term *= two_a2 / k;
        let t = sum + term;
        correction += if sum >= term {
            (sum - t) + term
        } else {
            (term - t) + sum
        };
        sum = t;
    }
    FRAC_2_SQRT_PI * exp_minus_square(a) * (sum + correction)
}

/// `erfc(a)` for `a >= 2` from the continued fraction
/// `erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...)))))`,
/// evaluated with the modified Lentz method.
pub(super) fn erfc_continued_fraction(a: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = a;
    let mut c = a;
    let mut d = 0.0;
    for k in 1..10_000 {
        let coefficient = f64::from(k) / 2.0;
        d = a + coefficient * d;
        if d.abs() < TINY {
            d = TINY;
        }
        d = 1.0 / d;
        c = a + coefficient / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-17 {
            break;
        }
    }
    exp_minus_square(a) / (PI.sqrt() * f)
}
