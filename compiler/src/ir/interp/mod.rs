//! The reference interpreter of the graph IR: the ground truth that every backend and every
//! optimization pass is tested against.
//!
//! It is deliberately plain: dense row-major tensors, one simple loop nest per op, no unsafe
//! code, no parallelism. Speed does not matter here; being obviously correct does. Each op's
//! meaning is the doc comment on its [`Op`] variant; the code below follows those comments
//! literally (scatter forms stay scatters, gathers stay gathers).
//!
//! Float data is held as `f64` so the same code serves two purposes (see [`Precision`]): f32 runs
//! that round after every op and accumulate in f32, to compare against float32 backends, and
//! exact-ish f64 runs for finite-difference gradient checks.

mod conv;
mod kernels;
mod layout;
mod math;
pub mod random;
mod scan;
#[cfg(test)]
mod tests;
mod value;

use std::collections::{HashMap, HashSet};
use std::fmt;

use netc_grammar::Span;

use super::op;
use super::{DType, Graph, Node, NodeId, Op, Type};

pub use math::erf;
pub use random::splitmix64;
pub use value::{Data, Precision, Value};

/// Why a graph could not be evaluated: a missing or mistyped input, an out-of-range id, or a
/// malformed graph. `span` is the span of the node at fault, so the message can point at the
/// user's source.
#[derive(Clone, Debug, PartialEq)]
pub struct InterpError {
    /// What went wrong, for the user (names the input or id at fault).
    pub message: String,
    /// The span of the node at fault (inside a scan body: the body's node).
    pub span: Span,
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at {}..{})",
            self.message, self.span.start, self.span.end
        )
    }
}

impl std::error::Error for InterpError {}

/// Evaluate `graph` on `inputs` (keyed by the `Input` nodes' names) and return each named output.
///
/// Only nodes that some output depends on are evaluated, in topological order, so inputs that
/// no output needs may be left out. Every input that is needed must be given with exactly its
/// node's type. Errors carry the span of the node at fault; `run` never panics on a well-formed
/// [`Graph`] (one built with [`Graph::add`]).
pub fn run(
    graph: &Graph,
    inputs: &HashMap<String, Value>,
    precision: Precision,
) -> Result<HashMap<String, Value>, InterpError> {
    let values = run_ordered(graph, inputs, precision)?;
    Ok(graph
        .outputs
        .iter()
        .map(|o| o.name.clone())
        .zip(values)
        .collect())
}

/// [`run`], returning the outputs in the order of `graph.outputs` (a scan body's outputs are
/// positional).
fn run_ordered(
    graph: &Graph,
    inputs: &HashMap<String, Value>,
    precision: Precision,
) -> Result<Vec<Value>, InterpError> {
    let results = evaluate(graph, inputs, precision, |_, _| true)?;
    let mut outputs = Vec::with_capacity(graph.outputs.len());
    for output in &graph.outputs {
        let span = graph
            .graph
            .node_weight(output.node)
            .map_or_else(Span::default, |n| n.span);
        outputs.push(single(&results, output.node, span)?.clone());
    }
    Ok(outputs)
}

/// The first node, in evaluation order, whose result holds a NaN or an infinity: the op where
/// a numerical problem starts (`netc train --check-numerics`). `None` when every value is finite.
pub fn first_non_finite(
    graph: &Graph,
    inputs: &HashMap<String, Value>,
    precision: Precision,
) -> Result<Option<NodeId>, InterpError> {
    let mut found = None;
    evaluate(graph, inputs, precision, |id, values| {
        let bad = values
            .iter()
            .any(|v| matches!(&v.data, Data::F(xs) if xs.iter().any(|x| !x.is_finite())));
        if bad {
            found = Some(id);
        }
        !bad
    })?;
    Ok(found)
}

/// Evaluate every node an output needs, in topological order, calling `visit` with each
/// node's results; evaluation stops early when `visit` returns false.
fn evaluate(
    graph: &Graph,
    inputs: &HashMap<String, Value>,
    precision: Precision,
    mut visit: impl FnMut(NodeId, &[Value]) -> bool,
) -> Result<HashMap<NodeId, Vec<Value>>, InterpError> {
    let needed = needed_nodes(graph);
    // Multi-result nodes (scans) hold several values; every other node holds one.
    let mut results: HashMap<NodeId, Vec<Value>> = HashMap::new();
    for id in graph.topo_order() {
        if !needed.contains(&id) {
            continue;
        }
        let node = graph.node(id);
        let operands = graph.operands(id);
        let values = if let Op::Project { index } = node.op {
            vec![project(node, &operands, &results, index)?]
        } else {
            let mut args = Vec::with_capacity(operands.len());
            for operand in &operands {
                args.push(single(&results, *operand, node.span)?);
            }
            eval(node, &args, inputs, precision)?
        };
        let go_on = visit(id, &values);
        results.insert(id, values);
        if !go_on {
            break;
        }
    }
    Ok(results)
}

