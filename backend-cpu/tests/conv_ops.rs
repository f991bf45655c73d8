//! The native kernels (convolutions, pools, gather / scatter_add / one_hot / concat / cast)
//! against the reference interpreter on odd sizes: strides, padding, dilation, non-square
//! kernels, batch 1 and 3. Convolutions (GEMM, another summation order) must agree within 1e-5
//! relative L2; every other op bit for bit, ties of max pools included.

mod common;

use std::collections::HashMap;

use common::{Rng, load, reference, rel_l2};
use netc_backend_cpu::CompiledStep;
use netc_backend_cpu::kernel::Kernel;
use netc_compiler::ir::interp::Value;
use netc_compiler::ir::{DType, Graph, NodeId, Op, Role, Type, Window};
use netc_grammar::Span;

fn input(g: &mut Graph, name: &str, ty: Type) -> NodeId {
    g.input(name, Role::Data, ty, Span::default())
}

fn add(g: &mut Graph, op: Op, operands: &[NodeId], given: Option<Type>) -> NodeId {
    g.add(op, operands, given, Span::default())
        .unwrap_or_else(|e| panic!("{}", e.message))
}

/// Compile `g`, check that no kernel fell back, run both, compare every output: exactly when
/// `exact`, else within 1e-5 relative L2.
fn compare(g: &Graph, inputs: &HashMap<String, Value>, exact: bool, what: &str) {
    let mut step = CompiledStep::compile(g).unwrap();
    assert!(
        !step
            .program()
            .kernels
            .iter()
            .any(|k| matches!(k, Kernel::Fallback { .. })),
        "{what}: fell back:\n{}",
        step.program().dump()
    );
    load(&mut step, inputs);
    step.run().unwrap();
    let want = reference(g, inputs);
    for o in &g.outputs {
        match g.ty(o.node).dtype {
            DType::F32 => {
                let got = step.output(&o.name).unwrap();
                let w = want[&o.name].to_f32_vec().unwrap();
                if exact {
                    let same = got
                        .iter()
                        .zip(&w)
                        .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                    assert!(same, "{what} {}: {got:?}\n!= {w:?}", o.name);
                } else {
                    let err = rel_l2(&got, &w);
                    assert!(err < 1e-5, "{what} {}: relative error {err:e}", o.name);
                }
            }
            DType::I64 => {
                let got = step.output_i64(&o.name).unwrap();
                let interp_data = &want[&o.name].data;
                let netc_compiler::ir::interp::Data::I(w) = interp_data else {
                    panic!("{what}: expected i64")
                };
                assert_eq!(&got, w, "{what} {}", o.name);
            }
        }
    }
}

/// Windows exercising stride, padding, dilation and non-square kernels.
fn windows() -> Vec<Window> {
    let w = |kernel, stride, padding, dilation| Window {
        kernel,
        stride,
        padding,
        dilation,
    };
    vec![
        w([1, 1], [1, 1], [0, 0], [1, 1]),
        w([3, 3], [1, 1], [1, 1], [1, 1]),
        w([3, 2], [2, 1], [1, 0], [1, 1]),
        w([2, 3], [2, 2], [1, 1], [2, 1]),
        w([3, 3], [1, 2], [2, 1], [2, 2]),
        w([5, 4], [2, 3], [1, 2], [1, 1]),
        w([4, 4], [2, 2], [1, 1], [1, 1]),
        // Windows twice their stride: col2im gathers instead of scattering.
        w([6, 4], [3, 2], [2, 1], [1, 1]),
        w([2, 2], [1, 1], [0, 1], [1, 1]),
        // LeNet's convolutions (stride 1, no padding: im2col reads the image itself).
        w([5, 5], [1, 1], [0, 0], [1, 1]),
        // The pools' fast paths: 2x2 and 3x3 kernels with every window inside.
        w([2, 2], [2, 2], [0, 0], [1, 1]),
        w([3, 3], [2, 2], [0, 0], [1, 1]),
    ]
}

