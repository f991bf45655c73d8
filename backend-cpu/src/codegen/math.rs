//! Transcendentals as straight-line `f32x4` (or scalar `f32`) code: range reduction, a short
//! polynomial, and compare+select for the edges, so a fused kernel never leaves its loop.
//!
//! Each function is generated for either [`Mode`]: the vector body and the scalar tail of a
//! loop compute the same function bit for bit. Accuracy against the f64 reference (what the
//! interpreter computes, rounded once) over the whole float range is tested in
//! `tests/transcendentals.rs`; the bounds are a few ulp (see there). The edge cases follow the
//! interpreter: NaN in, NaN out; overflow to `inf`; underflow through the subnormals to `0`;
//! `log` of a negative number is NaN, of `0` is `-inf`.
//!
//! - `exp`: Cephes `expf`: `x = n ln2 + r` with `n` rounded by the `1.5 * 2^23` trick (no
//!   conversion instruction), `r` by a two-constant Cody–Waite split, `e^r` by a degree-7
//!   polynomial, and `2^n` applied as two exact powers of two so that results in the subnormal
//!   range are rounded once.
//! - `sigmoid`: `s / (1 + e)` with `e = exp(-|x|)` and `s = 1` for `x >= 0`, `s = e` below: no
//!   overflow and no cancellation on either side.
//! - `tanh`: Cephes `tanhf`: an odd polynomial below `|x| = 0.625`, `1 - 2 / (exp(2|x|) + 1)`
//!   with the sign of `x` above.
//! - `erf`: an odd polynomial below `|x| = 0.9277`, `1 - exp(q(|x|))` with the sign of `x`
//!   above (minimax coefficients after N. Juffa's `erff`).
//! - tanh and erf clamp `|x|` where their result rounds to 1 (9.1 and 3.92), so their
//!   exponential is a normal number and skips `exp`'s range handling (tanh kernels 14% faster).
//! - `log`: Cephes `logf`: the exponent and a mantissa in `[sqrt(1/2), sqrt(2))` from the bits
//!   (subnormals scaled by `2^23` first), a degree-9 polynomial of `m - 1`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};

use super::{Gen, Mode};

/// `1.5 * 2^23`: adding it to a float of magnitude below `2^22` rounds to an integer, which
/// then sits in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;
/// ln 2 split so that `n * LN2_HI` is exact for every `n` `exp` meets.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

