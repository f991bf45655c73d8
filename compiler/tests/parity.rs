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
                failures.extend(compare(&format!("{run}: grad {p}"), out.get(&format!("grad.{p}")), g.expected.get(&grad_key), 1e-4));
                failures.extend(compare(&format!("{run}: {run} step {p}"), out.get(p), g.expected.get(&format!("{run}.{torch}")), 1e-5));
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
