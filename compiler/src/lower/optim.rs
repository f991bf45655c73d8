//! Optimizers as ops in the step graph, with their step-dependent factors computed on the host.
//!
//! Each parameter's update is a handful of elementwise nodes; the learning rate and Adam's bias
//! corrections are scalar inputs, so a learning-rate schedule never recompiles the step.
//! The formulas are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`), so a step matches it.

use netc_grammar::Span;

use crate::builtins::BoundArgs;
use crate::ir::{BinaryOp, Graph, IrError, NodeId, Op, Role, Type, UnaryOp};

/// An optimizer with its hyper-parameters, read from a checked `sgd(...)`/`adam(...)` spec.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    /// `g += wd * p; buf = momentum * buf + g; g = nesterov ? g + momentum * buf : buf;
    /// p -= lr * g` (no momentum: `p -= lr * g`).
    Sgd {
        lr: f64,
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
    },
    /// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²;
    /// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`; with `decoupled` (AdamW)
    /// `p *= 1 - lr * wd` first, otherwise (Adam) `g += wd * p`.
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
    },
}

impl Optimizer {
    /// The optimizer a checked spec describes.
    pub fn from_spec(name: &str, args: &BoundArgs) -> Option<Optimizer> {
        let betas = |args: &BoundArgs| match args.get("betas") {
            crate::types::Value::Tuple(items) if items.len() == 2 => (
                items[0].as_f64().unwrap_or(0.9),
                items[1].as_f64().unwrap_or(0.999),
            ),
            _ => (0.9, 0.999),
        };
        match name {
            "sgd" => Some(Optimizer::Sgd {
                lr: args.float("lr"),
                momentum: args.float("momentum"),
                nesterov: args.bool("nesterov"),
                weight_decay: args.float("weight_decay"),
            }),
            "adam" | "adamw" => {
                let (beta1, beta2) = betas(args);
                Some(Optimizer::Adam {
                    lr: args.float("lr"),
                    beta1,
                    beta2,
                    eps: args.float("eps"),
                    weight_decay: args.float("weight_decay"),
                    decoupled: name == "adamw",
                })
            }
            _ => None,
        }
    }

    pub fn base_lr(&self) -> f64 {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => *lr,
        }
    }

    /// Names of the scalar inputs the update reads, relative to the optimizer's prefix.
    pub fn scalar_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { .. } => &["lr"],
            Optimizer::Adam {
                decoupled: false, ..
            } => &["step_size", "inv_sqrt_bc2"],
            Optimizer::Adam {
                decoupled: true, ..
            } => &["step_size", "inv_sqrt_bc2", "decay"],
        }
    }

    /// Values of the scalar inputs for step `t` (counted from 1) at learning rate `lr` (the base
    /// rate after the schedule), in the order of [`Optimizer::scalar_names`].
    pub fn scalars(&self, t: u64, lr: f64) -> Vec<f64> {
        match self {
            Optimizer::Sgd { .. } => vec![lr],
            Optimizer::Adam {
                beta1,
                beta2,
                weight_decay,
                decoupled,
                ..
            } => {
                let t = t.min(i32::MAX as u64) as i32;
                let bc1 = 1.0 - beta1.powi(t);
                let bc2 = 1.0 - beta2.powi(t);
                let mut v = vec![lr / bc1, 1.0 / bc2.sqrt()];
                if *decoupled {
                    v.push(1.0 - lr * weight_decay);
                }
                v
            }
        }
    }

    /// Names of the per-parameter state tensors (`momentum_buffer`, `exp_avg`, `exp_avg_sq`).
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { momentum, .. } if *momentum == 0.0 => &[],
            Optimizer::Sgd { .. } => &["momentum_buffer"],
            Optimizer::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// One trained parameter: its name, its value node and its gradient node.
pub struct Trained<'a> {
    pub name: &'a str,
    pub param: NodeId,
    pub grad: NodeId,
}

