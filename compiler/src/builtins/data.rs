//! Data sources and per-sample transforms for `data` items.
//!
//! Sources (`csv`, `idx`, `cifar10`, `sentences`, `text`, `npy`) name a file format and its
//! options; the checker keeps them as specs and compares what a format fixes (CIFAR-10 images
//! are `[3, 32, 32]`) with the declared fields, while file-dependent shapes are checked when the
//! data is loaded. Transforms (`scale`, `shift`, `normalize`, `one_hot`) map one field's
//! per-sample type, without the batch axis, to a float32 type, so a `u8` image or a `class(C)`
//! label becomes what the model reads.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{
    Blame, Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, param, spec_rule,
};
use crate::types::{TensorType, Value};

/// The data family: sources, then transforms.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "csv",
        kind: Kind::Source,
        summary: "Numeric CSV, one sample per row: the label column and the feature columns.",
        inputs: &[],
        params: &[
            param("path", ParamType::Str, Default::Required, "the CSV file"),
            param(
                "label",
                ParamType::Int,
                Default::Int(-1),
                "column of the label; negative counts from the end",
            ),
            param(
                "header",
                ParamType::Bool,
                Default::Bool(false),
                "skip a first row of column names",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "idx",
        kind: Kind::Source,
        summary: "MNIST-style IDX files (raw or gzip): an images file and a labels file.",
        inputs: &[],
        params: &[
            param(
                "images",
                ParamType::Str,
                Default::Required,
                "the images file, such as `train-images-idx3-ubyte.gz`",
            ),
            param(
                "labels",
                ParamType::Str,
                Default::Required,
                "the labels file, such as `train-labels-idx1-ubyte.gz`",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "cifar10",
        kind: Kind::Source,
        summary: "CIFAR-10 binary batches: 3073-byte records of a label byte and a 3x32x32 image.",
        inputs: &[],
        params: &[param(
            "path",
            ParamType::Paths,
            Default::Required,
            "a batch file, or a list of them read in order",
        )],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "sentences",
        kind: Kind::Source,
        summary: "Labelled sentences, `sentence<TAB>label` per line, as word ids padded or cut to `length`.",
        inputs: &[],
        params: &[
            param(
                "path",
                ParamType::Paths,
                Default::Required,
                "a text file, or a list of them read in order",
            ),
            param(
                "vocab",
                ParamType::Size,
                Default::Int(10000),
                "vocabulary size: the most frequent words of the training split; rarer words share an unknown id",
            ),
            param(
                "length",
                ParamType::Size,
                Default::Required,
                "tokens per sample, after padding or truncation",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "text",
        kind: Kind::Source,
        summary: "A character-level corpus: each sample is `length` characters and, as target, the characters that follow.",
        inputs: &[],
        params: &[
            param("path", ParamType::Str, Default::Required, "the text file"),
            param(
                "length",
                ParamType::Size,
                Default::Required,
                "characters per sample",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "npy",
        kind: Kind::Source,
        summary: "NumPy `.npy` arrays: features with the samples on axis 0, and optionally labels.",
        inputs: &[],
        params: &[
            param(
                "features",
                ParamType::Str,
                Default::Required,
                "the features array",
            ),
            param(
                "labels",
                ParamType::Str,
                Default::Absent,
                "the labels array, one per sample",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "scale",
        kind: Kind::Transform,
        summary: "Multiplies a field by `factor`, as float32 (`scale(1 / 255)` maps bytes to [0, 1]).",
        inputs: &["field"],
        params: &[param(
            "factor",
            ParamType::Float,
            Default::Required,
            "the multiplier",
        )],
        shape_rule: "[*] -> f32[*]; x * factor",
        rule: numeric,
    },
    Builtin {
        name: "shift",
        kind: Kind::Transform,
        summary: "Adds `offset` to a field, as float32.",
        inputs: &["field"],
        params: &[param(
            "offset",
            ParamType::Float,
            Default::Required,
            "the amount added",
        )],
        shape_rule: "[*] -> f32[*]; x + offset",
        rule: numeric,
    },
    Builtin {
        name: "normalize",
        kind: Kind::Transform,
        summary: "Standardises a field, `(x - mean) / std`, as float32.",
        inputs: &["field"],
        params: &[
            param(
                "mean",
                ParamType::Float,
                Default::Required,
                "subtracted first",
            ),
            param(
                "std",
                ParamType::Positive,
                Default::Required,
                "then divided by",
            ),
        ],
        shape_rule: "[*] -> f32[*]; (x - mean) / std",
        rule: numeric,
    },
    Builtin {
        name: "one_hot",
        kind: Kind::Transform,
        summary: "Turns a class label into a float32 vector with a 1 at the class index.",
        inputs: &["field"],
        params: &[param(
            "count",
            ParamType::Size,
            Default::Required,
            "number of classes",
        )],
        shape_rule: "int [*] (class(count)) -> f32[*, count]",
        rule: one_hot,
    },
];

fn transformed(ty: TensorType) -> Output {
    Output {
        value: Value::Type(ty),
        weights: Vec::new(),
    }
}

/// Arithmetic on a field's values: any numeric field except class labels, which are indices.
fn numeric(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let field = &ctx.inputs[0];
    if let Some(c) = field.classes {
        return Err(RuleError::new(
            "N3004",
            format!("a class label is an index, not a quantity to rescale: {field}"),
            Blame::Input(0),
            format!("this is {field}"),
        )
        .help(format!("`one_hot({c})` turns class labels into vectors")));
    }
    Ok(transformed(TensorType::f32(field.dims.clone())))
}

fn one_hot(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let field = &ctx.inputs[0];
    let count = ctx.args.dim("count");
    if !field.dtype.is_integer() {
        return Err(RuleError::new(
            "N3004",
            format!("one_hot needs integer class labels, found {field}"),
            Blame::Input(0),
            format!("this is {field}"),
        )
        .help("declare the field as `class(C)`"));
    }
    if let (Some(declared), Some(n)) = (field.classes, count.as_known())
        && declared != n
    {
        return Err(RuleError::new(
            "N4007",
            format!("the field has {declared} classes but one_hot makes {n}"),
            Blame::Param("count"),
            format!("{n} classes"),
        )
        .also(Blame::Input(0), format!("this is {field}"))
        .help(format!("write `one_hot({declared})`")));
    }
    let mut dims = field.dims.clone();
    dims.push(count);
    Ok(transformed(TensorType::f32(dims)))
}

#[cfg(test)]
mod tests {
    use netc_grammar::DType;

    use super::*;
    use crate::builtins::{out_for_test, run_for_test, ty_for_test};

    fn label(classes: i64) -> TensorType {
        TensorType {
            classes: Some(classes),
            ..ty_for_test(DType::I64, "")
        }
    }

    #[test]
    fn sources_are_specs() {
        let path = Value::Str("data/digits.csv".into());
        let out = run_for_test(
            BUILTINS,
            "csv",
            &[],
            &[("path", path), ("label", Value::Int(64))],
        )
        .unwrap();
        assert!(matches!(out.value, Value::Tuple(ref items) if items.is_empty()));
        let paths = Value::List(vec![Value::Str("a.txt".into()), Value::Str("b.txt".into())]);
        let given = [
            ("path", paths),
            ("vocab", Value::Int(5000)),
            ("length", Value::Int(32)),
        ];
        assert!(run_for_test(BUILTINS, "sentences", &[], &given).is_ok());
        let sentences = BUILTINS.iter().find(|b| b.name == "sentences").unwrap();
        assert_eq!(
            sentences.signature(),
            "sentences(path, vocab: 10000, length)"
        );
        let npy = BUILTINS.iter().find(|b| b.name == "npy").unwrap();
        assert_eq!(npy.signature(), "npy(features, labels: none)");
    }

    #[test]
    fn transforms_give_float_types() {
        let image = ty_for_test(DType::U8, "3, 32, 32");
        let out = run_for_test(
            BUILTINS,
            "scale",
            std::slice::from_ref(&image),
            &[("factor", Value::Float(1.0 / 255.0))],
        )
        .unwrap();
        assert!(matches!(out.value, Value::Type(_)));
        assert_eq!(out_for_test(&out).to_string(), "f32[3, 32, 32]");
        let out = run_for_test(
            BUILTINS,
            "shift",
            std::slice::from_ref(&image),
            &[("offset", Value::Int(-1))],
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[3, 32, 32]");
        let given = [("mean", Value::Float(0.5)), ("std", Value::Float(0.5))];
        let out = run_for_test(
            BUILTINS,
            "normalize",
            &[ty_for_test(DType::F32, "64")],
            &given,
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[64]");
    }

    #[test]
    fn class_labels_are_not_rescaled() {
        let err = run_for_test(
            BUILTINS,
            "scale",
            &[label(10)],
            &[("factor", Value::Int(2))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N3004");
        assert_eq!(
            err.help.as_deref(),
            Some("`one_hot(10)` turns class labels into vectors")
        );
    }

    #[test]
    fn one_hot_adds_the_class_axis() {
        let out = run_for_test(
            BUILTINS,
            "one_hot",
            &[label(10)],
            &[("count", Value::Int(10))],
        )
        .unwrap();
        assert_eq!(
            out_for_test(&out),
            TensorType::f32(vec![crate::dim::Dim::known(10)])
        );
        let err = run_for_test(
            BUILTINS,
            "one_hot",
            &[label(10)],
            &[("count", Value::Int(5))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N4007");
        assert_eq!(err.message, "the field has 10 classes but one_hot makes 5");
        let err = run_for_test(
            BUILTINS,
            "one_hot",
            &[ty_for_test(DType::F32, "1")],
            &[("count", Value::Int(2))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N3004");
    }
}