/// Conv2d, its weight gradient and ConvTranspose2d on every window, batch 1 and 3.
#[test]
fn convolutions_match_the_interpreter() {
    let mut rng = Rng(0xC0DE);
    for window in windows() {
        // The fourth and fifth batch several images into one GEMM and span several
        // micro-tiles; the last four are as large as some window, the dense products
        // (output 1x1, and its transpose from 1x1).
        let shapes = [
            (1, 2, 3, 7, 9),
            (3, 3, 5, 8, 6),
            (3, 1, 1, 11, 5),
            (2, 3, 11, 13, 21),
            (1, 2, 16, 12, 12),
            (4, 3, 7, 5, 5),
            (5, 2, 3, 2, 2),
            (3, 4, 6, 3, 3),
            (4, 5, 2, 1, 1),
        ];
        for (n, c, o, h, w) in shapes {
            let Some(oh) = window.output_size(h, 0) else {
                continue;
            };
            let Some(ow) = window.output_size(w, 1) else {
                continue;
            };
            let what = format!("{window:?} n={n} c={c} o={o} {h}x{w}");
            let mut g = Graph::new();
            let x = input(&mut g, "x", Type::f32(vec![n, c, h, w]));
            let wt = input(
                &mut g,
                "w",
                Type::f32(vec![o, c, window.kernel[0], window.kernel[1]]),
            );
            let dy = input(&mut g, "dy", Type::f32(vec![n, o, oh, ow]));
            let y = add(&mut g, Op::Conv2d { window }, &[x, wt], None);
            g.set_output("y", y);
            let dw = add(&mut g, Op::Conv2dWeightGrad { window }, &[x, dy], None);
            g.set_output("dw", dw);
            // The input gradient of the convolution: conv_transpose2d of dy with the same w
            // (`[O, C, kh, kw]` read as `[I, O', kh, kw]`) back to x's shape.
            let dx = add(
                &mut g,
                Op::ConvTranspose2d { window },
                &[dy, wt],
                Some(Type::f32(vec![n, c, h, w])),
            );
            g.set_output("dx", dx);
            let mut inputs = HashMap::new();
            for (name, id) in [("x", x), ("w", wt), ("dy", dy)] {
                let ty = g.ty(id).clone();
                inputs.insert(
                    name.to_string(),
                    Value::f32(ty.shape.clone(), rng.vec(ty.numel(), 1.0)),
                );
            }
            compare(&g, &inputs, false, &what);
        }
    }
}

/// ConvTranspose2d producing a larger output than the minimal one (PyTorch's output_padding).
#[test]
fn conv_transpose_with_output_padding() {
    let mut rng = Rng(77);
    let window = Window {
        kernel: [4, 3],
        stride: [2, 3],
        padding: [1, 1],
        dilation: [1, 1],
    };
    for n in [1, 3] {
        let (h, w) = (5, 4);
        // Largest output sizes that still pool back to (h, w).
        let oh = (1..40)
            .filter(|&s| window.output_size(s, 0) == Some(h))
            .max()
            .unwrap();
        let ow = (1..40)
            .filter(|&s| window.output_size(s, 1) == Some(w))
            .max()
            .unwrap();
        let mut g = Graph::new();
        let x = input(&mut g, "x", Type::f32(vec![n, 4, h, w]));
        let wt = input(&mut g, "w", Type::f32(vec![4, 2, 4, 3]));
        let y = add(
            &mut g,
            Op::ConvTranspose2d { window },
            &[x, wt],
            Some(Type::f32(vec![n, 2, oh, ow])),
        );
        g.set_output("y", y);
        let mut inputs = HashMap::new();
        inputs.insert(
            "x".into(),
            Value::f32(vec![n, 4, h, w], rng.vec(n * 4 * h * w, 1.0)),
        );
        inputs.insert("w".into(), Value::f32(vec![4, 2, 4, 3], rng.vec(96, 1.0)));
        compare(&g, &inputs, false, "conv_transpose2d output padding");
    }
}

/// Max and average pools and their gradients, exactly, on data with many ties (values from a
/// set of three) and on data with a NaN.
#[test]
fn pools_match_the_interpreter_exactly() {
    let mut rng = Rng(0xB001);
    for window in windows() {
        for (n, c, h, w) in [(1, 2, 7, 9), (3, 3, 8, 5)] {
            let (Some(oh), Some(ow)) = (window.output_size(h, 0), window.output_size(w, 1)) else {
                continue;
            };
            for nan in [false, true] {
                let what = format!("{window:?} n={n} c={c} {h}x{w} nan={nan}");
                let mut g = Graph::new();
                let x = input(&mut g, "x", Type::f32(vec![n, c, h, w]));
                let dy = input(&mut g, "dy", Type::f32(vec![n, c, oh, ow]));
                let mp = add(&mut g, Op::MaxPool2d { window }, &[x], None);
                g.set_output("max", mp);
                let mg = add(&mut g, Op::MaxPool2dGrad { window }, &[x, dy], None);
                g.set_output("max_grad", mg);
                let ap = add(&mut g, Op::AvgPool2d { window }, &[x], None);
                g.set_output("avg", ap);
                let ag = add(
                    &mut g,
                    Op::AvgPool2dGrad { window },
                    &[dy],
                    Some(Type::f32(vec![n, c, h, w])),
                );
                g.set_output("avg_grad", ag);
                let mut xs: Vec<f32> = (0..n * c * h * w)
                    .map(|_| [-1.0, 0.5, 2.0][rng.below(3)])
                    .collect();
                if nan {
                    let at = rng.below(xs.len());
                    xs[at] = f32::NAN;
                }
                let mut inputs = HashMap::new();
                inputs.insert("x".into(), Value::f32(vec![n, c, h, w], xs));
                inputs.insert(
                    "dy".into(),
                    Value::f32(vec![n, c, oh, ow], rng.vec(n * c * oh * ow, 1.0)),
                );
                compare(&g, &inputs, true, &what);
            }
        }
    }
}

