//! Evaluating expressions to values: names, numbers, arithmetic with broadcasting, pipelines.

use netc_grammar::Diagnostic;
use netc_grammar::ast::*;

use super::{Checker, Def, Env};
use crate::builtins;
use crate::dim::{Dim, DimError};
use crate::suggest;
use crate::types::{Callable, LayerValue, Tensor, TensorType, Value};

impl Checker<'_> {
    pub(crate) fn eval(&mut self, e: &Expr, env: &mut Env) -> Value {
        match &e.kind {
            ExprKind::Int(v) => Value::Int(*v),
            ExprKind::Float(v) => Value::Float(*v),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Name(n) => self.lookup(n, env),
            ExprKind::Paren(inner) => self.eval(inner, env),
            ExprKind::Tuple(items) => {
                Value::Tuple(items.iter().map(|i| self.eval(i, env)).collect())
            }
            ExprKind::List(items) => Value::List(items.iter().map(|i| self.eval(i, env)).collect()),
            ExprKind::Type(t) => match self.declared_type(t, env, false) {
                Some(ty) => Value::Type(ty),
                None => Value::Error,
            },
            ExprKind::Neg(inner) => {
                let v = self.eval(inner, env);
                self.negate(v, e.span)
            }
            ExprKind::Binary(op, a, b) => {
                let va = self.eval(a, env);
                let vb = self.eval(b, env);
                self.binary(*op, va, vb, a.span, b.span, e.span)
            }
            ExprKind::Field(base, field) => self.field(base, field, env),
            ExprKind::Call(call) => self.call(call, None, env),
            ExprKind::Pipe(head, stages) => {
                let mut value = self.eval(head, env);
                // Labels about a stage's input point at the stage that produced it.
                let mut producer = head.span;
                for stage in stages {
                    value = self.apply_stage(stage, value, producer, env);
                    producer = stage.span;
                    if let Value::Tensor(t) = &value {
                        let what = self.text(stage.span).to_string();
                        self.record_shape(stage.span, &env.item.clone(), what, &t.ty);
                    }
                }
                value
            }
        }
    }

    /// Evaluate a call argument. A bare name that resolves to nothing is kept as a word
    /// (`output: final`); the binder reports it if the parameter does not take words.
    pub(crate) fn eval_arg(&mut self, e: &Expr, env: &mut Env) -> Value {
        if let ExprKind::Name(n) = &e.kind
            && !self.name_exists(&n.name, env)
        {
            return Value::Word(n.name.clone());
        }
        self.eval(e, env)
    }

    pub(crate) fn name_exists(&self, name: &str, env: &Env) -> bool {
        env.vars.contains_key(name)
            || env.symbols.contains(name)
            || self.defs.contains_key(name)
            || builtins::lookup(name).is_some()
    }

    pub(crate) fn lookup(&mut self, n: &Ident, env: &mut Env) -> Value {
        if let Some(b) = env.vars.get_mut(&n.name) {
            b.used = true;
            return b.value.clone();
        }
        if env.symbols.contains(&n.name) {
            return Value::Dim(Dim::symbol(&n.name));
        }
        match self.defs.get(&n.name) {
            Some(Def::Const(_)) => return self.const_value(&n.name),
            Some(Def::Model(_)) => return Value::Model(n.name.clone()),
            Some(Def::Data(_)) => return Value::Data(n.name.clone()),
            Some(Def::Block(_)) => {
                return Value::Layer(std::rc::Rc::new(LayerValue {
                    name: None,
                    callable: Callable::Block {
                        name: n.name.clone(),
                        hparams: Vec::new(),
                    },
                    span: n.span,
                }));
            }
            None => {}
        }
        if let Some(b) = builtins::lookup(&n.name) {
            // A built-in written without arguments: a layer, function or spec with its defaults.
            return self.call_builtin(b, &[], None, n.span, env, None);
        }
        self.unknown_name(n, env);
        Value::Error
    }

    pub(crate) fn unknown_name(&mut self, n: &Ident, env: &mut Env) {
        if env.lenient {
            return;
        }
        let names = self.visible_names(env);
        let hint = suggest::closest(&n.name, names.iter().map(String::as_str)).map(str::to_string);
        // The binding the user probably meant is not "unused": its use is misspelt.
        if let Some(b) = hint.as_ref().and_then(|h| env.vars.get_mut(h)) {
            b.used = true;
        }
        let mut d = Diagnostic::error(
            "N2001",
            format!("unknown name `{}`", n.name),
            n.span,
            "not found in this scope",
        );
        if let Some(h) = hint {
            d = d.with_help(format!("did you mean `{h}`?"));
        }
        self.report(d);
    }

    /// An unknown layer, function, block or model where one is called; when the position expects
    /// one kind of built-in (an optimizer after `with`), the message and suggestions say so.
    pub(crate) fn unknown_callable(&mut self, callee: &Ident, env: &mut Env) {
        if env.lenient {
            return;
        }
        let kind = self.expected_kind;
        let mut names: Vec<&str> = builtins::all()
            .iter()
            .filter(|b| kind.is_none_or(|k| b.kind == k))
            .map(|b| b.name)
            .collect();
        if kind.is_none() {
            names.extend(self.defs.keys().map(String::as_str));
        }
        let hint = suggest::closest(&callee.name, names).map(str::to_string);
        let (what, label) = match kind {
            Some(k) => (k.noun(), format!("not a known {}", k.noun())),
            None => (
                "layer or function",
                "not a built-in, block or model".to_string(),
            ),
        };
        let mut d = Diagnostic::error(
            "N2002",
            format!("unknown {what} `{}`", callee.name),
            callee.span,
            label,
        );
        if let Some(h) = hint {
            d = d.with_help(format!("did you mean `{h}`?"));
        }
        self.report(d);
    }

    fn negate(&mut self, v: Value, span: Span) -> Value {
        match v {
            Value::Int(i) => match i.checked_neg() {
                Some(n) => Value::Int(n),
                None => self.overflow(span),
            },
            Value::Float(f) => Value::Float(-f),
            Value::Dim(d) => match d.neg() {
                Ok(n) => Value::Dim(n),
                Err(_) => self.overflow(span),
            },
            Value::Tensor(mut t) => {
                t.node = self.emit_neg(&t, span);
                Value::Tensor(t)
            }
            Value::Error => Value::Error,
            other => {
                self.report(Diagnostic::error(
                    "N2008",
                    format!("cannot negate {}", other.describe()),
                    span,
                    "not a number or tensor",
                ));
                Value::Error
            }
        }
    }

    fn overflow(&mut self, span: Span) -> Value {
        self.report(Diagnostic::error(
            "N3010",
            "integer arithmetic overflows",
            span,
            "this overflows 64-bit integers",
        ));
        Value::Error
    }

    fn binary(&mut self, op: BinOp, a: Value, b: Value, sa: Span, sb: Span, span: Span) -> Value {
        use Value::*;
        match (a, b) {
            (Error, _) | (_, Error) => Error,
            (Int(x), Int(y)) => {
                let r = match op {
                    BinOp::Add => x.checked_add(y),
                    BinOp::Sub => x.checked_sub(y),
                    BinOp::Mul => x.checked_mul(y),
                    BinOp::Div | BinOp::Rem if y == 0 => return self.division_by_zero(sb),
                    // `1 / 16` is a number users mean as a fraction, as in most languages since
                    // Python 3; an integer result is kept when the division is exact.
                    BinOp::Div if x % y != 0 => return Float(x as f64 / y as f64),
                    BinOp::Div => x.checked_div(y),
                    BinOp::Rem => x.checked_rem(y),
                };
                r.map(Int).unwrap_or_else(|| self.overflow(span))
            }
            (x @ (Int(_) | Float(_)), y @ (Int(_) | Float(_))) => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                Float(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Rem => x % y,
                })
            }
            (x @ (Int(_) | Dim(_)), y @ (Int(_) | Dim(_))) => {
                let (x, y) = (
                    x.as_dim().unwrap_or_else(|| crate::dim::Dim::known(0)),
                    y.as_dim().unwrap_or_else(|| crate::dim::Dim::known(0)),
                );
                let r = match op {
                    BinOp::Add => x.add(&y),
                    BinOp::Sub => x.sub(&y),
                    BinOp::Mul => x.mul(&y),
                    BinOp::Div => x.div(&y),
                    BinOp::Rem => x.rem(&y),
                };
                match r {
                    Ok(d) => d.as_known().map(Int).unwrap_or(Dim(d)),
                    Err(DimError::DivideByZero) => self.division_by_zero(sb),
                    Err(DimError::Overflow) => self.overflow(span),
                }
            }
            (Tensor(x), Tensor(y)) => self.broadcast(op, x, y, sa, sb, span),
            (Tensor(t), n @ (Int(_) | Float(_))) => self.tensor_number(op, t, &n, false, sa, span),
            (n @ (Int(_) | Float(_)), Tensor(t)) => self.tensor_number(op, t, &n, true, sb, span),
            (x, y) => {
                self.report(
                    Diagnostic::error(
                        "N2008",
                        format!(
                            "`{}` cannot combine {} and {}",
                            op.symbol(),
                            x.describe(),
                            y.describe()
                        ),
                        span,
                        "unsupported operands",
                    )
                    .with_label(sa, format!("this is {}", x.describe()))
                    .with_label(sb, format!("this is {}", y.describe())),
                );
                Error
            }
        }
    }

    /// Elementwise arithmetic between a tensor and a number (`x * 0.5`, `1 - p`).
    fn tensor_number(
        &mut self,
        op: BinOp,
        t: Tensor,
        n: &Value,
        number_first: bool,
        tensor_span: Span,
        span: Span,
    ) -> Value {
        if !t.ty.dtype.is_float() {
            return self.float_needed(&t.ty, tensor_span, op);
        }
        if op == BinOp::Rem {
            return self.rem_on_tensor(span);
        }
        let mut t = t;
        t.node = self.emit_scalar(op, &t, n.as_f64().unwrap_or(0.0), number_first, span);
        Value::Tensor(t)
    }

    fn rem_on_tensor(&mut self, span: Span) -> Value {
        self.report(
            Diagnostic::error(
                "N3004",
                "`%` is defined for integers, not tensors",
                span,
                "remainder of a tensor",
            )
            .with_help("use `%` on sizes and constants only"),
        );
        Value::Error
    }

    fn division_by_zero(&mut self, span: Span) -> Value {
        self.report(Diagnostic::error(
            "N3010",
            "division by zero",
            span,
            "this is zero",
        ));
        Value::Error
    }

    fn float_needed(&mut self, ty: &TensorType, span: Span, op: BinOp) -> Value {
        self.report(Diagnostic::error(
            "N3004",
            format!("`{}` needs floating-point tensors, found {ty}", op.symbol()),
            span,
            format!("this is {ty}"),
        ));
        Value::Error
    }

    /// Elementwise arithmetic with NumPy broadcasting: shapes align at the right; each pair of
    /// dims must be equal or one of them 1.
    fn broadcast(
        &mut self,
        op: BinOp,
        x: Tensor,
        y: Tensor,
        sa: Span,
        sb: Span,
        span: Span,
    ) -> Value {
        if x.ty.dtype != y.ty.dtype {
            self.report(
                Diagnostic::error(
                    "N3004",
                    format!(
                        "`{}` mixes element types {} and {}",
                        op.symbol(),
                        x.ty.dtype,
                        y.ty.dtype
                    ),
                    span,
                    "mixed element types",
                )
                .with_label(sa, format!("this is {}", x.ty))
                .with_label(sb, format!("this is {}", y.ty)),
            );
            return Value::Error;
        }
        if !x.ty.dtype.is_float() {
            return self.float_needed(&x.ty, sa, op);
        }
        let rank = x.ty.rank().max(y.ty.rank());
        let mut dims = Vec::with_capacity(rank);
        for i in 0..rank {
            let dx = (i + x.ty.rank()).checked_sub(rank).map(|j| &x.ty.dims[j]);
            let dy = (i + y.ty.rank()).checked_sub(rank).map(|j| &y.ty.dims[j]);
            let one = Dim::known(1);
            let d = match (dx, dy) {
                (Some(a), Some(b)) if a == b => a.clone(),
                (Some(a), Some(b)) if *b == one => a.clone(),
                (Some(a), Some(b)) if *a == one => b.clone(),
                (Some(a), None) => a.clone(),
                (None, Some(b)) => b.clone(),
                _ => {
                    self.report(
                        Diagnostic::error(
                            "N3001",
                            format!(
                                "shape mismatch in `{}`: {} vs {}",
                                op.symbol(),
                                x.ty.shape_text(),
                                y.ty.shape_text()
                            ),
                            sa,
                            format!("this is {}", x.ty),
                        )
                        .with_label(sb, format!("this is {}", y.ty))
                        .with_help(
                            "elementwise arithmetic needs equal shapes (or dims of 1 to broadcast)",
                        ),
                    );
                    return Value::Error;
                }
            };
            dims.push(d);
        }
        if op == BinOp::Rem {
            return self.rem_on_tensor(span);
        }
        let mut depends_on = x.depends_on;
        depends_on.extend(y.depends_on);
        let ty = TensorType::new(x.ty.dtype, dims);
        let node = self.emit_binary(op, x.node, y.node, &ty, span);
        Value::Tensor(Tensor {
            ty,
            depends_on,
            node,
        })
    }

    fn field(&mut self, base: &Expr, field: &Ident, env: &mut Env) -> Value {
        match self.eval(base, env) {
            Value::Data(name) => self.data_field(&name, field),
            Value::Error => Value::Error,
            other => {
                self.report(Diagnostic::error(
                    "N2013",
                    format!("{} has no field `{}`", other.describe(), field.name),
                    field.span,
                    "unknown field",
                ));
                Value::Error
            }
        }
    }

    /// One stage of a pipeline: the stage receives `input` as its first tensor argument.
    fn apply_stage(
        &mut self,
        stage: &Expr,
        input: Value,
        input_span: Span,
        env: &mut Env,
    ) -> Value {
        match &stage.kind {
            ExprKind::Call(call) => self.call(call, Some((input, input_span)), env),
            ExprKind::Name(n) if !self.name_exists(&n.name, env) => {
                self.unknown_callable(n, env);
                Value::Error
            }
            ExprKind::Name(_) | ExprKind::Field(..) => {
                let f = self.eval(stage, env);
                self.apply_value(f, input, input_span, stage.span, env)
            }
            _ => {
                self.report(
                    Diagnostic::error(
                        "N2009",
                        "a pipeline stage must be a layer or function",
                        stage.span,
                        "this is not a layer",
                    )
                    .with_help("write a layer such as `relu` or `linear(10)` after `|>`"),
                );
                Value::Error
            }
        }
    }

    /// Apply a layer-like value (layer, block, model) to one input.
    pub(crate) fn apply_value(
        &mut self,
        f: Value,
        input: Value,
        input_span: Span,
        span: Span,
        env: &mut Env,
    ) -> Value {
        match f {
            Value::Layer(layer) => self.apply_layer(&layer, vec![(input, input_span)], span, env),
            Value::Model(name) => self.call_model(&name, vec![(input, input_span)], span),
            Value::Error => Value::Error,
            other => {
                self.report(Diagnostic::error(
                    "N2009",
                    format!("{} cannot be applied to a tensor", other.describe()),
                    span,
                    "not a layer",
                ));
                Value::Error
            }
        }
    }
}

/// `TensorType` for a scalar promoted from a number (loss targets such as `bce(p, 1)`).
pub(crate) fn scalar_f32() -> TensorType {
    TensorType::f32(Vec::new())
}
