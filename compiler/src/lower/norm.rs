//! The IR expansions of the normalisation layers: `batch_norm` and `layer_norm`.
//!
//! Both are written with elementwise ops and reductions only, so autodiff differentiates them
//! through the batch statistics exactly as PyTorch's train-mode backward does, and no backend
//! needs a fused normalisation kernel to be correct.
//!
//! Batch norm's running statistics are buffers updated inside the step graph through
//! [`Emitter::state`]/[`Emitter::set_state`]: a layer run twice in one step (a discriminator on
//! real, then on fake images) updates from its first run's result, as PyTorch's in-place update
//! does.

use netc_grammar::Span;

use super::layers::{LowerCtx, bin, reduce, scale, unary};
use super::{Emitter, Mode};
use crate::ir::{BinaryOp, IrError, NodeId, Op, ReduceOp, Type, UnaryOp};

type R = Result<NodeId, IrError>;

/// `batch_norm(x)` over `[N, C]` or `[N, C, H, W]`, per channel. Weights, in the shape rule's
/// order: `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked` (the last an
/// `f32[]` counter in the IR; the runtime stores it as PyTorch's int64).
///
/// Train mode normalises with the batch mean and the *biased* batch variance over every axis
/// but the channel, and updates the buffers with momentum `m`:
/// `running_mean = (1 - m) running_mean + m mean`,
/// `running_var = (1 - m) running_var + m var n / (n - 1)` (the unbiased variance, `n` values
/// per channel) and `num_batches_tracked += 1`. The statistics feed the updates through
/// `stop_gradient`: buffers are never trained. Eval mode normalises with the running
/// statistics and updates nothing.
pub fn batch_norm(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    let s = c.span;
    let ty = em.graph.ty(x).clone();
    let axes: Vec<usize> = (0..ty.rank()).filter(|&a| a != 1).collect();
    let count: usize = axes.iter().map(|&a| ty.shape[a]).product();
    let (eps, momentum) = (c.args.float("eps"), c.args.float("momentum"));
    let [weight, bias, running_mean, running_var, tracked] = c.weights[..] else {
        return Err(IrError {
            message: format!(
                "batch_norm expects 5 weights and buffers, got {}",
                c.weights.len()
            ),
            span: s,
        });
    };
    let names = c.weight_names;
    let (centered, var) = match em.mode {
        Mode::Train => {
            if count < 2 {
                return Err(IrError {
                    message: format!(
                        "batch_norm in train mode needs more than one value per channel, got {count} (input {ty}); PyTorch rejects this too"
                    ),
                    span: s,
                });
            }
            let mean = mean_over(em, x, &axes, s)?;
            let centered = sub_expanded(em, x, mean, &axes, s)?;
            let squares = bin(em, BinaryOp::Mul, centered, centered, s)?;
            let var = mean_over(em, squares, &axes, s)?;

            let mean_seen = em.add(Op::StopGradient, &[mean], None, s)?;
            let var_seen = em.add(Op::StopGradient, &[var], None, s)?;
            let unbiased = scale(em, var_seen, count as f64 / (count - 1) as f64, s)?;
            for (name, input, batch_value) in [
                (&names[2], running_mean, mean_seen),
                (&names[3], running_var, unbiased),
            ] {
                let old = em.state(name, input);
                let kept = scale(em, old, 1.0 - momentum, s)?;
                let new = scale(em, batch_value, momentum, s)?;
                let updated = bin(em, BinaryOp::Add, kept, new, s)?;
                em.set_state(name, updated);
            }
            let old = em.state(&names[4], tracked);
            let one = super::layers::fill_like(em, 1.0, old, s)?;
            let counted = bin(em, BinaryOp::Add, old, one, s)?;
            em.set_state(&names[4], counted);
            (centered, var)
        }
        Mode::Eval => {
            let mean = em.state(&names[2], running_mean);
            let var = em.state(&names[3], running_var);
            (sub_expanded(em, x, mean, &axes, s)?, var)
        }
    };
    let inv_std = inverse_std(em, var, eps, s)?;
    let normalised = mul_expanded(em, centered, inv_std, &axes, s)?;
    let scaled = mul_expanded(em, normalised, weight, &axes, s)?;
    let b = expand(em, bias, &axes, &ty, s)?;
    bin(em, BinaryOp::Add, scaled, b, s)
}

