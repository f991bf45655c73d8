//! The table of built-in layers, functions, losses, optimizers, schedules, metrics and data
//! sources: their signatures, documentation and shape rules, in one place.
//!
//! The checker, the language reference, the editor server (hover, completion) and later the IR
//! lowering all read this table; nothing else lists what a built-in accepts. Each family lives in
//! its own file; [`all`] concatenates them.

mod activation;
mod attention;
mod conv;
mod data;
mod dense;
mod loss;
mod metric;
mod norm;
mod optim;
mod recurrent;
mod schedule;
mod settings;
mod tensor_ops;

use std::fmt;
use std::sync::OnceLock;

use netc_grammar::Span;

use crate::dim::{Dim, DimError};
use crate::types::{TensorType, Value};

/// What a built-in is, which decides where it may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Has parameters; writing it without its input gives a layer value (`let enc = linear(64)`).
    Layer,
    /// A parameter-free function of tensors (`relu`, `mean`, `concat`); also usable as a stage.
    Function,
    Loss,
    Optimizer,
    Schedule,
    Metric,
    /// A data file format (`csv`, `idx`, `cifar10`, ...), used as `source` of a `data` item.
    Source,
    /// A per-sample transform of a data field (`scale`, `normalize`).
    Transform,
    /// Builds a value: `class(10)`, `normal([B, 100])`.
    Constructor,
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Layer => "layer",
            Kind::Function => "function",
            Kind::Loss => "loss",
            Kind::Optimizer => "optimizer",
            Kind::Schedule => "schedule",
            Kind::Metric => "metric",
            Kind::Source => "data source",
            Kind::Transform => "transform",
            Kind::Constructor => "constructor",
        }
    }
}

/// The type an argument must have. The binder checks it before a shape rule runs, so rules can
/// read arguments without re-validating them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// Any integer (may be negative: axes).
    Int,
    /// An integer ≥ 1 (sizes, counts). A symbolic dimension is accepted.
    Size,
    /// An integer ≥ 0 (padding).
    NonNeg,
    /// A size, or a pair `(h, w)` of sizes.
    SizeOrPair,
    /// A non-negative integer, or a pair of them.
    NonNegOrPair,
    /// A number (an integer is accepted).
    Float,
    /// A number in `[0, 1]`.
    Probability,
    /// A number > 0.
    Positive,
    Bool,
    Str,
    /// One of the listed words, written bare: `output: final`.
    Word(&'static [&'static str]),
    /// An integer axis or a tuple of them.
    Axes,
    /// A list of dimensions: `[B, 100, 1, 1]`.
    Shape,
    /// A pair of numbers in `[0, 1)`: Adam's `betas`.
    Betas,
    /// A layer value (`repeat`'s body).
    Layer,
    /// A schedule such as `cosine(warmup: 100)`.
    Schedule,
    /// A file path, or a list of paths read one after the other.
    Paths,
}

impl ParamType {
    pub fn expected(self) -> &'static str {
        match self {
            ParamType::Int => "an integer",
            ParamType::Size => "a positive integer",
            ParamType::NonNeg => "a non-negative integer",
            ParamType::SizeOrPair => "a positive integer or a pair `(h, w)`",
            ParamType::NonNegOrPair => "a non-negative integer or a pair `(h, w)`",
            ParamType::Float => "a number",
            ParamType::Probability => "a number between 0 and 1",
            ParamType::Positive => "a positive number",
            ParamType::Bool => "`true` or `false`",
            ParamType::Str => "a string",
            ParamType::Word(_) => "one of the listed words",
            ParamType::Axes => "an axis or a tuple of axes",
            ParamType::Shape => "a list of dimensions such as `[B, 100]`",
            ParamType::Betas => "a pair of numbers in [0, 1), such as `(0.9, 0.999)`",
            ParamType::Layer => "a layer",
            ParamType::Schedule => "a schedule such as `cosine(warmup: 100)`",
            ParamType::Paths => "a file path or a list of paths",
        }
    }
}

