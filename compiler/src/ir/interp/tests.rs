//! Tests of the reference interpreter: hand-computed values for every op, adjoint identities for
//! the gradient ops (the way PyTorch defines them), and independent formulations (im2col).

use std::collections::HashMap;

use netc_grammar::Span;

use super::*;
use crate::ir::{BinaryOp, Distribution, ReduceOp, Role, Scan, UnaryOp, Window};

fn sp() -> Span {
    Span::new(0, 0)
}

/// A tiny deterministic generator of test data in [-1, 1) (xorshift64*), never all zeros.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn input(g: &mut Graph, name: &str, ty: Type) -> NodeId {
    g.input(name, Role::Data, ty, sp())
}

fn add(g: &mut Graph, op: Op, operands: &[NodeId], given: Option<Type>) -> NodeId {
    g.add(op, operands, given, sp()).unwrap()
}

fn feed(inputs: Vec<(&str, Value)>) -> HashMap<String, Value> {
    inputs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn eval(g: &Graph, inputs: Vec<(&str, Value)>, p: Precision) -> HashMap<String, Value> {
    run(g, &feed(inputs), p).unwrap()
}

/// The float data of output `name`.
fn floats_of(results: &HashMap<String, Value>, name: &str) -> Vec<f64> {
    results[name].as_f64_slice().unwrap().to_vec()
}

fn f(shape: &[usize], data: &[f64]) -> Value {
    Value::from_f64(shape.to_vec(), data.to_vec())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * (1.0 + e.abs()),
            "element {i}: {a} vs {e}\n{actual:?}\n{expected:?}"
        );
    }
}

/// Build `op(x)` for a single f32 input `x` of `shape` and evaluate it in f64.
fn unary_graph(op: Op, shape: &[usize], given: Option<Type>, x: &[f64]) -> Vec<f64> {
    let mut g = Graph::new();
    let xi = input(&mut g, "x", Type::f32(shape.to_vec()));
    let y = add(&mut g, op, &[xi], given);
    g.set_output("y", y);
    floats_of(&eval(&g, vec![("x", f(shape, x))], Precision::F64), "y")
}

