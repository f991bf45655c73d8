//! Finite-difference checks of the lowered layer expansions: convolutions, pools, batch norm
//! (train mode, differentiated through the batch statistics) and layer norm.
//!
//! `gradcheck.rs` checks each IR op's vector-Jacobian rule; this checks what the layers become.
//! Each case is a one-layer `.net` program compiled like any other, with the loss
//! `sum(Layer(x) * projection.r)` for a random `r`: a random projection of the layer's output.
//! Gradients of that loss with respect to the input and every parameter come from
//! `autodiff::grad` on the compiled step graph and are compared with central differences, all
//! in the f64 interpreter.

use std::collections::HashMap;

use netc_compiler::ir::interp::{self, Precision, Value};
use netc_compiler::ir::{DType, NodeId, autodiff};
use netc_compiler::lower::program::compile_run;

mod common;
use common::Rng;

fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The program: `layer` applied to `x [input]`, declared to give `[output]` (so the checker
/// confirms the shape), its output projected on `r`.
fn program(input: &[usize], output: &[usize], layer: &str) -> String {
    let (x, y) = (dims(&input[1..]), dims(&output[1..]));
    format!(
        "data batch {{
  source npy(features: \"x.npy\")
  x: f32[{x}]
}}

data projection {{
  source npy(features: \"r.npy\")
  r: f32[{y}]
}}

model Layer(x: f32[B, {x}]) -> f32[B, {y}] {{
  x |> {layer}
}}

train check {{
  data   batch
  loss   sum(Layer(x) * projection.r)
  update Layer with sgd(lr: 0.1)
  epochs 1
  batch  {}
}}
",
        input[0]
    )
}

/// Compile `layer` over `x [input]`, differentiate the projected output with respect to `x` and
/// every parameter, and compare each gradient with central differences.
fn check(input: &[usize], output: &[usize], layer: &str) {
    let src = program(input, output, layer);
    let program = compile_run(&src, None, Some(input[0])).unwrap_or_else(|d| panic!("{d:#?}"));
    let mut graph = program.steps[0].graph.clone();
    let loss = graph.output("loss").expect("a loss output");

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ layer.len() as u64);
    let mut values: HashMap<String, Value> = HashMap::new();
    values.insert(
        "x".into(),
        Value::from_f64(input.to_vec(), rng.values(input.iter().product())),
    );
    values.insert(
        "r".into(),
        Value::from_f64(output.to_vec(), rng.values(output.iter().product())),
    );
    let mut wrt = vec!["x".to_string()];
    for spec in &program.params {
        let n = spec.ty.numel();
        // Buffers: positive, so an eval-mode variance would be valid (train mode ignores them).
        let data = if spec.trainable {
            rng.values(n)
        } else {
            (0..n).map(|_| 0.5 + rng.next()).collect()
        };
        values.insert(
            spec.name.clone(),
            Value::from_f64(spec.ty.shape.clone(), data),
        );
        if spec.trainable {
            wrt.push(spec.name.clone());
        }
    }

    let nodes: Vec<NodeId> = wrt
        .iter()
        .map(|n| {
            graph
                .find_input(n)
                .unwrap_or_else(|| panic!("no input `{n}`"))
        })
        .collect();
    let grads = autodiff::grad(&mut graph, loss, &nodes).unwrap_or_else(|e| panic!("{e:?}"));
    graph.outputs.clear();
    graph.set_output("loss", loss);
    for (name, grad) in wrt.iter().zip(grads) {
        let grad = grad.unwrap_or_else(|| panic!("{layer}: no gradient for `{name}`"));
        graph.set_output(&format!("grad.{name}"), grad);
    }

    let result = interp::run(&graph, &values, Precision::F64).unwrap_or_else(|e| panic!("{e:?}"));
    let loss_at = |name: &str, k: usize, delta: f64| {
        let mut moved = values.clone();
        let v = moved.get_mut(name).expect("an input");
        if let interp::Data::F(data) = &mut v.data {
            data[k] += delta;
        }
        interp::run(&graph, &moved, Precision::F64).unwrap()["loss"]
            .as_f64_slice()
            .unwrap()[0]
    };
    for name in &wrt {
        assert_eq!(values[name].ty.dtype, DType::F32);
        let analytic = result[&format!("grad.{name}")]
            .as_f64_slice()
            .unwrap()
            .to_vec();
        let h = 1e-6;
        let numeric: Vec<f64> = (0..analytic.len())
            .map(|k| (loss_at(name, k, h) - loss_at(name, k, -h)) / (2.0 * h))
            .collect();
        let diff: f64 = analytic
            .iter()
            .zip(&numeric)
            .map(|(a, n)| (a - n).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = numeric.iter().map(|n| n * n).sum::<f64>().sqrt();
        assert!(
            norm > 1e-8,
            "{layer}: gradient of {name} is zero: the check would prove nothing"
        );
        let rel = diff / norm;
        assert!(
            rel < 1e-6,
            "{layer}: `{name}` relative error {rel:e}\nanalytic {analytic:?}\nnumeric  {numeric:?}"
        );
    }
}

#[test]
fn conv2d_with_bias_stride_padding_and_dilation() {
    check(&[2, 3, 6, 6], &[2, 4, 4, 4], "conv2d(4, kernel: 3)");
    check(
        &[2, 2, 7, 6],
        &[2, 3, 3, 3],
        "conv2d(3, kernel: (3, 2), stride: 2, padding: (0, 1), dilation: (1, 2))",
    );
    check(
        &[1, 2, 5, 5],
        &[1, 2, 3, 3],
        "conv2d(2, kernel: 3, stride: 2, padding: 1, bias: false)",
    );
}

#[test]
fn conv_transpose2d_with_bias_and_output_padding() {
    check(
        &[2, 3, 3, 3],
        &[2, 2, 6, 6],
        "conv_transpose2d(2, kernel: 4, stride: 2, padding: 1)",
    );
    check(
        &[1, 2, 3, 3],
        &[1, 3, 6, 6],
        "conv_transpose2d(3, kernel: 3, stride: 2, padding: 1, output_padding: 1)",
    );
    check(
        &[2, 4, 1, 1],
        &[2, 2, 4, 4],
        "conv_transpose2d(2, kernel: 4, bias: false)",
    );
}

#[test]
fn pools() {
    // A 1x1 convolution in front gives the run something to update (pools have no weights).
    check(
        &[2, 2, 6, 6],
        &[2, 2, 3, 3],
        "conv2d(2, kernel: 1) |> max_pool(2)",
    );
    check(
        &[1, 2, 7, 7],
        &[1, 2, 4, 4],
        "conv2d(2, kernel: 1) |> max_pool(3, stride: 2, padding: 1)",
    );
    check(
        &[1, 2, 5, 5],
        &[1, 2, 3, 3],
        "conv2d(2, kernel: 1) |> avg_pool(3, stride: 2, padding: 1)",
    );
    check(
        &[1, 2, 6, 5],
        &[1, 2, 3, 5],
        "conv2d(2, kernel: 1) |> avg_pool((2, 3), stride: (2, 1), padding: (0, 1))",
    );
}

#[test]
fn batch_norm_in_train_mode() {
    // Images: statistics over (N, H, W) per channel.
    check(&[2, 3, 3, 3], &[2, 3, 3, 3], "batch_norm");
    // Features: statistics over N per channel, other hyper-parameters.
    check(&[4, 3], &[4, 3], "batch_norm(momentum: 0.3, eps: 1e-3)");
    // After a convolution, as in the DCGAN.
    check(
        &[2, 2, 4, 4],
        &[2, 3, 2, 2],
        "conv2d(3, kernel: 3, bias: false) |> batch_norm",
    );
}

#[test]
fn layer_norm_over_the_last_axis() {
    check(&[2, 3, 5], &[2, 3, 5], "layer_norm");
    check(&[3, 4], &[3, 4], "layer_norm(eps: 1e-3)");
}