/// A default value, written once here and shown in docs and hover.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Default {
    /// The argument must be given.
    Required,
    /// The argument may be left out and has no value (`None`-like).
    Absent,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    Word(&'static str),
    /// A pair of numbers, such as Adam's `(0.9, 0.999)`.
    Pair(f64, f64),
}

impl fmt::Display for Default {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Default::Required => f.write_str("required"),
            Default::Absent => f.write_str("none"),
            Default::Int(v) => write!(f, "{v}"),
            Default::Float(v) => write!(f, "{v:?}"),
            Default::Bool(v) => write!(f, "{v}"),
            Default::Str(v) => write!(f, "{v:?}"),
            Default::Word(v) => f.write_str(v),
            Default::Pair(a, b) => write!(f, "({a:?}, {b:?})"),
        }
    }
}

/// One argument of a built-in.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: Default,
    pub doc: &'static str,
}

/// Shorthand constructor for table entries.
pub const fn param(
    name: &'static str,
    ty: ParamType,
    default: Default,
    doc: &'static str,
) -> Param {
    Param {
        name,
        ty,
        default,
        doc,
    }
}

/// A trainable parameter or a buffer created by a layer call, named relative to the call
/// (`weight`, `bias`, `running_mean`) in PyTorch's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub name: String,
    pub dims: Vec<Dim>,
    /// Buffers (batch-norm running statistics) are saved but not trained.
    pub trainable: bool,
}

impl Weight {
    pub fn trainable(name: &str, dims: Vec<Dim>) -> Self {
        Weight {
            name: name.to_string(),
            dims,
            trainable: true,
        }
    }

    pub fn buffer(name: &str, dims: Vec<Dim>) -> Self {
        Weight {
            name: name.to_string(),
            dims,
            trainable: false,
        }
    }
}

/// What a shape rule produces: the result value and the weights the call creates.
#[derive(Clone, Debug)]
pub struct Output {
    pub value: Value,
    pub weights: Vec<Weight>,
}

impl Output {
    pub fn tensor(ty: TensorType) -> Self {
        Output {
            value: Value::Tensor(crate::types::Tensor::new(ty)),
            weights: Vec::new(),
        }
    }

    /// A unit value, for built-ins whose result the checker builds itself.
    pub fn none() -> Self {
        Output {
            value: Value::Tuple(Vec::new()),
            weights: Vec::new(),
        }
    }

    pub fn with_weights(mut self, weights: Vec<Weight>) -> Self {
        self.weights = weights;
        self
    }
}

/// Which part of a call a rule error is about; the checker turns it into a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The n-th tensor input.
    Input(usize),
    /// A named argument (its value, or the call when it was defaulted).
    Param(&'static str),
    /// The call as a whole.
    Call,
}

/// A shape rule's complaint, in words a user understands.
#[derive(Clone, Debug)]
pub struct RuleError {
    /// Stable diagnostic code, such as `N3002`.
    pub code: &'static str,
    pub message: String,
    pub blame: Blame,
    pub label: String,
    pub help: Option<String>,
    /// Further labels on other parts of the call.
    pub also: Vec<(Blame, String)>,
}

