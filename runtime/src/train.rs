//! The training loop: batches through the compiled step graphs, parameters and optimizer state
//! kept between steps, a validation pass each epoch, metrics, checkpoints and logs.
//!
//! Steps run on a [`Backend`]; today that is the reference interpreter. Everything a step needs
//! besides the batch (learning rate after the schedule, Adam's bias corrections, the random
//! seed) is computed here on the host and passed as scalars, so nothing recompiles.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use netc_compiler::ir::interp::{self, Precision, Value};
use netc_compiler::ir::{Graph, Op};
use netc_compiler::lower::program::Program;

use crate::checkpoint::{self, Keeper, Manifest};
use crate::data::{Dataset, FieldValues, Splits};
use crate::init::initial_value;
use crate::log::{Log, Progress};
use crate::metrics::{Average, Confusion};
use crate::schedule::Schedule;

/// Where compiled steps run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Native code: Cranelift-compiled fused kernels and GEMM (`backend-cpu`).
    Cranelift,
    /// The reference interpreter (float32 semantics): the oracle, slow.
    Interp,
    /// An NVIDIA GPU: NVRTC-compiled kernels and cuBLAS (`backend-cuda`).
    Cuda,
}

/// Runs graphs on the chosen backend, keeping each graph's compiled code between steps.
pub struct Executor {
    backend: Backend,
    runner: netc_backend_cpu::Runner,
    /// Opened on the first CUDA run (so constructing an executor never touches a GPU).
    cuda: Option<netc_backend_cuda::device::Runner>,
}

impl Executor {
    pub fn new(backend: Backend) -> Self {
        Executor {
            backend,
            runner: netc_backend_cpu::Runner::new(),
            cuda: None,
        }
    }

    /// Time spent compiling graphs for the native backend so far; `None` for backends that
    /// do not report it (the interpreter compiles nothing).
    pub fn compile_ms(&self) -> Option<f64> {
        (self.backend == Backend::Cranelift).then(|| self.runner.compile_ms())
    }

    /// Time every kernel of the native backend from now on (`netc bench --profile`); the
    /// other backends have no kernels to time and ignore it.
    pub fn set_profiling(&mut self, on: bool) {
        self.runner.set_profiling(on);
    }

    /// The native backend's kernels with the time spent in each since profiling started,
    /// slowest first (empty for the other backends).
    pub fn profile(&self) -> Vec<(String, std::time::Duration)> {
        self.runner.profile()
    }

    /// Run a training step graph: `inputs` are the batch and scalars; the graph's other inputs
    /// that `state` names (parameters, buffers, optimizer state) come from there, and its
    /// updates go back. The native and CUDA backends keep them resident between steps, so
    /// `state` is current only after [`Executor::sync`]. Returns the outputs named in `wanted`.
    pub fn run_step(
        &mut self,
        graph: &Graph,
        inputs: &HashMap<String, Value>,
        state: &mut HashMap<String, Value>,
        wanted: &[&str],
    ) -> Result<Vec<Value>, String> {
        match self.backend {
            Backend::Cranelift => return self.runner.run_step(graph, inputs, state, wanted),
            Backend::Cuda => return self.cuda()?.run_step(graph, inputs, state, wanted),
            Backend::Interp => {}
        }
        let mut all = inputs.clone();
        for id in graph.inputs() {
            if let Op::Input { name, .. } = &graph.node(id).op
                && !all.contains_key(name)
                && let Some(v) = state.get(name)
            {
                all.insert(name.clone(), v.clone());
            }
        }
        let mut out = self.run(graph, &all)?;
        for o in &graph.outputs {
            if let (Some(name), Some(v)) = (&o.updates, out.get(&o.name)) {
                state.insert(name.clone(), v.clone());
            }
        }
        wanted
            .iter()
            .map(|w| {
                out.remove(*w)
                    .ok_or_else(|| format!("the step has no output `{w}`"))
            })
            .collect()
    }

    /// Bring `state` up to date with the values [`Executor::run_step`] left resident.
    pub fn sync(&mut self, state: &mut HashMap<String, Value>) -> Result<(), String> {
        match (self.backend, &mut self.cuda) {
            (Backend::Cranelift, _) => self.runner.sync(state),
            (Backend::Cuda, Some(cuda)) => cuda.sync(state),
            _ => Ok(()),
        }
    }