/// `layer_norm(x)` over the last axis `D`: `(x - mean) / sqrt(var + eps) * weight + bias`
/// with the biased variance, per vector, as PyTorch's `nn.LayerNorm(D)`. Weights: `weight [D]`,
/// `bias [D]`.
pub fn layer_norm(em: &mut Emitter, x: NodeId, c: &LowerCtx) -> R {
    let s = c.span;
    let ty = em.graph.ty(x).clone();
    let axes = vec![ty.rank() - 1];
    let mean = mean_over(em, x, &axes, s)?;
    let centered = sub_expanded(em, x, mean, &axes, s)?;
    let squares = bin(em, BinaryOp::Mul, centered, centered, s)?;
    let var = mean_over(em, squares, &axes, s)?;
    let inv_std = inverse_std(em, var, c.args.float("eps"), s)?;
    let normalised = mul_expanded(em, centered, inv_std, &axes, s)?;
    // `weight` and `bias` are `[D]`, which broadcasting aligns with the last axis as it is.
    let w = em.add(Op::Broadcast, &[c.weights[0]], Some(ty.clone()), s)?;
    let b = em.add(Op::Broadcast, &[c.weights[1]], Some(ty), s)?;
    let scaled = bin(em, BinaryOp::Mul, normalised, w, s)?;
    bin(em, BinaryOp::Add, scaled, b, s)
}

/// The mean of `x` over `axes` (removed from the shape).
fn mean_over(em: &mut Emitter, x: NodeId, axes: &[usize], s: Span) -> R {
    let ty = em.graph.ty(x).clone();
    let count: usize = axes.iter().map(|&a| ty.shape[a]).product();
    let total = reduce(em, ReduceOp::Sum, x, axes.to_vec(), s)?;
    scale(em, total, 1.0 / count.max(1) as f64, s)
}

/// `1 / sqrt(var + eps)`, elementwise on the (small) statistics tensor.
fn inverse_std(em: &mut Emitter, var: NodeId, eps: f64, s: Span) -> R {
    let e = super::layers::fill_like(em, eps, var, s)?;
    let shifted = bin(em, BinaryOp::Add, var, e, s)?;
    let std = unary(em, UnaryOp::Sqrt, shifted, s)?;
    unary(em, UnaryOp::Recip, std, s)
}

/// `x - v` with `v` a statistic over `axes` of `x`, expanded back to `x`'s shape.
fn sub_expanded(em: &mut Emitter, x: NodeId, v: NodeId, axes: &[usize], s: Span) -> R {
    let ty = em.graph.ty(x).clone();
    let full = expand(em, v, axes, &ty, s)?;
    bin(em, BinaryOp::Sub, x, full, s)
}

/// `x * v` with `v` a statistic over `axes` of `x`, expanded back to `x`'s shape.
fn mul_expanded(em: &mut Emitter, x: NodeId, v: NodeId, axes: &[usize], s: Span) -> R {
    let ty = em.graph.ty(x).clone();
    let full = expand(em, v, axes, &ty, s)?;
    bin(em, BinaryOp::Mul, x, full, s)
}

