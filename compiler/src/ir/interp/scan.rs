//! The `Scan` op: a recurrence, run by evaluating its body graph once per step.

use std::collections::HashMap;

use super::{Data, InterpError, Precision, Value, layout, run_ordered};
use crate::ir::{Node, Scan, Type};

/// `Scan`: run the body `length` times, threading the carries; see [`Scan`] for the contract.
/// Step `t` reads `xs[i][t]` (`xs[i][length - 1 - t]` when `reverse`), and `ys[j][k]` is the
/// body's `y{j}` from the step that read `xs[i][k]`: outputs stay aligned with inputs, as JAX's
/// `scan(reverse=True)` does.
pub(super) fn run_scan(
    node: &Node,
    scan: &Scan,
    args: &[&Value],
    p: Precision,
) -> Result<Vec<Value>, InterpError> {
    let err = |message: String| InterpError {
        message,
        span: node.span,
    };
    let (nc, nx) = (scan.carries, scan.xs);
    if args.len() != nc + nx + scan.consts {
        return Err(err(format!(
            "scan expects {} operands, got {}",
            nc + nx + scan.consts,
            args.len()
        )));
    }
    let body = &scan.body;
    if body.outputs.len() < nc {
        return Err(err(format!(
            "scan body has {} outputs for {nc} carries",
            body.outputs.len()
        )));
    }
    let y_types: Vec<Type> = body.outputs[nc..]
        .iter()
        .map(|o| body.graph.node_weight(o.node).map(|n| n.ty.clone()))
        .collect::<Option<_>>()
        .ok_or_else(|| err("scan body output is not a node".into()))?;
    let mut carries: Vec<Value> = args[..nc].iter().map(|&v| v.clone()).collect();
    let xs = &args[nc..nc + nx];
    let consts = &args[nc + nx..];
    for x in xs {
        if x.ty.shape.first() != Some(&scan.length) {
            return Err(err(format!(
                "scan of length {} over a sequence of type {}",
                scan.length, x.ty
            )));
        }
    }
    let mut per_step: Vec<Vec<Value>> = Vec::with_capacity(scan.length);
    for t in 0..scan.length {
        let step = if scan.reverse { scan.length - 1 - t } else { t };
        let mut inputs = HashMap::new();
        for (i, c) in carries.iter().enumerate() {
            inputs.insert(format!("carry{i}"), c.clone());
        }
        for (i, x) in xs.iter().enumerate() {
            inputs.insert(format!("x{i}"), layout::leading_slice(x, step));
        }
        for (i, c) in consts.iter().enumerate() {
            inputs.insert(format!("const{i}"), (*c).clone());
        }
        let mut outputs = run_ordered(body, &inputs, p)?;
        per_step.push(outputs.split_off(nc));
        carries = outputs;
    }
    if scan.reverse {
        per_step.reverse();
    }
    let mut ys: Vec<Data> = y_types.iter().map(|t| Data::empty(t.dtype)).collect();
    for step_ys in &per_step {
        for ((stack, y), ty) in ys.iter_mut().zip(step_ys).zip(&y_types) {
            if &y.ty != ty {
                return Err(err(format!(
                    "scan body output typed {ty} produced {}",
                    y.ty
                )));
            }
            stack.extend_range(&y.data, 0..y.data.len()).map_err(err)?;
        }
    }
    let mut results = carries;
    for (data, ty) in ys.into_iter().zip(y_types) {
        let mut shape = vec![scan.length];
        shape.extend(ty.shape);
        results.push(Value {
            ty: Type {
                dtype: ty.dtype,
                shape,
            },
            data,
        });
    }
    Ok(results)
}
