//! Calls: binding arguments to built-ins, applying layers, instantiating blocks, calling models,
//! and unifying argument types with declared input types.

use std::collections::BTreeMap;
use std::rc::Rc;

use netc_grammar::Diagnostic;
use netc_grammar::ast::*;

use super::{Checker, Def, Env};
use crate::builtins::{
    self, Blame, BoundArg, BoundArgs, Builtin, Default, Kind, ParamType, RuleCtx,
};
use crate::dim::Dim;
use crate::suggest;
use crate::types::{Callable, LayerValue, Spec, Tensor, TensorType, Value};

/// Most copies `repeat` may make: each copy is checked and gets its own parameters.
const MAX_REPEAT: i64 = 1024;

/// An evaluated argument: its name if written `name: value`, the value, and where it stands.
pub(crate) struct ArgValue {
    pub name: Option<Ident>,
    pub value: Value,
    pub span: Span,
}

impl Checker<'_> {
    /// `callee(args)`, with `piped` as the first input when the call is a pipeline stage.
    pub(crate) fn call(
        &mut self,
        call: &Call,
        piped: Option<(Value, Span)>,
        env: &mut Env,
    ) -> Value {
        // `let pos = position_embedding(16, 32)`: a layer without inputs runs where it is written,
        // so it takes the binding's name here (nested calls in its arguments do not).
        let let_name = self.let_name.take();
        // Arguments are ordinary expressions whatever the call's position expects.
        let expected = self.expected_kind.take();
        let args: Vec<ArgValue> = call
            .args
            .iter()
            .map(|a| ArgValue {
                name: a.name.clone(),
                value: self.eval_arg(&a.value, env),
                span: a.value.span,
            })
            .collect();
        let name = &call.callee.name;
        if let Some(b) = env.vars.get_mut(name) {
            b.used = true;
            let f = b.value.clone();
            let mut inputs: Vec<(Value, Span)> = piped.into_iter().collect();
            inputs.extend(args.into_iter().map(|a| (a.value, a.span)));
            return match f {
                Value::Layer(layer) => self.apply_layer(&layer, inputs, call.span, env),
                Value::Error => Value::Error,
                other => {
                    self.report(Diagnostic::error(
                        "N2009",
                        format!(
                            "`{name}` is {}, not something that can be called",
                            other.describe()
                        ),
                        call.callee.span,
                        "not callable",
                    ));
                    Value::Error
                }
            };
        }
        match self.defs.get(name) {
            Some(Def::Model(_)) => {
                let mut inputs: Vec<(Value, Span)> = piped.into_iter().collect();
                for a in args {
                    if let Some(n) = &a.name {
                        self.report(Diagnostic::error(
                            "N2004",
                            format!("model `{name}` takes its inputs by position"),
                            n.span,
                            "named argument",
                        ));
                    }
                    let value = match a.value {
                        // A misspelt data field or binding: say so rather than "not a tensor".
                        Value::Word(w) => {
                            self.unknown_name(
                                &Ident {
                                    name: w,
                                    span: a.span,
                                },
                                env,
                            );
                            Value::Error
                        }
                        other => other,
                    };
                    inputs.push((value, a.span));
                }
                return self.call_model(name, inputs, call.span);
            }
            Some(Def::Block(_)) => return self.call_block(call, args, piped, env),
            Some(Def::Const(_) | Def::Data(_)) => {
                self.report(Diagnostic::error(
                    "N2009",
                    format!("`{name}` is not a layer or function"),
                    call.callee.span,
                    "cannot be called",
                ));
                return Value::Error;
            }
            None => {}
        }
        let Some(builtin) = builtins::lookup(name) else {
            self.expected_kind = expected;
            self.unknown_callable(&call.callee, env);
            return Value::Error;
        };
        if builtin.name == "repeat" {
            return self.repeat(call, args, piped, env);
        }
        let instance = let_name.filter(|_| builtin.inputs.is_empty());
        self.call_builtin(builtin, &args, piped, call.span, env, instance.as_deref())
    }

    /// Bind arguments to a built-in and run its shape rule.
    pub(crate) fn call_builtin(
        &mut self,
        b: &'static Builtin,
        args: &[ArgValue],
        piped: Option<(Value, Span)>,
        span: Span,
        env: &mut Env,
        instance: Option<&str>,
    ) -> Value {
        // Tensor inputs: the piped value, then leading positional tensors.
        let mut inputs: Vec<(Value, Span)> = piped.into_iter().collect();
        let mut rest = args;
        let wants_more = |n: usize| b.is_variadic() || n < b.inputs.len();
        while let Some((first, tail)) = rest.split_first() {
            let is_input = first.name.is_none()
                && wants_more(inputs.len())
                && match &first.value {
                    Value::Tensor(_) | Value::Error => true,
                    Value::Type(_) => b.kind == Kind::Transform,
                    // Loss targets may be plain numbers: `bce(p, 1)`.
                    Value::Int(_) | Value::Float(_) => b.kind == Kind::Loss && !inputs.is_empty(),
                    _ => false,
                };
            if !is_input {
                break;
            }
            inputs.push((first.value.clone(), first.span));
            rest = tail;
        }
        let bound = match self.bind_args(b, rest, span) {
            Some(bound) => bound,
            None => return Value::Error,
        };
        if inputs.iter().any(|(v, _)| matches!(v, Value::Error)) {
            return Value::Error;
        }
        let min_inputs = b.inputs.len();
        let spec_kind = matches!(
            b.kind,
            Kind::Optimizer | Kind::Schedule | Kind::Metric | Kind::Source | Kind::Constructor
        ) && b.inputs.is_empty();
        if spec_kind {
            return self.run_spec(b, bound, span);
        }
        if inputs.is_empty()
            && !b.inputs.is_empty()
            && matches!(b.kind, Kind::Layer | Kind::Function | Kind::Transform)
        {
            return Value::Layer(Rc::new(LayerValue {
                name: None,
                callable: Callable::Builtin {
                    name: b.name,
                    args: bound,
                },
                span,
            }));
        }
        if inputs.len() < min_inputs {
            let missing = b.inputs[inputs.len()].trim_end_matches("...");
            self.report(
                Diagnostic::error(
                    "N2005",
                    format!("`{}` is missing its input `{missing}`", b.name),
                    span,
                    format!(
                        "expected {} input(s), found {}",
                        b.inputs.len(),
                        inputs.len()
                    ),
                )
                .with_help(format!("signature: {}", b.signature())),
            );
            return Value::Error;
        }
        if !b.is_variadic() && inputs.len() > b.inputs.len() {
            let (_, extra) = &inputs[b.inputs.len()];
            self.report(
                Diagnostic::error(
                    "N2006",
                    format!(
                        "`{}` takes {} input(s), found {}",
                        b.name,
                        b.inputs.len(),
                        inputs.len()
                    ),
                    *extra,
                    "extra input",
                )
                .with_help(format!("signature: {}", b.signature())),
            );
            return Value::Error;
        }
        self.run_rule(b, &bound, inputs, span, env, instance)
    }

    /// Built-ins that make a spec value (optimizers, schedules, ...) run their rule for range
    /// checks and become a [`Value::Spec`].
    fn run_spec(&mut self, b: &'static Builtin, bound: BoundArgs, span: Span) -> Value {
        let ctx = RuleCtx {
            inputs: &[],
            args: &bound,
        };
        match (b.rule)(&ctx) {
            Ok(out) => match out.value {
                Value::Tuple(items) if items.is_empty() => Value::Spec(Spec {
                    name: b.name,
                    args: bound,
                    span,
                }),
                // A constructor of a tensor (`normal([B, 100])`) is lowered like any call.
                Value::Tensor(mut t) => {
                    if self.emit.is_some() {
                        t.node = self.emit_builtin(b, &bound, &[], &out.weights, &[], &t.ty, span);
                    }
                    Value::Tensor(t)
                }
                other => other,
            },
            Err(e) => {
                self.report_rule_error(e, b, &bound, &[], span);
                Value::Error
            }
        }
    }

    fn run_rule(
        &mut self,
        b: &'static Builtin,
        bound: &BoundArgs,
        inputs: Vec<(Value, Span)>,
        span: Span,
        env: &mut Env,
        instance: Option<&str>,
    ) -> Value {
        let mut types = Vec::new();
        let mut depends_on = std::collections::BTreeSet::new();
        for (v, s) in &inputs {
            match v {
                Value::Tensor(t) => {
                    types.push(t.ty.clone());
                    depends_on.extend(t.depends_on.iter().cloned());
                }
                Value::Type(t) if b.kind == Kind::Transform => types.push(t.clone()),
                Value::Int(_) | Value::Float(_) => types.push(super::expr::scalar_f32()),
                Value::Error => return Value::Error,
                other => {
                    self.report(
                        Diagnostic::error(
                            "N2008",
                            format!(
                                "`{}` expects a tensor input, found {}",
                                b.name,
                                other.describe()
                            ),
                            *s,
                            "not a tensor",
                        )
                        .with_help(format!("signature: {}", b.signature())),
                    );
                    return Value::Error;
                }
            }
        }
        let ctx = RuleCtx {
            inputs: &types,
            args: bound,
        };
        match (b.rule)(&ctx) {
            Ok(out) => {
                let names = self.add_weights(b.name, &out.weights, env, instance);
                if instance.is_some() && !self.same_shapes_as_first_use(&names, &out.weights, span)
                {
                    return Value::Error;
                }
                if !out.weights.is_empty()
                    && let Some(owner) = &env.owner
                {
                    depends_on.insert(owner.clone());
                }
                match out.value {
                    Value::Tensor(mut t) => {
                        if matches!(b.name, "stop_gradient" | "detach") {
                            t.depends_on.clear();
                        } else {
                            t.depends_on.extend(depends_on);
                        }
                        if self.emit.is_some() {
                            t.node = self.emit_builtin(
                                b,
                                bound,
                                &inputs,
                                &out.weights,
                                &names,
                                &t.ty,
                                span,
                            );
                        }
                        Value::Tensor(t)
                    }
                    other => other,
                }
            }
            Err(e) => {
                let spans: Vec<Span> = inputs.iter().map(|(_, s)| *s).collect();
                self.report_rule_error(e, b, bound, &spans, span);
                Value::Error
            }
        }
    }

    fn report_rule_error(
        &mut self,
        e: builtins::RuleError,
        b: &Builtin,
        bound: &BoundArgs,
        input_spans: &[Span],
        call_span: Span,
    ) {
        let locate = |blame: Blame| match blame {
            Blame::Input(i) => input_spans.get(i).copied().unwrap_or(call_span),
            Blame::Param(p) => bound.span(p).unwrap_or(call_span),
            Blame::Call => call_span,
        };
        let mut d = Diagnostic::error(
            e.code,
            format!("{}: {}", b.name, e.message),
            locate(e.blame),
            e.label,
        );
        for (blame, label) in e.also {
            d = d.with_label(locate(blame), label);
        }
        if let Some(h) = e.help {
            d = d.with_help(h);
        }
        self.report(d);
    }

    /// A shared layer (bound with `let`, applied several times) has one set of weights, so every
    /// use must give them the same shapes.
    fn same_shapes_as_first_use(
        &mut self,
        names: &[String],
        weights: &[builtins::Weight],
        span: Span,
    ) -> bool {
        for (name, w) in names.iter().zip(weights) {
            match self.shared_weights.get(name) {
                Some((dims, first)) if *dims != w.dims => {
                    let (first, dims) = (*first, dims.clone());
                    let show = |d: &[Dim]| {
                        format!(
                            "[{}]",
                            d.iter().map(Dim::to_string).collect::<Vec<_>>().join(", ")
                        )
                    };
                    self.report(
                        Diagnostic::error(
                            "N3002",
                            format!("this shared layer's `{}` would be {} here but is {} from its first use", w.name, show(&w.dims), show(&dims)),
                            span,
                            format!("needs `{}` {}", w.name, show(&w.dims)),
                        )
                        .with_label(first, format!("first used here, making it {}", show(&dims)))
                        .with_help("a layer bound with `let` shares its weights between uses; give each use its own layer if the inputs differ"),
                    );
                    return false;
                }
                Some(_) => {}
                None => {
                    self.shared_weights
                        .insert(name.clone(), (w.dims.clone(), span));
                }
            }
        }
        true
    }

    /// Record the weights a layer call creates under its model and return their full names:
    /// `Model.<path>.<instance>.<weight>`, where the instance is the `let` name of a bound layer or
    /// `<layer>_<n>` for the n-th inline one of its kind in this model or block.
    fn add_weights(
        &mut self,
        layer: &str,
        weights: &[builtins::Weight],
        env: &mut Env,
        instance: Option<&str>,
    ) -> Vec<String> {
        if weights.is_empty() {
            return Vec::new();
        }
        let owner = env.owner.clone().unwrap_or_default();
        let instance = match instance {
            Some(name) => name.to_string(),
            None => env.next_instance(layer),
        };
        let mut prefix = owner.clone();
        for part in env.path.iter().chain(std::iter::once(&instance)) {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(part);
        }
        let list = self.weights.entry(owner).or_default();
        let mut names = Vec::new();
        for w in weights {
            let relative = prefix
                .split_once('.')
                .map_or(prefix.as_str(), |(_, rest)| rest);
            let name = format!("{relative}.{}", w.name);
            // A shared layer applied again creates no new weights.
            if !list.iter().any(|(n, _)| *n == name) {
                list.push((name, w.clone()));
            }
            names.push(format!("{prefix}.{}", w.name));
        }
        names
    }

    /// Match arguments to a built-in's parameters: positional in order, then by name; check
    /// each value's type; fill defaults. Reports and returns `None` on any mistake.
    pub(crate) fn bind_args(
        &mut self,
        b: &Builtin,
        args: &[ArgValue],
        call_span: Span,
    ) -> Option<BoundArgs> {
        let mut slots: Vec<Option<(Value, Span)>> = vec![None; b.params.len()];
        let mut ok = true;
        let mut positional = 0;
        let mut suggested: Vec<&'static str> = Vec::new();
        for a in args {
            let index = match &a.name {
                None => {
                    if positional >= b.params.len() {
                        self.report(
                            Diagnostic::error(
                                "N2006",
                                format!("too many arguments to `{}`", b.name),
                                a.span,
                                "unexpected argument",
                            )
                            .with_help(format!("signature: {}", b.signature())),
                        );
                        ok = false;
                        continue;
                    }
                    positional += 1;
                    positional - 1
                }
                Some(n) => match b.params.iter().position(|p| p.name == n.name) {
                    Some(i) => i,
                    None => {
                        let hint = suggest::closest(&n.name, b.params.iter().map(|p| p.name));
                        suggested.extend(hint);
                        let mut d = Diagnostic::error(
                            "N2004",
                            format!("`{}` has no argument `{}`", b.name, n.name),
                            n.span,
                            "unknown argument",
                        );
                        d = match hint {
                            Some(h) => d.with_help(format!(
                                "did you mean `{h}`? signature: {}",
                                b.signature()
                            )),
                            None => d.with_help(format!("signature: {}", b.signature())),
                        };
                        self.report(d);
                        ok = false;
                        continue;
                    }
                },
            };
            if let Some((_, first)) = &slots[index] {
                let first = *first;
                self.report(
                    Diagnostic::error(
                        "N2007",
                        format!(
                            "argument `{}` of `{}` is given twice",
                            b.params[index].name, b.name
                        ),
                        a.span,
                        "given again here",
                    )
                    .with_label(first, "first given here"),
                );
                ok = false;
                continue;
            }
            slots[index] = Some((a.value.clone(), a.span));
        }
        let mut values = Vec::new();
        for (p, slot) in b.params.iter().zip(slots) {
            match slot {
                Some((v, s)) => {
                    let v = self.check_param_type(b, p, v, s);
                    if matches!(v, Value::Error) {
                        ok = false;
                    }
                    values.push(BoundArg {
                        name: p.name,
                        value: v,
                        span: Some(s),
                    });
                }
                None => {
                    let value = match p.default {
                        // A misspelt name for it was already reported with a suggestion.
                        Default::Required if suggested.contains(&p.name) => {
                            ok = false;
                            Value::Error
                        }
                        Default::Required => {
                            self.report(
                                Diagnostic::error(
                                    "N2005",
                                    format!(
                                        "`{}` needs the argument `{}` ({})",
                                        b.name, p.name, p.doc
                                    ),
                                    call_span,
                                    format!("`{}` missing", p.name),
                                )
                                .with_help(format!("signature: {}", b.signature())),
                            );
                            ok = false;
                            Value::Error
                        }
                        Default::Absent => Value::Error,
                        Default::Int(v) => Value::Int(v),
                        Default::Float(v) => Value::Float(v),
                        Default::Bool(v) => Value::Bool(v),
                        Default::Str(v) => Value::Str(v.to_string()),
                        Default::Word(v) => Value::Word(v.to_string()),
                        Default::Pair(a, c) => Value::Tuple(vec![Value::Float(a), Value::Float(c)]),
                    };
                    values.push(BoundArg {
                        name: p.name,
                        value,
                        span: None,
                    });
                }
            }
        }
        ok.then_some(BoundArgs { values })
    }

    fn check_param_type(
        &mut self,
        b: &Builtin,
        p: &builtins::Param,
        v: Value,
        span: Span,
    ) -> Value {
        use ParamType as T;
        let size = |v: &Value| match v {
            Value::Int(i) => *i >= 1,
            Value::Dim(_) => true,
            _ => false,
        };
        let non_neg = |v: &Value| matches!(v, Value::Int(i) if *i >= 0);
        let pair_of = |v: &Value, f: &dyn Fn(&Value) -> bool| match v {
            Value::Tuple(items) => items.len() == 2 && items.iter().all(f),
            other => f(other),
        };
        let number = |v: &Value| v.as_f64().is_some_and(f64::is_finite);
        if contains_error(&v) {
            return Value::Error;
        }
        let fits = match (p.ty, &v) {
            (T::Int, Value::Int(_)) => true,
            (T::Size, v) => size(v),
            (T::NonNeg, v) => non_neg(v),
            (T::SizeOrPair, v) => pair_of(v, &size),
            (T::NonNegOrPair, v) => pair_of(v, &non_neg),
            (T::Float, v) => number(v),
            (T::Probability, v) => v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)),
            (T::Positive, v) => v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite()),
            (T::Bool, Value::Bool(_)) => true,
            (T::Str, Value::Str(_)) => true,
            (T::Word(words), Value::Word(w)) => words.contains(&w.as_str()),
            (T::Axes, Value::Int(_)) => true,
            (T::Axes, Value::Tuple(items)) => items.iter().all(|i| matches!(i, Value::Int(_))),
            (T::Shape, Value::List(items)) => items.iter().all(size),
            (T::Betas, Value::Tuple(items)) => {
                items.len() == 2
                    && items
                        .iter()
                        .all(|i| i.as_f64().is_some_and(|x| (0.0..1.0).contains(&x)))
            }
            (T::Layer, Value::Layer(_) | Value::Model(_)) => true,
            (T::Schedule, Value::Spec(s)) => {
                builtins::lookup(s.name).is_some_and(|b| b.kind == Kind::Schedule)
            }
            (T::Paths, Value::Str(_)) => true,
            (T::Paths, Value::List(items)) => {
                !items.is_empty() && items.iter().all(|i| matches!(i, Value::Str(_)))
            }
            _ => false,
        };
        if fits {
            return v;
        }
        if let Value::Word(w) = &v
            && !matches!(p.ty, T::Word(_))
        {
            let ident = Ident {
                name: w.clone(),
                span,
            };
            let mut env = Env::new(String::new(), None);
            self.unknown_name(&ident, &mut env);
            return Value::Error;
        }
        let expected = match p.ty {
            T::Word(words) => {
                let list: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!("one of {}", list.join(", "))
            }
            other => other.expected().to_string(),
        };
        // A setting with one argument (`epochs 0`) is named by its key, not its argument.
        let subject = if builtins::setting(b.name).is_some() && b.params.len() == 1 {
            format!("`{}`", b.name)
        } else {
            format!("argument `{}` of `{}`", p.name, b.name)
        };
        let (span, found) = match (p.ty, &v) {
            // Point at the element of the pair that is out of range.
            (T::Betas, Value::Tuple(items)) if items.len() == 2 => items
                .iter()
                .zip(tuple_element_spans(self.src, span))
                .find(|(i, _)| !i.as_f64().is_some_and(|x| (0.0..1.0).contains(&x)))
                .map(|(i, s)| (s, format!("{} is not in [0, 1)", i.describe())))
                .unwrap_or((span, format!("found {}", v.describe()))),
            _ => (span, format!("found {}", v.describe())),
        };
        let mut d = Diagnostic::error(
            "N2008",
            format!("{subject} must be {expected}"),
            span,
            found,
        );
        if let (T::Word(words), Value::Word(w)) = (p.ty, &v)
            && let Some(h) = suggest::closest(w, words.iter().copied())
        {
            d = d.with_help(format!("did you mean `{h}`?"));
        }
        self.report(d);
        Value::Error
    }

    /// `repeat(n, layer)`: apply `n` fresh copies of the layer in sequence.
    fn repeat(
        &mut self,
        call: &Call,
        args: Vec<ArgValue>,
        piped: Option<(Value, Span)>,
        env: &mut Env,
    ) -> Value {
        let b = builtins::lookup("repeat").expect("repeat is a built-in");
        let mut args = args;
        let mut input = piped;
        if input.is_none()
            && args
                .first()
                .is_some_and(|a| matches!(a.value, Value::Tensor(_)) && a.name.is_none())
        {
            let a = args.remove(0);
            input = Some((a.value, a.span));
        }
        let Some(bound) = self.bind_args(b, &args, call.span) else {
            return Value::Error;
        };
        let count = match bound.get("count").as_dim().and_then(|d| d.as_known()) {
            Some(n) if (1..=MAX_REPEAT).contains(&n) => n as usize,
            _ => {
                let span = bound.span("count").unwrap_or(call.span);
                self.report(
                    Diagnostic::error("N4010", "`repeat` needs a known count", span, "not a known count between 1 and 1024")
                        .with_help("write the number of copies, such as `repeat(2, Encoder(128, heads: 4, ff: 512))`"),
                );
                return Value::Error;
            }
        };
        let Value::Layer(layer) = bound.get("layer").clone() else {
            return Value::Error;
        };
        let value = Value::Layer(Rc::new(LayerValue {
            name: None,
            callable: Callable::Repeat(count, layer),
            span: call.span,
        }));
        match input {
            Some((x, xs)) => self.apply_value(value, x, xs, call.span, env),
            None => value,
        }
    }

    /// Apply a layer value to tensor inputs.
    pub(crate) fn apply_layer(
        &mut self,
        layer: &LayerValue,
        inputs: Vec<(Value, Span)>,
        span: Span,
        env: &mut Env,
    ) -> Value {
        match &layer.callable {
            Callable::Builtin { name, args } => {
                let b = builtins::lookup(name).expect("layer values name built-ins");
                if inputs.len() < b.inputs.len() && !b.is_variadic() {
                    self.report(Diagnostic::error(
                        "N2005",
                        format!(
                            "`{name}` needs {} input(s), found {}",
                            b.inputs.len(),
                            inputs.len()
                        ),
                        span,
                        "missing input",
                    ));
                    return Value::Error;
                }
                self.run_rule(b, args, inputs, span, env, layer.name.as_deref())
            }
            Callable::Model(m) => self.call_model(m, inputs, span),
            Callable::Block { name, hparams } => {
                let instance = layer
                    .name
                    .clone()
                    .unwrap_or_else(|| env.next_instance(name));
                self.instantiate_block(name, hparams.clone(), inputs, span, instance, env)
            }
            Callable::Repeat(n, inner) => {
                // Copies are named `repeat_<k>.<i>`, as an `nn.Sequential` of copies would be.
                let group = layer
                    .name
                    .clone()
                    .unwrap_or_else(|| env.next_instance("repeat"));
                env.path.push(group);
                let mut inputs = inputs;
                for i in 0..*n {
                    let copy = LayerValue {
                        callable: inner.callable.clone(),
                        span: inner.span,
                        name: Some(i.to_string()),
                    };
                    let out = self.apply_layer(&copy, inputs, span, env);
                    if matches!(out, Value::Error) {
                        env.path.pop();
                        return out;
                    }
                    inputs = vec![(out, span)];
                }
                env.path.pop();
                inputs.pop().map(|(v, _)| v).unwrap_or(Value::Error)
            }
        }
    }

    /// `Block(hparams...)` or, with tensors first or piped, `Block(x, hparams...)`.
    fn call_block(
        &mut self,
        call: &Call,
        args: Vec<ArgValue>,
        piped: Option<(Value, Span)>,
        env: &mut Env,
    ) -> Value {
        let name = call.callee.name.clone();
        let Some(Def::Block(block)) = self.defs.get(&name) else {
            return Value::Error;
        };
        let block: &BlockItem = block;
        let mut inputs: Vec<(Value, Span)> = piped.into_iter().collect();
        let mut rest = args.into_iter().peekable();
        while let Some(a) = rest.peek() {
            if a.name.is_none()
                && matches!(a.value, Value::Tensor(_))
                && inputs.len() < block.inputs.len()
            {
                let a = rest.next().expect("peeked");
                inputs.push((a.value, a.span));
            } else {
                break;
            }
        }
        let mut slots: Vec<Option<Value>> = vec![None; block.hparams.len()];
        let mut positional = 0;
        let mut ok = true;
        for a in rest {
            let index = match &a.name {
                None => {
                    positional += 1;
                    positional - 1
                }
                Some(n) => match block.hparams.iter().position(|h| h.name.name == n.name) {
                    Some(i) => i,
                    None => {
                        let hint = suggest::closest(
                            &n.name,
                            block.hparams.iter().map(|h| h.name.name.as_str()),
                        );
                        let mut d = Diagnostic::error(
                            "N2004",
                            format!("block `{name}` has no hyper-parameter `{}`", n.name),
                            n.span,
                            "unknown argument",
                        );
                        if let Some(h) = hint {
                            d = d.with_help(format!("did you mean `{h}`?"));
                        }
                        self.report(d);
                        ok = false;
                        continue;
                    }
                },
            };
            if index >= slots.len() {
                self.report(
                    Diagnostic::error(
                        "N2006",
                        format!("too many arguments to block `{name}`"),
                        a.span,
                        "unexpected argument",
                    )
                    .with_label(block.name.span, format!("`{name}` is defined here")),
                );
                ok = false;
                continue;
            }
            let h = &block.hparams[index];
            let fits = match &a.value {
                Value::Error => false,
                value if super::hparam_accepts(&h.ty.name, value) => true,
                value => {
                    self.report(
                        Diagnostic::error(
                            "N2008",
                            format!(
                                "hyper-parameter `{}` of `{name}` must be {}, found {}",
                                h.name.name,
                                super::hparam_noun(&h.ty.name),
                                value.describe()
                            ),
                            a.span,
                            format!("found {}", value.describe()),
                        )
                        .with_label(h.span, format!("declared `{}`", h.ty.name)),
                    );
                    false
                }
            };
            ok &= fits;
            slots[index] = Some(a.value);
        }
        let mut hparams = Vec::new();
        for (h, slot) in block.hparams.iter().zip(slots) {
            let value = match slot {
                Some(v) => v,
                None => match &h.default {
                    Some(d) => {
                        let mut denv = Env::new(format!("block {name}"), None);
                        self.eval(d, &mut denv)
                    }
                    None => {
                        self.report(
                            Diagnostic::error(
                                "N2005",
                                format!(
                                    "block `{name}` needs the hyper-parameter `{}`",
                                    h.name.name
                                ),
                                call.span,
                                format!("`{}` missing", h.name.name),
                            )
                            .with_label(h.span, "declared here"),
                        );
                        ok = false;
                        Value::Error
                    }
                },
            };
            hparams.push((h.name.name.clone(), value));
        }
        if !ok {
            return Value::Error;
        }
        if inputs.is_empty() {
            return Value::Layer(Rc::new(LayerValue {
                name: None,
                callable: Callable::Block { name, hparams },
                span: call.span,
            }));
        }
        let instance = env.next_instance(&name);
        self.instantiate_block(&name, hparams, inputs, call.span, instance, env)
    }

    /// Check a block's body with its hyper-parameters bound and its inputs set to the actual
    /// argument types. Weights created inside belong to the caller's model.
    fn instantiate_block(
        &mut self,
        name: &str,
        hparams: Vec<(String, Value)>,
        inputs: Vec<(Value, Span)>,
        span: Span,
        instance: String,
        env: &mut Env,
    ) -> Value {
        let Some(Def::Block(block)) = self.defs.get(name) else {
            return Value::Error;
        };
        let block: &BlockItem = block;
        if self.instantiations.iter().any(|(n, _)| n == name) || self.instantiation_depth_exceeded()
        {
            self.report(Diagnostic::error(
                "N2016",
                format!("block `{name}` uses itself"),
                span,
                "recursive instantiation",
            ));
            return Value::Error;
        }
        if inputs.len() != block.inputs.len() {
            self.report(
                Diagnostic::error(
                    "N2017",
                    format!(
                        "block `{name}` takes {} input(s), found {}",
                        block.inputs.len(),
                        inputs.len()
                    ),
                    span,
                    "wrong number of inputs",
                )
                .with_label(block.name.span, "defined here"),
            );
            return Value::Error;
        }
        let mut benv = Env::new(format!("block {name}"), env.owner.clone());
        benv.path = env.path.clone();
        benv.path.push(instance);
        for (h, (_, value)) in block.hparams.iter().zip(&hparams) {
            benv.bind(&h.name, value.clone());
            benv.vars.get_mut(&h.name.name).expect("just bound").used = true;
        }
        let mut bindings = BTreeMap::new();
        let mut depends_on = std::collections::BTreeSet::new();
        for (input, (value, vspan)) in block.inputs.iter().zip(&inputs) {
            let Value::Tensor(actual) = value else {
                if !matches!(value, Value::Error) {
                    self.report(Diagnostic::error(
                        "N2008",
                        format!(
                            "input `{}` of block `{name}` must be a tensor, found {}",
                            input.name.name,
                            value.describe()
                        ),
                        *vspan,
                        "not a tensor",
                    ));
                }
                return Value::Error;
            };
            depends_on.extend(actual.depends_on.iter().cloned());
            let Some(declared) = self.declared_type(&input.ty, &mut benv, true) else {
                return Value::Error;
            };
            if let Err(d) = unify(&declared, &actual.ty, &mut bindings) {
                self.report(
                    Diagnostic::error(
                        "N3008",
                        format!(
                            "input `{}` of block `{name}` expects {}, found {}",
                            input.name.name, declared, actual.ty
                        ),
                        *vspan,
                        format!("this is {}", actual.ty),
                    )
                    .with_label(input.ty.span, format!("declared as {declared}"))
                    .with_help(d),
                );
                return Value::Error;
            }
            benv.bind(&input.name, value.clone());
        }
        for (sym, d) in &bindings {
            benv.symbols.remove(sym);
            if !benv.vars.contains_key(sym) {
                let ident = Ident {
                    name: sym.clone(),
                    span: block.name.span,
                };
                benv.bind(
                    &ident,
                    d.as_known()
                        .map(Value::Int)
                        .unwrap_or(Value::Dim(d.clone())),
                );
                benv.vars.get_mut(sym).expect("just bound").used = true;
            }
        }
        self.instantiations.push((name.to_string(), span));
        let declared_out = block
            .output
            .as_ref()
            .and_then(|t| self.declared_type(t, &mut benv, false));
        let result = self.check_body(&block.body, &mut benv, "block");
        let node = match &result {
            Some((Value::Tensor(t), _)) => t.node,
            _ => None,
        };
        let out = self.check_output(result, declared_out.as_ref(), block.output.as_ref());
        self.instantiations.pop();
        match out {
            Some(ty) => {
                let mut t = Tensor::new(ty);
                t.node = node;
                t.depends_on = depends_on;
                if let Some(o) = &env.owner {
                    t.depends_on.insert(o.clone());
                }
                Value::Tensor(t)
            }
            None => Value::Error,
        }
    }

    /// `Model(inputs...)`: unify arguments with the model's declared inputs and return its
    /// output type with the symbols bound.
    pub(crate) fn call_model(
        &mut self,
        name: &str,
        inputs: Vec<(Value, Span)>,
        span: Span,
    ) -> Value {
        let Some(info) = self.model_info(name) else {
            return Value::Error;
        };
        let Some(Def::Model(m)) = self.defs.get(name) else {
            return Value::Error;
        };
        let m: &ModelItem = m;
        if inputs.len() != info.inputs.len() {
            self.report(
                Diagnostic::error(
                    "N2017",
                    format!(
                        "model `{name}` takes {} input(s), found {}",
                        info.inputs.len(),
                        inputs.len()
                    ),
                    span,
                    "wrong number of inputs",
                )
                .with_label(m.name.span, "defined here"),
            );
            return Value::Error;
        }
        let mut bindings = BTreeMap::new();
        let mut depends_on = std::collections::BTreeSet::new();
        for ((input_name, declared), ((value, vspan), input)) in
            info.inputs.iter().zip(inputs.iter().zip(&m.inputs))
        {
            let actual = match value {
                Value::Tensor(t) => t,
                Value::Error => return Value::Error,
                other => {
                    self.report(Diagnostic::error(
                        "N2008",
                        format!(
                            "input `{input_name}` of model `{name}` must be a tensor, found {}",
                            other.describe()
                        ),
                        *vspan,
                        "not a tensor",
                    ));
                    return Value::Error;
                }
            };
            depends_on.extend(actual.depends_on.iter().cloned());
            if let Err(why) = unify(declared, &actual.ty, &mut bindings) {
                self.report(
                    Diagnostic::error(
                        "N3008",
                        format!(
                            "input `{input_name}` of model `{name}` expects {declared}, found {}",
                            actual.ty
                        ),
                        *vspan,
                        format!("this is {}", actual.ty),
                    )
                    .with_label(input.ty.span, format!("`{name}` declares {declared}"))
                    .with_help(why),
                );
                return Value::Error;
            }
        }
        if self.emit.is_some() {
            return self.expand_model(m, &inputs, &bindings, depends_on);
        }
        let Some(output) = info.output else {
            return Value::Error;
        };
        let dims: Result<Vec<Dim>, _> = output
            .dims
            .iter()
            .map(|d| d.substitute(&bindings))
            .collect();
        let Ok(dims) = dims else { return Value::Error };
        depends_on.insert(name.to_string());
        Value::Tensor(Tensor {
            ty: TensorType::new(output.dtype, dims),
            node: None,
            depends_on,
        })
    }
}