/// `v`, whose shape is `full`'s without `axes`, reshaped to keep those axes as 1 and broadcast
/// to `full`: a per-channel `[C]` becomes `[N, C, H, W]` along axis 1, not the last axis.
fn expand(em: &mut Emitter, v: NodeId, axes: &[usize], full: &Type, s: Span) -> R {
    let kept: Vec<usize> = (0..full.rank())
        .map(|a| if axes.contains(&a) { 1 } else { full.shape[a] })
        .collect();
    let dtype = em.graph.ty(v).dtype;
    let r = em.add(Op::Reshape, &[v], Some(Type { dtype, shape: kept }), s)?;
    em.add(Op::Broadcast, &[r], Some(full.clone()), s)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::ir::interp::{self, Precision, Value};
    use crate::lower::program::compile_run;

    /// A one-layer program over `[4, 3]` features with an `mse` loss, so the run also gets an
    /// eval-mode graph.
    const SRC: &str = "
data batch {
  source npy(features: \"x.npy\", labels: \"t.npy\")
  x: f32[3]
  target: f32[3]
}

model Net(x: f32[B, 3]) -> f32[B, 3] {
  x |> batch_norm(momentum: 0.25, eps: 0.5)
}

train t {
  data   batch
  loss   mse(Net(x), target)
  update Net with sgd(lr: 0.1)
  epochs 1
  batch  4
}
";

    const X: [f64; 12] = [
        1.0, -2.0, 0.5, 3.0, 0.0, 1.5, -1.0, 4.0, 2.5, 2.0, 1.0, -0.5,
    ];
    const WEIGHT: [f64; 3] = [1.5, -0.5, 2.0];
    const BIAS: [f64; 3] = [0.25, 1.0, -1.0];
    const MEAN: [f64; 3] = [0.5, -1.0, 2.0];
    const VAR: [f64; 3] = [2.0, 0.5, 1.5];

    fn inputs() -> HashMap<String, Value> {
        let v = |shape: Vec<usize>, data: &[f64]| Value::from_f64(shape, data.to_vec());
        HashMap::from([
            ("x".to_string(), v(vec![4, 3], &X)),
            ("target".to_string(), v(vec![4, 3], &[0.0; 12])),
            ("Net.batch_norm_0.weight".to_string(), v(vec![3], &WEIGHT)),
            ("Net.batch_norm_0.bias".to_string(), v(vec![3], &BIAS)),
            (
                "Net.batch_norm_0.running_mean".to_string(),
                v(vec![3], &MEAN),
            ),
            ("Net.batch_norm_0.running_var".to_string(), v(vec![3], &VAR)),
            (
                "Net.batch_norm_0.num_batches_tracked".to_string(),
                v(vec![], &[7.0]),
            ),
            ("t.Net.lr".to_string(), Value::scalar(0.1)),
        ])
    }

    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn eval_mode_normalises_with_the_running_statistics() {
        let program = compile_run(SRC, None, None).unwrap();
        let eval = program.eval.expect("an eval graph");
        let out = interp::run(&eval, &inputs(), Precision::F64).unwrap();
        let want: Vec<f64> = (0..12)
            .map(|i| {
                let c = i % 3;
                (X[i] - MEAN[c]) / (VAR[c] + 0.5).sqrt() * WEIGHT[c] + BIAS[c]
            })
            .collect();
        close(out["prediction"].as_f64_slice().unwrap(), &want);
        assert!(
            eval.outputs.iter().all(|o| o.updates.is_none()),
            "eval mode updates nothing"
        );
    }

    #[test]
    fn train_mode_updates_the_running_statistics_over_the_batch() {
        let program = compile_run(SRC, None, None).unwrap();
        let step = &program.steps[0].graph;
        let out = interp::run(step, &inputs(), Precision::F64).unwrap();
        let update = |buffer: &str| {
            let o = step
                .outputs
                .iter()
                .find(|o| o.updates.as_deref() == Some(buffer))
                .unwrap();
            out[&o.name].as_f64_slice().unwrap().to_vec()
        };
        let (mut mean, mut var) = (vec![0.0; 3], vec![0.0; 3]);
        for c in 0..3 {
            let column: Vec<f64> = (0..4).map(|n| X[n * 3 + c]).collect();
            mean[c] = column.iter().sum::<f64>() / 4.0;
            // The unbiased variance (n - 1 = 3) goes into the running statistics.
            var[c] = column.iter().map(|v| (v - mean[c]).powi(2)).sum::<f64>() / 3.0;
        }
        let blend = |old: &[f64], new: &[f64]| -> Vec<f64> {
            (0..3).map(|c| 0.75 * old[c] + 0.25 * new[c]).collect()
        };
        close(
            &update("Net.batch_norm_0.running_mean"),
            &blend(&MEAN, &mean),
        );
        close(&update("Net.batch_norm_0.running_var"), &blend(&VAR, &var));
        close(&update("Net.batch_norm_0.num_batches_tracked"), &[8.0]);
    }
}
