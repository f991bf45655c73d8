//! Parity with PyTorch on fixed weights: the reference architectures of `tests/parity/*.net`
//! compiled to step graphs and run on the reference interpreter (float32), on the Cranelift
//! backend and, where a GPU is present, on CUDA (else that skips with a note), from the golden
//! parameters and batch, compared with PyTorch's loss, outputs, gradients, buffers and one SGD
//! and one Adam step, at the tolerances `tests/parity/README.md` sets.
//!
//! The golden files come from `../shared/reference/<model>` when it exists (so another set made
//! the same way, with other seeds and batch sizes, is tested too), else from the copy in
//! `tests/parity/<model>`. Every shape, the batch size included, is read from the files.
//!
//! Steps run in order as the runtime runs them: each from the initial parameters (the reference
//! applies no update between a GAN's two steps), each reading the buffers (batch-norm running
//! statistics) the previous step left. Run with `--nocapture` to see the largest error per kind
//! of tensor.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;

use netc_compiler::ir::Graph;
use netc_compiler::ir::interp::{self, Data, Precision, Value};
use netc_compiler::lower::program::{Program, StepGraph, compile_run};
use netc_compiler::weights;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the step graphs run: the oracle, the backend `netc train` uses by default, and a GPU
/// where one is present.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Interpreter,
    Cranelift,
    Cuda,
}

impl Backend {
    /// The backends this machine has: CUDA only with a device (else a note that it skipped).
    fn present() -> Vec<Backend> {
        let mut all = vec![Backend::Interpreter, Backend::Cranelift];
        match netc_backend_cuda::device::runner() {
            Ok(_) => all.push(Backend::Cuda),
            Err(e) => eprintln!("parity on CUDA: skipped ({e})"),
        }
        all
    }

