//! Normalisation layers: `batch_norm` (per channel, over the batch) and `layer_norm` (per
//! sample, over the last axis).
//!
//! Their weights and buffers use PyTorch's `state_dict` names, so trained models and reference
//! checkpoints line up name for name.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{Blame, Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, Weight, param};
use super::{require_float, require_rank_at_least};

/// The normalisation family, in reference order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "batch_norm",
        kind: Kind::Layer,
        summary: "Normalises each channel over the batch (and positions), then scales and shifts (PyTorch `nn.BatchNorm1d/2d`).",
        inputs: &["x"],
        params: &[
            param(
                "momentum",
                ParamType::Probability,
                Default::Float(0.1),
                "weight of the newest batch in the running statistics",
            ),
            param(
                "eps",
                ParamType::Positive,
                Default::Float(1e-5),
                "added to the variance for stability",
            ),
        ],
        shape_rule: "[B, C] or [B, C, H, W] -> same; weight [C], bias [C]; buffers running_mean [C], running_var [C], num_batches_tracked []",
        rule: batch_norm,
    },
    Builtin {
        name: "layer_norm",
        kind: Kind::Layer,
        summary: "Normalises each vector over the last axis, then scales and shifts (PyTorch `nn.LayerNorm(D)`).",
        inputs: &["x"],
        params: &[param(
            "eps",
            ParamType::Positive,
            Default::Float(1e-5),
            "added to the variance for stability",
        )],
        shape_rule: "[*, D] -> [*, D]; weight [D], bias [D]",
        rule: layer_norm,
    },
];

fn batch_norm(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let x = &ctx.inputs[0];
    if !matches!(x.rank(), 2 | 4) {
        return Err(RuleError::new(
            "N3003",
            format!(
                "expected an input of rank 2 ([B, C]) or 4 ([B, C, H, W]), found rank {} {}",
                x.rank(),
                x.shape_text()
            ),
            Blame::Input(0),
            format!("this is {x}"),
        )
        .help("batch_norm normalises channels: axis 1 of [B, C] features or [B, C, H, W] images"));
    }
    require_float(ctx, 0)?;
    let channels = vec![x.dims[1].clone()];
    let weights = vec![
        Weight::trainable("weight", channels.clone()),
        Weight::trainable("bias", channels.clone()),
        Weight::buffer("running_mean", channels.clone()),
        Weight::buffer("running_var", channels),
        Weight::buffer("num_batches_tracked", Vec::new()),
    ];
    Ok(Output::tensor(x.with_dims(x.dims.clone())).with_weights(weights))
}

fn layer_norm(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_rank_at_least(ctx, 0, 1, "[*, D]")?;
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    let width = vec![x.dims.last().expect("rank checked above").clone()];
    let weights = vec![
        Weight::trainable("weight", width.clone()),
        Weight::trainable("bias", width),
    ];
    Ok(Output::tensor(x.with_dims(x.dims.clone())).with_weights(weights))
}

#[cfg(test)]
mod tests {
    use netc_grammar::DType;

    use super::*;
    use crate::builtins::{out_for_test, run_for_test, ty_for_test};
    use crate::dim::Dim;

    #[test]
    fn batch_norm_over_images_and_features() {
        let out = run_for_test(
            BUILTINS,
            "batch_norm",
            &[ty_for_test(DType::F32, "B, 32, 4, 4")],
            &[],
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 32, 4, 4]");
        let c = vec![Dim::known(32)];
        assert_eq!(
            out.weights,
            vec![
                Weight::trainable("weight", c.clone()),
                Weight::trainable("bias", c.clone()),
                Weight::buffer("running_mean", c.clone()),
                Weight::buffer("running_var", c),
                Weight::buffer("num_batches_tracked", vec![]),
            ]
        );
        let out = run_for_test(
            BUILTINS,
            "batch_norm",
            &[ty_for_test(DType::F32, "B, 64")],
            &[],
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 64]");
        assert_eq!(out.weights[0].dims, vec![Dim::known(64)]);
    }

    #[test]
    fn batch_norm_rejects_other_ranks() {
        for shape in ["B", "B, T, D", "B, 1, 2, 3, 4"] {
            let err = run_for_test(
                BUILTINS,
                "batch_norm",
                &[ty_for_test(DType::F32, shape)],
                &[],
            )
            .unwrap_err();
            assert_eq!(err.code, "N3003", "{shape}");
        }
        let err = run_for_test(
            BUILTINS,
            "batch_norm",
            &[ty_for_test(DType::I32, "B, 4")],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.code, "N3004");
    }

    #[test]
    fn layer_norm_normalises_the_last_axis() {
        let out = run_for_test(
            BUILTINS,
            "layer_norm",
            &[ty_for_test(DType::F32, "B, T, 128")],
            &[],
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, T, 128]");
        let d = vec![Dim::known(128)];
        assert_eq!(
            out.weights,
            vec![
                Weight::trainable("weight", d.clone()),
                Weight::trainable("bias", d)
            ]
        );
        let err =
            run_for_test(BUILTINS, "layer_norm", &[ty_for_test(DType::F32, "")], &[]).unwrap_err();
        assert_eq!(err.code, "N3003");
    }
}
