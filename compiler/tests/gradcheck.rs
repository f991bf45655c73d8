//! Finite-difference checks of every vector-Jacobian rule in autodiff.
//!
//! For each op: random inputs (never zeros), loss = sum(op(inputs) * R) for a random R, gradients
//! from `autodiff::grad`, compared with central differences, all in the f64 interpreter.

use std::collections::HashMap;

use netc_compiler::ir::interp::{self, Precision, Value};
use netc_compiler::ir::{
    BinaryOp, Graph, NodeId, Op, ReduceOp, Role, Type, UnaryOp, Window, autodiff,
};
use netc_grammar::Span;

mod common;
use common::Rng;

const S: Span = Span { start: 0, end: 0 };

/// Build `loss = sum(out * R)`, differentiate w.r.t. the float inputs, and compare with finite
/// differences. `build` receives the graph and the input nodes and returns the op's output.
fn check(
    inputs: &[(&str, Type)],
    ids: &[(&str, Vec<i64>)],
    build: impl Fn(&mut Graph, &[NodeId]) -> NodeId,
) {
    check_with(inputs, ids, 1, build);
}

fn check_with(
    inputs: &[(&str, Type)],
    ids: &[(&str, Vec<i64>)],
    seed: u64,
    build: impl Fn(&mut Graph, &[NodeId]) -> NodeId,
) {
    let mut rng = Rng(0x9E3779B97F4A7C15 ^ seed);
    let mut g = Graph::new();
    let nodes: Vec<NodeId> = inputs
        .iter()
        .map(|(name, ty)| g.input(name, Role::Param, ty.clone(), S))
        .collect();
    let out = build(&mut g, &nodes);
    let out_ty = g.ty(out).clone();
    let r = g.input("R", Role::Data, out_ty.clone(), S);
    let prod = g
        .add(Op::Binary(BinaryOp::Mul), &[out, r], None, S)
        .unwrap();
    let axes: Vec<usize> = (0..out_ty.rank()).collect();
    let loss = if axes.is_empty() {
        prod
    } else {
        g.add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes,
            },
            &[prod],
            None,
            S,
        )
        .unwrap()
    };
    g.set_output("loss", loss);
    let float_inputs: Vec<NodeId> = nodes
        .iter()
        .zip(inputs)
        .filter(|(_, (_, t))| t.dtype == netc_compiler::ir::DType::F32)
        .map(|(n, _)| *n)
        .collect();
    let grads = autodiff::grad(&mut g, loss, &float_inputs).unwrap();
    for (i, grad) in grads.iter().enumerate() {
        let name = format!("grad{i}");
        match grad {
            Some(node) => g.set_output(&name, *node),
            None => panic!("no gradient for input {i}"),
        }
    }

    let mut values: HashMap<String, Value> = HashMap::new();
    for (name, ty) in inputs {
        if ty.dtype == netc_compiler::ir::DType::F32 {
            values.insert(
                name.to_string(),
                Value::from_f64(
                    ty.shape.clone(),
                    (0..ty.numel()).map(|_| rng.value()).collect(),
                ),
            );
        }
    }
    for (name, data) in ids {
        let ty = &inputs.iter().find(|(n, _)| n == name).unwrap().1;
        values.insert(name.to_string(), Value::i64(ty.shape.clone(), data.clone()));
    }
    values.insert(
        "R".into(),
        Value::from_f64(
            out_ty.shape.clone(),
            (0..out_ty.numel()).map(|_| rng.value()).collect(),
        ),
    );
    let result = interp::run(&g, &values, Precision::F64).unwrap();

    let float_names: Vec<&str> = inputs
        .iter()
        .filter(|(_, t)| t.dtype == netc_compiler::ir::DType::F32)
        .map(|(n, _)| *n)
        .collect();
    for (i, name) in float_names.iter().enumerate() {
        let analytic = result[&format!("grad{i}")].as_f64_slice().unwrap().to_vec();
        let base = values[*name].as_f64_slice().unwrap().to_vec();
        let mut numeric = vec![0.0; base.len()];
        let h = 1e-6;
        for k in 0..base.len() {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[k] += delta;
                let mut vals = values.clone();
                vals.insert(
                    name.to_string(),
                    Value::from_f64(values[*name].ty.shape.clone(), v),
                );
                interp::run(&g, &vals, Precision::F64).unwrap()["loss"]
                    .as_f64_slice()
                    .unwrap()[0]
            };
            numeric[k] = (at(h) - at(-h)) / (2.0 * h);
        }
        let diff: f64 = analytic
            .iter()
            .zip(&numeric)
            .map(|(a, n)| (a - n).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = numeric.iter().map(|n| n * n).sum::<f64>().sqrt();
        assert!(
            norm > 1e-8,
            "gradient of {name} is zero: the check would prove nothing"
        );
        let rel = diff / norm;
        assert!(
            rel < 1e-6,
            "input {name}: relative error {rel:e}\nanalytic {analytic:?}\nnumeric  {numeric:?}"
        );
    }
}