/// The nodes some output depends on.
fn needed_nodes(graph: &Graph) -> HashSet<NodeId> {
    let mut needed = HashSet::new();
    let mut stack: Vec<NodeId> = graph.outputs.iter().map(|o| o.node).collect();
    while let Some(id) = stack.pop() {
        if graph.graph.contains_node(id) && needed.insert(id) {
            stack.extend(graph.operands(id));
        }
    }
    needed
}

/// The one value of an evaluated single-result node.
fn single(
    results: &HashMap<NodeId, Vec<Value>>,
    id: NodeId,
    span: Span,
) -> Result<&Value, InterpError> {
    match results.get(&id).map(Vec::as_slice) {
        Some([value]) => Ok(value),
        Some(_) => Err(InterpError {
            message: "a multi-result scan is used without a project".into(),
            span,
        }),
        None => Err(InterpError {
            message: "operand was not evaluated (a missing node or a cycle)".into(),
            span,
        }),
    }
}

/// `Project { index }`: result `index` of the operand scan, which must have the node's type.
fn project(
    node: &Node,
    operands: &[NodeId],
    results: &HashMap<NodeId, Vec<Value>>,
    index: usize,
) -> Result<Value, InterpError> {
    let err = |message: String| InterpError {
        message,
        span: node.span,
    };
    let [scan] = operands else {
        return Err(err(format!(
            "project takes 1 operand, got {}",
            operands.len()
        )));
    };
    let values = results
        .get(scan)
        .ok_or_else(|| err("project of an unevaluated node".into()))?;
    let value = values.get(index).ok_or_else(|| {
        err(format!(
            "project {index} of a node with {} results",
            values.len()
        ))
    })?;
    if value.ty != node.ty {
        return Err(err(format!(
            "project {index} is typed {} but the result is {}",
            node.ty, value.ty
        )));
    }
    Ok(value.clone())
}

/// Evaluate one node on its operand values.
fn eval(
    node: &Node,
    args: &[&Value],
    inputs: &HashMap<String, Value>,
    p: Precision,
) -> Result<Vec<Value>, InterpError> {
    let err = |message: String| InterpError {
        message,
        span: node.span,
    };
    if let Op::Input { name, .. } = &node.op {
        return input(node, name, inputs, p).map(|v| vec![v]).map_err(err);
    }
    if let Op::Scan(scan) = &node.op {
        return scan::run_scan(node, scan, args, p);
    }
    // Re-check the type rule, so the loops below may index by the operands' shapes freely.
    let types: Vec<&Type> = args.iter().map(|a| &a.ty).collect();
    match op::infer(&node.op, &types, Some(&node.ty)) {
        Ok(ty) if ty == node.ty => {}
        Ok(ty) => {
            return Err(err(format!(
                "{} is typed {} but its operands give {ty}",
                node.op.name(),
                node.ty
            )));
        }
        Err(message) => return Err(err(message)),
    }
    let data = compute(node, args, p).map_err(err)?;
    let value = Value {
        ty: node.ty.clone(),
        data,
    };
    match value.malformed() {
        Some(message) => Err(err(format!(
            "internal error in {}: {message}",
            node.op.name()
        ))),
        None => Ok(vec![value]),
    }
}

/// An `Input` node's value: given, with exactly the node's type; rounded in f32 runs.
fn input(
    node: &Node,
    name: &str,
    inputs: &HashMap<String, Value>,
    p: Precision,
) -> Result<Value, String> {
    let value = inputs
        .get(name)
        .ok_or_else(|| format!("missing input `{name}` of type {}", node.ty))?;
    if value.ty != node.ty {
        return Err(format!(
            "input `{name}` must have type {}, got {}",
            node.ty, value.ty
        ));
    }
    if let Some(message) = value.malformed() {
        return Err(format!("input `{name}`: {message}"));
    }
    Ok(match &value.data {
        Data::F(v) => Value {
            ty: value.ty.clone(),
            data: Data::F(v.iter().map(|&x| p.round(x)).collect()),
        },
        Data::I(_) => value.clone(),
    })
}

