//! Losses: `cross_entropy`, `bce`, `bce_with_logits`, `mse`. Each takes a prediction and a
//! target and gives a scalar, the mean over the batch (PyTorch's `reduction="mean"`).
//!
//! Most training bugs that still run in PyTorch are a target of the wrong kind or shape, with
//! silent broadcasting; these rules reject them with the two shapes side by side. A numeric
//! literal target (`bce(p, 1)`) arrives as a scalar and is broadcast.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{Blame, Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, param};
use super::{require_float, require_rank_at_least};
use crate::types::TensorType;

const INPUTS: &[&str] = &["prediction", "target"];

/// The loss family, in reference order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "cross_entropy",
        kind: Kind::Loss,
        summary: "Softmax cross-entropy of logits against class indices or class probabilities (PyTorch `F.cross_entropy`), classes on the last axis, averaged over every position.",
        inputs: INPUTS,
        params: &[param(
            "label_smoothing",
            ParamType::Probability,
            Default::Float(0.0),
            "mix this much of the uniform distribution into the target",
        )],
        shape_rule: "f32[B, C] , int [B] (class(C)) or f32[B, C] -> f32[]; also f32[B, T.., C] with int [B, T..] (a language model's next-token loss)",
        rule: cross_entropy,
    },
    Builtin {
        name: "bce",
        kind: Kind::Loss,
        summary: "Binary cross-entropy of probabilities in (0, 1) against 0/1 targets (PyTorch `F.binary_cross_entropy`).",
        inputs: INPUTS,
        params: &[],
        shape_rule: "f32[*] , f32[*] or a number -> f32[]",
        rule: same_shape,
    },
    Builtin {
        name: "bce_with_logits",
        kind: Kind::Loss,
        summary: "Binary cross-entropy of logits, the stable form of `bce(sigmoid(x), y)` (PyTorch `F.binary_cross_entropy_with_logits`).",
        inputs: INPUTS,
        params: &[],
        shape_rule: "f32[*] , f32[*] or a number -> f32[]",
        rule: same_shape,
    },
    Builtin {
        name: "mse",
        kind: Kind::Loss,
        summary: "Mean squared error (PyTorch `F.mse_loss`).",
        inputs: INPUTS,
        params: &[],
        shape_rule: "f32[*] , f32[*] or a number -> f32[]",
        rule: same_shape,
    },
];

fn scalar() -> Output {
    Output::tensor(TensorType::f32(Vec::new()))
}

/// Both inputs labelled, the target blamed.
fn mismatch(
    code: &'static str,
    message: String,
    prediction: &TensorType,
    target: &TensorType,
) -> RuleError {
    RuleError::new(code, message, Blame::Input(1), format!("this is {target}"))
        .also(Blame::Input(0), format!("this is {prediction}"))
}

fn cross_entropy(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_rank_at_least(ctx, 0, 2, "[B, C] logits")?;
    require_float(ctx, 0)?;
    let (logits, target) = (&ctx.inputs[0], &ctx.inputs[1]);
    // Classes are the last axis (as in JAX and Keras): `[B, C]` logits, or `[B, T, C]` for a
    // sequence, where netc's layers already put features last.
    let classes = logits.dims.last().expect("rank checked above");
    if target.dtype.is_float() {
        // Class probabilities: the logits' shape exactly.
        if target.dims != logits.dims {
            let code = if target.rank() == logits.rank() {
                "N3002"
            } else {
                "N3003"
            };
            return Err(mismatch(
                code,
                format!("probability targets must have the logits' shape: {logits} vs {target}"),
                logits,
                target,
            )
            .help(
                "pass class indices as a `class(C)` field, or probabilities shaped like the logits",
            ));
        }
        return Ok(scalar());
    }
    if !target.dtype.is_integer() {
        return Err(mismatch(
            "N3004",
            format!("the target must be class indices or probabilities, found {target}"),
            logits,
            target,
        ));
    }
    // Class indices: the logits' shape without the class axis.
    let mut expected = logits.dims.clone();
    expected.pop();
    if target.rank() != expected.len() {
        let want = target.with_dims(expected);
        return Err(mismatch(
            "N3003",
            format!("class indices for logits {logits} must be {}, found {target}", want.shape_text()),
            logits,
            target,
        )
        .help("declare the label field as `class(C)`: one integer per sample, without a trailing axis"));
    }
    if target.dims != expected {
        let message = if expected.len() == 1 {
            format!("the batch of the target does not match the logits: {logits} vs {target}")
        } else {
            let want = target.with_dims(expected);
            format!(
                "class indices for logits {logits} must be {}, found {target}",
                want.shape_text()
            )
        };
        return Err(mismatch("N3002", message, logits, target));
    }
    if let (Some(declared), Some(width)) = (target.classes, classes.as_known())
        && declared != width
    {
        return Err(RuleError::new(
            "N4007",
            format!("the logits have {width} classes but the target is declared with {declared}"),
            Blame::Input(1),
            format!("this is {target}"),
        )
        .also(Blame::Input(0), format!("this is {logits}: {width} classes"))
        .help(format!("make the last layer output {declared} classes, or declare the label as `class({width})`")));
    }
    Ok(scalar())
}