impl RuleError {
    pub fn new(
        code: &'static str,
        message: impl Into<String>,
        blame: Blame,
        label: impl Into<String>,
    ) -> Self {
        RuleError {
            code,
            message: message.into(),
            blame,
            label: label.into(),
            help: None,
            also: Vec::new(),
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn also(mut self, blame: Blame, label: impl Into<String>) -> Self {
        self.also.push((blame, label.into()));
        self
    }

    /// Dimension arithmetic overflowed or divided by zero.
    pub fn dim(err: DimError, blame: Blame) -> Self {
        let what = match err {
            DimError::Overflow => "dimension too large: the arithmetic overflows",
            DimError::DivideByZero => "division by zero in a dimension",
        };
        RuleError::new("N3010", what, blame, "here")
    }
}

/// Arguments bound to a built-in's parameters, defaults filled in, in declaration order.
#[derive(Clone, Debug, Default)]
pub struct BoundArgs {
    pub values: Vec<BoundArg>,
}

#[derive(Clone, Debug)]
pub struct BoundArg {
    pub name: &'static str,
    pub value: Value,
    /// Where it was written; `None` when the default was used.
    pub span: Option<Span>,
}

impl BoundArgs {
    pub fn get(&self, name: &str) -> &Value {
        self.values
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
            .unwrap_or_else(|| panic!("shape rule asked for undeclared parameter `{name}`"))
    }

    /// Was this argument given or defaulted to a value (not [`Default::Absent`])?
    pub fn has(&self, name: &str) -> bool {
        self.values
            .iter()
            .any(|a| a.name == name && !matches!(a.value, Value::Error))
    }

    pub fn span(&self, name: &str) -> Option<Span> {
        self.values
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.span)
    }

    /// An integer or dimension argument (types were checked by the binder).
    pub fn dim(&self, name: &str) -> Dim {
        self.get(name).as_dim().unwrap_or_else(|| Dim::known(0))
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Value::Int(v) => *v,
            _ => 0,
        }
    }

    pub fn float(&self, name: &str) -> f64 {
        self.get(name).as_f64().unwrap_or(0.0)
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Value::Bool(true))
    }

    pub fn word(&self, name: &str) -> &str {
        match self.get(name) {
            Value::Word(w) => w,
            _ => "",
        }
    }

    /// A size-or-pair argument as `(h, w)`.
    pub fn pair(&self, name: &str) -> (Dim, Dim) {
        match self.get(name) {
            Value::Tuple(items) if items.len() == 2 => (
                items[0].as_dim().unwrap_or_else(|| Dim::known(0)),
                items[1].as_dim().unwrap_or_else(|| Dim::known(0)),
            ),
            v => {
                let d = v.as_dim().unwrap_or_else(|| Dim::known(0));
                (d.clone(), d)
            }
        }
    }

    /// A shape argument (`[B, 100, 1, 1]`) as dims.
    pub fn shape(&self, name: &str) -> Vec<Dim> {
        match self.get(name) {
            Value::List(items) | Value::Tuple(items) => {
                items.iter().filter_map(Value::as_dim).collect()
            }
            _ => Vec::new(),
        }
    }

    /// A paths argument as a list of strings.
    pub fn paths(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Value::Str(s) => vec![s.clone()],
            Value::List(items) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// An axes argument as a list of integers.
    pub fn axes(&self, name: &str) -> Vec<i64> {
        match self.get(name) {
            Value::Int(v) => vec![*v],
            Value::Tuple(items) | Value::List(items) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Int(i) => Some(*i),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What a shape rule sees: the tensor inputs and the bound arguments.
pub struct RuleCtx<'a> {
    pub inputs: &'a [TensorType],
    pub args: &'a BoundArgs,
}

/// A shape rule: from inputs and arguments to the output and the weights created.
pub type Rule = fn(&RuleCtx) -> Result<Output, RuleError>;

/// One built-in.
pub struct Builtin {
    pub name: &'static str,
    pub kind: Kind,
    /// One line for hover and completion.
    pub summary: &'static str,
    /// Names of the tensor inputs, in order. A name ending in `...` takes one or more tensors.
    pub inputs: &'static [&'static str],
    pub params: &'static [Param],
    /// The shape rule in notation, for the reference and hover: `[*, in] -> [*, out]`.
    pub shape_rule: &'static str,
    pub rule: Rule,
}

impl Builtin {
    pub fn is_variadic(&self) -> bool {
        self.inputs.last().is_some_and(|i| i.ends_with("..."))
    }

    /// A one-line signature: `linear(x, out, bias: bool = true)`.
    pub fn signature(&self) -> String {
        let mut parts: Vec<String> = self.inputs.iter().map(|s| s.to_string()).collect();
        for p in self.params {
            parts.push(match p.default {
                Default::Required => p.name.to_string(),
                d => format!("{}: {d}", p.name),
            });
        }
        format!("{}({})", self.name, parts.join(", "))
    }
}

/// Every built-in, in reference order.
pub fn all() -> &'static [Builtin] {
    static ALL: OnceLock<Vec<Builtin>> = OnceLock::new();
    ALL.get_or_init(|| {
        [
            dense::BUILTINS,
            conv::BUILTINS,
            norm::BUILTINS,
            recurrent::BUILTINS,
            attention::BUILTINS,
            activation::BUILTINS,
            tensor_ops::BUILTINS,
            loss::BUILTINS,
            optim::BUILTINS,
            schedule::BUILTINS,
            metric::BUILTINS,
            data::BUILTINS,
        ]
        .into_iter()
        .flat_map(|family| family.iter().map(copy_builtin))
        .collect()
    })
}