fn window(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Window {
    Window {
        kernel,
        stride,
        padding,
        dilation,
    }
}

#[test]
fn fill_and_unary_ops() {
    let mut g = Graph::new();
    let fill = add(
        &mut g,
        Op::Fill { value: 2.5 },
        &[],
        Some(Type::f32(vec![2, 2])),
    );
    let ifill = add(
        &mut g,
        Op::Fill { value: 3.0 },
        &[],
        Some(Type::i64(vec![3])),
    );
    g.set_output("fill", fill);
    g.set_output("ifill", ifill);
    let r = eval(&g, vec![], Precision::F32);
    assert_eq!(floats_of(&r, "fill"), vec![2.5; 4]);
    assert_eq!(r["ifill"].as_i64_slice().unwrap(), &[3, 3, 3]);

    let x = [-2.0, -0.0, 0.5, 3.0];
    let u = |op| unary_graph(Op::Unary(op), &[4], None, &x);
    assert_eq!(u(UnaryOp::Neg), vec![2.0, 0.0, -0.5, -3.0]);
    assert_eq!(u(UnaryOp::Relu), vec![0.0, 0.0, 0.5, 3.0]);
    assert_eq!(u(UnaryOp::Abs), vec![2.0, 0.0, 0.5, 3.0]);
    assert_eq!(
        u(UnaryOp::Recip),
        vec![-0.5, f64::NEG_INFINITY, 2.0, 1.0 / 3.0]
    );
    assert_close(
        &u(UnaryOp::Exp),
        &[
            0.1353352832366127,
            1.0,
            1.6487212707001282,
            20.085536923187668,
        ],
        1e-15,
    );

    let positive = [0.25, 1.0, 4.0];
    let p = |op| unary_graph(Op::Unary(op), &[3], None, &positive);
    assert_close(
        &p(UnaryOp::Log),
        &[-1.3862943611198906, 0.0, 1.3862943611198906],
        1e-15,
    );
    assert_eq!(p(UnaryOp::Sqrt), vec![0.5, 1.0, 2.0]);

    // sigmoid(ln 3) = 3/4, tanh(ln 2) = (2 - 1/2)/(2 + 1/2) = 0.6.
    let logs = [0.0, 3f64.ln(), 2f64.ln()];
    let l = |op| unary_graph(Op::Unary(op), &[3], None, &logs);
    assert_close(&l(UnaryOp::Sigmoid), &[0.5, 0.75, 2.0 / 3.0], 1e-15);
    assert_close(&l(UnaryOp::Tanh), &[0.0, 0.8, 0.6], 1e-15);
    assert_close(&l(UnaryOp::Erf)[..1], &[0.0], 0.0);
}

#[test]
fn erf_matches_reference_values() {
    // Reference values from glibc's erf (correct to an ulp).
    let table = [
        (1e-8, 1.1283791670955126e-08),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (0.9, 0.7969082124228322),
        (1.0, 0.8427007929497149),
        (1.3, 0.9340079449406524),
        (1.9999, 0.9953201979070294),
        (2.0, 0.9953222650189527),
        (2.5, 0.999593047982555),
        (3.0, 0.9999779095030014),
        (3.7, 0.9999998328489421),
        (4.5, 0.9999999998033839),
        (5.5, 0.9999999999999927),
        (5.99, 1.0),
        (6.5, 1.0),
        (-0.7, -0.6778011938374184),
        (-2.2, -0.9981371537020182),
    ];
    for (x, expected) in table {
        let got = erf(x);
        assert!(
            (got - expected).abs() <= 1e-15 * expected.abs().max(1e-8),
            "erf({x}) = {got}, expected {expected}"
        );
    }
    assert_eq!(erf(f64::INFINITY), 1.0);
    assert_eq!(erf(f64::NEG_INFINITY), -1.0);
    assert!(erf(f64::NAN).is_nan());
    // Both methods agree where they meet.
    for a in [1.5, 2.0, 2.5, 3.0] {
        assert!(
            (math::series(a) - (1.0 - math::erfc_continued_fraction(a))).abs() < 1e-15,
            "at {a}"
        );
    }
}

#[test]
fn binary_select_and_cast() {
    let mut g = Graph::new();
    let a = input(&mut g, "a", Type::f32(vec![4]));
    let b = input(&mut g, "b", Type::f32(vec![4]));
    let ops = [
        ("add", BinaryOp::Add),
        ("sub", BinaryOp::Sub),
        ("mul", BinaryOp::Mul),
        ("div", BinaryOp::Div),
        ("max", BinaryOp::Max),
        ("min", BinaryOp::Min),
        ("greater", BinaryOp::Greater),
    ];
    for (name, op) in ops {
        let n = add(&mut g, Op::Binary(op), &[a, b], None);
        g.set_output(name, n);
    }
    let cond = input(&mut g, "cond", Type::i64(vec![4]));
    let sel = add(&mut g, Op::Select, &[cond, a, b], None);
    g.set_output("select", sel);
    let fcond = add(&mut g, Op::Binary(BinaryOp::Greater), &[a, b], None);
    let fsel = add(&mut g, Op::Select, &[fcond, a, b], None);
    g.set_output("fselect", fsel);
    let to_int = add(&mut g, Op::Cast { to: DType::I64 }, &[a], None);
    g.set_output("to_int", to_int);
    let back = add(&mut g, Op::Cast { to: DType::F32 }, &[cond], None);
    g.set_output("back", back);

    let r = eval(
        &g,
        vec![
            ("a", f(&[4], &[1.0, -2.5, 3.0, 0.5])),
            ("b", f(&[4], &[2.0, 2.0, -1.0, 0.5])),
            ("cond", Value::i64(vec![4], vec![1, 0, -3, 0])),
        ],
        Precision::F64,
    );
    assert_eq!(floats_of(&r, "add"), vec![3.0, -0.5, 2.0, 1.0]);
    assert_eq!(floats_of(&r, "sub"), vec![-1.0, -4.5, 4.0, 0.0]);
    assert_eq!(floats_of(&r, "mul"), vec![2.0, -5.0, -3.0, 0.25]);
    assert_eq!(floats_of(&r, "div"), vec![0.5, -1.25, -3.0, 1.0]);
    assert_eq!(floats_of(&r, "max"), vec![2.0, 2.0, 3.0, 0.5]);
    assert_eq!(floats_of(&r, "min"), vec![1.0, -2.5, -1.0, 0.5]);
    assert_eq!(floats_of(&r, "greater"), vec![0.0, 0.0, 1.0, 0.0]);
    assert_eq!(floats_of(&r, "select"), vec![1.0, 2.0, 3.0, 0.5]);
    assert_eq!(floats_of(&r, "fselect"), vec![2.0, 2.0, 3.0, 0.5]);
    // Truncation toward zero.
    assert_eq!(r["to_int"].as_i64_slice().unwrap(), &[1, -2, 3, 0]);
    assert_eq!(floats_of(&r, "back"), vec![1.0, 0.0, -3.0, 0.0]);
    assert_eq!(r["back"].ty, Type::f32(vec![4]));
}

#[test]
fn matmul_with_transposes_and_batches() {
    // A = [[1, 2, 3], [4, 5, 6]], B = [[7, 8], [9, 10], [11, 12]]: AB = [[58, 64], [139, 154]].
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
    let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
    let bt = [7.0, 9.0, 11.0, 8.0, 10.0, 12.0];
    let expected = [58.0, 64.0, 139.0, 154.0];
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (ash, av) = if ta { ([3, 2], &at) } else { ([2, 3], &a) };
        let (bsh, bv) = if tb { ([2, 3], &bt) } else { ([3, 2], &b) };
        let mut g = Graph::new();
        let x = input(&mut g, "a", Type::f32(ash.to_vec()));
        let y = input(&mut g, "b", Type::f32(bsh.to_vec()));
        let m = add(&mut g, Op::MatMul { ta, tb }, &[x, y], None);
        g.set_output("m", m);
        let r = eval(
            &g,
            vec![("a", f(&ash, av)), ("b", f(&bsh, bv))],
            Precision::F32,
        );
        assert_eq!(r["m"].ty, Type::f32(vec![2, 2]));
        assert_eq!(floats_of(&r, "m"), expected, "ta={ta} tb={tb}");
    }

    // Batched [2, 2, 3] x [2, 3, 2]: batch 1 uses A and -B, batch 0 uses A and B.
    let mut g = Graph::new();
    let x = input(&mut g, "a", Type::f32(vec![2, 2, 3]));
    let y = input(&mut g, "b", Type::f32(vec![2, 3, 2]));
    let m = add(
        &mut g,
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[x, y],
        None,
    );
    g.set_output("m", m);
    let av: Vec<f64> = a.iter().chain(&a).copied().collect();
    let bv: Vec<f64> = b.iter().copied().chain(b.iter().map(|v| -v)).collect();
    let r = eval(
        &g,
        vec![("a", f(&[2, 2, 3], &av)), ("b", f(&[2, 3, 2], &bv))],
        Precision::F64,
    );
    assert_eq!(
        floats_of(&r, "m"),
        vec![58.0, 64.0, 139.0, 154.0, -58.0, -64.0, -139.0, -154.0]
    );
}

