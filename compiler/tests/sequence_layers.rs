//! Forward values of the compiled `lstm`, `gru`, `self_attention` and `attention` layers against
//! direct implementations of PyTorch's equations (plain loops in f64), for the cases the
//! PyTorch parity tests do not reach: GRUs, `output: sequence`, causal masks, cross-attention
//! with a memory of another length, and odd head counts.

use std::collections::HashMap;

use netc_compiler::ir::interp::{self, Precision, Value};
use netc_compiler::lower::program::compile_run;

struct Rng(u64);

impl Rng {
    fn values(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * 0.7
            })
            .collect()
    }
}

/// Compile `model` (`M(x: f32[B, ..])` returning `out_shape` per sample) and evaluate its eval
/// graph in f64 on random parameters and a random `x`. Returns the prediction, `x` and the
/// parameters by name.
fn run_model(
    model: &str,
    x_shape: &[usize],
    out_shape: &[usize],
    batch: usize,
) -> (Vec<f64>, Vec<f64>, HashMap<String, Vec<f64>>) {
    let dims = |s: &[usize]| {
        s.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let src = format!(
        "data d {{\n  source npy(features: \"x.npy\", labels: \"y.npy\")\n  x: f32[{}]\n  label: f32[{}]\n}}\n\n{model}\n\n\
         train t {{\n  data d\n  loss mse(M(x), label)\n  update M with sgd(lr: 0.1)\n  epochs 1\n  batch {batch}\n}}\n",
        dims(x_shape),
        dims(out_shape)
    );
    let program = compile_run(&src, None, Some(batch)).unwrap_or_else(|d| panic!("{d:#?}"));
    let graph = program.eval.expect("an eval graph");
    let mut rng = Rng(0x853C49E6748FEA9B);
    let mut values = HashMap::new();
    let mut params = HashMap::new();
    for spec in &program.params {
        let v = rng.values(spec.ty.numel());
        params.insert(spec.name.clone(), v.clone());
        values.insert(spec.name.clone(), Value::from_f64(spec.ty.shape.clone(), v));
    }
    let mut xs = vec![batch];
    xs.extend(x_shape);
    let x = rng.values(xs.iter().product());
    values.insert("x".to_string(), Value::from_f64(xs, x.clone()));
    let mut ys = vec![batch];
    ys.extend(out_shape);
    values.insert(
        "label".to_string(),
        Value::from_f64(ys.clone(), vec![0.0; ys.iter().product()]),
    );
    let out = interp::run(&graph, &values, Precision::F64).unwrap();
    (
        out["prediction"].as_f64_slice().unwrap().to_vec(),
        x,
        params,
    )
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `W v` for `W` `[rows, v.len()]` row-major, plus `b`.
fn affine(w: &[f64], b: &[f64], v: &[f64]) -> Vec<f64> {
    b.iter()
        .enumerate()
        .map(|(r, bias)| bias + (0..v.len()).map(|k| w[r * v.len() + k] * v[k]).sum::<f64>())
        .collect()
}

/// PyTorch's stacked (bi)directional LSTM or GRU over `x` `[T][F]` (one sample): the per-step
/// outputs `[T][H*dirs]` and the final states of the last layer, forward then backward.
fn rnn(
    lstm: bool,
    x: Vec<Vec<f64>>,
    p: &HashMap<String, Vec<f64>>,
    prefix: &str,
    h: usize,
    layers: usize,
    dirs: usize,
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let t = x.len();
    let mut seq = x;
    let mut last = Vec::new();
    for k in 0..layers {
        let mut out = vec![Vec::new(); t];
        last.clear();
        for d in 0..dirs {
            let suffix = if d == 1 { "_reverse" } else { "" };
            let get = |n: &str| &p[&format!("{prefix}.{n}_l{k}{suffix}")];
            let (w_ih, w_hh, b_ih, b_hh) = (
                get("weight_ih"),
                get("weight_hh"),
                get("bias_ih"),
                get("bias_hh"),
            );
            let (mut hs, mut cs) = (vec![0.0; h], vec![0.0; h]);
            let steps: Vec<usize> = if d == 1 {
                (0..t).rev().collect()
            } else {
                (0..t).collect()
            };
            for step in steps {
                let gi = affine(w_ih, b_ih, &seq[step]);
                let gh = affine(w_hh, b_hh, &hs);
                if lstm {
                    for j in 0..h {
                        let i = sigmoid(gi[j] + gh[j]);
                        let f = sigmoid(gi[h + j] + gh[h + j]);
                        let g = (gi[2 * h + j] + gh[2 * h + j]).tanh();
                        let o = sigmoid(gi[3 * h + j] + gh[3 * h + j]);
                        cs[j] = f * cs[j] + i * g;
                        hs[j] = o * cs[j].tanh();
                    }
                } else {
                    for j in 0..h {
                        let r = sigmoid(gi[j] + gh[j]);
                        let z = sigmoid(gi[h + j] + gh[h + j]);
                        let n = (gi[2 * h + j] + r * gh[2 * h + j]).tanh();
                        hs[j] = (1.0 - z) * n + z * hs[j];
                    }
                }
                out[step].extend(&hs);
            }
            last.extend(&hs);
        }
        seq = out;
    }
    (seq, last)
}

fn assert_close(mine: &[f64], reference: &[f64]) {
    assert_eq!(mine.len(), reference.len());
    let worst = mine
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-12,
        "max abs difference {worst:e}\nmine      {mine:?}\nreference {reference:?}"
    );
}

/// Split a batch-first `[B, T, F]` buffer into samples of `[T][F]`.
fn samples(x: &[f64], b: usize, t: usize) -> Vec<Vec<Vec<f64>>> {
    let f = x.len() / (b * t);
    (0..b)
        .map(|i| {
            (0..t)
                .map(|s| x[(i * t + s) * f..(i * t + s + 1) * f].to_vec())
                .collect()
        })
        .collect()
}

#[test]
fn recurrent_layers_follow_pytorch() {
    let (b, t, f, h) = (2, 5, 3, 4);
    for (layer, lstm) in [("lstm", true), ("gru", false)] {
        for (layers, dirs) in [(1, 1), (2, 2), (2, 1)] {
            let bidirectional = dirs == 2;
            let width = h * dirs;
            let model = format!(
                "model M(x: f32[B, {t}, {f}]) -> f32[B, {t}, {width}] {{\n  x |> {layer}({h}, layers: {layers}, bidirectional: {bidirectional})\n}}"
            );
            let (mine, x, p) = run_model(&model, &[t, f], &[t, width], b);
            let mut reference = Vec::new();
            for sample in samples(&x, b, t) {
                let (seq, _) = rnn(lstm, sample, &p, &format!("M.{layer}_0"), h, layers, dirs);
                reference.extend(seq.concat());
            }
            assert_close(&mine, &reference);

            let model = format!(
                "model M(x: f32[B, {t}, {f}]) -> f32[B, {width}] {{\n  x |> {layer}({h}, layers: {layers}, bidirectional: {bidirectional}, output: final)\n}}"
            );
            let (mine, x, p) = run_model(&model, &[t, f], &[width], b);
            let mut reference = Vec::new();
            for sample in samples(&x, b, t) {
                reference.extend(rnn(lstm, sample, &p, &format!("M.{layer}_0"), h, layers, dirs).1);
            }
            assert_close(&mine, &reference);
        }
    }
}

/// Multi-head attention of one sample as the transformer README writes it: queries from `q_in`
/// `[Tq][D]`, keys and values from `kv_in` `[Tk][D]`, packed projections, optional causal mask.
fn mha(
    q_in: &[Vec<f64>],
    kv_in: &[Vec<f64>],
    p: &HashMap<String, Vec<f64>>,
    prefix: &str,
    heads: usize,
    causal: bool,
) -> Vec<f64> {
    let d = q_in[0].len();
    let (w, bias) = (
        &p[&format!("{prefix}.in_proj_weight")],
        &p[&format!("{prefix}.in_proj_bias")],
    );
    let block =
        |k: usize, v: &[f64]| affine(&w[k * d * d..(k + 1) * d * d], &bias[k * d..(k + 1) * d], v);
    let q: Vec<Vec<f64>> = q_in.iter().map(|v| block(0, v)).collect();
    let k: Vec<Vec<f64>> = kv_in.iter().map(|v| block(1, v)).collect();
    let v: Vec<Vec<f64>> = kv_in.iter().map(|v| block(2, v)).collect();
    let hd = d / heads;
    let mut out = Vec::new();
    for (i, qi) in q.iter().enumerate() {
        let mut o = vec![0.0; d];
        for head in 0..heads {
            let cols = head * hd..(head + 1) * hd;
            let scores: Vec<f64> = (0..k.len())
                .map(|j| {
                    if causal && j > i {
                        f64::NEG_INFINITY
                    } else {
                        cols.clone().map(|c| qi[c] * k[j][c]).sum::<f64>() / (hd as f64).sqrt()
                    }
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = e.iter().sum();
            for c in cols {
                o[c] = (0..k.len()).map(|j| e[j] / total * v[j][c]).sum();
            }
        }
        out.extend(affine(
            &p[&format!("{prefix}.out_proj.weight")],
            &p[&format!("{prefix}.out_proj.bias")],
            &o,
        ));
    }
    out
}

#[test]
fn self_attention_follows_pytorch() {
    let (b, t, d) = (2, 5, 6);
    for (heads, causal) in [(1, false), (3, false), (2, true), (6, true)] {
        let model = format!(
            "model M(x: f32[B, {t}, {d}]) -> f32[B, {t}, {d}] {{\n  x |> self_attention(heads: {heads}, causal: {causal})\n}}"
        );
        let (mine, x, p) = run_model(&model, &[t, d], &[t, d], b);
        let reference: Vec<f64> = samples(&x, b, t)
            .iter()
            .flat_map(|s| mha(s, s, &p, "M.self_attention_0", heads, causal))
            .collect();
        assert_close(&mine, &reference);
    }
}

#[test]
fn cross_attention_follows_pytorch() {
    // memory = transpose(x) [B, 6, 4] -> linear(6): Tk = 6 keys for Tq = 4 queries.
    let (b, t, d) = (2, 4, 6);
    let model = format!(
        "model M(x: f32[B, {t}, {d}]) -> f32[B, {t}, {d}] {{\n  let memory = x |> transpose(1, 2) |> linear({d})\n  attention(x, memory, heads: 2)\n}}"
    );
    let (mine, x, p) = run_model(&model, &[t, d], &[t, d], b);
    let mut reference = Vec::new();
    for sample in samples(&x, b, t) {
        let transposed: Vec<Vec<f64>> = (0..d)
            .map(|c| sample.iter().map(|row| row[c]).collect())
            .collect();
        let memory: Vec<Vec<f64>> = transposed
            .iter()
            .map(|v| affine(&p["M.linear_0.weight"], &p["M.linear_0.bias"], v))
            .collect();
        reference.extend(mha(&sample, &memory, &p, "M.attention_0", 2, false));
    }
    assert_close(&mine, &reference);
}
