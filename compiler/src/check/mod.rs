//! Name resolution and shape checking of a parsed file.
//!
//! The checker walks items in dependency order, evaluating every expression to a [`Value`]
//! (numbers, tensor types with symbolic shapes, layers, specs). Built-in calls are checked by
//! the rules in [`crate::builtins`]; blocks are checked at each instantiation with their
//! hyper-parameters bound; models are checked once with symbolic input dims and their output
//! type is substituted at each call. Errors become [`Diagnostic`]s; a value that already caused
//! an error becomes [`Value::Error`] so one mistake is reported once.

mod call;
mod data;
mod emit;
mod expr;
mod train;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use netc_grammar::ast::*;
use netc_grammar::{Diagnostic, Label};

use crate::builtins::Weight;
use crate::dim::Dim;
use crate::suggest;
use crate::types::{Tensor, TensorType, Value};

pub use data::{DataInfo, FieldInfo};
pub use train::{RunInfo, StepInfo};

/// Everything the checker learned about a file: diagnostics, and the facts the CLI
/// (`--shapes`), the editor (hover, inlay hints) and the IR lowering read.
#[derive(Debug, Default)]
pub struct Analysis {
    pub diagnostics: Vec<Diagnostic>,
    /// Inferred types of bindings, inputs and pipeline stages, in source order.
    pub shapes: Vec<ShapeEntry>,
    pub models: BTreeMap<String, ModelInfo>,
    pub data: BTreeMap<String, DataInfo>,
    pub runs: Vec<RunInfo>,
}

/// The inferred type of one place in the source.
#[derive(Clone, Debug)]
pub struct ShapeEntry {
    pub span: Span,
    /// The item it belongs to (`model LeNet`, `block Encoder`, `train gan`).
    pub item: String,
    /// What it is, as the user wrote it: `let h`, `conv2d(6, kernel: 5)`, `input x`.
    pub what: String,
    pub ty: TensorType,
}

/// A checked model: its signature and the weights its layers create.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub name: String,
    pub span: Span,
    pub inputs: Vec<(String, TensorType)>,
    pub output: Option<TensorType>,
    pub weights: Vec<(String, Weight)>,
}

impl ModelInfo {
    /// Number of trainable scalars, when every dimension is known.
    pub fn parameter_count(&self) -> Option<i64> {
        let mut total: i64 = 0;
        for (_, w) in self.weights.iter().filter(|(_, w)| w.trainable) {
            let mut n: i64 = 1;
            for d in &w.dims {
                n = n.checked_mul(d.as_known()?)?;
            }
            total = total.checked_add(n)?;
        }
        Some(total)
    }
}

/// Check a parsed file.
pub fn check(file: &File, src: &str) -> Analysis {
    let mut checker = Checker::new(file, src);
    checker.run();
    let mut analysis = checker.analysis;
    analysis
        .diagnostics
        .sort_by_key(|d| (d.primary.span.start, d.code));
    analysis
        .diagnostics
        .dedup_by(|a, b| a.code == b.code && a.primary.span == b.primary.span);
    analysis.shapes.sort_by_key(|s| s.span.start);
    // A block used twice with the same shapes would list each of its lines twice.
    analysis
        .shapes
        .dedup_by(|a, b| a.span == b.span && a.ty == b.ty && a.item == b.item);
    analysis
}

/// A name bound in a body.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub value: Value,
    pub span: Span,
    pub used: bool,
}

/// Where expressions are being evaluated, which decides what names mean and who owns weights.
#[derive(Clone, Debug)]
pub(crate) struct Env {
    pub vars: HashMap<String, Binding>,
    /// The item label used in shape entries.
    pub item: String,
    /// The model whose parameters layer calls create (none in `train` and `data`).
    pub owner: Option<String>,
    /// Counter for naming anonymous layers: `linear_0`, `linear_1`.
    pub layer_counts: HashMap<String, usize>,
    /// Names in shapes that are symbolic dimensions here (`B`, `T`).
    pub symbols: BTreeSet<String>,
    /// Where layers created here sit in their model, for parameter names: block instances and
    /// `repeat` copies (`["repeat_0", "1"]`).
    pub path: Vec<String>,
    /// Set after an error that leaves names undefined (an unknown data set): unknown names are
    /// then not reported again.
    pub lenient: bool,
}