    fn run(self, graph: &Graph, inputs: &HashMap<String, Value>) -> HashMap<String, Value> {
        match self {
            Backend::Interpreter => {
                interp::run(graph, inputs, Precision::F32).unwrap_or_else(|e| panic!("{e:?}"))
            }
            Backend::Cranelift => netc_backend_cpu::Runner::new()
                .run(graph, inputs)
                .unwrap_or_else(|e| panic!("{e}")),
            Backend::Cuda => netc_backend_cuda::device::runner()
                .and_then(|mut r| r.run(graph, inputs))
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }
}

fn reference(model: &str) -> PathBuf {
    let shared = repo().join("../shared/reference").join(model);
    if shared.join("params.safetensors").exists() {
        shared
    } else {
        repo().join("tests/parity").join(model)
    }
}

struct Golden {
    params: BTreeMap<String, Value>,
    inputs: BTreeMap<String, Value>,
    expected: BTreeMap<String, Value>,
}

fn golden(model: &str) -> Golden {
    let dir = reference(model);
    let load = |f: &str| weights::load(&dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
    Golden {
        params: load("params.safetensors"),
        inputs: load("inputs.safetensors"),
        expected: load("expected.safetensors"),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    match &v.data {
        Data::F(x) => x.clone(),
        Data::I(x) => x.iter().map(|&i| i as f64).collect(),
    }
}

fn rel_l2(mine: &[f64], reference: &[f64]) -> f64 {
    let diff: f64 = mine
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = reference.iter().map(|b| b * b).sum::<f64>().sqrt();
    if norm == 0.0 { diff } else { diff / norm }
}

/// Tolerances of `tests/parity/README.md`, relative L2 per tensor.
const VALUES: f64 = 1e-4;
const UPDATED_PARAMS: f64 = 1e-5;

/// Failures, and the largest error seen per kind of tensor (for the summary).
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    worst: BTreeMap<&'static str, (f64, String)>,
}

/// Elements of a tensor left out of its relative comparison (see [`noise_elements`]), and the
/// absolute tolerance they get instead (`None`: not compared).
#[derive(Clone)]
struct Noise {
    range: Range<usize>,
    abs: Option<f64>,
}

impl Checks {
    /// Compare an output with a golden tensor at `tolerance`; integer references (the int64
    /// `num_batches_tracked`) must match exactly.
    fn compare(
        &mut self,
        kind: &'static str,
        what: &str,
        mine: Option<&Value>,
        reference: Option<&Value>,
        tolerance: f64,
    ) {
        self.compare_except(kind, what, mine, reference, tolerance, None);
    }

    /// [`Checks::compare`] with the elements of `noise` taken out of the relative L2 and checked
    /// on their own.
    fn compare_except(
        &mut self,
        kind: &'static str,
        what: &str,
        mine: Option<&Value>,
        reference: Option<&Value>,
        tolerance: f64,
        noise: Option<Noise>,
    ) {
        let (Some(mine), Some(reference)) = (mine, reference) else {
            self.failures.push(format!(
                "{what}: missing (computed: {}, in the reference: {})",
                mine.is_some(),
                reference.is_some()
            ));
            return;
        };
        let (a, b) = (floats(mine), floats(reference));
        if a.len() != b.len() {
            self.failures.push(format!(
                "{what}: {} elements, reference has {}",
                a.len(),
                b.len()
            ));
            return;
        }
        let tolerance = if matches!(reference.data, Data::I(_)) {
            0.0
        } else {
            tolerance
        };
        let noise = noise.filter(|n| n.range.end <= a.len());
        let kept = |v: &[f64]| -> Vec<f64> {
            let outside = |i: &usize| noise.as_ref().is_none_or(|n| !n.range.contains(i));
            v.iter()
                .enumerate()
                .filter(|(i, _)| outside(i))
                .map(|(_, x)| *x)
                .collect()
        };
        let err = rel_l2(&kept(&a), &kept(&b));
        let worst = self.worst.entry(kind).or_insert((0.0, String::new()));
        if worst.1.is_empty() || err > worst.0 || err.is_nan() {
            *worst = (err, what.to_string());
        }
        if err > tolerance || err.is_nan() {
            self.failures
                .push(format!("{what}: rel L2 {err:.3e} > {tolerance:e}"));
        }
        if let Some(Noise {
            range,
            abs: Some(abs),
        }) = noise
        {
            let worst = range
                .clone()
                .map(|i| (a[i] - b[i]).abs())
                .fold(0.0, f64::max);
            if worst > abs || worst.is_nan() {
                self.failures.push(format!(
                    "{what} [{}..{}]: max abs error {worst:.3e} > {abs:e}",
                    range.start, range.end
                ));
            }
        }
    }
}

/// Elements of a parameter whose true gradient is exactly zero, so that their float32 gradient
/// and Adam step are rounding noise (tests/parity/README.md): the attention key bias
/// `in_proj_bias[D:2D]` of each transformer block (softmax ignores the `q . b_k` it adds to every
/// score of a row). Their gradient is compared with an absolute tolerance and their Adam result
/// not at all; everything else as usual.
fn noise_elements(model: &str, torch: &str, len: usize) -> Option<Range<usize>> {
    (model == "transformer" && torch.ends_with("attn.in_proj_bias")).then_some(len / 3..2 * len / 3)
}

/// How a model's parameter names map to PyTorch's.
type NameMap = fn(&str) -> String;

/// A reference tensor that is an intermediate value rather than a step output: `expr`, written
/// in the scope of the file's runs, is evaluated in train mode by a one-step run that updates
/// `model` (its `prediction`), and compared with `key`.
struct Probe<'a> {
    key: &'a str,
    expr: &'a str,
    model: &'a str,
}

struct Case<'a> {
    model: &'a str,
    /// Data field of the `.net` file -> tensor of inputs.safetensors.
    data: &'a [(&'a str, &'a str)],
    names: NameMap,
    /// Intermediate values to check; probe runs read the file's data set `batch`.
    probes: &'a [Probe<'a>],
}

/// `Model.rest` -> `rest`.
fn strip_model(name: &str) -> String {
    name.split_once('.')
        .map_or(name.to_string(), |(_, rest)| rest.to_string())
}

/// Layers bound with their `nn.Sequential` index as a suffix: `Generator.up3.weight` ->
/// `generator.3.weight`.
fn sequential_index(name: &str) -> String {
    let mut parts = name.splitn(3, '.');
    let (model, layer, rest) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let index = layer.trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '_');
    format!("{}.{index}.{rest}", model.to_lowercase())
}

fn source(case: &Case) -> String {
    std::fs::read_to_string(
        repo()
            .join("tests/parity")
            .join(format!("{}.net", case.model)),
    )
    .unwrap()
}

fn compile(case: &Case, src: &str, run: &str, g: &Golden) -> Program {
    let batch = g.inputs[case.data[0].1].ty.shape[0];
    compile_run(src, Some(run), Some(batch)).unwrap_or_else(|d| panic!("{d:#?}"))
}