/// Elementwise losses: the target has the prediction's shape, or is a number (`[]`).
fn same_shape(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_float(ctx, 0)?;
    let (prediction, target) = (&ctx.inputs[0], &ctx.inputs[1]);
    if !target.dtype.is_float() {
        return Err(mismatch(
            "N3004",
            format!("the target must be floating-point, found {target}"),
            prediction,
            target,
        )
        .help(format!(
            "declare the label field as f32{}",
            per_sample_shape(prediction)
        )));
    }
    if !target.is_scalar() && target.dims != prediction.dims {
        let code = if target.rank() == prediction.rank() {
            "N3002"
        } else {
            "N3003"
        };
        return Err(mismatch(
            code,
            format!("the target must have the prediction's shape: {prediction} vs {target}"),
            prediction,
            target,
        )
        .help("elementwise losses do not broadcast; reshape one side or declare the label field to match"));
    }
    Ok(scalar())
}

/// The prediction's shape without the batch axis, as a data field declares it: `[1]`.
fn per_sample_shape(prediction: &TensorType) -> String {
    match prediction.dims.split_first() {
        Some((_, rest)) if !rest.is_empty() => prediction.with_dims(rest.to_vec()).shape_text(),
        _ => "[1]".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use netc_grammar::DType;

    use super::*;
    use crate::builtins::{out_for_test, run_for_test, ty_for_test};

    fn f32(shape: &str) -> TensorType {
        ty_for_test(DType::F32, shape)
    }

    fn labels(shape: &str, classes: Option<i64>) -> TensorType {
        TensorType {
            classes,
            ..ty_for_test(DType::I64, shape)
        }
    }

    fn run(name: &str, prediction: TensorType, target: TensorType) -> Result<String, RuleError> {
        run_for_test(BUILTINS, name, &[prediction, target], &[])
            .map(|o| out_for_test(&o).to_string())
    }

    #[test]
    fn cross_entropy_with_class_indices() {
        assert_eq!(
            run("cross_entropy", f32("B, 10"), labels("B", Some(10))).unwrap(),
            "f32[]"
        );
        assert_eq!(
            run("cross_entropy", f32("B, 10"), labels("B", None)).unwrap(),
            "f32[]"
        );
        assert_eq!(
            run("cross_entropy", f32("B, T, 65"), labels("B, T", Some(65))).unwrap(),
            "f32[]"
        );
        assert_eq!(
            run("cross_entropy", f32("B, 10"), f32("B, 10")).unwrap(),
            "f32[]"
        );
    }

    #[test]
    fn cross_entropy_class_mismatch() {
        let err = run("cross_entropy", f32("B, 10"), labels("B", Some(2))).unwrap_err();
        assert_eq!(err.code, "N4007");
        assert_eq!(
            err.message,
            "the logits have 10 classes but the target is declared with 2"
        );
        assert_eq!(err.label, "this is i64[B] (2 classes)");
        assert_eq!(
            err.also,
            vec![(
                Blame::Input(0),
                "this is f32[B, 10]: 10 classes".to_string()
            )]
        );
        // An unknown width cannot be compared.
        assert!(run("cross_entropy", f32("B, C"), labels("B", Some(2))).is_ok());
    }

    #[test]
    fn cross_entropy_shape_errors() {
        assert_eq!(
            run("cross_entropy", f32("B, 10"), labels("B, 1", Some(10)))
                .unwrap_err()
                .code,
            "N3003"
        );
        assert_eq!(
            run("cross_entropy", f32("B, 10"), labels("32", Some(10)))
                .unwrap_err()
                .code,
            "N3002"
        );
        let err = run("cross_entropy", f32("B, 16, 65"), labels("B, 15", None)).unwrap_err();
        assert_eq!(err.code, "N3002");
        assert_eq!(
            err.message,
            "class indices for logits f32[B, 16, 65] must be [B, 16], found i64[B, 15]"
        );
        assert_eq!(
            run("cross_entropy", f32("B, 10"), f32("B, 9"))
                .unwrap_err()
                .code,
            "N3002"
        );
        assert_eq!(
            run("cross_entropy", f32("B"), labels("B", None))
                .unwrap_err()
                .code,
            "N3003"
        );
        assert_eq!(
            run("cross_entropy", labels("B, 10", None), labels("B", None))
                .unwrap_err()
                .code,
            "N3004"
        );
        assert_eq!(
            run("cross_entropy", f32("B, 10"), ty_for_test(DType::Bool, "B"))
                .unwrap_err()
                .code,
            "N3004"
        );
    }

    #[test]
    fn elementwise_losses() {
        for name in ["bce", "bce_with_logits", "mse"] {
            assert_eq!(
                run(name, f32("B, 1"), f32("B, 1")).unwrap(),
                "f32[]",
                "{name}"
            );
            assert_eq!(
                run(name, f32("B, 1"), f32("")).unwrap(),
                "f32[]",
                "{name}: a literal target"
            );
            assert_eq!(
                run(name, f32("B, 1"), f32("B")).unwrap_err().code,
                "N3003",
                "{name}"
            );
            assert_eq!(
                run(name, f32("B, 1"), f32("B, 2")).unwrap_err().code,
                "N3002",
                "{name}"
            );
        }
    }

    #[test]
    fn integer_targets_are_rejected_for_bce() {
        let err = run("bce", f32("B, 1"), labels("B, 1", None)).unwrap_err();
        assert_eq!(err.code, "N3004");
        assert_eq!(
            err.help.as_deref(),
            Some("declare the label field as f32[1]")
        );
        let err = run("bce_with_logits", f32("B, 1"), labels("B", Some(2))).unwrap_err();
        assert_eq!(err.code, "N3004");
    }
}
