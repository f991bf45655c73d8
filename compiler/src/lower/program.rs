//! Assembling compiled programs: the step graphs of a training run.
//!
//! A run becomes one graph per `step` (one for a single-step run). Each step graph takes the
//! batch's data fields, every parameter and buffer it reads, the optimizer state and the
//! host-computed scalars, and returns the loss, the gradients and the new values of everything it
//! updates. Steps share parameters by name; a GAN's two step graphs each update only their model.
//! Single-step runs also get an eval-mode graph returning the loss, prediction and target.

use std::collections::BTreeMap;

use netc_grammar::ast::{Item, TrainItem};
use netc_grammar::{Diagnostic, File};

use super::optim::{Optimizer, Trained, emit_updates};
use super::{Emitter, Mode, ParamSpec};
use crate::check::Checker;
use crate::ir::{Graph, IrError, autodiff};

/// A compiled training run.
#[derive(Debug)]
pub struct Program {
    pub run: Option<String>,
    pub batch: usize,
    /// Every parameter and buffer of every step, by name, with its initialiser.
    pub params: Vec<ParamSpec>,
    pub steps: Vec<StepGraph>,
    /// Eval-mode loss, prediction and target (single-step runs only).
    pub eval: Option<Graph>,
    /// Eval-mode graph of the run's `sample` tensor (output `sample`), for image grids.
    pub sample: Option<Graph>,
    /// What the checker learned about the run and its data set (settings, fields, metrics).
    pub info: crate::check::RunInfo,
    pub data: Option<crate::check::DataInfo>,
    /// The parsed file, for what only the syntax tree keeps (data transforms).
    pub file: File,
}

/// How far to take each step graph: what `netc graph --stage` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Stage {
    /// The forward pass and the loss only.
    Forward,
    /// Plus gradients and optimizer updates, before optimisation.
    Backward,
    /// After the optimisation passes: what backends compile.
    #[default]
    Optimized,
}

/// Options of [`compile_run_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CompileOptions {
    /// Batch size; the run's own `batch` when `None`.
    pub batch: Option<usize>,
    pub stage: Stage,
}

/// One optimisation step.
#[derive(Debug)]
pub struct StepGraph {
    pub name: String,
    pub graph: Graph,
    /// Node count after each stage that ran: forward, backward, optimized.
    pub node_counts: Vec<(Stage, usize)>,
    /// Each optimizer of the step, the prefix of its scalar inputs, and the parameters it trains.
    pub optimizers: Vec<(Optimizer, String, Vec<String>)>,
}

/// Compile run `run` (the first `train` item when `None`) of a source text for a batch size
/// (`batch` overrides the run's own). Diagnostics if the program does not check clean.
pub fn compile_run(
    src: &str,
    run: Option<&str>,
    batch: Option<usize>,
) -> Result<Program, Vec<Diagnostic>> {
    compile_run_with(
        src,
        run,
        CompileOptions {
            batch,
            stage: Stage::Optimized,
        },
    )
}

/// [`compile_run`], stopping at `options.stage`.
pub fn compile_run_with(
    src: &str,
    run: Option<&str>,
    options: CompileOptions,
) -> Result<Program, Vec<Diagnostic>> {
    let batch = options.batch;
    let (file, analysis) = crate::analyze(src);
    let errors: Vec<Diagnostic> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let (index, train) = find_run(&file, run).ok_or_else(|| {
        vec![Diagnostic::error(
            "N4011",
            match run {
                Some(name) => format!("no `train {name}` in this file"),
                None => "this file has no `train` run".to_string(),
            },
            netc_grammar::Span::new(0, 0),
            "nothing to compile",
        )]
    })?;
    let info = &analysis.runs[index];
    let batch = batch.or(info.batch.map(|b| b as usize)).unwrap_or(1);
    let internal = |e: IrError| {
        vec![Diagnostic::error(
            "N9001",
            format!("internal compiler error: {}", e.message),
            e.span,
            "while compiling this",
        )]
    };

    let step_count = info.steps.len().max(1);
    let mut steps = Vec::new();
    let mut params: BTreeMap<String, ParamSpec> = BTreeMap::new();
    for k in 0..step_count {
        let (mut graph, specs, optimizers, mut node_counts) =
            lower_train_step(&file, src, train, k, batch, options.stage).map_err(internal)?;
        if options.stage == Stage::Optimized {
            crate::ir::passes::optimize(&mut graph);
            node_counts.push((Stage::Optimized, graph.node_count()));
        }
        for s in specs {
            params.entry(s.name.clone()).or_insert(s);
        }
        let name = info
            .steps
            .get(k)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| "train".to_string());
        steps.push(StepGraph {
            name,
            graph,
            node_counts,
            optimizers,
        });
    }
    let eval = if step_count == 1 && info.steps.first().is_some_and(|s| s.prediction.is_some()) {
        Some(lower_eval(&file, src, train, batch).map_err(internal)?)
    } else {
        None
    };
    let sample = if info.sample.is_some() {
        Some(lower_sample(&file, src, train, batch).map_err(internal)?)
    } else {
        None
    };
    let data = info
        .data
        .as_ref()
        .and_then(|d| analysis.data.get(d))
        .cloned();
    Ok(Program {
        run: train.name.as_ref().map(|n| n.name.clone()),
        batch,
        params: params.into_values().collect(),
        steps,
        eval,
        sample,
        info: info.clone(),
        data,
        file: file.clone(),
    })
}