/// The golden value of a parameter or buffer, as the type the program declares for it (the
/// int64 `num_batches_tracked` is an f32 counter in the IR).
fn initial(case: &Case, g: &Golden, name: &str, ty: &netc_compiler::ir::Type) -> Value {
    let torch = (case.names)(name);
    let value = g
        .params
        .get(&torch)
        .unwrap_or_else(|| panic!("no reference tensor `{torch}` for `{name}`"));
    if value.ty.dtype == ty.dtype {
        value.clone()
    } else {
        Value::from_f64(value.ty.shape.clone(), floats(value))
    }
}

/// The buffers of a program (batch-norm statistics) at their initial values.
fn initial_buffers(case: &Case, g: &Golden, program: &Program) -> BTreeMap<String, Value> {
    program
        .params
        .iter()
        .filter(|s| !s.trainable)
        .map(|s| (s.name.clone(), initial(case, g, &s.name, &s.ty)))
        .collect()
}

/// Run one step graph: the batch, the initial parameters, the current buffers, fresh optimizer
/// state and the scalars of step 1 at the base learning rate.
fn run_step(
    (case, backend): (&Case, Backend),
    g: &Golden,
    program: &Program,
    step: &StepGraph,
    buffers: &BTreeMap<String, Value>,
) -> HashMap<String, Value> {
    let mut inputs: HashMap<String, Value> = HashMap::new();
    for (field, tensor) in case.data {
        inputs.insert(field.to_string(), g.inputs[*tensor].clone());
    }
    for spec in program.params.iter().filter(|s| s.trainable) {
        inputs.insert(spec.name.clone(), initial(case, g, &spec.name, &spec.ty));
    }
    inputs.extend(buffers.iter().map(|(n, v)| (n.clone(), v.clone())));
    for (optimizer, prefix, params) in &step.optimizers {
        for (name, value) in optimizer
            .scalar_names()
            .iter()
            .zip(optimizer.scalars(1, optimizer.base_lr()))
        {
            inputs.insert(format!("{prefix}.{name}"), Value::scalar(value));
        }
        for p in params {
            for state in optimizer.state_names() {
                let ty = &inputs[p].ty;
                inputs.insert(
                    format!("{p}.{state}"),
                    Value::from_f64(ty.shape.clone(), vec![0.0; ty.numel()]),
                );
            }
        }
    }
    inputs.insert("rng_seed".into(), Value::scalar_i64(0));
    backend.run(&step.graph, &inputs)
}

/// Run every step of one optimizer's program and check its results. Reference keys: a
/// single-step run has `loss`, `grad.*`, `output`; step `discriminator` of a multi-step run has
/// `d_loss`, `d_grad.*` and, after it, the buffers `after_d_step.*`; the buffers after the last
/// step are `after_step.*`.
fn run_case((case, backend): (&Case, Backend), run: &str, g: &Golden, checks: &mut Checks) {
    let program = compile(case, &source(case), run, g);
    let mut buffers = initial_buffers(case, g, &program);
    let last = program.steps.len() - 1;
    for (k, step) in program.steps.iter().enumerate() {
        let (prefix, after) = if last == 0 {
            (String::new(), "after_step".to_string())
        } else {
            let initial = &step.name[..1];
            (
                format!("{initial}_"),
                if k == last {
                    "after_step".to_string()
                } else {
                    format!("after_{initial}_step")
                },
            )
        };
        let out = run_step((case, backend), g, &program, step, &buffers);
        let label = format!("{backend:?} {run}/{}", step.name);
        checks.compare(
            "loss",
            &format!("{label}: loss"),
            out.get("loss"),
            g.expected.get(&format!("{prefix}loss")),
            VALUES,
        );
        if let Some(reference) = g.expected.get("output") {
            checks.compare(
                "outputs",
                &format!("{label}: output"),
                out.get("prediction"),
                Some(reference),
                VALUES,
            );
        }
        for (_, _, params) in &step.optimizers {
            for p in params {
                let torch = (case.names)(p);
                // The README's one exception (transformer key bias): see `noise_elements`.
                let len = out.get(p).map_or(0, |v| v.ty.numel());
                let noise = noise_elements(case.model, &torch, len);
                let grad = g.expected.get(&format!("{prefix}grad.{torch}"));
                checks.compare_except(
                    "gradients",
                    &format!("{label}: grad {p}"),
                    out.get(&format!("grad.{p}")),
                    grad,
                    VALUES,
                    noise.clone().map(|range| Noise {
                        range,
                        abs: Some(1e-6),
                    }),
                );
                let noise = noise.filter(|_| run == "adam");
                let stepped = g.expected.get(&format!("{run}.{torch}"));
                checks.compare_except(
                    if run == "sgd" {
                        "sgd params"
                    } else {
                        "adam params"
                    },
                    &format!("{label}: {run} step {p}"),
                    out.get(p),
                    stepped,
                    UPDATED_PARAMS,
                    noise.map(|range| Noise { range, abs: None }),
                );
            }
        }
        // The runtime replaces each buffer by its update output, if the step has one.
        for o in &step.graph.outputs {
            if let Some(name) = o.updates.as_ref().filter(|n| buffers.contains_key(*n)) {
                buffers.insert(name.clone(), out[&o.name].clone());
            }
        }
        for (name, value) in &buffers {
            let reference = g.expected.get(&format!("{after}.{}", (case.names)(name)));
            checks.compare(
                "buffers",
                &format!("{label}: buffer {name}"),
                Some(value),
                reference,
                VALUES,
            );
        }
    }
}

