//! Parity with PyTorch on fixed weights: the reference architectures of `tests/parity/*.net`
//! compiled to step graphs and run on the reference interpreter (float32) from the golden
//! parameters and batch, compared with PyTorch's loss, outputs, gradients and one SGD and one
//! Adam step, at the tolerances `tests/parity/README.md` sets.
//!
//! The golden files come from `../shared/reference/<model>` when it exists (so another set made
//! the same way, with other seeds and batch sizes, is tested too), else from the copy in
//! `tests/parity/<model>`. Every shape, the batch size included, is read from the files.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use netc_compiler::ir::interp::{self, Data, Precision, Value};
use netc_compiler::lower::program::{Program, compile_run};
use netc_compiler::weights;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference(model: &str) -> PathBuf {
    let shared = repo().join("../shared/reference").join(model);
    if shared.join("params.safetensors").exists() { shared } else { repo().join("tests/parity").join(model) }
}

struct Golden {
    params: BTreeMap<String, Value>,
    inputs: BTreeMap<String, Value>,
    expected: BTreeMap<String, Value>,
}

fn golden(model: &str) -> Golden {
    let dir = reference(model);
    let load = |f: &str| weights::load(&dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
    Golden { params: load("params.safetensors"), inputs: load("inputs.safetensors"), expected: load("expected.safetensors") }
}

fn floats(v: &Value) -> Vec<f64> {
    match &v.data {
        Data::F(x) => x.clone(),
        Data::I(x) => x.iter().map(|&i| i as f64).collect(),
    }
}

fn rel_l2(mine: &[f64], reference: &[f64]) -> f64 {
    let diff: f64 = mine.iter().zip(reference).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = reference.iter().map(|b| b * b).sum::<f64>().sqrt();
    if norm == 0.0 { diff } else { diff / norm }
}

/// Compare an output with a golden tensor; returns a failure line or nothing.
fn compare(what: &str, mine: Option<&Value>, reference: Option<&Value>, tolerance: f64) -> Option<String> {
    let (Some(mine), Some(reference)) = (mine, reference) else {
        return Some(format!("{what}: missing ({} / {})", mine.is_some(), reference.is_some()));
    };
    let (a, b) = (floats(mine), floats(reference));
    if a.len() != b.len() {
        return Some(format!("{what}: {} elements, reference has {}", a.len(), b.len()));
    }
    let err = rel_l2(&a, &b);
    (err > tolerance || err.is_nan()).then(|| format!("{what}: rel L2 {err:.3e} > {tolerance:e}"))
}

/// How a model's parameter names map to PyTorch's: `Model.rest` -> `rest`, then the model's
/// own renames.
type NameMap = fn(&str) -> String;

struct Case<'a> {
    model: &'a str,
    /// Data field of the `.net` file -> tensor of inputs.safetensors.
    data: &'a [(&'a str, &'a str)],
    names: NameMap,
}

fn strip_model(name: &str) -> String {
    name.split_once('.').map_or(name.to_string(), |(_, rest)| rest.to_string())
}

/// Run one optimizer's program and collect the failures.
fn run_case(case: &Case, run: &str, g: &Golden) -> Vec<String> {
    let src = std::fs::read_to_string(repo().join("tests/parity").join(format!("{}.net", case.model))).unwrap();
    let batch = g.inputs[case.data[0].1].ty.shape[0];
    let program: Program = compile_run(&src, Some(run), Some(batch)).unwrap_or_else(|d| panic!("{d:#?}"));
    let mut failures = Vec::new();
    for step in &program.steps {
        let mut inputs: HashMap<String, Value> = HashMap::new();
        for (field, tensor) in case.data {
            inputs.insert(field.to_string(), g.inputs[*tensor].clone());
        }
        for spec in &program.params {
            let torch = (case.names)(&spec.name);
            let value = g.params.get(&torch).unwrap_or_else(|| panic!("no reference tensor `{torch}` for `{}`", spec.name));
            inputs.insert(spec.name.clone(), value.clone());
        }
        for (optimizer, prefix, params) in &step.optimizers {
            for (name, value) in optimizer.scalar_names().iter().zip(optimizer.scalars(1, optimizer.base_lr())) {
                inputs.insert(format!("{prefix}.{name}"), Value::scalar(value));
            }
            for p in params {
                for state in optimizer.state_names() {
                    let ty = &inputs[p].ty;
                    inputs.insert(format!("{p}.{state}"), Value::from_f64(ty.shape.clone(), vec![0.0; ty.numel()]));
                }
            }
        }
        inputs.insert("rng_seed".into(), Value::scalar_i64(0));
        let out = interp::run(&step.graph, &inputs, Precision::F32).unwrap_or_else(|e| panic!("{e:?}"));
        let loss_key = if program.steps.len() > 1 { format!("{}_loss", &step.name[..1]) } else { "loss".into() };
        failures.extend(compare(&format!("{run}/{}: loss", step.name), out.get("loss"), g.expected.get(&loss_key), 1e-4));
        if let Some(p) = out.get("prediction")
            && let Some(reference) = g.expected.get("output")
        {
            failures.extend(compare(&format!("{run}: output"), Some(p), Some(reference), 1e-4));
        }
        for (_, _, params) in &step.optimizers {
            for p in params {
                let torch = (case.names)(p);
                let grad_key = if program.steps.len() > 1 { format!("{}_grad.{torch}", &step.name[..1]) } else { format!("grad.{torch}") };
                // The README's one exception (transformer key bias): see `noise_elements`.
                let noise = noise_elements(case.model, &torch, out.get(p).map_or(0, |v| v.ty.numel()));
                let (grad, reference) = (out.get(&format!("grad.{p}")), g.expected.get(&grad_key));
                failures.extend(compare_except(&format!("{run}: grad {p}"), grad, reference, 1e-4, noise.clone(), Some(1e-6)));
                let noise = noise.filter(|_| run == "adam");
                let reference = g.expected.get(&format!("{run}.{torch}"));
                failures.extend(compare_except(&format!("{run}: {run} step {p}"), out.get(p), reference, 1e-5, noise, None));
            }
        }
    }
    failures
}