    /// The CUDA runner, opened on first use (so constructing an executor never touches a GPU).
    fn cuda(&mut self) -> Result<&mut netc_backend_cuda::device::Runner, String> {
        if self.cuda.is_none() {
            self.cuda = Some(netc_backend_cuda::device::runner()?);
        }
        Ok(self.cuda.as_mut().expect("opened above"))
    }

    /// Run `graph` on named inputs, returning its named outputs.
    pub fn run(
        &mut self,
        graph: &Graph,
        inputs: &HashMap<String, Value>,
    ) -> Result<HashMap<String, Value>, String> {
        match self.backend {
            Backend::Interp => interp::run(graph, inputs, Precision::F32).map_err(|e| e.message),
            Backend::Cranelift => self.runner.run(graph, inputs),
            Backend::Cuda => self.cuda()?.run(graph, inputs),
        }
    }
}

/// How to run training, beyond what the `.net` file says.
#[derive(Clone, Debug)]
pub struct Options {
    /// Overrides the run's `epochs`.
    pub epochs: Option<u64>,
    /// Stop after this many optimizer steps in total (for quick runs and tests).
    pub max_steps: Option<u64>,
    /// Seed of initialisation, dropout, noise (the run's `seed`, else 0).
    pub seed: u64,
    /// `runs/<name>`: logs, checkpoints, plots.
    pub run_dir: PathBuf,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// Start from these weights (safetensors, e.g. converted from PyTorch).
    pub init: Option<PathBuf>,
    pub progress: Progress,
    pub backend: Backend,
    /// On a non-finite loss, find the first IR op that produced a NaN or infinity.
    pub check_numerics: bool,
    /// Set by Ctrl-C: save a checkpoint after the current step and stop.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What a finished run reports (`netc train --json` prints it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub run: String,
    pub steps: u64,
    pub epochs: u64,
    pub final_train_loss: f64,
    /// The last loss of every step of the run (`discriminator`, `generator` for a GAN).
    pub final_losses: Vec<(String, f64)>,
    /// Validation metrics of the last epoch (`loss`, `accuracy`, ...).
    pub validation: BTreeMap<String, f64>,
    pub wall_s: f64,
    pub samples_per_s: f64,
}

/// Why training stopped early.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainError {
    pub message: String,
    /// The `.net` construct at fault, when known (`--check-numerics` names the layer).
    pub span: Option<netc_grammar::Span>,
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(message: impl Into<String>) -> TrainError {
    TrainError {
        message: message.into(),
        span: None,
    }
}

/// The state that persists across steps: every parameter, buffer and optimizer moment.
struct State {
    values: HashMap<String, Value>,
    step: u64,
    epoch: u64,
    batch_in_epoch: u64,
}