fn find_run<'f>(file: &'f File, name: Option<&str>) -> Option<(usize, &'f TrainItem)> {
    file.items
        .iter()
        .filter_map(|i| match i {
            Item::Train(t) => Some(t),
            _ => None,
        })
        .enumerate()
        .find(|(_, t)| name.is_none() || t.name.as_ref().map(|n| n.name.as_str()) == name)
}

type Lowered = (
    Graph,
    Vec<ParamSpec>,
    Vec<(Optimizer, String, Vec<String>)>,
    Vec<(Stage, usize)>,
);

/// The graph of step `k`: forward in train mode, gradients of the updated models' parameters,
/// optimizer updates, buffer updates.
fn lower_train_step(
    file: &File,
    src: &str,
    train: &TrainItem,
    k: usize,
    batch: usize,
    stage: Stage,
) -> Result<Lowered, IrError> {
    let mut checker = Checker::for_lowering(file, src, Emitter::new(Mode::Train, batch as i64));
    let step = checker.lower_step(train, k);
    let mut em = checker
        .emit
        .take()
        .expect("the lowering checker has an emitter");
    let leftover = std::mem::take(&mut checker.analysis.diagnostics);
    let step = step.ok_or_else(|| IrError {
        message: "the step could not be evaluated".into(),
        span: train.span,
    })?;
    if let Some(e) = em.error.take() {
        return Err(e);
    }
    if let Some(d) = leftover.into_iter().find(|d| d.is_error()) {
        return Err(IrError {
            message: d.message,
            span: d.primary.span,
        });
    }
    let loss = step.loss.ok_or_else(|| IrError {
        message: "the loss did not lower to a tensor".into(),
        span: step.span,
    })?;
    em.graph.set_output("loss", loss);
    if let Some((prediction, _)) = step.prediction {
        em.graph.set_output("prediction", prediction);
    }
    let mut node_counts = vec![(Stage::Forward, em.graph.node_count())];
    if stage == Stage::Forward {
        return Ok((em.graph, em.specs, Vec::new(), node_counts));
    }

    let mut optimizers = Vec::new();
    let mut by_optimizer: Vec<(String, crate::types::Spec, Vec<String>)> = Vec::new();
    for (model, spec) in &step.updates {
        let prefix = format!("{model}.");
        let names: Vec<String> = em
            .params()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, _)| n.clone())
            .collect();
        by_optimizer.push((model.clone(), spec.clone(), names));
    }
    for (model, spec, names) in by_optimizer {
        let optimizer = Optimizer::from_spec(spec.name, &spec.args).ok_or_else(|| IrError {
            message: format!("unknown optimizer `{}`", spec.name),
            span: spec.span,
        })?;
        let nodes: Vec<_> = names
            .iter()
            .map(|n| {
                em.params()
                    .find(|(m, _)| *m == n)
                    .map(|(_, id)| id)
                    .expect("listed above")
            })
            .collect();
        let grads = autodiff::grad(&mut em.graph, loss, &nodes)?;
        let mut trained = Vec::new();
        for ((name, &param), grad) in names.iter().zip(&nodes).zip(grads) {
            let Some(grad) = grad else { continue };
            em.graph.set_output(&format!("grad.{name}"), grad);
            trained.push(Trained { name, param, grad });
        }
        let prefix = format!("{}.{model}", step.name);
        emit_updates(&mut em.graph, &optimizer, &prefix, &trained, spec.span)?;
        optimizers.push((optimizer, prefix, names));
    }
    let updates: Vec<(String, crate::ir::NodeId)> =
        em.state_updates().map(|(n, &v)| (n.clone(), v)).collect();
    for (name, value) in updates {
        em.graph.set_update(&name, value, &name);
    }
    node_counts.push((Stage::Backward, em.graph.node_count()));
    Ok((em.graph, em.specs, optimizers, node_counts))
}

/// Eval mode: the tensor the run's `sample` setting shows.
fn lower_sample(file: &File, src: &str, train: &TrainItem, batch: usize) -> Result<Graph, IrError> {
    let mut checker = Checker::for_lowering(file, src, Emitter::new(Mode::Eval, batch as i64));
    let node = checker.lower_sample(train);
    let mut em = checker
        .emit
        .take()
        .expect("the lowering checker has an emitter");
    if let Some(e) = em.error.take() {
        return Err(e);
    }
    let node = node.ok_or_else(|| IrError {
        message: "the `sample` tensor did not lower".into(),
        span: train.span,
    })?;
    em.graph.set_output("sample", node);
    crate::ir::passes::optimize(&mut em.graph);
    Ok(em.graph)
}

/// Eval mode: the loss, the prediction and the target, no updates.
fn lower_eval(file: &File, src: &str, train: &TrainItem, batch: usize) -> Result<Graph, IrError> {
    let mut checker = Checker::for_lowering(file, src, Emitter::new(Mode::Eval, batch as i64));
    let step = checker.lower_step(train, 0);
    let mut em = checker
        .emit
        .take()
        .expect("the lowering checker has an emitter");
    if let Some(e) = em.error.take() {
        return Err(e);
    }
    let step = step.ok_or_else(|| IrError {
        message: "the run could not be evaluated".into(),
        span: train.span,
    })?;
    if let Some(loss) = step.loss {
        em.graph.set_output("loss", loss);
    }
    if let Some((prediction, target)) = step.prediction {
        em.graph.set_output("prediction", prediction);
        em.graph.set_output("target", target);
    }
    crate::ir::passes::optimize(&mut em.graph);
    Ok(em.graph)
}