impl Env {
    pub fn new(item: String, owner: Option<String>) -> Self {
        Env {
            vars: HashMap::new(),
            item,
            owner,
            layer_counts: HashMap::new(),
            symbols: BTreeSet::new(),
            path: Vec::new(),
            lenient: false,
        }
    }

    /// The name of the next inline instance of `kind` here: `linear_0`, `linear_1`.
    pub fn next_instance(&mut self, kind: &str) -> String {
        let n = self.layer_counts.entry(kind.to_string()).or_insert(0);
        let name = format!("{kind}_{n}");
        *n += 1;
        name
    }

    pub fn bind(&mut self, name: &Ident, value: Value) {
        self.vars.insert(
            name.name.clone(),
            Binding {
                value,
                span: name.span,
                used: false,
            },
        );
    }
}

/// Item definitions by name.
pub(crate) enum Def<'f> {
    Const(&'f ConstItem),
    Model(&'f ModelItem),
    Block(&'f BlockItem),
    Data(&'f DataItem),
}

impl Def<'_> {
    fn name_span(&self) -> Span {
        match self {
            Def::Const(c) => c.name.span,
            Def::Model(m) => m.name.span,
            Def::Block(b) => b.name.span,
            Def::Data(d) => d.name.span,
        }
    }
}

pub(crate) struct Checker<'f> {
    pub file: &'f File,
    pub src: &'f str,
    pub defs: HashMap<String, Def<'f>>,
    pub consts: HashMap<String, Value>,
    pub analysis: Analysis,
    /// Models being checked (to detect a model that calls itself).
    pub in_progress: Vec<String>,
    /// Block instantiations under way, innermost last: (block name, call span).
    pub instantiations: Vec<(String, Span)>,
    /// Weights created so far per model, with their layer-qualified names.
    pub weights: HashMap<String, Vec<(String, Weight)>>,
    /// Set when lowering: every tensor value then also gets an IR node.
    pub emit: Option<crate::lower::Emitter>,
    /// The name of the `let` whose value is being evaluated, for naming a layer without inputs
    /// created directly by it.
    pub let_name: Option<String>,
    /// The kind of built-in expected where a call is being evaluated (after `with`, in
    /// `schedule`, as a `source`), for "unknown optimizer" rather than "unknown layer".
    pub expected_kind: Option<crate::builtins::Kind>,
    /// Weight shapes of named (shared) layers by full weight name, with the first use's span:
    /// a shared layer applied to inputs of another width is an error.
    pub shared_weights: HashMap<String, (Vec<Dim>, Span)>,
}

/// A layer bound with `let` takes the binding's name, so its parameters are `name.weight` and
/// every use of the binding shares them.
fn name_layer(value: Value, name: &str) -> Value {
    match value {
        Value::Layer(layer) if layer.name.is_none() => {
            Value::Layer(std::rc::Rc::new(crate::types::LayerValue {
                callable: layer.callable.clone(),
                span: layer.span,
                name: Some(name.to_string()),
            }))
        }
        other => other,
    }
}

/// Does a block hyper-parameter of type `ty` accept `value`? Unknown types accept anything
/// (their declaration is already an error).
pub(crate) fn hparam_accepts(ty: &str, value: &Value) -> bool {
    match (ty, value) {
        (_, Value::Error) => true,
        ("int", Value::Int(_) | Value::Dim(_)) => true,
        ("float", Value::Int(_) | Value::Float(_)) => true,
        ("bool", Value::Bool(_)) => true,
        ("string", Value::Str(_)) => true,
        ("int" | "float" | "bool" | "string", _) => false,
        _ => true,
    }
}

/// "an integer" for `int`, and so on.
pub(crate) fn hparam_noun(ty: &str) -> &'static str {
    match ty {
        "int" => "an integer",
        "float" => "a number",
        "bool" => "`true` or `false`",
        _ => "a string",
    }
}