/// Train `program` on `data`. `eval_tail` is the eval graph compiled for the size of the last,
/// partial validation batch (so every validation sample counts exactly once).
pub fn train(
    program: &Program,
    data: &Splits,
    eval_tail: Option<&Graph>,
    options: &Options,
) -> Result<Summary, TrainError> {
    let started = Instant::now();
    let run = program.run.clone().unwrap_or_else(|| "train".to_string());
    let batch = program.batch;
    let epochs = options
        .epochs
        .or(program.info.epochs.map(|e| e as u64))
        .unwrap_or(1);
    let batches_per_epoch = (data.train.len / batch) as u64;
    if batches_per_epoch == 0 {
        return Err(err(format!(
            "the training set has {} samples, fewer than one batch of {batch}; lower `batch`",
            data.train.len
        )));
    }
    let total_steps = options
        .max_steps
        .unwrap_or(u64::MAX)
        .min(epochs * batches_per_epoch);
    let schedule = schedule_of(program);
    let shuffle = program.data.as_ref().and_then(|d| d.shuffle_seed);
    let mut state = initial_state(program, options)?;
    let mut log = Log::open(&options.run_dir, options.progress, total_steps).map_err(err)?;
    let mut keeper = Keeper::new(
        options.run_dir.join("checkpoints"),
        checkpoint_keep(program),
    );
    let checkpoint_every = checkpoint_every(program);
    let mut summary = Summary {
        run: run.clone(),
        ..Summary::default()
    };
    let mut exec = Executor::new(options.backend);
    let mut recent_loss = f64::NAN;
    let mut samples = 0u64;

    'epochs: while state.epoch < epochs {
        let order = crate::data::epoch_order(data.train.len, shuffle, state.epoch);
        while state.batch_in_epoch < batches_per_epoch {
            if state.step >= total_steps {
                break 'epochs;
            }
            let start = (state.batch_in_epoch as usize) * batch;
            let rows = data.train.select(&order[start..start + batch]);
            let (step_now, epoch_now) = (state.step, state.epoch);
            let lr_factor =
                |base: f64| schedule.lr(base, step_now, epoch_now, epochs * batches_per_epoch);
            let seed = netc_compiler::ir::interp::random::splitmix64(
                options.seed ^ state.step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ) as i64;
            let mut losses = Vec::new();
            for step in &program.steps {
                // A failing step is rerun on the interpreter from the values it started with.
                let before = if options.check_numerics {
                    exec.sync(&mut state.values).map_err(err)?;
                    Some(state.values.clone())
                } else {
                    None
                };
                let mut inputs = batch_inputs(&rows);
                for (optimizer, prefix, _) in &step.optimizers {
                    let values = optimizer.scalars(state.step + 1, lr_factor(optimizer.base_lr()));
                    for (name, value) in optimizer.scalar_names().iter().zip(values) {
                        inputs.insert(format!("{prefix}.{name}"), Value::scalar(value));
                    }
                }
                inputs.insert("rng_seed".into(), Value::scalar_i64(seed));
                let out = exec
                    .run_step(&step.graph, &inputs, &mut state.values, &["loss"])
                    .map_err(|e| err(format!("step {}: {e}", state.step + 1)))?;
                let loss = out[0].as_f64_slice().map_or(f64::NAN, |l| l[0]);
                if !loss.is_finite() {
                    let mut e = err(format!(
                        "the loss of step `{}` became {loss} at step {} (epoch {}); training stopped. \
                         Lower the learning rate, or check the data for NaN or infinite values",
                        step.name,
                        state.step + 1,
                        state.epoch + 1
                    ));
                    if let Some(before) = before {
                        for id in step.graph.inputs() {
                            if let Op::Input { name, .. } = &step.graph.node(id).op
                                && let Some(v) = before.get(name)
                            {
                                inputs.entry(name.clone()).or_insert_with(|| v.clone());
                            }
                        }
                        locate_non_finite(&step.graph, &inputs, &mut e);
                    } else {
                        e.message.push_str(
                            " (run with --check-numerics to find the layer where it starts)",
                        );
                    }
                    return Err(e);
                }
                losses.push((step.name.clone(), loss));
            }
            state.step += 1;
            state.batch_in_epoch += 1;
            samples += batch as u64;
            recent_loss = losses[0].1;
            summary.final_losses.clone_from(&losses);
            let rate = samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
            log.step(state.step, state.epoch + 1, &losses, lr_factor(1.0), rate)
                .map_err(err)?;
            if options
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
            {
                exec.sync(&mut state.values).map_err(err)?;
                let path = keeper
                    .save(&tensors(&state), &manifest(&state, options.seed, &run))
                    .map_err(err)?;
                return Err(err(format!(
                    "interrupted at step {}; checkpoint saved to {} (continue with --resume {})",
                    state.step,
                    path.display(),
                    path.display()
                )));
            }
        }
        state.epoch += 1;
        state.batch_in_epoch = 0;
        exec.sync(&mut state.values).map_err(err)?;
        let validation = match (&program.eval, &data.val) {
            (Some(eval), Some(val)) => {
                evaluate_with(program, eval, eval_tail, val, &state.values, &mut exec)?
            }
            _ => BTreeMap::new(),
        };
        log.epoch(state.epoch, recent_loss, &validation)
            .map_err(err)?;
        if let (Some(graph), Some(spec)) = (&program.sample, &program.info.sample)
            && state.epoch % spec.args.int("every").max(1) as u64 == 0
        {
            let dir = options.run_dir.join(
                spec.args
                    .paths("to")
                    .first()
                    .map_or("samples", |s| s.as_str()),
            );
            // A fixed seed, so grids are comparable between epochs.
            crate::generate::save_sample_grid(
                graph,
                &state.values,
                options.seed,
                &mut exec,
                &dir.join(format!("epoch-{:04}.png", state.epoch)),
            )
            .map_err(err)?;
        }
        if state.epoch % checkpoint_every == 0 || state.epoch == epochs {
            let manifest = manifest(&state, options.seed, &run);
            keeper.save(&tensors(&state), &manifest).map_err(err)?;
            if let Some(score) = validation.get(&best_metric(program)) {
                let score = if best_metric(program) == "loss" {
                    -score
                } else {
                    *score
                };
                keeper
                    .offer_best(score, &tensors(&state), &manifest)
                    .map_err(err)?;
            }
        }
        summary.validation = validation;
    }
    exec.sync(&mut state.values).map_err(err)?;
    // A run stopped by `max_steps` mid-epoch still leaves a checkpoint to resume from.
    if state.batch_in_epoch != 0 {
        keeper
            .save(&tensors(&state), &manifest(&state, options.seed, &run))
            .map_err(err)?;
    }
    summary.steps = state.step;
    summary.epochs = state.epoch;
    summary.final_train_loss = recent_loss;
    summary.wall_s = started.elapsed().as_secs_f64();
    summary.samples_per_s = samples as f64 / summary.wall_s.max(1e-9);
    log.finish(&summary).map_err(err)?;
    Ok(summary)
}

