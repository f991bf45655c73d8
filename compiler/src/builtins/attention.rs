//! Multi-head attention over `[B, T, D]` sequences: `self_attention` and cross-`attention`.
//!
//! Both are PyTorch's `nn.MultiheadAttention` (batch first) with its parameter names and packed
//! query/key/value projection, so weights load into it unchanged. The model width must split
//! evenly into heads; that is checked here because PyTorch only finds out at construction.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{Blame, Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, Weight, param};
use super::{require_float, require_rank};
use crate::dim::Dim;
use crate::types::TensorType;

const LAYOUT: &str = "[B, T, D]";

/// The attention family, in reference order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "self_attention",
        kind: Kind::Layer,
        summary: "Multi-head scaled dot-product attention of a sequence over itself (PyTorch `nn.MultiheadAttention`).",
        inputs: &["x"],
        params: &[
            param(
                "heads",
                ParamType::Size,
                Default::Required,
                "number of heads; must divide the width D",
            ),
            param(
                "dropout",
                ParamType::Probability,
                Default::Float(0.0),
                "dropout on the attention weights",
            ),
            param(
                "causal",
                ParamType::Bool,
                Default::Bool(false),
                "let each position attend only to itself and earlier ones",
            ),
        ],
        shape_rule: "[B, T, D] -> [B, T, D]; D % heads = 0; in_proj_weight [3D, D], in_proj_bias [3D], out_proj.weight [D, D], out_proj.bias [D]",
        rule: self_attention,
    },
    Builtin {
        name: "attention",
        kind: Kind::Layer,
        summary: "Multi-head attention of `query` over `memory` (cross-attention, PyTorch `nn.MultiheadAttention`).",
        inputs: &["query", "memory"],
        params: &[
            param(
                "heads",
                ParamType::Size,
                Default::Required,
                "number of heads; must divide the width D",
            ),
            param(
                "dropout",
                ParamType::Probability,
                Default::Float(0.0),
                "dropout on the attention weights",
            ),
        ],
        shape_rule: "[B, Tq, D] , [B, Tk, D] -> [B, Tq, D]; D % heads = 0; in_proj_weight [3D, D], in_proj_bias [3D], out_proj.weight [D, D], out_proj.bias [D]",
        rule: attention,
    },
];

/// `nn.MultiheadAttention(D, heads)`'s parameters, after checking that heads divide `D`.
fn projections(ctx: &RuleCtx, width: &Dim) -> Result<Vec<Weight>, RuleError> {
    let heads = ctx.args.dim("heads");
    let err = |e| RuleError::dim(e, Blame::Param("heads"));
    let rest = width.rem(&heads).map_err(err)?;
    if rest.as_known().is_some_and(|r| r != 0) {
        let x = &ctx.inputs[0];
        return Err(RuleError::new(
            "N3007",
            format!("d_model {width} is not divisible by {heads} heads"),
            Blame::Param("heads"),
            format!("{heads} heads"),
        )
        .also(Blame::Input(0), format!("this is {x}"))
        .help("each head gets D / heads features; choose a head count that divides the width"));
    }
    let packed = Dim::known(3).mul(width).map_err(err)?;
    Ok(vec![
        Weight::trainable("in_proj_weight", vec![packed.clone(), width.clone()]),
        Weight::trainable("in_proj_bias", vec![packed]),
        Weight::trainable("out_proj.weight", vec![width.clone(), width.clone()]),
        Weight::trainable("out_proj.bias", vec![width.clone()]),
    ])
}

fn sequence<'a>(ctx: &RuleCtx<'a>, input: usize) -> Result<&'a TensorType, RuleError> {
    require_rank(ctx, input, 3, LAYOUT)?;
    require_float(ctx, input)?;
    Ok(&ctx.inputs[input])
}

fn self_attention(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let x = sequence(ctx, 0)?;
    let weights = projections(ctx, &x.dims[2])?;
    Ok(Output::tensor(x.with_dims(x.dims.clone())).with_weights(weights))
}

