//! Metrics for a `train` item's `metrics` line: `accuracy`, `precision`, `recall`, `f1`,
//! reported on the validation split after each epoch.
//!
//! They read the loss's prediction and target, so they take no inputs here; the checker keeps
//! their arguments as a spec. `average` chooses between the mean over classes (`macro`, the
//! fair choice for unbalanced classes) and the positive class of a yes/no task (`binary`).

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{Builtin, Default, Kind, Param, ParamType, param, spec_rule};

const AVERAGES: &[&str] = &["macro", "binary"];

/// The metric family, in reference order.
/// `precision`, `recall` and `f1` all choose how classes are averaged.
const AVERAGE_PARAMS: &[Param] = &[param(
    "average",
    ParamType::Word(AVERAGES),
    Default::Word("macro"),
    "`macro`: mean over classes; `binary`: the positive class only",
)];

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "accuracy",
        kind: Kind::Metric,
        summary: "Fraction of samples whose predicted class (or thresholded probability) equals the target.",
        inputs: &[],
        params: &[],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "precision",
        kind: Kind::Metric,
        summary: "Of the samples predicted as a class, the fraction that belong to it.",
        inputs: &[],
        params: AVERAGE_PARAMS,
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "recall",
        kind: Kind::Metric,
        summary: "Of the samples of a class, the fraction predicted as it.",
        inputs: &[],
        params: AVERAGE_PARAMS,
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "f1",
        kind: Kind::Metric,
        summary: "Harmonic mean of precision and recall.",
        inputs: &[],
        params: AVERAGE_PARAMS,
        shape_rule: "",
        rule: spec_rule,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::run_for_test;
    use crate::types::Value;

    #[test]
    fn metrics_are_specs() {
        for name in ["accuracy", "precision", "recall", "f1"] {
            let out = run_for_test(BUILTINS, name, &[], &[]).unwrap();
            assert!(
                matches!(out.value, Value::Tuple(ref items) if items.is_empty()),
                "{name}"
            );
        }
        let f1 = BUILTINS.iter().find(|b| b.name == "f1").unwrap();
        assert_eq!(f1.signature(), "f1(average: macro)");
    }
}