/// Rerun the failed step op by op and name the first op whose result is not finite.
fn locate_non_finite(graph: &Graph, inputs: &HashMap<String, Value>, e: &mut TrainError) {
    if let Ok(Some(node)) = interp::first_non_finite(graph, inputs, Precision::F32) {
        let n = graph.node(node);
        let what = match &n.op {
            Op::Input { name, .. } => format!("the input `{name}` already holds a NaN or infinity"),
            op => format!(
                "the first NaN or infinity comes from `{}` producing {}",
                op.name(),
                n.ty
            ),
        };
        e.message.push_str(&format!("; {what}"));
        e.span = Some(n.span);
    }
}

/// Parameters and buffers from their initialisers (or `--init`, or a checkpoint), optimizer
/// state at zero.
fn initial_state(program: &Program, options: &Options) -> Result<State, TrainError> {
    let mut values: HashMap<String, Value> = HashMap::new();
    for (i, spec) in program.params.iter().enumerate() {
        values.insert(
            spec.name.clone(),
            initial_value(spec, options.seed as i64, i as u64),
        );
    }
    for step in &program.steps {
        for (optimizer, _, params) in &step.optimizers {
            for p in params {
                for s in optimizer.state_names() {
                    let ty = &values[p].ty;
                    values.insert(
                        format!("{p}.{s}"),
                        Value::from_f64(ty.shape.clone(), vec![0.0; ty.numel()]),
                    );
                }
            }
        }
    }
    let mut state = State {
        values,
        step: 0,
        epoch: 0,
        batch_in_epoch: 0,
    };
    if let Some(path) = &options.init {
        let loaded = netc_compiler::weights::load(path).map_err(|e| err(e.to_string()))?;
        replace_matching(
            &mut state.values,
            loaded,
            &path.display().to_string(),
            false,
        )?;
    }
    if let Some(path) = &options.resume {
        let (tensors, manifest) = checkpoint::load(path).map_err(err)?;
        replace_matching(
            &mut state.values,
            tensors,
            &path.display().to_string(),
            true,
        )?;
        state.step = manifest.step;
        state.epoch = manifest.epoch;
        state.batch_in_epoch = manifest.batch_in_epoch;
    }
    Ok(state)
}

/// Overwrite values by name, checking shapes; with `complete`, every value must be present.
fn replace_matching(
    values: &mut HashMap<String, Value>,
    loaded: BTreeMap<String, Value>,
    origin: &str,
    complete: bool,
) -> Result<(), TrainError> {
    let mut names: Vec<&String> = values.keys().collect();
    names.sort();
    if complete && let Some(missing) = names.iter().find(|n| !loaded.contains_key(n.as_str())) {
        return Err(err(format!(
            "{origin}: the checkpoint has no tensor `{missing}`; was it written by another program?"
        )));
    }
    for (name, v) in loaded {
        let Some(current) = values.get(&name) else {
            if complete {
                return Err(err(format!(
                    "{origin}: tensor `{name}` is not part of this program"
                )));
            }
            continue;
        };
        if current.ty.shape != v.ty.shape {
            return Err(err(format!(
                "{origin}: tensor `{name}` has shape {:?}, the program expects {:?}",
                v.ty.shape, current.ty.shape
            )));
        }
        // Integer counters (batch norm's `num_batches_tracked`) are f32 inside the step graph.
        let v = match &v.data {
            interp::Data::I(xs) if current.ty.dtype == netc_compiler::ir::DType::F32 => {
                Value::from_f64(v.ty.shape.clone(), xs.iter().map(|&x| x as f64).collect())
            }
            _ => v,
        };
        values.insert(name, v);
    }
    Ok(())
}