fn copy_builtin(b: &Builtin) -> Builtin {
    Builtin {
        name: b.name,
        kind: b.kind,
        summary: b.summary,
        inputs: b.inputs,
        params: b.params,
        shape_rule: b.shape_rule,
        rule: b.rule,
    }
}

/// The signature of a `data` or `train` setting that takes arguments (`split`, `checkpoint`).
pub fn setting(name: &str) -> Option<&'static Builtin> {
    settings::SETTINGS.iter().find(|b| b.name == name)
}

/// Settings signatures, for the reference documentation.
pub fn settings() -> &'static [Builtin] {
    settings::SETTINGS
}

/// The built-in with this name.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    all().iter().find(|b| b.name == name)
}

/// Rule for built-ins whose value is just their checked arguments (optimizers, schedules,
/// metrics, sources): the checker wraps the arguments into a [`Value::Spec`] and ignores the
/// output value.
pub fn spec_rule(_: &RuleCtx) -> Result<Output, RuleError> {
    Ok(Output::none())
}

/// The input must have at least `rank` dimensions.
pub fn require_rank_at_least(
    ctx: &RuleCtx,
    input: usize,
    rank: usize,
    layout: &str,
) -> Result<(), RuleError> {
    let ty = &ctx.inputs[input];
    if ty.rank() < rank {
        return Err(RuleError::new(
            "N3003",
            format!(
                "expected an input of rank {rank} or more ({layout}), found {}",
                ty.shape_text()
            ),
            Blame::Input(input),
            format!("this is {ty}"),
        ));
    }
    Ok(())
}

/// The input must have exactly `rank` dimensions.
pub fn require_rank(
    ctx: &RuleCtx,
    input: usize,
    rank: usize,
    layout: &str,
) -> Result<(), RuleError> {
    let ty = &ctx.inputs[input];
    if ty.rank() != rank {
        return Err(RuleError::new(
            "N3003",
            format!(
                "expected an input of rank {rank} ({layout}), found rank {} {}",
                ty.rank(),
                ty.shape_text()
            ),
            Blame::Input(input),
            format!("this is {ty}"),
        ));
    }
    Ok(())
}

/// The input must hold floating-point values.
pub fn require_float(ctx: &RuleCtx, input: usize) -> Result<(), RuleError> {
    let ty = &ctx.inputs[input];
    if !ty.dtype.is_float() {
        return Err(RuleError::new(
            "N3004",
            format!("expected a floating-point tensor, found {ty}"),
            Blame::Input(input),
            format!("this is {ty}"),
        )
        .help(
            "integer tensors hold class labels or token ids; an `embedding` turns ids into vectors",
        ));
    }
    Ok(())
}