fn f(shape: &[usize]) -> Type {
    Type::f32(shape.to_vec())
}

#[test]
fn unary_ops() {
    for op in [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Erf,
        UnaryOp::Abs,
        UnaryOp::Recip,
    ] {
        check(&[("x", f(&[3, 4]))], &[], |g, n| {
            g.add(Op::Unary(op), &[n[0]], None, S).unwrap()
        });
    }
    // log and sqrt need positive inputs.
    for op in [UnaryOp::Log, UnaryOp::Sqrt] {
        check(&[("x", f(&[5]))], &[], |g, n| {
            let sq = g
                .add(Op::Binary(BinaryOp::Mul), &[n[0], n[0]], None, S)
                .unwrap();
            g.add(Op::Unary(op), &[sq], None, S).unwrap()
        });
    }
}

#[test]
fn binary_ops_and_select() {
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
    ] {
        check(&[("a", f(&[2, 3])), ("b", f(&[2, 3]))], &[], |g, n| {
            g.add(Op::Binary(op), &[n[0], n[1]], None, S).unwrap()
        });
    }
    check(
        &[("c", f(&[4])), ("a", f(&[4])), ("b", f(&[4]))],
        &[],
        |g, n| {
            let zero = g
                .add(Op::Fill { value: 0.0 }, &[], Some(f(&[4])), S)
                .unwrap();
            let mask = g
                .add(Op::Binary(BinaryOp::Greater), &[n[0], zero], None, S)
                .unwrap();
            let sel = g.add(Op::Select, &[mask, n[1], n[2]], None, S).unwrap();
            // Keep `c` in the loss so it has a (non-zero) gradient to check.
            g.add(Op::Binary(BinaryOp::Add), &[sel, n[0]], None, S)
                .unwrap()
        },
    );
}

#[test]
fn layout_ops() {
    check(&[("x", f(&[3, 1]))], &[], |g, n| {
        g.add(Op::Broadcast, &[n[0]], Some(f(&[2, 3, 4])), S)
            .unwrap()
    });
    check(&[("x", f(&[2, 6]))], &[], |g, n| {
        g.add(Op::Reshape, &[n[0]], Some(f(&[3, 4])), S).unwrap()
    });
    check(&[("x", f(&[2, 3, 4]))], &[], |g, n| {
        g.add(
            Op::Transpose {
                perm: vec![2, 0, 1],
            },
            &[n[0]],
            None,
            S,
        )
        .unwrap()
    });
    check(&[("x", f(&[2, 7]))], &[], |g, n| {
        g.add(
            Op::Slice {
                axis: 1,
                start: 2,
                len: 3,
            },
            &[n[0]],
            None,
            S,
        )
        .unwrap()
    });
    check(&[("a", f(&[2, 3])), ("b", f(&[2, 2]))], &[], |g, n| {
        g.add(Op::Concat { axis: 1 }, &[n[0], n[1]], None, S)
            .unwrap()
    });
}

#[test]
fn reductions() {
    check(&[("x", f(&[2, 3, 4]))], &[], |g, n| {
        g.add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0, 2],
            },
            &[n[0]],
            None,
            S,
        )
        .unwrap()
    });
    check(&[("x", f(&[3, 5]))], &[], |g, n| {
        g.add(
            Op::Reduce {
                op: ReduceOp::Max,
                axes: vec![1],
            },
            &[n[0]],
            None,
            S,
        )
        .unwrap()
    });
}

#[test]
fn matmul_in_every_layout() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = if ta { f(&[2, 4, 3]) } else { f(&[2, 3, 4]) };
        let b = if tb { f(&[2, 5, 4]) } else { f(&[2, 4, 5]) };
        check(&[("a", a), ("b", b)], &[], |g, n| {
            g.add(Op::MatMul { ta, tb }, &[n[0], n[1]], None, S)
                .unwrap()
        });
    }
}

fn window(k: usize, s: usize, p: usize, d: usize) -> Window {
    Window {
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        dilation: [d, d],
    }
}