/// Add the update of every parameter to `graph`: scalar inputs `{prefix}.{scalar}`, state inputs
/// `{param}.{state}` (role `State`), and outputs that replace the parameter and its state.
pub fn emit_updates(
    graph: &mut Graph,
    optimizer: &Optimizer,
    prefix: &str,
    params: &[Trained],
    span: Span,
) -> Result<(), IrError> {
    let scalars: Vec<NodeId> = optimizer
        .scalar_names()
        .iter()
        .map(|s| {
            graph.input(
                &format!("{prefix}.{s}"),
                Role::Scalar,
                Type::f32(vec![]),
                span,
            )
        })
        .collect();
    for p in params {
        let ty = graph.ty(p.param).clone();
        let mut e = Emit {
            graph: &mut *graph,
            ty: ty.clone(),
            span,
        };
        let splat =
            |e: &mut Emit, s: NodeId| e.graph.add(Op::Broadcast, &[s], Some(e.ty.clone()), e.span);
        let state = |e: &mut Emit, state: &str| {
            let name = format!("{}.{state}", p.name);
            (
                e.graph.input(&name, Role::State, e.ty.clone(), e.span),
                name,
            )
        };
        match *optimizer {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
                ..
            } => {
                let lr = splat(&mut e, scalars[0])?;
                let mut g = p.grad;
                if weight_decay != 0.0 {
                    let wd = e.scale(p.param, weight_decay)?;
                    g = e.bin(BinaryOp::Add, g, wd)?;
                }
                if momentum != 0.0 {
                    let (buf, buf_name) = state(&mut e, "momentum_buffer");
                    let decayed = e.scale(buf, momentum)?;
                    let new_buf = e.bin(BinaryOp::Add, decayed, g)?;
                    e.graph.set_update(&buf_name, new_buf, &buf_name);
                    g = if nesterov {
                        let ahead = e.scale(new_buf, momentum)?;
                        e.bin(BinaryOp::Add, g, ahead)?
                    } else {
                        new_buf
                    };
                }
                let step = e.bin(BinaryOp::Mul, lr, g)?;
                let new = e.bin(BinaryOp::Sub, p.param, step)?;
                e.graph.set_update(p.name, new, p.name);
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
                ..
            } => {
                let step_size = splat(&mut e, scalars[0])?;
                let inv_sqrt_bc2 = splat(&mut e, scalars[1])?;
                let mut param = p.param;
                let mut g = p.grad;
                if weight_decay != 0.0 {
                    if decoupled {
                        let decay = splat(&mut e, scalars[2])?;
                        param = e.bin(BinaryOp::Mul, param, decay)?;
                    } else {
                        let wd = e.scale(param, weight_decay)?;
                        g = e.bin(BinaryOp::Add, g, wd)?;
                    }
                }
                let (m, m_name) = state(&mut e, "exp_avg");
                let (v, v_name) = state(&mut e, "exp_avg_sq");
                let m_old = e.scale(m, beta1)?;
                let g_part = e.scale(g, 1.0 - beta1)?;
                let m_new = e.bin(BinaryOp::Add, m_old, g_part)?;
                let gg = e.bin(BinaryOp::Mul, g, g)?;
                let v_old = e.scale(v, beta2)?;
                let gg_part = e.scale(gg, 1.0 - beta2)?;
                let v_new = e.bin(BinaryOp::Add, v_old, gg_part)?;
                let root = e
                    .graph
                    .add(Op::Unary(UnaryOp::Sqrt), &[v_new], None, span)?;
                let corrected = e.bin(BinaryOp::Mul, root, inv_sqrt_bc2)?;
                let eps = e.constant(eps)?;
                let denom = e.bin(BinaryOp::Add, corrected, eps)?;
                let ratio = e.bin(BinaryOp::Div, m_new, denom)?;
                let step = e.bin(BinaryOp::Mul, step_size, ratio)?;
                let new = e.bin(BinaryOp::Sub, param, step)?;
                e.graph.set_update(&m_name, m_new, &m_name);
                e.graph.set_update(&v_name, v_new, &v_name);
                e.graph.set_update(p.name, new, p.name);
            }
        }
    }
    Ok(())
}

/// Small helper for building elementwise expressions of one parameter's type.
struct Emit<'g> {
    graph: &'g mut Graph,
    ty: Type,
    span: Span,
}

impl Emit<'_> {
    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.graph.add(Op::Binary(op), &[a, b], None, self.span)
    }

    fn constant(&mut self, value: f64) -> Result<NodeId, IrError> {
        self.graph
            .add(Op::Fill { value }, &[], Some(self.ty.clone()), self.span)
    }

    fn scale(&mut self, x: NodeId, factor: f64) -> Result<NodeId, IrError> {
        let c = self.constant(factor)?;
        self.bin(BinaryOp::Mul, x, c)
    }
}