fn attention(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let query = sequence(ctx, 0)?;
    let memory = sequence(ctx, 1)?;
    for (axis, what) in [(0, "batch sizes"), (2, "widths")] {
        if query.dims[axis] != memory.dims[axis] {
            return Err(RuleError::new(
                "N3002",
                format!("the {what} of query and memory differ: {query} vs {memory}"),
                Blame::Input(1),
                format!("this is {memory}"),
            )
            .also(Blame::Input(0), format!("this is {query}"))
            .help("query and memory must be [B, Tq, D] and [B, Tk, D] with the same B and D; a `linear(D)` can match widths"));
        }
    }
    if query.dtype != memory.dtype {
        return Err(RuleError::new(
            "N3004",
            format!("the element types of query and memory differ: {query} vs {memory}"),
            Blame::Input(1),
            format!("this is {memory}"),
        )
        .also(Blame::Input(0), format!("this is {query}")));
    }
    let weights = projections(ctx, &query.dims[2])?;
    Ok(Output::tensor(query.with_dims(query.dims.clone())).with_weights(weights))
}

#[cfg(test)]
mod tests {
    use netc_grammar::DType;

    use super::*;
    use crate::builtins::{out_for_test, run_for_test, ty_for_test};
    use crate::types::Value;

    fn f32(shape: &str) -> TensorType {
        ty_for_test(DType::F32, shape)
    }

    fn dims(items: &[i64]) -> Vec<Dim> {
        items.iter().map(|i| Dim::known(*i)).collect()
    }

    #[test]
    fn self_attention_keeps_the_shape_and_packs_projections() {
        let out = run_for_test(
            BUILTINS,
            "self_attention",
            &[f32("B, T, 128")],
            &[("heads", Value::Int(4))],
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, T, 128]");
        assert_eq!(
            out.weights,
            vec![
                Weight::trainable("in_proj_weight", dims(&[384, 128])),
                Weight::trainable("in_proj_bias", dims(&[384])),
                Weight::trainable("out_proj.weight", dims(&[128, 128])),
                Weight::trainable("out_proj.bias", dims(&[128])),
            ]
        );
    }

    #[test]
    fn heads_must_divide_the_width() {
        let err = run_for_test(
            BUILTINS,
            "self_attention",
            &[f32("B, T, 130")],
            &[("heads", Value::Int(4))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N3007");
        assert_eq!(err.message, "d_model 130 is not divisible by 4 heads");
        assert_eq!(err.blame, Blame::Param("heads"));
        // A symbolic width cannot be checked, and a symbolic multiple of the heads is fine.
        assert!(
            run_for_test(
                BUILTINS,
                "self_attention",
                &[f32("B, T, D")],
                &[("heads", Value::Int(4))]
            )
            .is_ok()
        );
        let d = Value::Dim(Dim::symbol("H"));
        assert!(
            run_for_test(
                BUILTINS,
                "self_attention",
                &[f32("B, T, H")],
                &[("heads", d)]
            )
            .is_ok()
        );
    }

    #[test]
    fn cross_attention() {
        let inputs = [f32("B, Tq, 64"), f32("B, Tk, 64")];
        let out =
            run_for_test(BUILTINS, "attention", &inputs, &[("heads", Value::Int(8))]).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, Tq, 64]");
        assert_eq!(out.weights.len(), 4);
        let inputs = [f32("B, Tq, 64"), f32("B, Tk, 32")];
        let err =
            run_for_test(BUILTINS, "attention", &inputs, &[("heads", Value::Int(8))]).unwrap_err();
        assert_eq!(err.code, "N3002");
        assert_eq!(
            err.message,
            "the widths of query and memory differ: f32[B, Tq, 64] vs f32[B, Tk, 32]"
        );
        let inputs = [f32("B, Tq, 64"), f32("B, 64")];
        let err =
            run_for_test(BUILTINS, "attention", &inputs, &[("heads", Value::Int(8))]).unwrap_err();
        assert_eq!(err.code, "N3003");
        assert_eq!(err.blame, Blame::Input(1));
    }
}
