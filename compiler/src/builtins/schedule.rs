//! Learning-rate schedules for a `train` item's `schedule` line: `constant`, `step_decay`,
//! `cosine`, `warmup`. Each scales the optimizer's `lr` over the run.
//!
//! `step_decay` counts epochs (as PyTorch's `StepLR` stepped per epoch); `cosine` and `warmup`
//! count optimizer steps, since warm-up lengths are quoted in steps. The total number of steps,
//! which cosine decay needs, is known only when data is loaded, so it is not an argument.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{
    Blame, Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, param, spec_rule,
};

/// The schedule family, in reference order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "constant",
        kind: Kind::Schedule,
        summary: "Keeps the learning rate fixed (the default).",
        inputs: &[],
        params: &[],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "step_decay",
        kind: Kind::Schedule,
        summary: "Multiplies the learning rate by `gamma` every `every` epochs (PyTorch `StepLR`).",
        inputs: &[],
        params: &[
            param(
                "every",
                ParamType::Size,
                Default::Required,
                "epochs between decays",
            ),
            param(
                "gamma",
                ParamType::Probability,
                Default::Float(0.1),
                "factor applied at each decay, in (0, 1]",
            ),
        ],
        shape_rule: "",
        rule: step_decay,
    },
    Builtin {
        name: "cosine",
        kind: Kind::Schedule,
        summary: "Linear warm-up for `warmup` steps, then cosine decay to `min_lr` at the last step.",
        inputs: &[],
        params: &[
            param(
                "warmup",
                ParamType::NonNeg,
                Default::Int(0),
                "steps of linear warm-up from 0",
            ),
            param(
                "min_lr",
                ParamType::Float,
                Default::Float(0.0),
                "learning rate at the end, >= 0",
            ),
        ],
        shape_rule: "",
        rule: cosine,
    },
    Builtin {
        name: "warmup",
        kind: Kind::Schedule,
        summary: "Linear warm-up from 0 to the optimizer's `lr` over `steps` steps, then constant.",
        inputs: &[],
        params: &[param(
            "steps",
            ParamType::Size,
            Default::Required,
            "steps of linear warm-up",
        )],
        shape_rule: "",
        rule: spec_rule,
    },
];

fn step_decay(ctx: &RuleCtx) -> Result<Output, RuleError> {
    if ctx.args.float("gamma") <= 0.0 {
        return Err(RuleError::new(
            "N4010",
            "gamma must be above 0: a decay by 0 stops training after the first decay",
            Blame::Param("gamma"),
            "gamma 0",
        )
        .help("the usual choices are 0.1 and 0.5"));
    }
    Ok(Output::none())
}

fn cosine(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let min_lr = ctx.args.float("min_lr");
    if min_lr < 0.0 {
        return Err(RuleError::new(
            "N4010",
            format!("min_lr must be 0 or more, found {min_lr}"),
            Blame::Param("min_lr"),
            "negative learning rate",
        ));
    }
    Ok(Output::none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::run_for_test;
    use crate::types::Value;

    #[test]
    fn valid_schedules() {
        assert!(run_for_test(BUILTINS, "constant", &[], &[]).is_ok());
        let given = [("every", Value::Int(10)), ("gamma", Value::Float(0.5))];
        assert!(run_for_test(BUILTINS, "step_decay", &[], &given).is_ok());
        assert!(run_for_test(BUILTINS, "cosine", &[], &[("warmup", Value::Int(100))]).is_ok());
        assert!(run_for_test(BUILTINS, "warmup", &[], &[("steps", Value::Int(500))]).is_ok());
    }

    #[test]
    fn invalid_values() {
        let given = [("every", Value::Int(10)), ("gamma", Value::Float(0.0))];
        assert_eq!(
            run_for_test(BUILTINS, "step_decay", &[], &given)
                .unwrap_err()
                .code,
            "N4010"
        );
        let err =
            run_for_test(BUILTINS, "cosine", &[], &[("min_lr", Value::Float(-1e-5))]).unwrap_err();
        assert_eq!(err.code, "N4010");
        assert_eq!(err.blame, Blame::Param("min_lr"));
    }
}