fn check(case: Case) {
    let g = golden(case.model);
    let mut failures = run_case(&case, "sgd", &g);
    failures.extend(run_case(&case, "adam", &g));
    assert!(failures.is_empty(), "{} parity failures for {}:\n{}", failures.len(), case.model, failures.join("\n"));
}

#[test]
fn mlp_matches_pytorch() {
    check(Case { model: "mlp", data: &[("x", "x"), ("labels", "labels")], names: strip_model });
}

#[test]
fn lenet_matches_pytorch() {
    check(Case { model: "lenet", data: &[("x", "x"), ("labels", "labels")], names: strip_model });
}

/// Elements of a parameter whose true gradient is exactly zero, so that their float32 gradient
/// and Adam step are rounding noise (tests/parity/README.md): the attention key bias
/// `in_proj_bias[D:2D]` of each transformer block (softmax ignores the `q . b_k` it adds to every
/// score of a row). Their gradient is compared with an absolute tolerance and their Adam result
/// not at all; everything else as usual.
fn noise_elements(model: &str, torch: &str, len: usize) -> Option<std::ops::Range<usize>> {
    (model == "transformer" && torch.ends_with("attn.in_proj_bias")).then_some(len / 3..2 * len / 3)
}

/// [`compare`] with the elements in `noise` taken out of the relative L2 and, when `noise_abs`
/// is given, checked elementwise against that absolute tolerance instead.
fn compare_except(
    what: &str,
    mine: Option<&Value>,
    reference: Option<&Value>,
    tolerance: f64,
    noise: Option<std::ops::Range<usize>>,
    noise_abs: Option<f64>,
) -> Option<String> {
    let Some(noise) = noise else {
        return compare(what, mine, reference, tolerance);
    };
    let (Some(m), Some(r)) = (mine, reference) else {
        return compare(what, mine, reference, tolerance);
    };
    let (a, b) = (floats(m), floats(r));
    if a.len() != b.len() || noise.end > a.len() {
        return compare(what, mine, reference, tolerance);
    }
    let outside = |v: &[f64]| -> Vec<f64> { v.iter().enumerate().filter(|(i, _)| !noise.contains(i)).map(|(_, x)| *x).collect() };
    let err = rel_l2(&outside(&a), &outside(&b));
    if err > tolerance || err.is_nan() {
        return Some(format!("{what} (without [{}..{}]): rel L2 {err:.3e} > {tolerance:e}", noise.start, noise.end));
    }
    let abs = noise_abs?;
    let worst = noise.clone().map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max);
    (worst > abs || worst.is_nan()).then(|| format!("{what} [{}..{}]: max abs error {worst:.3e} > {abs:e}", noise.start, noise.end))
}

#[test]
fn transformer_matches_pytorch() {
    check(Case { model: "transformer", data: &[("tokens", "tokens"), ("labels", "labels")], names: transformer_names });
}

/// `Transformer.blocks.0.ln1.weight` -> `blocks.0.ln1.weight`; the inline position table is
/// PyTorch's `pos_emb`.
fn transformer_names(name: &str) -> String {
    let name = strip_model(name);
    match name.strip_prefix("position_embedding_0.") {
        Some(rest) => format!("pos_emb.{rest}"),
        None => name,
    }
}

#[test]
fn lstm_matches_pytorch() {
    check(Case { model: "lstm", data: &[("tokens", "tokens"), ("labels", "labels")], names: strip_model });
}
