//! Dense layers: `linear`, `embedding`, `position_embedding`.

use netc_grammar::DType;

use super::{Blame, Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, Weight, param};
use super::{require_float, require_rank_at_least};
use crate::types::TensorType;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "linear",
        kind: Kind::Layer,
        summary: "Affine map of the last axis, `y = x W^T + b` (PyTorch `nn.Linear`); the input width is inferred.",
        inputs: &["x"],
        params: &[
            param("out", ParamType::Size, Default::Required, "output width"),
            param(
                "bias",
                ParamType::Bool,
                Default::Bool(true),
                "add a learned bias",
            ),
        ],
        shape_rule: "[*, in] -> [*, out]; weight [out, in], bias [out]",
        rule: linear,
    },
    Builtin {
        name: "embedding",
        kind: Kind::Layer,
        summary: "Looks up a learned vector for each integer id (PyTorch `nn.Embedding`).",
        inputs: &["ids"],
        params: &[
            param(
                "vocab",
                ParamType::Size,
                Default::Required,
                "number of distinct ids",
            ),
            param("dim", ParamType::Size, Default::Required, "vector width"),
        ],
        shape_rule: "int [*] -> [*, dim]; weight [vocab, dim]",
        rule: embedding,
    },
    Builtin {
        name: "position_embedding",
        kind: Kind::Layer,
        summary: "A learned table of position vectors, added to token embeddings (`nn.Embedding(len, dim)(arange(len))`).",
        inputs: &[],
        params: &[
            param(
                "len",
                ParamType::Size,
                Default::Required,
                "number of positions",
            ),
            param("dim", ParamType::Size, Default::Required, "vector width"),
        ],
        shape_rule: "() -> [len, dim]; weight [len, dim]",
        rule: position_embedding,
    },
];

fn linear(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_rank_at_least(ctx, 0, 1, "[*, features]")?;
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    let width = x.dims.last().expect("rank checked above").clone();
    let out = ctx.args.dim("out");
    let mut dims = x.dims.clone();
    *dims.last_mut().expect("rank checked above") = out.clone();
    let mut weights = vec![Weight::trainable("weight", vec![out.clone(), width])];
    if ctx.args.bool("bias") {
        weights.push(Weight::trainable("bias", vec![out]));
    }
    Ok(Output::tensor(x.with_dims(dims)).with_weights(weights))
}

fn embedding(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let ids = &ctx.inputs[0];
    if !ids.dtype.is_integer() {
        return Err(RuleError::new(
            "N3004",
            format!("`embedding` looks up integer ids, found {ids}"),
            Blame::Input(0),
            format!("this is {ids}"),
        )
        .help("declare token ids as `i32[...]` or `i64[...]`"));
    }
    let dim = ctx.args.dim("dim");
    let mut dims = ids.dims.clone();
    dims.push(dim.clone());
    Ok(
        Output::tensor(TensorType::new(DType::F32, dims)).with_weights(vec![Weight::trainable(
            "weight",
            vec![ctx.args.dim("vocab"), dim],
        )]),
    )
}

fn position_embedding(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let dims = vec![ctx.args.dim("len"), ctx.args.dim("dim")];
    Ok(Output::tensor(TensorType::f32(dims.clone()))
        .with_weights(vec![Weight::trainable("weight", dims)]))
}