/// Does a value hold an error anywhere (a list with one bad element)? Then it was reported.
fn contains_error(v: &Value) -> bool {
    match v {
        Value::Error => true,
        Value::Tuple(items) | Value::List(items) => items.iter().any(contains_error),
        _ => false,
    }
}

/// Spans of the two elements of a written pair `(a, b)`, found in the source text.
fn tuple_element_spans(src: &str, span: Span) -> Vec<Span> {
    let text = &src[span.start..span.end];
    let inner_start = text.find('(').map_or(0, |i| i + 1);
    let inner_end = text.rfind(')').unwrap_or(text.len());
    let mut spans = Vec::new();
    let mut at = span.start + inner_start;
    for part in text[inner_start..inner_end].split(',') {
        let lead = part.len() - part.trim_start().len();
        spans.push(Span::new(at + lead, at + lead + part.trim().len()));
        at += part.len() + 1;
    }
    spans
}

/// Match an actual type against a declared one, binding the declared type's symbols.
/// Returns a sentence explaining the first disagreement.
pub(crate) fn unify(
    declared: &TensorType,
    actual: &TensorType,
    bindings: &mut BTreeMap<String, Dim>,
) -> Result<(), String> {
    if declared.dtype != actual.dtype {
        return Err(format!(
            "the element types differ: {} vs {}",
            declared.dtype, actual.dtype
        ));
    }
    if declared.rank() != actual.rank() {
        return Err(format!(
            "the ranks differ: {} vs {}",
            declared.rank(),
            actual.rank()
        ));
    }
    for (i, (d, a)) in declared.dims.iter().zip(&actual.dims).enumerate() {
        let d = d
            .substitute(bindings)
            .map_err(|_| "dimension arithmetic overflows".to_string())?;
        if let Some(sym) = d.as_symbol()
            && !bindings.contains_key(sym)
        {
            bindings.insert(sym.to_string(), a.clone());
            continue;
        }
        if d != *a {
            return Err(format!("dimension {i} differs: expected {d}, found {a}"));
        }
    }
    Ok(())
}