/// Resolve a possibly negative axis (`-1` is the last) against the rank of input `input`, as
/// PyTorch does, so rules index dims without going out of bounds. An axis outside
/// `-rank..rank` is `N3009`, blamed on the parameter `param`.
#[allow(
    clippy::result_large_err,
    reason = "rules return `RuleError` by value; see `Rule`"
)]
pub fn resolve_axis(
    ctx: &RuleCtx,
    input: usize,
    axis: i64,
    param: &'static str,
) -> Result<usize, RuleError> {
    let ty = &ctx.inputs[input];
    let rank = i64::try_from(ty.rank()).unwrap_or(i64::MAX);
    let resolved = if axis < 0 {
        axis.checked_add(rank)
    } else {
        Some(axis)
    };
    match resolved {
        Some(a) if (0..rank).contains(&a) => Ok(usize::try_from(a).unwrap_or(0)),
        _ => {
            let valid = if rank == 0 {
                "a rank-0 tensor has no axes".to_string()
            } else {
                format!(
                    "the axes of a rank-{rank} tensor are 0 to {}, or -{rank} to -1 from the end",
                    rank - 1
                )
            };
            Err(RuleError::new(
                "N3009",
                format!("axis {axis} is out of range for {ty}"),
                Blame::Param(param),
                format!("axis {axis}"),
            )
            .also(Blame::Input(input), format!("this is {ty}"))
            .help(valid))
        }
    }
}

/// Bind arguments for a rule test the way the checker does: given values by name, defaults
/// filled in ([`Default::Absent`] and missing required ones become [`Value::Error`]).
#[cfg(test)]
pub(crate) fn bind_for_test(b: &Builtin, given: &[(&str, Value)]) -> BoundArgs {
    for (name, _) in given {
        assert!(
            b.params.iter().any(|p| p.name == *name),
            "`{}` has no parameter `{name}`",
            b.name
        );
    }
    let values = b
        .params
        .iter()
        .map(|p| {
            let value = match given.iter().find(|(n, _)| *n == p.name) {
                Some((_, v)) => v.clone(),
                None => match p.default {
                    Default::Required | Default::Absent => Value::Error,
                    Default::Int(v) => Value::Int(v),
                    Default::Float(v) => Value::Float(v),
                    Default::Bool(v) => Value::Bool(v),
                    Default::Str(v) => Value::Str(v.to_string()),
                    Default::Word(v) => Value::Word(v.to_string()),
                    Default::Pair(a, c) => Value::Tuple(vec![Value::Float(a), Value::Float(c)]),
                },
            };
            BoundArg {
                name: p.name,
                value,
                span: None,
            }
        })
        .collect();
    BoundArgs { values }
}

/// Run the rule of the built-in `name` in `family` on `inputs` with `given` arguments (tests).
#[cfg(test)]
#[allow(
    clippy::result_large_err,
    reason = "rules return `RuleError` by value; see `Rule`"
)]
pub(crate) fn run_for_test(
    family: &[Builtin],
    name: &str,
    inputs: &[TensorType],
    given: &[(&str, Value)],
) -> Result<Output, RuleError> {
    let b = family
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no built-in `{name}` in this family"));
    let args = bind_for_test(b, given);
    (b.rule)(&RuleCtx {
        inputs,
        args: &args,
    })
}

/// A tensor type for tests from a dtype and a shape written as in `.net` files: `"B, 3, 32, 32"`.
#[cfg(test)]
pub(crate) fn ty_for_test(dtype: netc_grammar::DType, shape: &str) -> TensorType {
    let dims = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map(Dim::known)
                .unwrap_or_else(|_| Dim::symbol(s))
        })
        .collect();
    TensorType::new(dtype, dims)
}

/// The result type of a rule that produced a tensor (tests).
#[cfg(test)]
pub(crate) fn out_for_test(out: &Output) -> TensorType {
    match &out.value {
        Value::Tensor(t) => t.ty.clone(),
        Value::Type(t) => t.clone(),
        other => panic!("expected a tensor or type, found {}", other.describe()),
    }
}