/// The name a (possibly broken) `let` line binds.
fn let_name(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("let")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Deepest chain of block and model instantiations (`repeat` of blocks of blocks).
const MAX_INSTANTIATION_DEPTH: usize = 32;

impl<'f> Checker<'f> {
    fn new(file: &'f File, src: &'f str) -> Self {
        Checker {
            file,
            src,
            defs: HashMap::new(),
            consts: HashMap::new(),
            analysis: Analysis::default(),
            in_progress: Vec::new(),
            instantiations: Vec::new(),
            weights: HashMap::new(),
            emit: None,
            let_name: None,
            expected_kind: None,
            shared_weights: HashMap::new(),
        }
    }

    pub fn report(&mut self, diag: Diagnostic) {
        let diag = self.with_instantiation_notes(diag);
        self.analysis.diagnostics.push(diag);
    }

    /// Errors found while checking a block body at an instantiation say which one.
    fn with_instantiation_notes(&self, mut diag: Diagnostic) -> Diagnostic {
        if let Some((name, span)) = self.instantiations.last() {
            diag.notes.push((
                format!("while checking this use of block `{name}`"),
                Label {
                    span: *span,
                    message: format!("`{name}` instantiated here"),
                },
            ));
        }
        diag
    }

    pub fn text(&self, span: Span) -> &'f str {
        &self.src[span.start..span.end]
    }

    /// A checker that lowers: definitions and constants are resolved, and every tensor the
    /// caller evaluates gets an IR node from `emitter`.
    pub(crate) fn for_lowering(
        file: &'f File,
        src: &'f str,
        emitter: crate::lower::Emitter,
    ) -> Self {
        let mut checker = Checker::new(file, src);
        checker.collect_definitions();
        checker.emit = Some(emitter);
        checker
    }

    fn run(&mut self) {
        self.collect_definitions();
        let file = self.file;
        for item in &file.items {
            if let Item::Const(c) = item {
                self.const_value(&c.name.name);
            }
        }
        for item in &file.items {
            match item {
                Item::Model(m) => {
                    self.model_info(&m.name.name);
                }
                Item::Block(b) => self.check_block_signature(b),
                Item::Data(d) => {
                    self.data_info(&d.name.name);
                }
                _ => {}
            }
        }
        for item in &file.items {
            if let Item::Train(t) = item {
                let run = self.check_train(t);
                self.analysis.runs.push(run);
            }
        }
    }

    fn collect_definitions(&mut self) {
        let file = self.file;
        for item in &file.items {
            let (name, def) = match item {
                Item::Const(c) => (&c.name, Def::Const(c)),
                Item::Model(m) => (&m.name, Def::Model(m)),
                Item::Block(b) => (&b.name, Def::Block(b)),
                Item::Data(d) => (&d.name, Def::Data(d)),
                Item::Train(_) | Item::Error(_) => continue,
            };
            if let Some(previous) = self.defs.get(&name.name) {
                let first = previous.name_span();
                self.report(
                    Diagnostic::error(
                        "N2003",
                        format!("`{}` is defined twice", name.name),
                        name.span,
                        "defined again here",
                    )
                    .with_label(first, "first defined here")
                    .with_help("rename one of them"),
                );
                continue;
            }
            if crate::builtins::lookup(&name.name).is_some() {
                self.report(
                    Diagnostic::error(
                        "N2003",
                        format!("`{}` is the name of a built-in", name.name),
                        name.span,
                        "this would hide the built-in",
                    )
                    .with_help("choose another name"),
                );
                continue;
            }
            self.defs.insert(name.name.clone(), def);
        }
    }

    /// The value of a `const`, evaluated once.
    pub fn const_value(&mut self, name: &str) -> Value {
        if let Some(v) = self.consts.get(name) {
            return v.clone();
        }
        let Some(Def::Const(c)) = self.defs.get(name) else {
            return Value::Error;
        };
        let c: &ConstItem = c;
        // A placeholder first: a const that refers to itself reads as an error, not a loop.
        self.consts.insert(name.to_string(), Value::Error);
        let mut env = Env::new(format!("const {name}"), None);
        let value = self.eval(&c.value, &mut env);
        let value = match value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Str(_) | Value::Error => {
                value
            }
            other => {
                self.report(Diagnostic::error(
                    "N2008",
                    format!(
                        "a `const` must be a number, string or boolean, found {}",
                        other.describe()
                    ),
                    c.value.span,
                    "not a constant",
                ));
                Value::Error
            }
        };
        self.consts.insert(name.to_string(), value.clone());
        value
    }

    /// A model's signature and weights, checking its body the first time it is asked for.
    pub fn model_info(&mut self, name: &str) -> Option<ModelInfo> {
        if let Some(info) = self.analysis.models.get(name) {
            return Some(info.clone());
        }
        // The signature is checked with symbolic inputs; that check emits nothing.
        let emitter = self.emit.take();
        let info = self.check_model(name);
        self.emit = emitter;
        info
    }

    fn check_model(&mut self, name: &str) -> Option<ModelInfo> {
        let Some(Def::Model(m)) = self.defs.get(name) else {
            return None;
        };
        let m: &ModelItem = m;
        if self.in_progress.iter().any(|n| n == name) {
            self.report(Diagnostic::error(
                "N2016",
                format!("model `{name}` uses itself"),
                m.name.span,
                "this model is part of a cycle",
            ));
            return None;
        }
        self.in_progress.push(name.to_string());
        let mut env = Env::new(format!("model {name}"), Some(name.to_string()));
        let mut inputs = Vec::new();
        self.check_duplicate_inputs(&m.inputs, &[]);
        for input in &m.inputs {
            let ty = self.declared_type(&input.ty, &mut env, true);
            if let Some(ty) = &ty {
                self.record_shape(
                    input.name.span,
                    &env.item,
                    format!("input {}", input.name.name),
                    ty,
                );
                env.bind(&input.name, Value::Tensor(Tensor::new(ty.clone())));
                env.vars.get_mut(&input.name.name).expect("just bound").used = false;
                inputs.push((input.name.name.clone(), ty.clone()));
            } else {
                env.bind(&input.name, Value::Error);
            }
        }
        let declared = m
            .output
            .as_ref()
            .and_then(|t| self.declared_type(t, &mut env, false));
        self.weights.insert(name.to_string(), Vec::new());
        let result = self.check_body(&m.body, &mut env, "model");
        let returned = matches!(result, Some((Value::Tensor(_), _)));
        let output = self.check_output(result, declared.as_ref(), m.output.as_ref());
        if returned {
            self.warn_unused(&env, &m.inputs);
        }
        self.in_progress.pop();
        let info = ModelInfo {
            name: name.to_string(),
            span: m.name.span,
            inputs,
            output: output.or(declared),
            weights: self.weights.remove(name).unwrap_or_default(),
        };
        self.analysis.models.insert(name.to_string(), info.clone());
        Some(info)
    }

    /// Check `let` statements and the final expression of a body; returns the final value.
    pub fn check_body(&mut self, body: &Body, env: &mut Env, what: &str) -> Option<(Value, Span)> {
        let mut last = None;
        for (i, stmt) in body.stmts.iter().enumerate() {
            let is_last = i + 1 == body.stmts.len();
            match stmt {
                Stmt::Let(l) => {
                    if let Some(previous) = env.vars.get(&l.name.name) {
                        let first = previous.span;
                        self.report(
                            Diagnostic::error(
                                "N2003",
                                format!("`{}` is already bound", l.name.name),
                                l.name.span,
                                "bound again here",
                            )
                            .with_label(first, "first bound here")
                            .with_help("bindings cannot be reassigned; choose a new name"),
                        );
                    }
                    if matches!(l.value.kind, ExprKind::Call(_)) {
                        self.let_name = Some(l.name.name.clone());
                    }
                    let value = name_layer(self.eval(&l.value, env), &l.name.name);
                    self.let_name = None;
                    if let Value::Tensor(t) = &value {
                        self.record_shape(
                            l.name.span,
                            &env.item.clone(),
                            format!("let {}", l.name.name),
                            &t.ty,
                        );
                    }
                    env.bind(&l.name, value);
                    if is_last {
                        // The help below tells the user to return it; do not also call it unused.
                        if let Some(b) = env.vars.get_mut(&l.name.name) {
                            b.used = true;
                        }
                        self.report(
                            Diagnostic::error(
                                "N2018",
                                format!("this {what} ends with a `let`; it must end with the value it returns"),
                                l.span,
                                "the last statement binds a name but returns nothing",
                            )
                            .with_help(format!("add a last line with the output, such as `{}`", l.name.name)),
                        );
                    }
                }
                Stmt::Expr(e) => {
                    let value = self.eval(e, env);
                    if !is_last {
                        self.report(
                            Diagnostic::error(
                                "N2018",
                                "only the last line of a body may be a bare expression",
                                e.span,
                                "this value is computed and then dropped",
                            )
                            .with_help("bind it with `let name = ...` or remove it"),
                        );
                    }
                    last = Some((value, e.span));
                }
                Stmt::Error(span) => {
                    // A `let` that did not parse still binds its name, so later lines do not
                    // report it as unknown.
                    if let Some(name) = let_name(self.text(*span)) {
                        let ident = Ident {
                            name: name.to_string(),
                            span: *span,
                        };
                        env.bind(&ident, Value::Error);
                        env.vars.get_mut(name).expect("just bound").used = true;
                    }
                    // Inputs may have been used by the broken line: do not call them unused.
                    for b in env.vars.values_mut() {
                        b.used = true;
                    }
                }
            }
        }
        if body.stmts.is_empty() {
            self.report(
                Diagnostic::error(
                    "N2018",
                    format!("this {what} has an empty body"),
                    body.span,
                    "nothing is returned",
                )
                .with_help("write the expression it returns, such as `x |> linear(10)`"),
            );
        }
        last
    }

    /// Compare a body's result with the declared output type.
    fn check_output(
        &mut self,
        result: Option<(Value, Span)>,
        declared: Option<&TensorType>,
        declared_ast: Option<&netc_grammar::TensorType>,
    ) -> Option<TensorType> {
        let (value, span) = result?;
        let ty = match value {
            Value::Tensor(t) => t.ty,
            Value::Error => return None,
            other => {
                self.report(Diagnostic::error(
                    "N3005",
                    format!("a body must return a tensor, found {}", other.describe()),
                    span,
                    "returned here",
                ));
                return None;
            }
        };
        if let (Some(want), Some(ast)) = (declared, declared_ast)
            && (want.dtype != ty.dtype || want.dims != ty.dims)
        {
            self.report(
                Diagnostic::error(
                    "N3005",
                    format!("the body returns {ty}, but the declared output is {want}"),
                    span,
                    format!("this is {ty}"),
                )
                .with_label(ast.span, format!("declared as {want}")),
            );
        }
        Some(ty)
    }

    fn warn_unused(&mut self, env: &Env, inputs: &[Input]) {
        let mut unused: Vec<(&String, &Binding)> =
            env.vars.iter().filter(|(_, b)| !b.used).collect();
        unused.sort_by_key(|(_, b)| b.span.start);
        for (name, b) in unused {
            if name.starts_with('_') {
                continue;
            }
            let is_input = inputs.iter().any(|i| &i.name.name == name);
            let what = if is_input { "input" } else { "binding" };
            self.report(
                Diagnostic::warning(
                    "N2014",
                    format!("unused {what} `{name}`"),
                    b.span,
                    "never used",
                )
                .with_help(format!(
                    "remove it, or prefix it with `_` (`_{name}`) if that is intended"
                )),
            );
        }
    }

    /// Resolve a written tensor type. In input position (`inputs`), unknown names in the shape
    /// become symbolic dimensions bound by the caller; elsewhere they must already be known.
    pub fn declared_type(
        &mut self,
        ty: &netc_grammar::TensorType,
        env: &mut Env,
        inputs: bool,
    ) -> Option<TensorType> {
        let mut dims = Vec::new();
        let mut ok = true;
        for d in &ty.dims {
            if inputs
                && let ExprKind::Name(n) = &d.kind
                && !env.vars.contains_key(&n.name)
                && !matches!(self.defs.get(&n.name), Some(Def::Const(_)))
            {
                env.symbols.insert(n.name.clone());
            }
            match self.eval(d, env) {
                Value::Int(v) if v >= 0 => dims.push(Dim::known(v)),
                Value::Dim(dim) => dims.push(dim),
                Value::Error => ok = false,
                other => {
                    ok = false;
                    self.report(Diagnostic::error(
                        "N2008",
                        format!(
                            "a dimension must be a non-negative integer, found {}",
                            other.describe()
                        ),
                        d.span,
                        "not a dimension",
                    ));
                }
            }
        }
        ok.then(|| TensorType::new(ty.dtype, dims))
    }

    pub fn record_shape(&mut self, span: Span, item: &str, what: String, ty: &TensorType) {
        self.analysis.shapes.push(ShapeEntry {
            span,
            item: item.to_string(),
            what,
            ty: ty.clone(),
        });
    }

    /// Two inputs or hyper-parameters with one name.
    fn check_duplicate_inputs(&mut self, inputs: &[Input], hparams: &[HParam]) {
        let names = hparams
            .iter()
            .map(|h| &h.name)
            .chain(inputs.iter().map(|i| &i.name));
        let mut seen: Vec<&Ident> = Vec::new();
        for name in names {
            if let Some(first) = seen.iter().find(|f| f.name == name.name) {
                let first = first.span;
                self.report(
                    Diagnostic::error(
                        "N2003",
                        format!("`{}` is declared twice", name.name),
                        name.span,
                        "declared again here",
                    )
                    .with_label(first, "first declared here")
                    .with_help("every input and hyper-parameter needs its own name"),
                );
            } else {
                seen.push(name);
            }
        }
    }

    /// Checks that a block's signature is well formed, even if the block is never used.
    fn check_block_signature(&mut self, b: &BlockItem) {
        self.check_duplicate_inputs(&b.inputs, &b.hparams);
        for h in &b.hparams {
            let Some(default) = &h.default else { continue };
            let mut env = Env::new(format!("block {}", b.name.name), None);
            let value = self.eval(default, &mut env);
            if !hparam_accepts(&h.ty.name, &value) && !matches!(value, Value::Error) {
                self.report(
                    Diagnostic::error(
                        "N2008",
                        format!(
                            "the default of `{}` must be {}, found {}",
                            h.name.name,
                            hparam_noun(&h.ty.name),
                            value.describe()
                        ),
                        default.span,
                        "wrong type of default",
                    )
                    .with_label(h.ty.span, format!("declared `{}`", h.ty.name)),
                );
            }
        }
        for h in &b.hparams {
            if !matches!(h.ty.name.as_str(), "int" | "float" | "bool" | "string") {
                let hint = suggest::closest(&h.ty.name, ["int", "float", "bool", "string"]);
                let mut d = Diagnostic::error(
                    "N2015",
                    format!("unknown hyper-parameter type `{}`", h.ty.name),
                    h.ty.span,
                    "expected `int`, `float`, `bool` or `string`",
                );
                if let Some(s) = hint {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.report(d);
            }
        }
    }

    /// Names visible in `env`, for suggestions.
    pub fn visible_names(&self, env: &Env) -> Vec<String> {
        let mut names: Vec<String> = env.vars.keys().cloned().collect();
        names.extend(self.defs.keys().cloned());
        names.extend(crate::builtins::all().iter().map(|b| b.name.to_string()));
        names.sort();
        names
    }

    pub fn instantiation_depth_exceeded(&self) -> bool {
        self.instantiations.len() + self.in_progress.len() > MAX_INSTANTIATION_DEPTH
    }
}
