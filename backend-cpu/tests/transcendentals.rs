//! The inlined transcendentals of the JIT (vector lanes and scalar tails) against f64
//! references over the whole float range: every 4093rd bit pattern (all exponents, both signs,
//! NaNs, subnormals), a dense sweep of [-20, 20], and the edges (±0, ±inf, NaN, overflow and
//! underflow thresholds). Reports the worst error in ulp of the correctly rounded result and
//! asserts a bound per function; NaN and infinite results must match exactly.

use netc_backend_cpu::CompiledStep;
use netc_compiler::ir::{Graph, Op, Role, Type, UnaryOp};
use netc_grammar::Span;

/// The inputs: a strided walk over all 2^32 bit patterns, a dense sweep, and the edges.
fn inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = (0..=u32::MAX).step_by(4093).map(f32::from_bits).collect();
    xs.extend((0..100_000).map(|i| -20.0 + 40.0 * i as f32 / 100_000.0));
    xs.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        -f32::from_bits(1),
        88.72283,
        88.72284,
        89.0,
        -87.33654,
        -87.33655,
        -103.27893,
        -103.972_08,
        -104.0,
        0.625,
        -0.625,
        0.927_734_4,
        -0.927_734_4,
        3.92,
        1.0,
        0.5,
    ]);
    xs
}

/// The f64 reference of `op` (the interpreter's definition).
fn reference(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Erf => netc_compiler::ir::interp::erf(x),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        other => unreachable!("{other:?} is not tested here"),
    }
}

/// One f32 ulp at `w` (the subnormal spacing below the normal range).
fn ulp(w: f64) -> f64 {
    let w = w.abs();
    if w < f64::from(f32::MIN_POSITIVE) {
        2f64.powi(-149)
    } else {
        2f64.powi(w.log2().floor() as i32 - 23)
    }
}

/// `op` over `xs` on the JIT (one kernel over a shape with a scalar tail).
fn jit(op: UnaryOp, xs: &[f32]) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.input("x", Role::Data, Type::f32(vec![xs.len()]), Span::default());
    let y = g.add(Op::Unary(op), &[x], None, Span::default()).unwrap();
    g.set_output("y", y);
    let mut step = CompiledStep::compile(&g).unwrap();
    step.set_input("x", xs).unwrap();
    step.run().unwrap();
    step.output("y").unwrap()
}

#[test]
fn transcendentals_are_accurate_over_the_whole_range() {
    let mut xs = inputs();
    if xs.len() % 4 != 3 {
        // End on a scalar tail of 3 that repeats the edges (NaN, inf, 0).
        xs.truncate(xs.len() - xs.len() % 4);
        xs.extend([f32::NAN, f32::NEG_INFINITY, -0.0]);
    }
    // Bounds in ulp of the correctly rounded result (measured: exp 1.0, sigmoid 2.3, tanh
    // 1.3, erf 1.0, log 0.8 with FMA).
    let bounds = [
        (UnaryOp::Exp, 1.5),
        (UnaryOp::Log, 1.5),
        (UnaryOp::Tanh, 2.0),
        (UnaryOp::Sigmoid, 3.0),
        (UnaryOp::Erf, 2.0),
        (UnaryOp::Sqrt, 0.5),
        (UnaryOp::Recip, 0.5),
    ];
    for (op, bound) in bounds {
        let got = jit(op, &xs);
        let mut worst = (0.0f64, 0.0f32);
        for (&x, &y) in xs.iter().zip(&got) {
            let want = reference(op, f64::from(x));
            let rounded = want as f32;
            if rounded.is_nan() || rounded.is_infinite() || y.is_nan() || y.is_infinite() {
                assert!(
                    (rounded.is_nan() && y.is_nan()) || rounded == y,
                    "{op:?}({x:e}) = {y:e}, want {rounded:e}"
                );
                continue;
            }
            let err = (f64::from(y) - want).abs() / ulp(want);
            if err > worst.0 {
                worst = (err, x);
            }
        }
        eprintln!(
            "{op:?}: worst {:.3} ulp at x = {:e} ({} inputs)",
            worst.0,
            worst.1,
            xs.len()
        );
        assert!(
            worst.0 <= bound,
            "{op:?}: {:.3} ulp at x = {:e} (bound {bound})",
            worst.0,
            worst.1
        );
    }
}

/// Scalar tails and vector lanes compute the same function: a value gives the same bits at
/// every position of a row.
#[test]
fn vector_lanes_and_scalar_tails_agree() {
    let base = [-3.7f32, -0.3, 0.0, 0.7, 1.9, 5.5, -90.0, 95.0, 1e-40];
    for op in [
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Erf,
    ] {
        for &v in &base {
            let got = jit(op, &[v; 7]);
            assert!(
                got.iter().all(|g| g.to_bits() == got[0].to_bits()),
                "{op:?}({v}): {got:?}"
            );
        }
    }
}