/// The batch's fields as graph inputs, named as the `data` item declares them.
fn batch_inputs(rows: &Dataset) -> HashMap<String, Value> {
    rows.fields
        .iter()
        .map(|f| {
            let mut shape = vec![rows.len];
            shape.extend(&f.dims);
            let value = match &f.values {
                FieldValues::F32(v) => Value::f32(shape, v.clone()),
                FieldValues::I64(v) => Value::i64(shape, v.clone()),
            };
            (f.name.clone(), value)
        })
        .collect()
}

/// Parameters and buffers of `program` from a checkpoint or weights file (`netc eval`).
pub fn load_values(
    program: &Program,
    path: &std::path::Path,
) -> Result<HashMap<String, Value>, TrainError> {
    let loaded = netc_compiler::weights::load(path).map_err(|e| err(e.to_string()))?;
    if let Some(missing) = program
        .params
        .iter()
        .find(|p| !loaded.contains_key(&p.name))
    {
        return Err(err(format!(
            "{}: no tensor `{}`; evaluating needs every parameter and buffer of the program",
            path.display(),
            missing.name
        )));
    }
    let mut state = initial_state(
        program,
        &Options {
            epochs: None,
            max_steps: None,
            seed: 0,
            run_dir: std::path::PathBuf::new(),
            resume: None,
            init: Some(path.to_path_buf()),
            progress: Progress::Quiet,
            backend: Backend::Interp,
            check_numerics: false,
            stop: None,
        },
    )?;
    Ok(std::mem::take(&mut state.values))
}

/// Evaluate `values` on a data set in eval mode: the mean loss and the run's metrics.
pub fn evaluate(
    program: &Program,
    eval_tail: Option<&Graph>,
    data: &Dataset,
    values: &HashMap<String, Value>,
    backend: Backend,
) -> Result<BTreeMap<String, f64>, TrainError> {
    let eval = program
        .eval
        .as_ref()
        .ok_or_else(|| err("this run has no single loss to evaluate"))?;
    evaluate_with(
        program,
        eval,
        eval_tail,
        data,
        values,
        &mut Executor::new(backend),
    )
}

/// Validation in eval mode: the mean loss over every sample, and the run's metrics.
fn evaluate_with(
    program: &Program,
    eval: &Graph,
    eval_tail: Option<&Graph>,
    val: &Dataset,
    values: &HashMap<String, Value>,
    exec: &mut Executor,
) -> Result<BTreeMap<String, f64>, TrainError> {
    let batch = program.batch;
    let mut loss_sum = 0.0;
    let mut confusion: Option<Confusion> = None;
    let mut start = 0;
    while start < val.len {
        let rows = (val.len - start).min(batch);
        let graph = if rows == batch {
            eval
        } else {
            eval_tail.ok_or_else(|| err("no graph for the last validation batch"))?
        };
        let indices: Vec<usize> = (start..start + rows).collect();
        let mut inputs = batch_inputs(&val.select(&indices));
        for input in graph.inputs() {
            if let Op::Input { name, .. } = &graph.node(input).op
                && let Some(v) = values.get(name)
            {
                inputs.insert(name.clone(), v.clone());
            }
        }
        inputs.insert("rng_seed".into(), Value::scalar_i64(0));
        let out = exec
            .run(graph, &inputs)
            .map_err(|e| err(format!("validation: {e}")))?;
        let loss = out
            .get("loss")
            .and_then(|l| l.as_f64_slice())
            .map_or(f64::NAN, |l| l[0]);
        loss_sum += loss * rows as f64;
        if let (Some(pred), Some(target)) = (out.get("prediction"), out.get("target")) {
            score(&mut confusion, program, pred, target, rows);
        }
        start += rows;
    }
    let mut metrics = BTreeMap::from([("loss".to_string(), loss_sum / val.len.max(1) as f64)]);
    if let Some(c) = confusion {
        let average = if c.classes() == 2
            && program
                .info
                .steps
                .first()
                .and_then(|s| s.prediction.as_ref())
                .is_some_and(|p| p.1.dims.last().and_then(|d| d.as_known()) != Some(2))
        {
            Average::Binary
        } else {
            Average::Macro
        };
        for m in &program.info.metrics {
            let (p, r, f) = c.scores(average);
            let v = match m.as_str() {
                "accuracy" => c.accuracy(),
                "precision" => p,
                "recall" => r,
                _ => f,
            };
            metrics.insert(m.clone(), v);
        }
    }
    Ok(metrics)
}

