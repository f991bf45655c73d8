//! Recurrent layers over `[B, T, F]` sequences (batch first): `lstm` and `gru`.
//!
//! Both create PyTorch's per-layer, per-direction weights (`weight_ih_l0`, `weight_hh_l0_reverse`,
//! ...) with the gates stacked in PyTorch's order, so a checkpoint maps one to one onto
//! `nn.LSTM` / `nn.GRU` with `batch_first=True`. `output: final` gives what a classifier wants:
//! the last layer's final hidden state, forward then backward.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{
    Blame, Builtin, Default, Kind, Output, Param, ParamType, RuleCtx, RuleError, Weight, param,
};
use super::{require_float, require_rank};
use crate::dim::Dim;

const OUTPUTS: &[&str] = &["sequence", "final"];

/// Most stacked layers accepted: far beyond any trainable depth, and it bounds the weight list.
const MAX_LAYERS: i64 = 1024;

/// The recurrent family, in reference order.
/// `lstm` and `gru` take the same arguments, as PyTorch's `nn.LSTM` and `nn.GRU` do.
const RECURRENT_PARAMS: &[Param] = &[
    param(
        "hidden",
        ParamType::Size,
        Default::Required,
        "hidden state width H",
    ),
    param(
        "layers",
        ParamType::Size,
        Default::Int(1),
        "stacked layers; each reads the previous one's outputs",
    ),
    param(
        "bidirectional",
        ParamType::Bool,
        Default::Bool(false),
        "also run each layer backwards in time",
    ),
    param(
        "output",
        ParamType::Word(OUTPUTS),
        Default::Word("sequence"),
        "`sequence`: every step's hidden state; `final`: the last layer's final hidden state",
    ),
    param(
        "dropout",
        ParamType::Probability,
        Default::Float(0.0),
        "dropout between stacked layers",
    ),
];

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "lstm",
        kind: Kind::Layer,
        summary: "Long short-term memory over a [B, T, F] sequence (PyTorch `nn.LSTM`, batch first); gates i, f, g, o.",
        inputs: &["x"],
        params: RECURRENT_PARAMS,
        shape_rule: "[B, T, F] -> [B, T, H*dirs] (sequence) or [B, H*dirs] (final), dirs = 2 if bidirectional else 1; per layer k: weight_ih_l{k} [4H, in], weight_hh_l{k} [4H, H], bias_ih_l{k} [4H], bias_hh_l{k} [4H], plus _reverse copies; in = F for k = 0, else H*dirs",
        rule: lstm,
    },
    Builtin {
        name: "gru",
        kind: Kind::Layer,
        summary: "Gated recurrent unit over a [B, T, F] sequence (PyTorch `nn.GRU`, batch first); gates r, z, n.",
        inputs: &["x"],
        params: RECURRENT_PARAMS,
        shape_rule: "[B, T, F] -> [B, T, H*dirs] (sequence) or [B, H*dirs] (final), dirs = 2 if bidirectional else 1; per layer k: weight_ih_l{k} [3H, in], weight_hh_l{k} [3H, H], bias_ih_l{k} [3H], bias_hh_l{k} [3H], plus _reverse copies; in = F for k = 0, else H*dirs",
        rule: gru,
    },
];

fn lstm(ctx: &RuleCtx) -> Result<Output, RuleError> {
    recurrent(ctx, 4)
}

fn gru(ctx: &RuleCtx) -> Result<Output, RuleError> {
    recurrent(ctx, 3)
}

/// A stacked, optionally bidirectional recurrent layer with `gates` stacked gate blocks.
fn recurrent(ctx: &RuleCtx, gates: i64) -> Result<Output, RuleError> {
    require_rank(ctx, 0, 3, "[B, T, features]")?;
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    let layers = ctx.args.dim("layers");
    let layers = match layers.as_known() {
        Some(n) if n <= MAX_LAYERS => n,
        Some(n) => {
            return Err(RuleError::new(
                "N4010",
                format!("{n} stacked layers are more than the {MAX_LAYERS} supported"),
                Blame::Param("layers"),
                "too many layers",
            ));
        }
        None => {
            return Err(RuleError::new(
                "N4010",
                format!("the number of layers must be a known number, found {layers}"),
                Blame::Param("layers"),
                "not a known number",
            ));
        }
    };
    let err = |e| RuleError::dim(e, Blame::Param("hidden"));
    let hidden = ctx.args.dim("hidden");
    let gate_rows = Dim::known(gates).mul(&hidden).map_err(err)?;
    let directions: &[&str] = if ctx.args.bool("bidirectional") {
        &["", "_reverse"]
    } else {
        &[""]
    };
    let width = Dim::known(directions.len() as i64)
        .mul(&hidden)
        .map_err(err)?;
    let mut weights = Vec::new();
    for k in 0..layers {
        let input = if k == 0 {
            x.dims[2].clone()
        } else {
            width.clone()
        };
        for suffix in directions {
            weights.push(Weight::trainable(
                &format!("weight_ih_l{k}{suffix}"),
                vec![gate_rows.clone(), input.clone()],
            ));
            weights.push(Weight::trainable(
                &format!("weight_hh_l{k}{suffix}"),
                vec![gate_rows.clone(), hidden.clone()],
            ));
            weights.push(Weight::trainable(
                &format!("bias_ih_l{k}{suffix}"),
                vec![gate_rows.clone()],
            ));
            weights.push(Weight::trainable(
                &format!("bias_hh_l{k}{suffix}"),
                vec![gate_rows.clone()],
            ));
        }
    }
    let dims = match ctx.args.word("output") {
        "final" => vec![x.dims[0].clone(), width],
        _ => vec![x.dims[0].clone(), x.dims[1].clone(), width],
    };
    Ok(Output::tensor(x.with_dims(dims)).with_weights(weights))
}