/// The float elements of an operand, or an error for integer data.
fn floats<'a>(v: &'a Value, what: &str) -> Result<&'a [f64], String> {
    v.as_f64_slice()
        .ok_or_else(|| format!("{what} needs f32 data, got {}", v.ty))
}

/// The integer elements of an operand, or an error for float data.
fn ints<'a>(v: &'a Value, what: &str) -> Result<&'a [i64], String> {
    v.as_i64_slice()
        .ok_or_else(|| format!("{what} needs i64 data, got {}", v.ty))
}

/// The data of a single-result op whose operand types have been checked.
fn compute(node: &Node, args: &[&Value], p: Precision) -> Result<Data, String> {
    let out = &node.ty;
    let name = node.op.name();
    Ok(match &node.op {
        Op::Fill { value } => match out.dtype {
            DType::F32 => Data::F(vec![p.round(*value); out.numel()]),
            DType::I64 => Data::I(vec![*value as i64; out.numel()]),
        },
        Op::Random { dist, stream } => {
            if out.dtype != DType::F32 {
                return Err(format!("random produces f32, not {out}"));
            }
            let seed = ints(args[0], name)?[0];
            let values = random::generate(*dist, seed, *stream, out.numel());
            Data::F(values.into_iter().map(|x| p.round(x)).collect())
        }
        Op::Unary(u) => Data::F(
            floats(args[0], name)?
                .iter()
                .map(|&x| p.round(kernels::unary(*u, x)))
                .collect(),
        ),
        Op::Binary(b) => {
            let (x, y) = (floats(args[0], name)?, floats(args[1], name)?);
            Data::F(
                x.iter()
                    .zip(y)
                    .map(|(&x, &y)| p.round(kernels::binary(*b, x, y)))
                    .collect(),
            )
        }
        Op::Select => kernels::select(args[0], args[1], args[2])?,
        Op::Cast { to } => match (&args[0].data, to) {
            // `as` truncates toward zero (and saturates; NaN becomes 0).
            (Data::F(v), DType::I64) => Data::I(v.iter().map(|&x| x as i64).collect()),
            (Data::I(v), DType::F32) => Data::F(v.iter().map(|&x| p.round(x as f64)).collect()),
            (data, _) => data.clone(),
        },
        Op::Broadcast => layout::broadcast(args[0], out),
        Op::Reshape | Op::StopGradient => args[0].data.clone(),
        Op::Transpose { perm } => layout::transpose(args[0], perm, out),
        Op::Slice { axis, start, .. } => layout::slice(args[0], *axis, *start, out),
        Op::Concat { axis } => layout::concat(args, *axis, out)?,
        Op::Reduce { op, axes } => kernels::reduce(*op, axes, args[0], out, p),
        Op::MatMul { ta, tb } => kernels::matmul(
            floats(args[0], name)?,
            floats(args[1], name)?,
            &args[0].ty,
            &args[1].ty,
            *ta,
            *tb,
            out,
            p,
        ),
        Op::Conv2d { window } => Data::F(conv::conv2d(args[0], args[1], window, out, p)?),
        Op::ConvTranspose2d { window } => {
            Data::F(conv::conv_transpose2d(args[0], args[1], window, out, p)?)
        }
        Op::Conv2dWeightGrad { window } => {
            Data::F(conv::conv2d_weight_grad(args[0], args[1], window, out, p)?)
        }
        Op::MaxPool2d { window } => Data::F(conv::max_pool2d(args[0], window, out)?),
        Op::MaxPool2dGrad { window } => {
            Data::F(conv::max_pool2d_grad(args[0], args[1], window, out, p)?)
        }
        Op::AvgPool2d { window } => Data::F(conv::avg_pool2d(args[0], window, out, p)?),
        Op::AvgPool2dGrad { window } => Data::F(conv::avg_pool2d_grad(args[0], window, out, p)?),
        Op::Gather => kernels::gather(args[0], ints(args[1], name)?)?,
        Op::ScatterAdd => Data::F(kernels::scatter_add(
            ints(args[0], name)?,
            floats(args[1], name)?,
            out,
            p,
        )?),
        Op::OneHot { classes } => Data::F(kernels::one_hot(ints(args[0], name)?, *classes)?),
        Op::Input { .. } | Op::Scan(_) | Op::Project { .. } => {
            return Err(format!("{name} is not a single-result op"));
        }
    })
}