/// Add a batch's predictions to the confusion matrix, as the loss reads them.
fn score(
    confusion: &mut Option<Confusion>,
    program: &Program,
    pred: &Value,
    target: &Value,
    rows: usize,
) {
    let loss = program
        .info
        .steps
        .first()
        .and_then(|s| s.prediction.as_ref())
        .map(|p| p.0.as_str())
        .unwrap_or("");
    let classes = *pred.ty.shape.last().unwrap_or(&1);
    let preds: Vec<f32> = pred.to_f32_vec().unwrap_or_default();
    // Scores per sample: 1 for a classifier, T for a sequence model (every position is scored).
    let per_sample: usize = pred.ty.shape.iter().skip(1).product();
    if classes >= 2 && loss == "cross_entropy" {
        let rows = rows * (per_sample / classes);
        let c = confusion.get_or_insert_with(|| Confusion::new(classes));
        match &target.data {
            interp::Data::I(t) => c.add_logits(&preds, t, rows),
            interp::Data::F(t) => {
                // Probability targets: score against their arg-max.
                let argmax: Vec<i64> = t
                    .chunks_exact(classes)
                    .map(|r| {
                        r.iter()
                            .enumerate()
                            .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                            .0 as i64
                    })
                    .collect();
                c.add_logits(&preds, &argmax, rows);
            }
        }
    } else {
        let threshold = if loss == "bce_with_logits" { 0.0 } else { 0.5 };
        let targets: Vec<f64> = match &target.data {
            interp::Data::F(t) => t.clone(),
            interp::Data::I(t) => t.iter().map(|&x| x as f64).collect(),
        };
        confusion
            .get_or_insert_with(|| Confusion::new(2))
            .add_binary(&preds, &targets, rows * per_sample, threshold);
    }
}

fn schedule_of(program: &Program) -> Schedule {
    let Some(spec) = &program.info.schedule else {
        return Schedule::Constant;
    };
    match spec.name {
        "step_decay" => Schedule::StepDecay {
            every: spec.args.int("every").max(1) as u64,
            gamma: spec.args.float("gamma"),
        },
        "cosine" => Schedule::Cosine {
            warmup: spec.args.int("warmup").max(0) as u64,
            min_lr: spec.args.float("min_lr"),
        },
        "warmup" => Schedule::Warmup {
            steps: spec.args.int("steps").max(0) as u64,
        },
        _ => Schedule::Constant,
    }
}

fn checkpoint_every(program: &Program) -> u64 {
    program
        .info
        .checkpoint
        .as_ref()
        .map_or(1, |c| c.args.int("every").max(1) as u64)
}

fn checkpoint_keep(program: &Program) -> usize {
    program
        .info
        .checkpoint
        .as_ref()
        .map_or(3, |c| c.args.int("keep").max(1) as usize)
}

fn best_metric(program: &Program) -> String {
    program
        .info
        .checkpoint
        .as_ref()
        .map(|c| c.args.word("best").to_string())
        .filter(|w| !w.is_empty())
        .or_else(|| program.info.metrics.first().cloned())
        .unwrap_or_else(|| "loss".to_string())
}

fn manifest(state: &State, seed: u64, run: &str) -> Manifest {
    Manifest {
        step: state.step,
        epoch: state.epoch,
        batch_in_epoch: state.batch_in_epoch,
        seed,
        run: run.to_string(),
    }
}

/// Everything to save, with batch norm's counters as int64 as PyTorch stores them.
fn tensors(state: &State) -> BTreeMap<String, Value> {
    state
        .values
        .iter()
        .map(|(k, v)| {
            let v = match v.as_f64_slice() {
                Some(xs) if k.ends_with("num_batches_tracked") => {
                    Value::i64(v.ty.shape.clone(), xs.iter().map(|&x| x as i64).collect())
                }
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}