/// Gather, scatter_add (with repeated ids), one_hot, concat (f32 and i64, every axis) and both
/// casts, exactly.
#[test]
fn index_and_layout_ops_match_the_interpreter_exactly() {
    let mut rng = Rng(0x1D5);
    for batch in [1, 3] {
        let (v, d) = (7, 5);
        let mut g = Graph::new();
        let ids = input(&mut g, "ids", Type::i64(vec![batch, 4]));
        let table = input(&mut g, "table", Type::f32(vec![v, d]));
        let dy = input(&mut g, "dy", Type::f32(vec![batch, 4, d]));
        let a = input(&mut g, "a", Type::f32(vec![batch, 2, 3]));
        let b = input(&mut g, "b", Type::f32(vec![batch, 5, 3]));
        let fl = input(&mut g, "f", Type::f32(vec![batch, 4]));
        let gathered = add(&mut g, Op::Gather, &[table, ids], None);
        g.set_output("gather", gathered);
        let scattered = add(
            &mut g,
            Op::ScatterAdd,
            &[ids, dy],
            Some(Type::f32(vec![v, d])),
        );
        g.set_output("scatter", scattered);
        let oh = add(&mut g, Op::OneHot { classes: v }, &[ids], None);
        g.set_output("one_hot", oh);
        let c1 = add(&mut g, Op::Concat { axis: 1 }, &[a, b, a], None);
        g.set_output("concat1", c1);
        let c0 = add(&mut g, Op::Concat { axis: 0 }, &[b, b], None);
        g.set_output("concat0", c0);
        let c2 = add(&mut g, Op::Concat { axis: 2 }, &[a, a], None);
        g.set_output("concat2", c2);
        let ci = add(&mut g, Op::Concat { axis: 1 }, &[ids, ids], None);
        g.set_output("concat_i64", ci);
        let to_f = add(&mut g, Op::Cast { to: DType::F32 }, &[ids], None);
        g.set_output("cast_f32", to_f);
        let to_i = add(&mut g, Op::Cast { to: DType::I64 }, &[fl], None);
        g.set_output("cast_i64", to_i);
        let mut inputs = HashMap::new();
        inputs.insert(
            "ids".into(),
            // Few distinct ids, so scatter_add accumulates into repeated rows.
            Value::i64(
                vec![batch, 4],
                (0..batch * 4).map(|_| rng.below(3) as i64 * 2).collect(),
            ),
        );
        for (name, id) in [("table", table), ("dy", dy), ("a", a), ("b", b)] {
            let ty = g.ty(id).clone();
            inputs.insert(
                name.into(),
                Value::f32(ty.shape.clone(), rng.vec(ty.numel(), 1.0)),
            );
        }
        let mut fs = rng.vec(batch * 4, 300.0);
        fs[0] = f32::NAN;
        inputs.insert("f".into(), Value::f32(vec![batch, 4], fs));
        compare(&g, &inputs, true, &format!("index ops batch={batch}"));
    }
}

/// An id out of range is an error on the native path, as in the interpreter.
#[test]
fn out_of_range_ids_are_errors() {
    let mut g = Graph::new();
    let ids = input(&mut g, "ids", Type::i64(vec![2]));
    let oh = add(&mut g, Op::OneHot { classes: 3 }, &[ids], None);
    g.set_output("y", oh);
    let mut step = CompiledStep::compile(&g).unwrap();
    step.set_input_i64("ids", &[1, 3]).unwrap();
    let err = step.run().unwrap_err();
    assert!(err.contains("out of range"), "{err}");
}