#[cfg(test)]
mod tests {
    use netc_grammar::DType;

    use super::*;
    use crate::builtins::{out_for_test, run_for_test, ty_for_test};
    use crate::types::Value;

    fn run(name: &str, shape: &str, given: &[(&str, Value)]) -> Result<Output, RuleError> {
        run_for_test(BUILTINS, name, &[ty_for_test(DType::F32, shape)], given)
    }

    fn dims(items: &[i64]) -> Vec<Dim> {
        items.iter().map(|i| Dim::known(*i)).collect()
    }

    fn two_layer_bidirectional(output: &str) -> Vec<(&'static str, Value)> {
        vec![
            ("hidden", Value::Int(48)),
            ("layers", Value::Int(2)),
            ("bidirectional", Value::Bool(true)),
            ("output", Value::Word(output.to_string())),
        ]
    }

    #[test]
    fn lstm_outputs() {
        let out = run("lstm", "B, T, 32", &two_layer_bidirectional("sequence")).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, T, 96]");
        let out = run("lstm", "B, T, 32", &two_layer_bidirectional("final")).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 96]");
        let out = run("lstm", "B, 12, 32", &[("hidden", Value::Int(48))]).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 12, 48]");
        assert_eq!(out.weights.len(), 4);
    }

    #[test]
    fn lstm_weights_follow_pytorch() {
        let out = run("lstm", "B, T, 32", &two_layer_bidirectional("final")).unwrap();
        let got: Vec<(String, Vec<Dim>)> = out
            .weights
            .iter()
            .map(|w| (w.name.clone(), w.dims.clone()))
            .collect();
        let mut want = Vec::new();
        for (k, input) in [(0, 32), (1, 96)] {
            for suffix in ["", "_reverse"] {
                want.push((format!("weight_ih_l{k}{suffix}"), dims(&[192, input])));
                want.push((format!("weight_hh_l{k}{suffix}"), dims(&[192, 48])));
                want.push((format!("bias_ih_l{k}{suffix}"), dims(&[192])));
                want.push((format!("bias_hh_l{k}{suffix}"), dims(&[192])));
            }
        }
        assert_eq!(got, want);
        assert!(out.weights.iter().all(|w| w.trainable));
        let l1 = out
            .weights
            .iter()
            .find(|w| w.name == "weight_ih_l1")
            .unwrap();
        assert_eq!(l1.dims, dims(&[192, 96]));
    }

    #[test]
    fn gru_has_three_gates() {
        let out = run(
            "gru",
            "B, T, 16",
            &[
                ("hidden", Value::Int(10)),
                ("output", Value::Word("final".into())),
            ],
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 10]");
        let names: Vec<&str> = out.weights.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        );
        assert_eq!(out.weights[0].dims, dims(&[30, 16]));
        assert_eq!(out.weights[1].dims, dims(&[30, 10]));
    }

    #[test]
    fn input_must_be_a_float_sequence() {
        assert_eq!(
            run("lstm", "B, 32", &[("hidden", Value::Int(8))])
                .unwrap_err()
                .code,
            "N3003"
        );
        let ids = ty_for_test(DType::I32, "B, T, 1");
        let err = run_for_test(BUILTINS, "gru", &[ids], &[("hidden", Value::Int(8))]).unwrap_err();
        assert_eq!(err.code, "N3004");
    }

    #[test]
    fn layer_count_must_be_known_and_bounded() {
        let given = [
            ("hidden", Value::Int(8)),
            ("layers", Value::Dim(Dim::symbol("L"))),
        ];
        assert_eq!(run("lstm", "B, T, 4", &given).unwrap_err().code, "N4010");
        let given = [("hidden", Value::Int(8)), ("layers", Value::Int(1 << 40))];
        assert_eq!(run("lstm", "B, T, 4", &given).unwrap_err().code, "N4010");
    }
}