#[test]
fn broadcast_reshape_slice_concat() {
    let b = |from: &[usize], to: &[usize], x: &[f64]| {
        unary_graph(Op::Broadcast, from, Some(Type::f32(to.to_vec())), x)
    };
    assert_eq!(
        b(&[3], &[2, 3], &[1.0, 2.0, 3.0]),
        vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(
        b(&[2, 1], &[2, 3], &[1.0, 2.0]),
        vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    );
    assert_eq!(b(&[], &[2, 2], &[7.0]), vec![7.0; 4]);
    assert_eq!(
        b(&[2, 1, 2], &[2, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
        vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]
    );
    assert_eq!(
        b(&[1, 3], &[2, 1, 3], &[1.0, 2.0, 3.0]),
        vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    );

    let x: Vec<f64> = (0..6).map(f64::from).collect();
    assert_eq!(
        unary_graph(Op::Reshape, &[2, 3], Some(Type::f32(vec![3, 2])), &x),
        x
    );
    // Columns 1..3 of [[0, 1, 2], [3, 4, 5]].
    assert_eq!(
        unary_graph(
            Op::Slice {
                axis: 1,
                start: 1,
                len: 2
            },
            &[2, 3],
            None,
            &x
        ),
        vec![1.0, 2.0, 4.0, 5.0]
    );
    assert_eq!(
        unary_graph(
            Op::Slice {
                axis: 0,
                start: 1,
                len: 1
            },
            &[2, 3],
            None,
            &x
        ),
        vec![3.0, 4.0, 5.0]
    );

    let mut g = Graph::new();
    let p = input(&mut g, "p", Type::f32(vec![2, 1]));
    let q = input(&mut g, "q", Type::f32(vec![2, 2]));
    let c1 = add(&mut g, Op::Concat { axis: 1 }, &[p, q, p], None);
    let c0 = add(&mut g, Op::Concat { axis: 0 }, &[q, q], None);
    g.set_output("c1", c1);
    g.set_output("c0", c0);
    let r = eval(
        &g,
        vec![
            ("p", f(&[2, 1], &[1.0, 2.0])),
            ("q", f(&[2, 2], &[10.0, 11.0, 20.0, 21.0])),
        ],
        Precision::F32,
    );
    assert_eq!(r["c1"].ty, Type::f32(vec![2, 4]));
    assert_eq!(
        floats_of(&r, "c1"),
        vec![1.0, 10.0, 11.0, 1.0, 2.0, 20.0, 21.0, 2.0]
    );
    assert_eq!(
        floats_of(&r, "c0"),
        vec![10.0, 11.0, 20.0, 21.0, 10.0, 11.0, 20.0, 21.0]
    );
}

#[test]
fn transpose_3d() {
    // in[a, b, c] = 12a + 4b + c over [2, 3, 4]; perm [2, 0, 1]: out[i, j, k] = in[j, k, i].
    let x: Vec<f64> = (0..24).map(f64::from).collect();
    let y = unary_graph(
        Op::Transpose {
            perm: vec![2, 0, 1],
        },
        &[2, 3, 4],
        None,
        &x,
    );
    assert_eq!(y.len(), 24);
    // out shape [4, 2, 3]; out[1, 1, 2] = in[1, 2, 1] = 12 + 8 + 1.
    assert_eq!(y[(2 + 1) * 3 + 2], 21.0);
    assert_eq!(&y[..6], &[0.0, 4.0, 8.0, 12.0, 16.0, 20.0]);
    for i in 0..4 {
        for j in 0..2 {
            for k in 0..3 {
                assert_eq!(y[(i * 2 + j) * 3 + k], (12 * j + 4 * k + i) as f64);
            }
        }
    }
    // Integer tensors move the same way.
    let mut g = Graph::new();
    let xi = input(&mut g, "x", Type::i64(vec![2, 3]));
    let t = add(&mut g, Op::Transpose { perm: vec![1, 0] }, &[xi], None);
    g.set_output("t", t);
    let r = eval(
        &g,
        vec![("x", Value::i64(vec![2, 3], vec![1, 2, 3, 4, 5, 6]))],
        Precision::F32,
    );
    assert_eq!(r["t"].as_i64_slice().unwrap(), &[1, 4, 2, 5, 3, 6]);
}

#[test]
fn reductions_over_several_axes() {
    // x[a, b, c] = 6a + 2b + c over [2, 3, 2].
    let x: Vec<f64> = (0..12).map(f64::from).collect();
    let red = |op, axes: Vec<usize>| unary_graph(Op::Reduce { op, axes }, &[2, 3, 2], None, &x);
    // Sum over a and c: for b: sum_{a,c} 6a + 2b + c = 4*2b + (0+0+6+6) + (0+1+0+1) = 8b + 14.
    assert_eq!(red(ReduceOp::Sum, vec![0, 2]), vec![14.0, 22.0, 30.0]);
    assert_eq!(red(ReduceOp::Sum, vec![0, 1, 2]), vec![66.0]);
    assert_eq!(red(ReduceOp::Max, vec![1]), vec![4.0, 5.0, 10.0, 11.0]);
    assert_eq!(red(ReduceOp::Max, vec![0, 2]), vec![7.0, 9.0, 11.0]);
    assert_eq!(red(ReduceOp::Sum, vec![]), x);

    let mut g = Graph::new();
    let xi = input(&mut g, "x", Type::i64(vec![2, 2]));
    let s = add(
        &mut g,
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![0],
        },
        &[xi],
        None,
    );
    g.set_output("s", s);
    let r = eval(
        &g,
        vec![("x", Value::i64(vec![2, 2], vec![1, 2, 30, 40]))],
        Precision::F32,
    );
    assert_eq!(r["s"].as_i64_slice().unwrap(), &[31, 42]);
}

/// Conv2d by an independent route: pad explicitly, unfold into columns (im2col), multiply.
fn conv_im2col(x: &[f64], xs: [usize; 4], w: &[f64], ws: [usize; 4], win: &Window) -> Vec<f64> {
    let [n, c, h, wd] = xs;
    let [o, _, kh, kw] = ws;
    let (hp, wp) = (h + 2 * win.padding[0], wd + 2 * win.padding[1]);
    let mut padded = vec![0.0; n * c * hp * wp];
    for b in 0..n * c {
        for i in 0..h {
            for j in 0..wd {
                padded[(b * hp + i + win.padding[0]) * wp + j + win.padding[1]] =
                    x[(b * h + i) * wd + j];
            }
        }
    }
    let ho = (hp - win.dilation[0] * (kh - 1) - 1) / win.stride[0] + 1;
    let wo = (wp - win.dilation[1] * (kw - 1) - 1) / win.stride[1] + 1;
    let (rows, cols) = (c * kh * kw, ho * wo);
    let mut out = Vec::new();
    for b in 0..n {
        let mut col = vec![0.0; rows * cols];
        for ci in 0..c {
            for a in 0..kh {
                for bb in 0..kw {
                    let r = (ci * kh + a) * kw + bb;
                    for i in 0..ho {
                        for j in 0..wo {
                            let y = i * win.stride[0] + a * win.dilation[0];
                            let xx = j * win.stride[1] + bb * win.dilation[1];
                            col[r * cols + i * wo + j] = padded[((b * c + ci) * hp + y) * wp + xx];
                        }
                    }
                }
            }
        }
        for oo in 0..o {
            for q in 0..cols {
                out.push(
                    (0..rows)
                        .map(|r| w[oo * rows + r] * col[r * cols + q])
                        .sum(),
                );
            }
        }
    }
    out
}

/// A graph with `conv2d(x, w)`, `conv_transpose2d(y, w)` and `conv2d_weight_grad(x, y)`.
fn conv_graph(xs: [usize; 4], ws: [usize; 4], win: Window) -> (Graph, Vec<usize>) {
    let mut g = Graph::new();
    let x = input(&mut g, "x", Type::f32(xs.to_vec()));
    let w = input(&mut g, "w", Type::f32(ws.to_vec()));
    let conv = add(&mut g, Op::Conv2d { window: win }, &[x, w], None);
    let ys = g.ty(conv).shape.clone();
    let y = input(&mut g, "y", Type::f32(ys.clone()));
    let ct = add(
        &mut g,
        Op::ConvTranspose2d { window: win },
        &[y, w],
        Some(Type::f32(xs.to_vec())),
    );
    let wg = add(&mut g, Op::Conv2dWeightGrad { window: win }, &[x, y], None);
    g.set_output("conv", conv);
    g.set_output("ct", ct);
    g.set_output("wg", wg);
    (g, ys)
}

#[test]
fn conv2d_matches_im2col() {
    let mut rng = Rng(0x1234_5678);
    let cases = [
        (
            [2, 3, 7, 6],
            [4, 3, 3, 2],
            window([3, 2], [2, 2], [1, 1], [2, 2]),
        ),
        (
            [1, 2, 5, 5],
            [3, 2, 3, 3],
            window([3, 3], [1, 1], [0, 0], [1, 1]),
        ),
        (
            [2, 2, 6, 7],
            [2, 2, 2, 3],
            window([2, 3], [2, 1], [1, 0], [1, 2]),
        ),
    ];
    for (xs, ws, win) in cases {
        let (g, ys) = conv_graph(xs, ws, win);
        let x = rng.vec(xs.iter().product());
        let w = rng.vec(ws.iter().product());
        let y = rng.vec(ys.iter().product());
        let r = eval(
            &g,
            vec![("x", f(&xs, &x)), ("w", f(&ws, &w)), ("y", f(&ys, &y))],
            Precision::F64,
        );
        assert_close(
            &floats_of(&r, "conv"),
            &conv_im2col(&x, xs, &w, ws, &win),
            1e-13,
        );
    }
    // The stride-2, padding-1, dilation-2 case by hand: x = 1..=16 on [1, 1, 4, 4], a 2x2 kernel
    // of ones: output 2x2 at rows/cols {-1, 1} and {1, 3}: top-left reads only x[1, 1] = 6.
    let win = window([2, 2], [2, 2], [1, 1], [2, 2]);
    let (g, ys) = conv_graph([1, 1, 4, 4], [1, 1, 2, 2], win);
    assert_eq!(ys, vec![1, 1, 2, 2]);
    let x: Vec<f64> = (1..=16).map(f64::from).collect();
    let r = eval(
        &g,
        vec![
            ("x", f(&[1, 1, 4, 4], &x)),
            ("w", f(&[1, 1, 2, 2], &[1.0; 4])),
            ("y", f(&ys, &[0.0; 4])),
        ],
        Precision::F32,
    );
    assert_eq!(
        floats_of(&r, "conv"),
        vec![6.0, 6.0 + 8.0, 6.0 + 14.0, 6.0 + 8.0 + 14.0 + 16.0]
    );
}

#[test]
fn conv_transpose_and_weight_grad_are_adjoints() {
    let mut rng = Rng(0xDEAD_BEEF);
    let cases = [
        (
            [2, 3, 7, 6],
            [4, 3, 3, 2],
            window([3, 2], [2, 2], [1, 1], [2, 2]),
        ),
        (
            [1, 2, 8, 5],
            [3, 2, 3, 3],
            window([3, 3], [3, 2], [2, 1], [1, 1]),
        ),
        (
            [2, 2, 6, 7],
            [2, 2, 2, 3],
            window([2, 3], [2, 1], [1, 0], [1, 2]),
        ),
    ];
    for (xs, ws, win) in cases {
        let (g, ys) = conv_graph(xs, ws, win);
        let x = rng.vec(xs.iter().product());
        let w = rng.vec(ws.iter().product());
        let y = rng.vec(ys.iter().product());
        let r = eval(
            &g,
            vec![("x", f(&xs, &x)), ("w", f(&ws, &w)), ("y", f(&ys, &y))],
            Precision::F64,
        );
        let conv = floats_of(&r, "conv");
        // <conv2d(x, w), y> == <x, conv_transpose2d(y, w)> == <w, conv2d_weight_grad(x, y)>.
        let lhs = dot(&conv, &y);
        assert!(lhs.abs() > 1e-3, "degenerate test data");
        assert!((lhs - dot(&x, &floats_of(&r, "ct"))).abs() < 1e-12 * (1.0 + lhs.abs()));
        assert!((lhs - dot(&w, &floats_of(&r, "wg"))).abs() < 1e-12 * (1.0 + lhs.abs()));
    }
}

#[test]
fn max_pool_and_its_gradient() {
    // 4x4 input, 2x2 windows, stride 2; the bottom-left window has a tie at its first position.
    let x = [
        1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 7.0, 6.0, 9.0, 1.0, 8.0, 8.0, 9.0, 9.0, 8.0, 8.0,
    ];
    let win = window([2, 2], [2, 2], [0, 0], [1, 1]);
    let mut g = Graph::new();
    let xi = input(&mut g, "x", Type::f32(vec![1, 1, 4, 4]));
    let pool = add(&mut g, Op::MaxPool2d { window: win }, &[xi], None);
    let dy = input(&mut g, "dy", Type::f32(vec![1, 1, 2, 2]));
    let grad = add(&mut g, Op::MaxPool2dGrad { window: win }, &[xi, dy], None);
    g.set_output("pool", pool);
    g.set_output("grad", grad);
    let r = eval(
        &g,
        vec![
            ("x", f(&[1, 1, 4, 4], &x)),
            ("dy", f(&[1, 1, 2, 2], &[10.0, 20.0, 30.0, 40.0])),
        ],
        Precision::F32,
    );
    assert_eq!(floats_of(&r, "pool"), vec![5.0, 7.0, 9.0, 8.0]);
    let mut expected = vec![0.0; 16];
    expected[1] = 10.0; // 5 at (0, 1)
    expected[6] = 20.0; // 7 at (1, 2)
    expected[8] = 30.0; // first 9 at (2, 0)
    expected[10] = 40.0; // first 8 at (2, 2)
    assert_eq!(floats_of(&r, "grad"), expected);

    // Overlapping windows with padding: [1, 3, 2], kernel 1x3, stride 1, padding 1 along w.
    // Every window's maximum is the 3, which collects all of dy.
    let win = window([1, 3], [1, 1], [0, 1], [1, 1]);
    let mut g = Graph::new();
    let xi = input(&mut g, "x", Type::f32(vec![1, 1, 1, 3]));
    let pool = add(&mut g, Op::MaxPool2d { window: win }, &[xi], None);
    let dy = input(&mut g, "dy", Type::f32(vec![1, 1, 1, 3]));
    let grad = add(&mut g, Op::MaxPool2dGrad { window: win }, &[xi, dy], None);
    g.set_output("pool", pool);
    g.set_output("grad", grad);
    let r = eval(
        &g,
        vec![
            ("x", f(&[1, 1, 1, 3], &[1.0, 3.0, 2.0])),
            ("dy", f(&[1, 1, 1, 3], &[1.0, 10.0, 100.0])),
        ],
        Precision::F32,
    );
    assert_eq!(floats_of(&r, "pool"), vec![3.0, 3.0, 3.0]);
    assert_eq!(floats_of(&r, "grad"), vec![0.0, 111.0, 0.0]);
    // Padding is -inf, not 0: all-negative rows keep their maxima.
    let r = eval(
        &g,
        vec![
            ("x", f(&[1, 1, 1, 3], &[-1.0, -3.0, -2.0])),
            ("dy", f(&[1, 1, 1, 3], &[1.0, 10.0, 100.0])),
        ],
        Precision::F32,
    );
    assert_eq!(floats_of(&r, "pool"), vec![-1.0, -1.0, -2.0]);
    assert_eq!(floats_of(&r, "grad"), vec![11.0, 0.0, 100.0]);
}

#[test]
fn avg_pool_and_its_adjoint() {
    // [[1, 2], [3, 4]], 2x2 windows, stride 1, padding 1: padding counts in the divisor.
    let win = window([2, 2], [1, 1], [1, 1], [1, 1]);
    let y = unary_graph(
        Op::AvgPool2d { window: win },
        &[1, 1, 2, 2],
        None,
        &[1.0, 2.0, 3.0, 4.0],
    );
    assert_eq!(y, vec![0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0]);

    let mut rng = Rng(42);
    for (xs, win) in [
        ([2, 3, 5, 6], window([3, 2], [2, 1], [1, 1], [1, 1])),
        ([1, 2, 7, 7], window([2, 2], [2, 2], [0, 0], [1, 1])),
    ] {
        let mut g = Graph::new();
        let xi = input(&mut g, "x", Type::f32(xs.to_vec()));
        let pool = add(&mut g, Op::AvgPool2d { window: win }, &[xi], None);
        let ys = g.ty(pool).shape.clone();
        let dy = input(&mut g, "dy", Type::f32(ys.clone()));
        let grad = add(
            &mut g,
            Op::AvgPool2dGrad { window: win },
            &[dy],
            Some(Type::f32(xs.to_vec())),
        );
        g.set_output("pool", pool);
        g.set_output("grad", grad);
        let x = rng.vec(xs.iter().product());
        let d = rng.vec(ys.iter().product());
        let r = eval(
            &g,
            vec![("x", f(&xs, &x)), ("dy", f(&ys, &d))],
            Precision::F64,
        );
        let lhs = dot(&floats_of(&r, "pool"), &d);
        assert!(lhs.abs() > 1e-3);
        assert!((lhs - dot(&x, &floats_of(&r, "grad"))).abs() < 1e-12);
    }
}

#[test]
fn gather_scatter_and_one_hot() {
    let mut g = Graph::new();
    let table = input(&mut g, "table", Type::f32(vec![3, 2]));
    let ids = input(&mut g, "ids", Type::i64(vec![2, 2]));
    let rows = add(&mut g, Op::Gather, &[table, ids], None);
    let dy = input(&mut g, "dy", Type::f32(vec![2, 2, 2]));
    let scat = add(
        &mut g,
        Op::ScatterAdd,
        &[ids, dy],
        Some(Type::f32(vec![3, 2])),
    );
    let hot = add(&mut g, Op::OneHot { classes: 4 }, &[ids], None);
    g.set_output("rows", rows);
    g.set_output("scatter", scat);
    g.set_output("hot", hot);
    let t = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let d = [1.0, 2.0, 10.0, 20.0, 100.0, 200.0, 1000.0, 2000.0];
    let inputs = || {
        vec![
            ("table", f(&[3, 2], &t)),
            ("ids", Value::i64(vec![2, 2], vec![2, 0, 1, 2])),
            ("dy", f(&[2, 2, 2], &d)),
        ]
    };
    let r = eval(&g, inputs(), Precision::F32);
    assert_eq!(r["rows"].ty, Type::f32(vec![2, 2, 2]));
    assert_eq!(
        floats_of(&r, "rows"),
        vec![5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    // Row 2 collects positions 0 and 3; row 0 position 1; row 1 position 2.
    assert_eq!(
        floats_of(&r, "scatter"),
        vec![10.0, 20.0, 100.0, 200.0, 1001.0, 2002.0]
    );
    let hot = floats_of(&r, "hot");
    assert_eq!(
        hot,
        vec![
            0., 0., 1., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0.
        ]
    );
    // Adjoint: <gather(t, ids), dy> == <t, scatter_add(ids, dy)>.
    assert_eq!(
        dot(&floats_of(&r, "rows"), &d),
        dot(&t, &floats_of(&r, "scatter"))
    );

    // Integer tables gather too.
    let mut g = Graph::new();
    let table = input(&mut g, "table", Type::i64(vec![2, 1]));
    let ids = input(&mut g, "ids", Type::i64(vec![3]));
    let rows = add(&mut g, Op::Gather, &[table, ids], None);
    g.set_output("rows", rows);
    let r = eval(
        &g,
        vec![
            ("table", Value::i64(vec![2, 1], vec![7, 9])),
            ("ids", Value::i64(vec![3], vec![1, 1, 0])),
        ],
        Precision::F32,
    );
    assert_eq!(r["rows"].as_i64_slice().unwrap(), &[9, 9, 7]);
}

/// A graph drawing `n` uniforms and normals from streams 0 and 1.
fn random_graph(n: usize) -> Graph {
    let mut g = Graph::new();
    let seed = g.input("seed", Role::Scalar, Type::i64(vec![]), sp());
    for (name, dist, stream) in [
        ("u0", Distribution::Uniform, 0),
        ("u1", Distribution::Uniform, 1),
        ("n0", Distribution::Normal, 0),
    ] {
        let node = add(
            &mut g,
            Op::Random { dist, stream },
            &[seed],
            Some(Type::f32(vec![n])),
        );
        g.set_output(name, node);
    }
    g
}

#[test]
fn random_numbers() {
    assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    let n = 10_000;
    let g = random_graph(n);
    let r = eval(&g, vec![("seed", Value::scalar_i64(7))], Precision::F32);
    let u0 = floats_of(&r, "u0");
    // The documented formula for element 0 and element 5 of stream 1.
    assert_eq!(u0[0], (splitmix64(7) >> 40) as f64 / 16_777_216.0);
    let h = splitmix64(7 ^ 0x9E37_79B9_7F4A_7C15 ^ 5u64.wrapping_mul(0xD1B5_4A32_D192_ED03));
    assert_eq!(floats_of(&r, "u1")[5], (h >> 40) as f64 / 16_777_216.0);
    for &u in &u0 {
        assert!((0.0..1.0).contains(&u) && f64::from(u as f32) == u);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!((mean(&u0) - 0.5).abs() < 0.02, "uniform mean {}", mean(&u0));
    let normals = floats_of(&r, "n0");
    let m = mean(&normals);
    let var = normals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
    assert!(
        m.abs() < 0.05 && (var - 1.0).abs() < 0.1,
        "normal mean {m}, variance {var}"
    );

    // Same seed, same numbers; another stream or seed, other numbers.
    let again = eval(&g, vec![("seed", Value::scalar_i64(7))], Precision::F32);
    assert_eq!(again, r);
    assert_ne!(u0, floats_of(&r, "u1"));
    let other = eval(&g, vec![("seed", Value::scalar_i64(8))], Precision::F32);
    assert_ne!(u0, floats_of(&other, "u0"));
    // A negative seed is just another bit pattern.
    let negative = eval(&g, vec![("seed", Value::scalar_i64(-1))], Precision::F64);
    assert_eq!(
        floats_of(&negative, "u0")[0],
        (splitmix64(u64::MAX) >> 40) as f64 / 16_777_216.0
    );
}

/// `carry + x * const0` as a scan body over f32[2] (without the const when `scaled` is false).
fn running_sum_body(scaled: bool) -> Graph {
    let mut body = Graph::new();
    let carry = input(&mut body, "carry0", Type::f32(vec![2]));
    let mut x = input(&mut body, "x0", Type::f32(vec![2]));
    if scaled {
        let k = input(&mut body, "const0", Type::f32(vec![2]));
        x = add(&mut body, Op::Binary(BinaryOp::Mul), &[x, k], None);
    }
    let sum = add(&mut body, Op::Binary(BinaryOp::Add), &[carry, x], None);
    body.set_output("carry", sum);
    body.set_output("y", sum);
    body
}

fn scan_graph(reverse: bool, scaled: bool) -> Graph {
    let mut g = Graph::new();
    let init = input(&mut g, "init", Type::f32(vec![2]));
    let xs = input(&mut g, "xs", Type::f32(vec![4, 2]));
    let mut operands = vec![init, xs];
    if scaled {
        operands.push(input(&mut g, "k", Type::f32(vec![2])));
    }
    let scan = Scan {
        body: running_sum_body(scaled),
        length: 4,
        reverse,
        carries: 1,
        xs: 1,
        consts: usize::from(scaled),
    };
    let node = add(
        &mut g,
        Op::Scan(Box::new(scan)),
        &operands,
        Some(Type::f32(vec![2])),
    );
    let last = add(
        &mut g,
        Op::Project { index: 0 },
        &[node],
        Some(Type::f32(vec![2])),
    );
    let ys = add(
        &mut g,
        Op::Project { index: 1 },
        &[node],
        Some(Type::f32(vec![4, 2])),
    );
    g.set_output("last", last);
    g.set_output("ys", ys);
    g
}

#[test]
fn scan_running_sums() {
    let xs = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0];
    let inputs = || {
        vec![
            ("init", f(&[2], &[100.0, 0.0])),
            ("xs", f(&[4, 2], &xs)),
            ("k", f(&[2], &[1.0, -1.0])),
        ]
    };

    let r = eval(&scan_graph(false, false), inputs(), Precision::F32);
    assert_eq!(floats_of(&r, "last"), vec![110.0, 100.0]);
    assert_eq!(
        floats_of(&r, "ys"),
        vec![101.0, 10.0, 103.0, 30.0, 106.0, 60.0, 110.0, 100.0]
    );

    // Reversed, with a const: step t adds k * xs[3 - t]; ys[k] is the running sum after
    // reading xs[k], so outputs stay aligned with inputs.
    let r = eval(&scan_graph(true, true), inputs(), Precision::F32);
    assert_eq!(floats_of(&r, "last"), vec![110.0, -100.0]);
    assert_eq!(
        floats_of(&r, "ys"),
        vec![110.0, -100.0, 109.0, -90.0, 107.0, -70.0, 104.0, -40.0]
    );
}

#[test]
fn f32_and_f64_precision_differ() {
    let mut g = Graph::new();
    let a = input(&mut g, "a", Type::f32(vec![]));
    let b = input(&mut g, "b", Type::f32(vec![]));
    let sum = add(&mut g, Op::Binary(BinaryOp::Add), &[a, b], None);
    let diff = add(&mut g, Op::Binary(BinaryOp::Sub), &[sum, a], None);
    let e = add(&mut g, Op::Unary(UnaryOp::Exp), &[b], None);
    g.set_output("diff", diff);
    g.set_output("exp", e);
    let v = input(&mut g, "v", Type::f32(vec![1, 3]));
    let ones = add(
        &mut g,
        Op::Fill { value: 1.0 },
        &[],
        Some(Type::f32(vec![3, 1])),
    );
    let dotp = add(
        &mut g,
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[v, ones],
        None,
    );
    g.set_output("dot", dotp);
    let inputs = || {
        vec![
            ("a", Value::scalar(1e8)),
            ("b", Value::scalar(0.1)),
            ("v", f(&[1, 3], &[1e8, 1.0, -1e8])),
        ]
    };

    let r32 = eval(&g, inputs(), Precision::F32);
    let r64 = eval(&g, inputs(), Precision::F64);
    // 1e8 + 0.1 rounds back to 1e8 in f32 (its ulp there is 8).
    assert_eq!(floats_of(&r32, "diff"), vec![0.0]);
    assert!((floats_of(&r64, "diff")[0] - 0.1).abs() < 1e-7);
    assert_eq!(floats_of(&r32, "dot"), vec![0.0]);
    assert_eq!(floats_of(&r64, "dot"), vec![1.0]);
    // f32 runs round inputs and results to f32.
    let e32 = floats_of(&r32, "exp")[0];
    assert_eq!(e32, f64::from(f64::from(0.1f32).exp() as f32));
    assert_eq!(r32["exp"].to_f32_vec().unwrap(), vec![e32 as f32]);
    assert_eq!(floats_of(&r64, "exp")[0], 0.1f64.exp());
}

#[test]
fn errors_point_at_the_node() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Data, Type::f32(vec![2, 3]), Span::new(5, 6));
    let table = input(&mut g, "table", Type::f32(vec![3, 2]));
    let ids = input(&mut g, "ids", Type::i64(vec![2]));
    let gathered = g
        .add(Op::Gather, &[table, ids], None, Span::new(10, 20))
        .unwrap();
    let unused = input(&mut g, "unused", Type::f32(vec![1]));
    let _ = add(&mut g, Op::Unary(UnaryOp::Neg), &[unused], None);
    g.set_output("x", x);
    g.set_output("rows", gathered);
    let good = || {
        vec![
            ("x", f(&[2, 3], &[0.0; 6])),
            ("table", f(&[3, 2], &[1.0; 6])),
            ("ids", Value::i64(vec![2], vec![0, 2])),
        ]
    };
    // Inputs only feeding unused nodes may be left out.
    assert!(run(&g, &feed(good()), Precision::F32).is_ok());

    let with = |name: &str, value: Value| {
        let mut inputs = feed(good());
        inputs.insert(name.to_string(), value);
        run(&g, &inputs, Precision::F32).unwrap_err()
    };
    let e = with("x", f(&[3, 2], &[0.0; 6]));
    assert_eq!(e.span, Span::new(5, 6));
    assert!(e.message.contains("f32[2, 3]"), "{}", e.message);
    assert_eq!(
        with("x", Value::i64(vec![2, 3], vec![0; 6])).span,
        Span::new(5, 6)
    );
    let malformed = Value {
        ty: Type::f32(vec![2, 3]),
        data: Data::F(vec![0.0; 5]),
    };
    assert_eq!(with("x", malformed).span, Span::new(5, 6));
    let e = with("ids", Value::i64(vec![2], vec![0, 3]));
    assert_eq!(e.span, Span::new(10, 20));
    assert!(e.message.contains("out of range"), "{}", e.message);
    assert_eq!(
        with("ids", Value::i64(vec![2], vec![-1, 0])).span,
        Span::new(10, 20)
    );

    let mut missing = feed(good());
    missing.remove("x");
    let e = run(&g, &missing, Precision::F32).unwrap_err();
    assert_eq!(e.span, Span::new(5, 6));
    assert!(e.message.contains("missing input `x`"), "{}", e.message);
}

#[test]
fn out_of_range_ids_in_scatter_and_one_hot() {
    let mut g = Graph::new();
    let ids = input(&mut g, "ids", Type::i64(vec![2]));
    let dy = input(&mut g, "dy", Type::f32(vec![2, 1]));
    let scat = g
        .add(
            Op::ScatterAdd,
            &[ids, dy],
            Some(Type::f32(vec![3, 1])),
            Span::new(1, 2),
        )
        .unwrap();
    let hot = g
        .add(Op::OneHot { classes: 3 }, &[ids], None, Span::new(3, 4))
        .unwrap();
    let mut gs = g.clone();
    gs.set_output("scatter", scat);
    g.set_output("hot", hot);
    let inputs = feed(vec![
        ("ids", Value::i64(vec![2], vec![1, 3])),
        ("dy", f(&[2, 1], &[1.0, 2.0])),
    ]);
    assert_eq!(
        run(&gs, &inputs, Precision::F32).unwrap_err().span,
        Span::new(1, 2)
    );
    assert_eq!(
        run(&g, &inputs, Precision::F32).unwrap_err().span,
        Span::new(3, 4)
    );
}