impl Gen<'_> {
    fn int_const(&mut self, mode: Mode, x: i32) -> Value {
        let c = self.b.ins().iconst(I32, i64::from(x));
        match mode {
            Mode::Vector => self.b.ins().splat(I32X4, c),
            Mode::Scalar => c,
        }
    }

    fn float_to_bits(&mut self, mode: Mode, x: Value) -> Value {
        self.b.ins().bitcast(mode.int(), little(), x)
    }

    fn bits_to_float(&mut self, mode: Mode, x: Value) -> Value {
        self.b.ins().bitcast(mode.float(), little(), x)
    }

    /// `a * b + c`: one `fma` where the host has it, else a multiply and an add.
    pub(super) fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// `coeffs[0] * x^(n-1) + ... + coeffs[n-1]` by Horner's rule.
    fn poly(&mut self, mode: Mode, x: Value, coeffs: &[f32]) -> Value {
        let mut acc = self.splat(mode, coeffs[0]);
        for &c in &coeffs[1..] {
            let c = self.splat(mode, c);
            acc = self.mul_add(acc, x, c);
        }
        acc
    }

    /// `cc(x, c) ? v : otherwise` (an ordered `cc` is false for a NaN `x`).
    fn pick(
        &mut self,
        mode: Mode,
        (cc, c): (FloatCC, f32),
        x: Value,
        v: f32,
        otherwise: Value,
    ) -> Value {
        let cv = self.splat(mode, c);
        let cond = self.b.ins().fcmp(cc, x, cv);
        let vv = self.splat(mode, v);
        self.choose(mode, cond, vv, otherwise)
    }

    /// `|y|` with the sign bit of `x`.
    fn with_sign_of(&mut self, mode: Mode, y: Value, x: Value) -> Value {
        let mask = self.splat(mode, -0.0);
        let sign = self.b.ins().band(x, mask);
        self.b.ins().bor(y, sign)
    }

    /// `2^n` for an integer `n` in `[-126, 127]`, from its bits.
    fn pow2(&mut self, mode: Mode, n: Value) -> Value {
        let bias = self.int_const(mode, 127);
        let e = self.b.ins().iadd(n, bias);
        let e = self.b.ins().ishl_imm_u(e, 23);
        self.bits_to_float(mode, e)
    }

    /// `e^x`.
    pub(super) fn exp(&mut self, mode: Mode, x: Value) -> Value {
        // Beyond these, the result is inf or 0 anyway; inside, `n` fits the tricks below.
        let x = self.pick(mode, (FloatCC::GreaterThan, 89.0), x, 89.0, x);
        let x = self.pick(mode, (FloatCC::LessThan, -104.0), x, -104.0, x);
        let (y, n) = self.exp_reduced(mode, x);
        // n in [-150, 129]: 2^n as 2^(n/2) * 2^(n - n/2), each a normal number, so the last
        // multiply is the only rounding (into subnormals).
        let n1 = self.b.ins().sshr_imm_u(n, 1);
        let n2 = self.b.ins().isub(n, n1);
        let s1 = self.pow2(mode, n1);
        let s2 = self.pow2(mode, n2);
        let y = self.b.ins().fmul(y, s1);
        self.b.ins().fmul(y, s2)
    }

    /// `e^x` for `x` (or NaN) whose result is a normal number, `|x| < 87`: no clamping and
    /// one power of two, a third fewer instructions than [`Gen::exp`] for tanh and erf, whose
    /// arguments are bounded.
    fn exp_normal(&mut self, mode: Mode, x: Value) -> Value {
        let (y, n) = self.exp_reduced(mode, x);
        let s = self.pow2(mode, n);
        self.b.ins().fmul(y, s)
    }

    /// `e^x = y * 2^n`: `(y, n)` with `n` the integer nearest `x / ln 2` (as an integer
    /// vector) and `y = e^r`, `r = x - n ln 2`, by Cephes' polynomial.
    fn exp_reduced(&mut self, mode: Mode, x: Value) -> (Value, Value) {
        let log2e = self.splat(mode, std::f32::consts::LOG2_E);
        let rounder = self.splat(mode, ROUNDER);
        let t = self.mul_add(x, log2e, rounder);
        let n = self.b.ins().fsub(t, rounder);
        let hi = self.splat(mode, -LN2_HI);
        let r = self.mul_add(n, hi, x);
        let lo = self.splat(mode, -LN2_LO);
        let r = self.mul_add(n, lo, r);
        let p = self.poly(
            mode,
            r,
            &[
                1.987_569_1e-4,
                1.398_2e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                5e-1,
            ],
        );
        let r2 = self.b.ins().fmul(r, r);
        let y = self.mul_add(p, r2, r);
        let one = self.splat(mode, 1.0);
        let y = self.b.ins().fadd(y, one);
        // n from the low bits of t.
        let tb = self.float_to_bits(mode, t);
        let rb = self.int_const(mode, ROUNDER.to_bits() as i32);
        (y, self.b.ins().isub(tb, rb))
    }

    /// `1 / (1 + e^-x)`.
    pub(super) fn sigmoid(&mut self, mode: Mode, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let na = self.b.ins().fneg(a);
        let e = self.exp(mode, na);
        let zero = self.splat(mode, 0.0);
        let one = self.splat(mode, 1.0);
        let positive = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, zero);
        let num = self.choose(mode, positive, one, e);
        let den = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(num, den)
    }

    /// `tanh(x)`.
    pub(super) fn tanh(&mut self, mode: Mode, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        // Above 9.1, 1 - 2 / (e^2|x| + 1) rounds to 1: clamped, e^2|x| stays normal.
        let a_big = self.pick(mode, (FloatCC::GreaterThan, 9.1), a, 9.1, a);
        let two_a = self.b.ins().fadd(a_big, a_big);
        let e = self.exp_normal(mode, two_a);
        let one = self.splat(mode, 1.0);
        let two = self.splat(mode, 2.0);
        let e1 = self.b.ins().fadd(e, one);
        let q = self.b.ins().fdiv(two, e1);
        let big = self.b.ins().fsub(one, q);
        let big = self.with_sign_of(mode, big, x);
        let z = self.b.ins().fmul(x, x);
        let p = self.poly(
            mode,
            z,
            &[
                -5.704_988_7e-3,
                2.063_909e-2,
                -5.373_971_6e-2,
                1.333_144_2e-1,
                -3.333_328e-1,
            ],
        );
        let pz = self.b.ins().fmul(p, z);
        let small = self.mul_add(pz, x, x);
        let limit = self.splat(mode, 0.625);
        let is_small = self.b.ins().fcmp(FloatCC::LessThan, a, limit);
        self.choose(mode, is_small, small, big)
    }

    /// `erf(x)`.
    pub(super) fn erf(&mut self, mode: Mode, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let s = self.b.ins().fmul(x, x);
        // |x| >= 0.9277: 1 - exp(q(|x|)). Above 3.92 that rounds to 1: clamped, q(|x|) stays
        // in [-19, 0] and its exponential normal.
        let a = self.pick(mode, (FloatCC::GreaterThan, 3.92), a, 3.92, a);
        let sa = self.b.ins().fmul(a, a);
        let r = self.poly(mode, a, &[-1.728_534_7e-5, 3.831_971_3e-4]);
        let u = self.poly(mode, a, &[-3.883_964_4e-3, 2.425_462_2e-2]);
        let r = self.mul_add(r, sa, u);
        let c = self.splat(mode, -1.067_778_8e-1);
        let r = self.mul_add(r, a, c);
        let c = self.splat(mode, -6.348_467e-1);
        let r = self.mul_add(r, a, c);
        let c = self.splat(mode, -1.287_175_1e-1);
        let r = self.mul_add(r, a, c);
        let na = self.b.ins().fneg(a);
        let r = self.mul_add(r, a, na);
        let e = self.exp_normal(mode, r);
        let one = self.splat(mode, 1.0);
        let big = self.b.ins().fsub(one, e);
        let big = self.with_sign_of(mode, big, x);
        // |x| < 0.9277: x + x * p(x^2).
        let p = self.poly(
            mode,
            s,
            &[
                -5.967_617e-4,
                4.991_194_2e-3,
                -2.676_813_5e-2,
                1.128_199_3e-1,
                -3.761_253_4e-1,
                1.283_791_7e-1,
            ],
        );
        let small = self.mul_add(p, x, x);
        let limit = self.splat(mode, 0.927_734_4);
        let is_small = self.b.ins().fcmp(FloatCC::LessThan, a, limit);
        self.choose(mode, is_small, small, big)
    }

    /// `ln(x)`.
    pub(super) fn log(&mut self, mode: Mode, x: Value) -> Value {
        // Subnormals: scale into the normal range first.
        let tiny = self.splat(mode, f32::MIN_POSITIVE);
        let is_tiny = self.b.ins().fcmp(FloatCC::LessThan, x, tiny);
        let scale = self.splat(mode, 8_388_608.0);
        let scaled = self.b.ins().fmul(x, scale);
        let xs = self.choose(mode, is_tiny, scaled, x);
        let shift = self.splat(mode, -23.0);
        let zero = self.splat(mode, 0.0);
        let adjust = self.choose(mode, is_tiny, shift, zero);
        // xs = m * 2^e with m in [0.5, 1).
        let bits = self.float_to_bits(mode, xs);
        let exp_bits = self.b.ins().ushr_imm_u(bits, 23);
        let bias = self.int_const(mode, 126);
        let e = self.b.ins().isub(exp_bits, bias);
        let e = self.b.ins().fcvt_from_sint(mode.float(), e);
        let e = self.b.ins().fadd(e, adjust);
        let mant_mask = self.int_const(mode, 0x007f_ffff);
        let half = self.int_const(mode, 0.5f32.to_bits() as i32);
        let m = self.b.ins().band(bits, mant_mask);
        let m = self.b.ins().bor(m, half);
        let m = self.bits_to_float(mode, m);
        // m < sqrt(1/2): use 2m and e - 1, so m - 1 is in [-0.29, 0.41).
        let sqrt_half = self.splat(mode, std::f32::consts::FRAC_1_SQRT_2);
        let low = self.b.ins().fcmp(FloatCC::LessThan, m, sqrt_half);
        let one = self.splat(mode, 1.0);
        let e_less = self.b.ins().fsub(e, one);
        let e = self.choose(mode, low, e_less, e);
        let m2 = self.b.ins().fadd(m, m);
        let m = self.choose(mode, low, m2, m);
        let f = self.b.ins().fsub(m, one);
        let z = self.b.ins().fmul(f, f);
        let p = self.poly(
            mode,
            f,
            &[
                7.037_683_6e-2,
                -1.151_461e-1,
                1.167_699_9e-1,
                -1.242_014_1e-1,
                1.424_932_3e-1,
                -1.666_805_8e-1,
                2.000_071_5e-1,
                -2.499_999_4e-1,
                3.333_333e-1,
            ],
        );
        let pf = self.b.ins().fmul(p, f);
        let y = self.b.ins().fmul(pf, z);
        let lo = self.splat(mode, LN2_LO);
        let y = self.mul_add(e, lo, y);
        let mhalf = self.splat(mode, -0.5);
        let y = self.mul_add(z, mhalf, y);
        let y = self.b.ins().fadd(f, y);
        let hi = self.splat(mode, LN2_HI);
        let y = self.mul_add(e, hi, y);
        // log(inf) = inf, log(0) = -inf, log(x < 0) = log(NaN) = NaN.
        let y = self.pick(mode, (FloatCC::Equal, f32::INFINITY), x, f32::INFINITY, y);
        let y = self.pick(mode, (FloatCC::Equal, 0.0), x, f32::NEG_INFINITY, y);
        self.pick(mode, (FloatCC::UnorderedOrLessThan, 0.0), x, f32::NAN, y)
    }
}

impl Mode {
    fn float(self) -> Type {
        match self {
            Mode::Vector => F32X4,
            Mode::Scalar => F32,
        }
    }

    fn int(self) -> Type {
        match self {
            Mode::Vector => I32X4,
            Mode::Scalar => I32,
        }
    }
}

/// Lane order for bitcasts between vector types (required by Cranelift; a no-op on x86).
fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}
