//! The checker's lowering hooks: when it runs with an [`Emitter`](crate::lower::Emitter), each
//! tensor it computes also gets an IR node. Nothing here reports diagnostics: lowering runs only
//! on programs that checked clean, and an internal failure is recorded on the emitter.

use std::collections::{BTreeMap, BTreeSet};

use netc_grammar::Span;
use netc_grammar::ast::{BinOp, ModelItem};

use super::{Checker, Env};
use crate::builtins::{BoundArgs, Builtin, Weight};
use crate::dim::Dim;
use crate::ir::{BinaryOp, NodeId, Op, UnaryOp};
use crate::lower::{init, layers};
use crate::types::{Tensor, TensorType, Value};

impl Checker<'_> {
    /// Lower one built-in call: parameter nodes for its weights, then its IR expansion.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn emit_builtin(
        &mut self,
        b: &Builtin,
        bound: &BoundArgs,
        inputs: &[(Value, Span)],
        weights: &[Weight],
        names: &[String],
        out: &TensorType,
        span: Span,
    ) -> Option<NodeId> {
        let em = self.emit.as_mut()?;
        if em.error.is_some() {
            return None;
        }
        let mut nodes = Vec::with_capacity(inputs.len());
        for (v, _) in inputs {
            let node = match v {
                Value::Tensor(t) => match t.node {
                    Some(n) => n,
                    None => {
                        let message = format!("an input of `{}` was not lowered", b.name);
                        return em.fail(crate::ir::IrError { message, span });
                    }
                },
                Value::Int(_) | Value::Float(_) => {
                    let value = v.as_f64().unwrap_or(0.0);
                    match em.add(
                        Op::Fill { value },
                        &[],
                        Some(crate::ir::Type::f32(vec![])),
                        span,
                    ) {
                        Ok(n) => n,
                        Err(e) => return em.fail(e),
                    }
                }
                _ => return None,
            };
            nodes.push(node);
        }
        let mut params = Vec::with_capacity(weights.len());
        let fan_in = weights
            .first()
            .map(|w| known_dims(&w.dims))
            .map(|d| init::weight_fan_in(&d));
        for (w, name) in weights.iter().zip(names) {
            let ty = match em.ir_type(&TensorType::f32(w.dims.clone()), span) {
                Ok(t) => t,
                Err(e) => return em.fail(e),
            };
            let init = if b.name == "param" {
                init::param_init(bound.word("init"), &ty.shape)
            } else {
                init::default_init(b.name, &w.name, &ty.shape, fan_in)
            };
            params.push(em.param(name, ty, init, w.trainable, span));
        }
        let out = match em.ir_type(out, span) {
            Ok(t) => t,
            Err(e) => return em.fail(e),
        };
        let ctx = layers::LowerCtx {
            inputs: nodes,
            args: bound,
            weights: params,
            weight_names: names,
            out,
            span,
        };
        match layers::lower(em, b.name, &ctx) {
            Ok(n) => Some(n),
            Err(e) => em.fail(e),
        }
    }

    /// A model call while lowering: its body is expanded with the actual inputs. Parameter
    /// names depend only on the model, so every call of a model shares its parameters.
    pub(crate) fn expand_model(
        &mut self,
        m: &ModelItem,
        inputs: &[(Value, Span)],
        bindings: &BTreeMap<String, Dim>,
        mut depends_on: BTreeSet<String>,
    ) -> Value {
        let name = m.name.name.clone();
        let mut env = Env::new(format!("model {name}"), Some(name.clone()));
        for (input, (value, _)) in m.inputs.iter().zip(inputs) {
            env.bind(&input.name, value.clone());
        }
        for (sym, d) in bindings {
            if !env.vars.contains_key(sym) {
                let value = d
                    .as_known()
                    .map(Value::Int)
                    .unwrap_or(Value::Dim(d.clone()));
                env.bind(
                    &netc_grammar::Ident {
                        name: sym.clone(),
                        span: m.name.span,
                    },
                    value,
                );
            }
        }
        match self.check_body(&m.body, &mut env, "model") {
            Some((Value::Tensor(mut t), _)) => {
                depends_on.insert(name);
                t.depends_on.extend(depends_on);
                Value::Tensor(t)
            }
            _ => Value::Error,
        }
    }

    /// `a op b` on tensors of the checked result type `out` (operands are broadcast first).
    pub(crate) fn emit_binary(
        &mut self,
        op: BinOp,
        a: Option<NodeId>,
        b: Option<NodeId>,
        out: &TensorType,
        span: Span,
    ) -> Option<NodeId> {
        let em = self.emit.as_mut()?;
        let (a, b) = (a?, b?);
        let ty = match em.ir_type(out, span) {
            Ok(t) => t,
            Err(e) => return em.fail(e),
        };
        match layers::binary(em, binary_op(op), a, b, &ty, span) {
            Ok(n) => Some(n),
            Err(e) => em.fail(e),
        }
    }

    /// `t op number` (or `number op t` when `number_first`).
    pub(crate) fn emit_scalar(
        &mut self,
        op: BinOp,
        t: &Tensor,
        number: f64,
        number_first: bool,
        span: Span,
    ) -> Option<NodeId> {
        let em = self.emit.as_mut()?;
        let x = t.node?;
        let ty = em.graph.ty(x).clone();
        let result = em
            .add(Op::Fill { value: number }, &[], Some(ty), span)
            .and_then(|c| {
                let (l, r) = if number_first { (c, x) } else { (x, c) };
                em.add(Op::Binary(binary_op(op)), &[l, r], None, span)
            });
        match result {
            Ok(n) => Some(n),
            Err(e) => em.fail(e),
        }
    }

    pub(crate) fn emit_neg(&mut self, t: &Tensor, span: Span) -> Option<NodeId> {
        let em = self.emit.as_mut()?;
        match em.add(Op::Unary(UnaryOp::Neg), &[t.node?], None, span) {
            Ok(n) => Some(n),
            Err(e) => em.fail(e),
        }
    }

    /// A batch field as a tensor; while lowering, a data input of the graph.
    pub(crate) fn data_tensor(&mut self, name: &str, ty: TensorType, span: Span) -> Tensor {
        let mut t = Tensor::new(ty);
        if let Some(em) = self.emit.as_mut() {
            match em.ir_type(&t.ty, span) {
                Ok(ir_ty) => t.node = Some(em.data(name, ir_ty, span)),
                Err(e) => {
                    em.fail::<()>(e);
                }
            }
        }
        t
    }
}

fn binary_op(op: BinOp) -> BinaryOp {
    match op {
        BinOp::Add => BinaryOp::Add,
        BinOp::Sub => BinaryOp::Sub,
        BinOp::Mul => BinaryOp::Mul,
        // `%` on tensors is rejected by the checker before lowering.
        BinOp::Div | BinOp::Rem => BinaryOp::Div,
    }
}

fn known_dims(dims: &[Dim]) -> Vec<usize> {
    dims.iter()
        .map(|d| d.as_known().unwrap_or(0).max(0) as usize)
        .collect()
}