#[test]
fn convolutions() {
    for w in [window(3, 1, 0, 1), window(3, 2, 1, 1), window(2, 2, 1, 2)] {
        check(
            &[("x", f(&[2, 3, 6, 6])), ("w", f(&[4, 3, 3, 3]))].map(|(n, t)| {
                if n == "w" {
                    (n, f(&[4, 3, w.kernel[0], w.kernel[1]]))
                } else {
                    (n, t)
                }
            }),
            &[],
            |g, n| {
                g.add(Op::Conv2d { window: w }, &[n[0], n[1]], None, S)
                    .unwrap()
            },
        );
    }
    let w = window(4, 2, 1, 1);
    check(
        &[("x", f(&[2, 3, 4, 4])), ("w", f(&[3, 2, 4, 4]))],
        &[],
        |g, n| {
            g.add(
                Op::ConvTranspose2d { window: w },
                &[n[0], n[1]],
                Some(f(&[2, 2, 8, 8])),
                S,
            )
            .unwrap()
        },
    );
}

#[test]
fn pooling() {
    check(&[("x", f(&[2, 2, 6, 6]))], &[], |g, n| {
        g.add(
            Op::MaxPool2d {
                window: window(2, 2, 0, 1),
            },
            &[n[0]],
            None,
            S,
        )
        .unwrap()
    });
    check(&[("x", f(&[1, 2, 5, 5]))], &[], |g, n| {
        g.add(
            Op::AvgPool2d {
                window: window(3, 2, 1, 1),
            },
            &[n[0]],
            None,
            S,
        )
        .unwrap()
    });
    check(&[("dy", f(&[1, 2, 3, 3]))], &[], |g, n| {
        g.add(
            Op::AvgPool2dGrad {
                window: window(3, 2, 1, 1),
            },
            &[n[0]],
            Some(f(&[1, 2, 5, 5])),
            S,
        )
        .unwrap()
    });
}

#[test]
fn gather_and_scatter() {
    let ids = vec![3, 0, 3, 1, 4, 0];
    check(
        &[("table", f(&[5, 3])), ("ids", Type::i64(vec![2, 3]))],
        &[("ids", ids.clone())],
        |g, n| g.add(Op::Gather, &[n[0], n[1]], None, S).unwrap(),
    );
    check(
        &[("ids", Type::i64(vec![2, 3])), ("dy", f(&[2, 3, 4]))],
        &[("ids", ids)],
        |g, n| {
            g.add(Op::ScatterAdd, &[n[0], n[1]], Some(f(&[5, 4])), S)
                .unwrap()
        },
    );
}

#[test]
fn missing_rule_is_an_error_with_the_span() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Param, f(&[1, 1, 4, 4]), S);
    let dy = g.input("dy", Role::Data, f(&[1, 1, 2, 2]), S);
    let span = Span::new(10, 20);
    let w = g
        .add(
            Op::Conv2dWeightGrad {
                window: window(3, 1, 0, 1),
            },
            &[x, dy],
            None,
            span,
        )
        .unwrap();
    let loss = g
        .add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0, 1, 2, 3],
            },
            &[w],
            None,
            S,
        )
        .unwrap();
    let err = autodiff::grad(&mut g, loss, &[x]).unwrap_err();
    assert_eq!(err.span, span);
    assert!(
        err.message.contains("conv2d_weight_grad"),
        "{}",
        err.message
    );
}

#[test]
fn unreachable_parameters_have_no_gradient() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Param, f(&[3]), S);
    let y = g.input("y", Role::Param, f(&[3]), S);
    let s = g.add(Op::StopGradient, &[y], None, S).unwrap();
    let sum = g.add(Op::Binary(BinaryOp::Add), &[x, s], None, S).unwrap();
    let loss = g
        .add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0],
            },
            &[sum],
            None,
            S,
        )
        .unwrap();
    let grads = autodiff::grad(&mut g, loss, &[x, y]).unwrap();
    assert!(grads[0].is_some());
    assert!(grads[1].is_none(), "stop_gradient must cut the path to y");
}

#[test]
fn stop_gradient_blocks_only_its_own_path() {
    // loss = sum(stop_gradient(x) * x): the gradient is x (from the second factor), not 2x.
    let mut g = Graph::new();
    let x = g.input("x", Role::Param, f(&[4]), S);
    let s = g.add(Op::StopGradient, &[x], None, S).unwrap();
    let prod = g.add(Op::Binary(BinaryOp::Mul), &[s, x], None, S).unwrap();
    let loss = g
        .add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0],
            },
            &[prod],
            None,
            S,
        )
        .unwrap();
    let grad = autodiff::grad(&mut g, loss, &[x]).unwrap()[0].unwrap();
    g.set_output("grad", grad);
    let xs = vec![0.5, -1.5, 2.0, 3.25];
    let values = HashMap::from([("x".to_string(), Value::from_f64(vec![4], xs.clone()))]);
    let result = interp::run(&g, &values, Precision::F64).unwrap();
    assert_eq!(result["grad"].as_f64_slice().unwrap(), xs.as_slice());
}
