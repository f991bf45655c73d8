//! Steps compiled for several threads: kernels large enough to be split (elementwise chunks,
//! convolutions and pools over images, batched matmuls over matrices) give exactly the
//! one-thread bits, with 2 and 3 parts (uneven splits, odd sizes, vector tails); the splits that
//! reorder sums (a convolution's weight gradient, a single large GEMM) agree with the
//! interpreter within 1e-5 and are the same from run to run.

mod common;

use std::collections::HashMap;

use common::{Rng, load, reference, rel_l2};
use netc_backend_cpu::CompiledStep;
use netc_compiler::ir::interp::Value;
use netc_compiler::ir::{BinaryOp, Graph, NodeId, Op, Role, Type, UnaryOp, Window};
use netc_grammar::Span;

fn input(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
    g.input(name, Role::Data, Type::f32(shape.to_vec()), Span::default())
}

fn add(g: &mut Graph, op: Op, operands: &[NodeId], given: Option<Type>) -> NodeId {
    g.add(op, operands, given, Span::default())
        .unwrap_or_else(|e| panic!("{}", e.message))
}

/// `a x b`, neither transposed.
fn matmul(g: &mut Graph, a: NodeId, b: NodeId) -> NodeId {
    add(
        g,
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[a, b],
        None,
    )
}

/// Random values for every input of `g`.
fn inputs(g: &Graph, seed: u64) -> HashMap<String, Value> {
    common::random_inputs(g, &mut Rng(seed), 1.0)
}

/// Every output of `g` after one run on `threads` threads.
fn run(g: &Graph, inputs: &HashMap<String, Value>, threads: usize) -> Vec<(String, Vec<f32>)> {
    let mut step = CompiledStep::compile_with_threads(g, threads).unwrap();
    load(&mut step, inputs);
    step.run().unwrap();
    g.outputs
        .iter()
        .map(|o| (o.name.clone(), step.output(&o.name).unwrap()))
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Check every output against the interpreter within 1e-5 relative L2.
fn check_reference(g: &Graph, inputs: &HashMap<String, Value>, got: &[(String, Vec<f32>)]) {
    let want = reference(g, inputs);
    for (name, v) in got {
        let err = rel_l2(v, &want[name].to_f32_vec().unwrap());
        assert!(err < 1e-5, "{name}: relative error {err:e}");
    }
}

#[test]
fn splits_that_keep_the_order_are_exact() {
    let mut g = Graph::new();
    let conv = Window {
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
    };
    let pool = Window {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
    };
    // Five images: uneven parts for 2 and 3 threads.
    let x = input(&mut g, "x", &[5, 4, 37, 29]);
    let w = input(&mut g, "w", &[6, 4, 3, 3]);
    let dy = input(&mut g, "dy", &[5, 6, 37, 29]);
    let y = add(&mut g, Op::Conv2d { window: conv }, &[x, w], None);
    g.set_output("conv", y);
    let dx = add(
        &mut g,
        Op::ConvTranspose2d { window: conv },
        &[dy, w],
        Some(Type::f32(vec![5, 4, 37, 29])),
    );
    g.set_output("conv_transpose", dx);
    let p = input(&mut g, "p", &[5, 16, 64, 62]);
    let pg = input(&mut g, "pool_dy", &[5, 16, 32, 31]);
    for (name, op, grad) in [
        (
            "max",
            Op::MaxPool2d { window: pool },
            Op::MaxPool2dGrad { window: pool },
        ),
        (
            "avg",
            Op::AvgPool2d { window: pool },
            Op::AvgPool2dGrad { window: pool },
        ),
    ] {
        let y = add(&mut g, op, &[p], None);
        g.set_output(&format!("{name}_pool"), y);
        let operands = if name == "max" { vec![p, pg] } else { vec![pg] };
        let d = add(
            &mut g,
            grad,
            &operands,
            Some(Type::f32(vec![5, 16, 64, 62])),
        );
        g.set_output(&format!("{name}_pool_grad"), d);
    }
    // Elementwise: a 2-D kernel split over rows, a 1-D one split at whole vectors (tail of 3).
    for (name, shape) in [("rows", vec![333, 1001]), ("flat", vec![100_003])] {
        let z = input(&mut g, name, &shape);
        let t = add(&mut g, Op::Unary(UnaryOp::Tanh), &[z], None);
        let e = add(&mut g, Op::Unary(UnaryOp::Exp), &[z], None);
        let m = add(&mut g, Op::Binary(BinaryOp::Mul), &[t, z], None);
        let s = add(&mut g, Op::Binary(BinaryOp::Add), &[m, e], None);
        g.set_output(&format!("{name}_out"), s);
    }
    // A batch of seven matrices.
    let a = input(&mut g, "a", &[7, 33, 65]);
    let b = input(&mut g, "b", &[7, 65, 47]);
    let mm = matmul(&mut g, a, b);
    g.set_output("batched_matmul", mm);

    let inputs = inputs(&g, 0x7EAD);
    let one = run(&g, &inputs, 1);
    check_reference(&g, &inputs, &one);
    for threads in [2, 3] {
        let many = run(&g, &inputs, threads);
        for ((name, a), (_, b)) in one.iter().zip(&many) {
            assert!(same_bits(a, b), "{name}: {threads} threads differ from one");
        }
    }
}

#[test]
fn splits_that_reorder_sums_match_the_interpreter() {
    let mut g = Graph::new();
    let window = Window {
        kernel: [3, 3],
        stride: [2, 1],
        padding: [1, 1],
        dilation: [1, 1],
    };
    let x = input(&mut g, "x", &[5, 4, 37, 29]);
    let dy = input(&mut g, "dy", &[5, 6, 19, 29]);
    let dw = add(&mut g, Op::Conv2dWeightGrad { window }, &[x, dy], None);
    g.set_output("weight_grad", dw);
    let a = input(&mut g, "a", &[150, 130]);
    let b = input(&mut g, "b", &[130, 121]);
    let mm = matmul(&mut g, a, b);
    g.set_output("matmul", mm);
    let inputs = inputs(&g, 0x5EED);
    for threads in [2, 3] {
        let first = run(&g, &inputs, threads);
        check_reference(&g, &inputs, &first);
        let again = run(&g, &inputs, threads);
        for ((name, a), (_, b)) in first.iter().zip(&again) {
            assert!(
                same_bits(a, b),
                "{name}: two runs on {threads} threads differ"
            );
        }
    }
}