/// Evaluate each probe with a one-step run appended to the file: its loss `mse(expr, expr)`
/// makes `expr` the step's `prediction` output (the target must be a tensor for that).
fn run_probes((case, backend): (&Case, Backend), g: &Golden, checks: &mut Checks) {
    for probe in case.probes {
        let (expr, model) = (probe.expr, probe.model);
        let run = format!(
            "train probe {{\n  data batch\n  loss mse({expr}, {expr})\n  update {model} with sgd(lr: 0.1)\n  epochs 1\n  batch 1\n}}\n"
        );
        let src = format!("{}\n{run}", source(case));
        let program = compile(case, &src, "probe", g);
        let buffers = initial_buffers(case, g, &program);
        let out = run_step((case, backend), g, &program, &program.steps[0], &buffers);
        checks.compare(
            "outputs",
            &format!("{backend:?} probe {}", probe.key),
            out.get("prediction"),
            g.expected.get(probe.key),
            VALUES,
        );
    }
}

fn check(case: Case) {
    let g = golden(case.model);
    let mut checks = Checks::default();
    for backend in Backend::present() {
        run_case((&case, backend), "sgd", &g, &mut checks);
        run_case((&case, backend), "adam", &g, &mut checks);
        run_probes((&case, backend), &g, &mut checks);
    }
    for (kind, (err, what)) in &checks.worst {
        println!("{}: {kind:<12} max rel L2 {err:.2e} ({what})", case.model);
    }
    assert!(
        checks.failures.is_empty(),
        "{} parity failures for {}:\n{}",
        checks.failures.len(),
        case.model,
        checks.failures.join("\n")
    );
}

#[test]
fn mlp_matches_pytorch() {
    check(Case {
        model: "mlp",
        data: &[("x", "x"), ("labels", "labels")],
        names: strip_model,
        probes: &[],
    });
}

#[test]
fn lenet_matches_pytorch() {
    check(Case {
        model: "lenet",
        data: &[("x", "x"), ("labels", "labels")],
        names: strip_model,
        probes: &[],
    });
}

#[test]
fn dcgan_matches_pytorch() {
    check(Case {
        model: "dcgan",
        data: &[("real", "real"), ("z", "z")],
        names: sequential_index,
        probes: &[
            Probe {
                key: "fake",
                expr: "Generator(noise.z)",
                model: "Generator",
            },
            Probe {
                key: "d_real",
                expr: "Discriminator(real)",
                model: "Discriminator",
            },
            Probe {
                key: "d_fake",
                expr: "Discriminator(Generator(noise.z))",
                model: "Discriminator",
            },
        ],
    });
}

#[test]
fn transformer_matches_pytorch() {
    check(Case {
        model: "transformer",
        data: &[("tokens", "tokens"), ("labels", "labels")],
        names: transformer_names,
        probes: &[],
    });
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
    check(Case {
        model: "lstm",
        data: &[("tokens", "tokens"), ("labels", "labels")],
        names: strip_model,
        probes: &[],
    });
}
