//! Checking `train` runs: data, losses, which models each step updates and with what
//! optimizer, and the run's settings.

use netc_grammar::Diagnostic;
use netc_grammar::ast::*;

use super::call::ArgValue;
use super::{Checker, Env};
use crate::builtins::{self, Kind};
use crate::suggest;
use crate::types::{Spec, TensorType, Value};

/// A checked training run.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub name: Option<String>,
    pub span: Span,
    pub data: Option<String>,
    pub steps: Vec<StepInfo>,
    pub epochs: Option<i64>,
    pub batch: Option<i64>,
    pub metrics: Vec<String>,
    pub schedule: Option<Spec>,
    /// `checkpoint every: N, keep: K, best: METRIC`, with defaults filled.
    pub checkpoint: Option<Spec>,
    /// `sample EXPR, every: N, to: DIR` settings (the tensor is lowered separately).
    pub sample: Option<Spec>,
    pub seed: Option<i64>,
}

/// One optimisation step: its loss and what it updates.
#[derive(Clone, Debug, Default)]
pub struct StepInfo {
    pub name: Option<String>,
    pub loss: Option<TensorType>,
    /// The prediction and target of a loss written `loss_fn(prediction, target)`; metrics use them.
    pub prediction: Option<(String, TensorType, TensorType)>,
    pub updates: Vec<(String, Spec)>,
    /// Models the loss depends on through a differentiable path.
    pub depends_on: std::collections::BTreeSet<String>,
}

/// Settings of a run (besides `loss`, `update` and `step`).
const TRAIN_KEYS: [&str; 10] = [
    "data",
    "loss",
    "epochs",
    "batch",
    "metrics",
    "schedule",
    "checkpoint",
    "sample",
    "seed",
    "clip_grad_norm",
];

/// One step of a run evaluated while lowering: its loss and what it updates.
pub(crate) struct LoweredStep {
    pub name: String,
    pub loss: Option<crate::ir::NodeId>,
    /// Prediction and target nodes of a loss written `loss_fn(prediction, target)`.
    pub prediction: Option<(crate::ir::NodeId, crate::ir::NodeId)>,
    pub updates: Vec<(String, Spec)>,
    pub span: Span,
}

impl Checker<'_> {
    /// Evaluate step `index` of run `t` with the emitter attached: data fields, the run's
    /// `let`s (recording buffer updates only for the first step, since later steps of the same
    /// batch recompute the same values), then the step's own lines.
    pub(crate) fn lower_step(&mut self, t: &TrainItem, index: usize) -> Option<LoweredStep> {
        let mut env = Env::new(String::from("train"), None);
        env.symbols.insert("B".to_string());
        let mut run = RunInfo::default();
        for stmt in &t.stmts {
            if let TrainStmt::Setting(s) = stmt
                && s.key.name == "data"
            {
                self.train_data(s, &mut env, &mut run);
            }
        }
        let steps: Vec<&StepBlock> = t
            .stmts
            .iter()
            .filter_map(|s| match s {
                TrainStmt::Step(step) => Some(step),
                _ => None,
            })
            .collect();
        if let Some(em) = self.emit.as_mut() {
            em.record_state = index == 0;
        }
        let mut top = Vec::new();
        for stmt in &t.stmts {
            match stmt {
                TrainStmt::Let(l) => {
                    let value = self.eval(&l.value, &mut env);
                    env.bind(&l.name, value);
                }
                other => top.push(other),
            }
        }
        if let Some(em) = self.emit.as_mut() {
            em.record_state = true;
        }
        let (name, stmts, span): (String, Vec<&TrainStmt>, Span) = if steps.is_empty() {
            (
                t.name.as_ref().map_or("train".into(), |n| n.name.clone()),
                top,
                t.span,
            )
        } else {
            let step = steps.get(index)?;
            (
                step.name.name.clone(),
                step.stmts.iter().collect(),
                step.span,
            )
        };
        let mut lowered = LoweredStep {
            name,
            loss: None,
            prediction: None,
            updates: Vec::new(),
            span,
        };
        for stmt in stmts {
            match stmt {
                TrainStmt::Let(l) => {
                    let value = self.eval(&l.value, &mut env);
                    env.bind(&l.name, value);
                }
                TrainStmt::Setting(s) if s.key.name == "loss" => {
                    let arg = s.args.first()?;
                    if let ExprKind::Call(call) = &arg.value.kind
                        && builtins::lookup(&call.callee.name).is_some_and(|b| b.kind == Kind::Loss)
                        && call.args.len() >= 2
                    {
                        // Evaluate prediction and target once, then the loss on those values.
                        let pred = self.eval(&call.args[0].value, &mut env);
                        let target = self.eval(&call.args[1].value, &mut env);
                        if let (Value::Tensor(p), Value::Tensor(t)) = (&pred, &target)
                            && let (Some(pn), Some(tn)) = (p.node, t.node)
                        {
                            lowered.prediction = Some((pn, tn));
                        }
                        let mut scratch = env.clone();
                        let pred_name = netc_grammar::Ident {
                            name: "__prediction".into(),
                            span: call.args[0].value.span,
                        };
                        let target_name = netc_grammar::Ident {
                            name: "__target".into(),
                            span: call.args[1].value.span,
                        };
                        scratch.bind(&pred_name, pred);
                        scratch.bind(&target_name, target);
                        let mut rewritten = call.clone();
                        rewritten.args[0].value = Expr {
                            kind: ExprKind::Name(pred_name),
                            span: call.args[0].value.span,
                        };
                        rewritten.args[1].value = Expr {
                            kind: ExprKind::Name(target_name),
                            span: call.args[1].value.span,
                        };
                        if let Value::Tensor(l) = self.call(&rewritten, None, &mut scratch) {
                            lowered.loss = l.node;
                        }
                    } else if let Value::Tensor(l) = self.eval(&arg.value, &mut env) {
                        lowered.loss = l.node;
                    }
                }
                TrainStmt::Update(u) => {
                    if let Value::Spec(spec) = self.eval(&u.optimizer, &mut env) {
                        for m in &u.models {
                            lowered.updates.push((m.name.clone(), spec.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        Some(lowered)
    }

    /// Evaluate the tensor of the run's `sample` setting (`sample Generator(z), every: 1`) after
    /// the run's `let`s, for the image grids written during training.
    pub(crate) fn lower_sample(&mut self, t: &TrainItem) -> Option<crate::ir::NodeId> {
        let mut env = Env::new(String::from("train"), None);
        env.symbols.insert("B".to_string());
        let mut run = RunInfo::default();
        for stmt in &t.stmts {
            match stmt {
                TrainStmt::Setting(s) if s.key.name == "data" => {
                    self.train_data(s, &mut env, &mut run)
                }
                TrainStmt::Let(l) => {
                    let value = self.eval(&l.value, &mut env);
                    env.bind(&l.name, value);
                }
                _ => {}
            }
        }
        let setting = t.stmts.iter().find_map(|s| match s {
            TrainStmt::Setting(s) if s.key.name == "sample" => Some(s),
            _ => None,
        })?;
        match self.eval(&setting.args.first()?.value, &mut env) {
            Value::Tensor(t) => t.node,
            _ => None,
        }
    }

    pub(crate) fn check_train(&mut self, t: &TrainItem) -> RunInfo {
        let label = match &t.name {
            Some(n) => format!("train {}", n.name),
            None => "train".to_string(),
        };
        let mut env = Env::new(label, None);
        env.symbols.insert("B".to_string());
        let mut run = RunInfo {
            name: t.name.as_ref().map(|n| n.name.clone()),
            span: t.span,
            ..RunInfo::default()
        };
        let mut seen: Vec<(String, Span)> = Vec::new();

        // `data` first, so its fields are in scope for every other line.
        for stmt in &t.stmts {
            if let TrainStmt::Setting(s) = stmt
                && s.key.name == "data"
            {
                self.train_data(s, &mut env, &mut run);
            }
        }
        let has_steps = t.stmts.iter().any(|s| matches!(s, TrainStmt::Step(_)));
        let mut top = StepInfo::default();
        let mut top_loss_span = None;
        let mut top_update_span = None;
        for stmt in &t.stmts {
            match stmt {
                TrainStmt::Let(l) => {
                    let value = self.eval(&l.value, &mut env);
                    if let Value::Tensor(t) = &value {
                        self.record_shape(
                            l.name.span,
                            &env.item.clone(),
                            format!("let {}", l.name.name),
                            &t.ty,
                        );
                    }
                    env.bind(&l.name, value);
                    env.vars.get_mut(&l.name.name).expect("just bound").used = true;
                }
                TrainStmt::Update(u) => {
                    if has_steps {
                        self.report(
                            Diagnostic::error(
                                "N4004",
                                "`update` belongs inside a `step` in a run with steps",
                                u.span,
                                "outside any step",
                            )
                            .with_help("move it into the `step` whose loss it minimises"),
                        );
                        continue;
                    }
                    top_update_span = Some(u.span);
                    self.update(u, &mut env, &mut top);
                }
                TrainStmt::Step(step) => {
                    let info = self.step(step, &mut env);
                    run.steps.push(info);
                }
                TrainStmt::Setting(s) => {
                    if s.key.name == "data" {
                        continue;
                    }
                    if s.key.name == "loss" {
                        if has_steps {
                            self.report(
                                Diagnostic::error(
                                    "N4004",
                                    "`loss` belongs inside a `step` in a run with steps",
                                    s.span,
                                    "outside any step",
                                )
                                .with_help("each `step` has its own `loss`"),
                            );
                            continue;
                        }
                        top_loss_span = Some(s.span);
                        self.loss(s, &mut env, &mut top);
                        continue;
                    }
                    self.train_setting(s, &mut env, &mut run, &mut seen);
                }
                TrainStmt::Error(_) => {}
            }
        }
        if !has_steps {
            if top_loss_span.is_none() && !t.stmts.iter().any(|s| matches!(s, TrainStmt::Error(_)))
            {
                self.report(
                    Diagnostic::error(
                        "N4004",
                        "this run has no `loss`",
                        t.keyword_span,
                        "nothing to minimise",
                    )
                    .with_help("add a line such as `loss cross_entropy(Model(x), label)`"),
                );
            }
            if top_update_span.is_none()
                && !t.stmts.iter().any(|s| matches!(s, TrainStmt::Error(_)))
            {
                self.report(
                    Diagnostic::error(
                        "N4004",
                        "this run has no `update`",
                        t.keyword_span,
                        "nothing is trained",
                    )
                    .with_help("add a line such as `update Model with adam(lr: 1e-3)`"),
                );
            }
            self.check_updates_reach_loss(&top, top_loss_span);
            run.steps.push(top);
        }
        let has_errors = t.stmts.iter().any(|s| matches!(s, TrainStmt::Error(_)));
        for (key, why) in [
            ("data", "where do batches come from?"),
            ("epochs", "how long to train?"),
            ("batch", "how many samples per step?"),
        ] {
            // A misspelt key (`epoch`) was reported with a suggestion; do not also call it missing.
            let given = t.stmts.iter().any(|s| {
                matches!(s, TrainStmt::Setting(x)
                    if x.key.name == key || suggest::closest(&x.key.name, TRAIN_KEYS) == Some(key))
            });
            if !given && !has_errors {
                self.report(
                    Diagnostic::error(
                        "N2012",
                        format!("this run has no `{key}`"),
                        t.keyword_span,
                        why,
                    )
                    .with_help(format!(
                        "add {} `{key}` line",
                        if key.starts_with(['a', 'e', 'i', 'o', 'u']) {
                            "an"
                        } else {
                            "a"
                        }
                    )),
                );
            }
        }
        self.check_metrics(&run, t);
        run
    }

    fn train_data(&mut self, s: &Setting, env: &mut Env, run: &mut RunInfo) {
        let name = match s.args.as_slice() {
            [a] if a.name.is_none() => match &a.value.kind {
                ExprKind::Name(n) => n.clone(),
                _ => {
                    self.report(Diagnostic::error(
                        "N2008",
                        "`data` names a `data` item",
                        a.value.span,
                        "not a name",
                    ));
                    return;
                }
            },
            _ => {
                self.report(Diagnostic::error(
                    "N2008",
                    "`data` takes one name",
                    s.span,
                    "expected one name",
                ));
                return;
            }
        };
        if !matches!(self.defs.get(&name.name), Some(super::Def::Data(_))) {
            let candidates: Vec<&str> = self
                .defs
                .iter()
                .filter(|(_, d)| matches!(d, super::Def::Data(_)))
                .map(|(k, _)| k.as_str())
                .collect();
            let hint = suggest::closest(&name.name, candidates);
            let mut d = Diagnostic::error(
                "N2001",
                format!("unknown data set `{}`", name.name),
                name.span,
                "no `data` item has this name",
            );
            if let Some(h) = hint {
                d = d.with_help(format!("did you mean `{h}`?"));
            }
            self.report(d);
            // Its fields are unknown now; names in the run would only repeat this error.
            env.lenient = true;
            return;
        }
        let Some(info) = self.data_info(&name.name) else {
            return;
        };
        for f in &info.fields {
            let ident = Ident {
                name: f.name.clone(),
                span: f.span,
            };
            let tensor = self.data_tensor(&f.name, super::data::batched(&f.ty), f.span);
            env.bind(&ident, Value::Tensor(tensor));
            env.vars.get_mut(&f.name).expect("just bound").used = true;
        }
        run.data = Some(name.name.clone());
    }

    fn step(&mut self, step: &StepBlock, env: &mut Env) -> StepInfo {
        let mut info = StepInfo {
            name: Some(step.name.name.clone()),
            ..StepInfo::default()
        };
        let mut senv = env.clone();
        senv.item = format!("{} step {}", env.item, step.name.name);
        let mut loss_span = None;
        let mut update_span = None;
        for stmt in &step.stmts {
            match stmt {
                TrainStmt::Let(l) => {
                    let value = self.eval(&l.value, &mut senv);
                    if let Value::Tensor(t) = &value {
                        self.record_shape(
                            l.name.span,
                            &senv.item.clone(),
                            format!("let {}", l.name.name),
                            &t.ty,
                        );
                    }
                    senv.bind(&l.name, value);
                    senv.vars.get_mut(&l.name.name).expect("just bound").used = true;
                }
                TrainStmt::Update(u) => {
                    update_span = Some(u.span);
                    self.update(u, &mut senv, &mut info);
                }
                TrainStmt::Setting(s) if s.key.name == "loss" => {
                    loss_span = Some(s.span);
                    self.loss(s, &mut senv, &mut info);
                }
                TrainStmt::Setting(s) => {
                    self.report(
                        Diagnostic::error(
                            "N2010",
                            format!("`{}` is not a step setting", s.key.name),
                            s.key.span,
                            "steps take `let`, `loss` and `update`",
                        )
                        .with_help("move run settings such as `epochs` out of the step"),
                    );
                }
                TrainStmt::Step(inner) => {
                    self.report(Diagnostic::error(
                        "N2010",
                        "steps cannot be nested",
                        inner.name.span,
                        "a step inside a step",
                    ));
                }
                TrainStmt::Error(_) => {}
            }
        }
        let broken = step.stmts.iter().any(|s| matches!(s, TrainStmt::Error(_)));
        if loss_span.is_none() && !broken {
            self.report(Diagnostic::error(
                "N4004",
                format!("step `{}` has no `loss`", step.name.name),
                step.name.span,
                "nothing to minimise",
            ));
        }
        if update_span.is_none() && !broken {
            self.report(Diagnostic::error(
                "N4004",
                format!("step `{}` has no `update`", step.name.name),
                step.name.span,
                "nothing is trained",
            ));
        }
        self.check_updates_reach_loss(&info, loss_span);
        info
    }

    fn loss(&mut self, s: &Setting, env: &mut Env, info: &mut StepInfo) {
        let [arg] = s.args.as_slice() else {
            self.report(Diagnostic::error(
                "N2008",
                "`loss` takes one expression",
                s.span,
                "expected one expression",
            ));
            return;
        };
        let value = self.eval(&arg.value, env);
        let t = match value {
            Value::Tensor(t) => t,
            Value::Error => return,
            other => {
                self.report(Diagnostic::error(
                    "N4001",
                    format!(
                        "the loss must be a scalar tensor, found {}",
                        other.describe()
                    ),
                    arg.value.span,
                    "not a tensor",
                ));
                return;
            }
        };
        if !t.ty.is_scalar() || !t.ty.dtype.is_float() {
            self.report(
                Diagnostic::error(
                    "N4001",
                    format!("the loss must be a scalar, found {}", t.ty),
                    arg.value.span,
                    format!("this is {}", t.ty),
                )
                .with_help("use a loss function such as `cross_entropy(logits, label)`, or reduce with `mean(...)`"),
            );
        }
        info.loss = Some(t.ty.clone());
        info.depends_on = t.depends_on;
        // Remember prediction and target for metrics: `loss_fn(prediction, target)`.
        if let ExprKind::Call(call) = &arg.value.kind
            && let Some(b) = builtins::lookup(&call.callee.name)
            && b.kind == Kind::Loss
            && call.args.len() >= 2
        {
            let mut scratch = env.clone();
            let before = self.analysis.diagnostics.len();
            let pred = self.eval(&call.args[0].value, &mut scratch);
            let target = self.eval(&call.args[1].value, &mut scratch);
            self.analysis.diagnostics.truncate(before);
            if let (Value::Tensor(p), Value::Tensor(tg)) = (pred, target) {
                info.prediction = Some((b.name.to_string(), p.ty, tg.ty));
            }
        }
    }

    fn update(&mut self, u: &UpdateStmt, env: &mut Env, info: &mut StepInfo) {
        self.expected_kind = Some(Kind::Optimizer);
        let optimizer = self.eval(&u.optimizer, env);
        self.expected_kind = None;
        let optimizer = match optimizer {
            Value::Spec(spec)
                if builtins::lookup(spec.name).is_some_and(|b| b.kind == Kind::Optimizer) =>
            {
                Some(spec)
            }
            Value::Error => None,
            other => {
                let names: Vec<String> = builtins::all()
                    .iter()
                    .filter(|b| b.kind == Kind::Optimizer)
                    .map(|b| format!("`{}`", b.name))
                    .collect();
                self.report(
                    Diagnostic::error(
                        "N2009",
                        format!(
                            "`update ... with` needs an optimizer, found {}",
                            other.describe()
                        ),
                        u.optimizer.span,
                        "not an optimizer",
                    )
                    .with_help(format!("optimizers: {}", names.join(", "))),
                );
                None
            }
        };
        for m in &u.models {
            if u.models
                .iter()
                .take_while(|o| !std::ptr::eq(*o, m))
                .any(|o| o.name == m.name)
            {
                self.report(Diagnostic::error(
                    "N2011",
                    format!("`{}` is listed twice", m.name),
                    m.span,
                    "already updated by this line",
                ));
                continue;
            }
            if let Some(super::Def::Data(_) | super::Def::Const(_) | super::Def::Block(_)) =
                self.defs.get(&m.name)
            {
                let what = match self.defs.get(&m.name) {
                    Some(super::Def::Data(_)) => "a data set",
                    Some(super::Def::Const(_)) => "a constant",
                    _ => "a block (blocks are trained as part of the models that use them)",
                };
                self.report(
                    Diagnostic::error(
                        "N2009",
                        format!("`{}` is {what}, not a model", m.name),
                        m.span,
                        "not a model",
                    )
                    .with_help("`update` names the models whose parameters this loss trains"),
                );
                continue;
            }
            if !matches!(self.defs.get(&m.name), Some(super::Def::Model(_))) {
                let models: Vec<&str> = self
                    .defs
                    .iter()
                    .filter(|(_, d)| matches!(d, super::Def::Model(_)))
                    .map(|(k, _)| k.as_str())
                    .collect();
                let mut d = Diagnostic::error(
                    "N2001",
                    format!("unknown model `{}`", m.name),
                    m.span,
                    "no model has this name",
                );
                if let Some(h) = suggest::closest(&m.name, models) {
                    d = d.with_help(format!("did you mean `{h}`?"));
                }
                self.report(d);
                continue;
            }
            let Some(model) = self.model_info(&m.name) else {
                continue;
            };
            if model.weights.iter().all(|(_, w)| !w.trainable) {
                self.report(
                    Diagnostic::error(
                        "N4002",
                        format!("model `{}` has no parameters to update", m.name),
                        m.span,
                        "nothing to train",
                    )
                    .with_label(model.span, "defined here, with no layer that has weights")
                    .with_help("only layers such as `linear` or `conv2d` have parameters"),
                );
                continue;
            }
            if let Some(opt) = &optimizer {
                info.updates.push((m.name.clone(), opt.clone()));
            }
        }
    }

    /// Every model a step updates must be reachable from its loss by a differentiable path.
    fn check_updates_reach_loss(&mut self, info: &StepInfo, loss_span: Option<Span>) {
        let Some(loss_span) = loss_span else { return };
        if info.loss.is_none() {
            return;
        }
        for (model, spec) in &info.updates {
            if !info.depends_on.contains(model) {
                self.report(
                    Diagnostic::error(
                        "N4003",
                        format!("the loss does not depend on `{model}`, so `update {model}` cannot change it"),
                        spec.span,
                        format!("updates `{model}`"),
                    )
                    .with_label(loss_span, format!("this loss has no gradient for `{model}`"))
                    .with_help(format!("call `{model}` in the loss, or remove `stop_gradient` around it")),
                );
            }
        }
    }

    fn train_setting(
        &mut self,
        s: &Setting,
        env: &mut Env,
        run: &mut RunInfo,
        seen: &mut Vec<(String, Span)>,
    ) {
        let key = s.key.name.as_str();
        if !TRAIN_KEYS.contains(&key) {
            let mut d = Diagnostic::error(
                "N2010",
                format!("unknown run setting `{key}`"),
                s.key.span,
                "not a run setting",
            );
            if let Some(h) = suggest::closest(key, TRAIN_KEYS) {
                d = d.with_help(format!("did you mean `{h}`?"));
            } else {
                d = d.with_help(format!("run settings: {}", TRAIN_KEYS.join(", ")));
            }
            self.report(d);
            return;
        }
        if let Some((_, first)) = seen.iter().find(|(k, _)| k == key) {
            let first = *first;
            self.report(
                Diagnostic::error(
                    "N2011",
                    format!("`{key}` is given twice"),
                    s.key.span,
                    "given again here",
                )
                .with_label(first, "first given here"),
            );
            return;
        }
        seen.push((key.to_string(), s.key.span));
        self.expected_kind = match key {
            "schedule" => Some(Kind::Schedule),
            "metrics" => Some(Kind::Metric),
            _ => None,
        };
        let args: Vec<ArgValue> = s
            .args
            .iter()
            .map(|a| ArgValue {
                name: a.name.clone(),
                value: self.eval_arg(&a.value, env),
                span: a.value.span,
            })
            .collect();
        self.expected_kind = None;
        match key {
            "epochs" | "batch" | "seed" | "clip_grad_norm" => {
                let b = builtins::setting(key).expect("every run setting has a signature");
                if let Some(bound) = self.bind_args(b, &args, s.span) {
                    match key {
                        "epochs" => run.epochs = Some(bound.int("count")),
                        "batch" => run.batch = Some(bound.int("size")),
                        "seed" => run.seed = Some(bound.int("value")),
                        _ => {}
                    }
                }
            }
            "metrics" => {
                for a in &args {
                    match &a.value {
                        Value::Spec(spec)
                            if builtins::lookup(spec.name)
                                .is_some_and(|b| b.kind == Kind::Metric) =>
                        {
                            run.metrics.push(spec.name.to_string())
                        }
                        Value::Error => {}
                        other => {
                            let metrics = builtins::all()
                                .iter()
                                .filter(|b| b.kind == Kind::Metric)
                                .map(|b| b.name);
                            let help = match other {
                                Value::Word(w) => suggest::closest(w, metrics.clone())
                                    .map(|h| format!("did you mean `{h}`?")),
                                _ => None,
                            };
                            let names: Vec<String> = metrics.map(|n| format!("`{n}`")).collect();
                            let what = match other {
                                Value::Word(w) => format!("unknown metric `{w}`"),
                                other => format!("not a metric: {}", other.describe()),
                            };
                            self.report(
                                Diagnostic::error("N2008", what, a.span, "not a metric").with_help(
                                    help.unwrap_or_else(|| {
                                        format!("metrics: {}", names.join(", "))
                                    }),
                                ),
                            );
                        }
                    }
                }
            }
            "schedule" => match args.as_slice() {
                [a] => match &a.value {
                    Value::Spec(spec)
                        if builtins::lookup(spec.name)
                            .is_some_and(|b| b.kind == Kind::Schedule) =>
                    {
                        run.schedule = Some(spec.clone())
                    }
                    Value::Error => {}
                    other => {
                        let names: Vec<String> = builtins::all()
                            .iter()
                            .filter(|b| b.kind == Kind::Schedule)
                            .map(|b| format!("`{}`", b.name))
                            .collect();
                        self.report(
                            Diagnostic::error(
                                "N2008",
                                format!("not a schedule: {}", other.describe()),
                                a.span,
                                "not a schedule",
                            )
                            .with_help(format!("schedules: {}", names.join(", "))),
                        );
                    }
                },
                _ => self.report(Diagnostic::error(
                    "N2008",
                    "`schedule` takes one schedule",
                    s.span,
                    "expected one value",
                )),
            },
            "checkpoint" => {
                let b = builtins::setting("checkpoint").expect("checkpoint has a signature");
                if let Some(bound) = self.bind_args(b, &args, s.span) {
                    run.checkpoint = Some(Spec {
                        name: b.name,
                        args: bound,
                        span: s.span,
                    });
                }
            }
            "sample" => {
                let mut args = args;
                let what = if args.first().is_some_and(|a| a.name.is_none()) {
                    Some(args.remove(0))
                } else {
                    None
                };
                match what {
                    Some(ArgValue {
                        value: Value::Tensor(_) | Value::Error,
                        ..
                    }) => {}
                    Some(other) => self.report(Diagnostic::error(
                        "N2008",
                        format!(
                            "`sample` shows a tensor (such as `Generator(z)`), found {}",
                            other.value.describe()
                        ),
                        other.span,
                        "not a tensor",
                    )),
                    None => self.report(Diagnostic::error(
                        "N2005",
                        "`sample` needs the tensor to show, such as `Generator(z)`",
                        s.span,
                        "missing tensor",
                    )),
                }
                let b = builtins::setting("sample").expect("sample has a signature");
                if let Some(bound) = self.bind_args(b, &args, s.span) {
                    run.sample = Some(Spec {
                        name: b.name,
                        args: bound,
                        span: s.span,
                    });
                }
            }
            _ => unreachable!("TRAIN_KEYS is matched above"),
        }
    }

    /// Metrics need a classification loss `loss_fn(prediction, target)` in a single-step run.
    fn check_metrics(&mut self, run: &RunInfo, t: &TrainItem) {
        if run.metrics.is_empty() {
            return;
        }
        let span = t
            .stmts
            .iter()
            .find_map(|s| match s {
                TrainStmt::Setting(x) if x.key.name == "metrics" => Some(x.span),
                _ => None,
            })
            .unwrap_or(t.keyword_span);
        let [step] = run.steps.as_slice() else {
            self.report(
                Diagnostic::error("N4006", "metrics need a run with a single loss", span, "a run with several steps")
                    .with_help("metrics compare the prediction and target of `loss loss_fn(prediction, target)`"),
            );
            return;
        };
        match &step.prediction {
            Some((loss, _, _))
                if matches!(loss.as_str(), "cross_entropy" | "bce" | "bce_with_logits") => {}
            Some((loss, _, _)) => self.report(
                Diagnostic::error(
                    "N4006",
                    format!("classification metrics need a classification loss, found `{loss}`"),
                    span,
                    "these metrics count correct classes",
                )
                .with_help("use `cross_entropy`, `bce` or `bce_with_logits`, or remove `metrics`"),
            ),
            None if step.loss.is_some() => self.report(
                Diagnostic::error(
                    "N4006",
                    "metrics need the loss written as `loss_fn(prediction, target)`",
                    span,
                    "no prediction to score",
                )
                .with_help("write the loss as one call, such as `cross_entropy(Model(x), label)`"),
            ),
            None => {}
        }
    }
}
