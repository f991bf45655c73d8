//! Optimizers: `sgd`, `adam`, `adamw`, with PyTorch's parameter names and defaults
//! (`torch.optim.SGD`, `Adam`, `AdamW`).
//!
//! Their rules only validate hyper-parameters that PyTorch would reject when the optimizer is
//! built (a momentum of 1, Nesterov without momentum, negative weight decay), so the mistake is
//! reported at the `update` line instead of after data loading; the checker turns the bound
//! arguments into a spec.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{Blame, Builtin, Default, Kind, Output, Param, ParamType, RuleCtx, RuleError, param};

/// The optimizer family, in reference order.
/// The arguments `adam` and `adamw` share (they differ only in how weight decay applies).
const ADAM_LR: Param = param(
    "lr",
    ParamType::Positive,
    Default::Float(1e-3),
    "learning rate",
);
const ADAM_BETAS: Param = param(
    "betas",
    ParamType::Betas,
    Default::Pair(0.9, 0.999),
    "decay rates of the first and second moments",
);
const ADAM_EPS: Param = param(
    "eps",
    ParamType::Positive,
    Default::Float(1e-8),
    "added to the denominator for stability",
);

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "sgd",
        kind: Kind::Optimizer,
        summary: "Stochastic gradient descent with optional (Nesterov) momentum (PyTorch `torch.optim.SGD`).",
        inputs: &[],
        params: &[
            param(
                "lr",
                ParamType::Positive,
                Default::Required,
                "learning rate",
            ),
            param(
                "momentum",
                ParamType::Float,
                Default::Float(0.0),
                "momentum factor, in [0, 1)",
            ),
            param(
                "nesterov",
                ParamType::Bool,
                Default::Bool(false),
                "use Nesterov momentum; needs momentum > 0",
            ),
            param(
                "weight_decay",
                ParamType::Float,
                Default::Float(0.0),
                "L2 penalty added to the gradient, >= 0",
            ),
        ],
        shape_rule: "",
        rule: sgd,
    },
    Builtin {
        name: "adam",
        kind: Kind::Optimizer,
        summary: "Adam: per-parameter steps from running moments of the gradient (PyTorch `torch.optim.Adam`).",
        inputs: &[],
        params: &[
            ADAM_LR,
            ADAM_BETAS,
            ADAM_EPS,
            param(
                "weight_decay",
                ParamType::Float,
                Default::Float(0.0),
                "L2 penalty added to the gradient, >= 0",
            ),
        ],
        shape_rule: "",
        rule: adam,
    },
    Builtin {
        name: "adamw",
        kind: Kind::Optimizer,
        summary: "Adam with decoupled weight decay, applied to the weights directly (PyTorch `torch.optim.AdamW`).",
        inputs: &[],
        params: &[
            ADAM_LR,
            ADAM_BETAS,
            ADAM_EPS,
            param(
                "weight_decay",
                ParamType::Float,
                Default::Float(0.01),
                "decoupled weight decay factor, >= 0",
            ),
        ],
        shape_rule: "",
        rule: adam,
    },
];

fn invalid(param: &'static str, message: String, label: String) -> RuleError {
    RuleError::new("N4010", message, Blame::Param(param), label)
}

fn check_weight_decay(ctx: &RuleCtx) -> Result<(), RuleError> {
    let decay = ctx.args.float("weight_decay");
    if decay < 0.0 {
        return Err(invalid(
            "weight_decay",
            format!("weight_decay must be 0 or more, found {decay}"),
            "negative weight decay".to_string(),
        )
        .help("a negative decay pushes weights away from zero; use 0 to turn decay off"));
    }
    Ok(())
}

fn sgd(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let momentum = ctx.args.float("momentum");
    if !(0.0..1.0).contains(&momentum) {
        return Err(invalid(
            "momentum",
            format!("momentum must be in [0, 1), found {momentum}"),
            format!("momentum {momentum}"),
        )
        .help("0.9 is the usual choice; 0 turns momentum off"));
    }
    if ctx.args.bool("nesterov") && momentum <= 0.0 {
        let mut err = invalid(
            "nesterov",
            "Nesterov momentum needs a momentum above 0".to_string(),
            "needs momentum".to_string(),
        )
        .help("add `momentum: 0.9`, or drop `nesterov`");
        // A defaulted momentum has no place of its own to point at.
        if ctx.args.span("momentum").is_some() {
            err = err.also(Blame::Param("momentum"), format!("momentum is {momentum}"));
        }
        return Err(err);
    }
    check_weight_decay(ctx)?;
    Ok(Output::none())
}

fn adam(ctx: &RuleCtx) -> Result<Output, RuleError> {
    check_weight_decay(ctx)?;
    Ok(Output::none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::run_for_test;
    use crate::types::Value;

    fn run(name: &str, given: &[(&str, Value)]) -> Result<Output, RuleError> {
        run_for_test(BUILTINS, name, &[], given)
    }

    #[test]
    fn valid_optimizers_become_specs() {
        let out = run(
            "sgd",
            &[("lr", Value::Float(0.01)), ("momentum", Value::Float(0.9))],
        )
        .unwrap();
        assert!(matches!(out.value, Value::Tuple(ref items) if items.is_empty()));
        let given = [
            ("lr", Value::Float(0.1)),
            ("momentum", Value::Float(0.9)),
            ("nesterov", Value::Bool(true)),
        ];
        assert!(run("sgd", &given).is_ok());
        assert!(run("adam", &[]).is_ok());
        assert!(
            run(
                "adamw",
                &[
                    ("lr", Value::Float(5e-4)),
                    ("weight_decay", Value::Float(0.01))
                ]
            )
            .is_ok()
        );
    }

    #[test]
    fn momentum_must_be_below_one() {
        for m in [1.0, 1.5, -0.1] {
            let err = run(
                "sgd",
                &[("lr", Value::Float(0.1)), ("momentum", Value::Float(m))],
            )
            .unwrap_err();
            assert_eq!(err.code, "N4010");
            assert_eq!(err.blame, Blame::Param("momentum"));
        }
        let err = run(
            "sgd",
            &[("lr", Value::Float(0.1)), ("momentum", Value::Int(1))],
        )
        .unwrap_err();
        assert_eq!(err.message, "momentum must be in [0, 1), found 1");
    }

    #[test]
    fn nesterov_needs_momentum() {
        let err = run(
            "sgd",
            &[("lr", Value::Float(0.1)), ("nesterov", Value::Bool(true))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N4010");
        assert_eq!(err.blame, Blame::Param("nesterov"));
        assert_eq!(err.message, "Nesterov momentum needs a momentum above 0");
    }

    #[test]
    fn weight_decay_must_not_be_negative() {
        for name in ["sgd", "adam", "adamw"] {
            let err = run(
                name,
                &[
                    ("lr", Value::Float(0.1)),
                    ("weight_decay", Value::Float(-0.01)),
                ],
            )
            .unwrap_err();
            assert_eq!(err.code, "N4010", "{name}");
            assert_eq!(err.blame, Blame::Param("weight_decay"));
        }
    }

    #[test]
    fn defaults_are_pytorchs() {
        let adam = BUILTINS.iter().find(|b| b.name == "adam").unwrap();
        assert_eq!(
            adam.signature(),
            "adam(lr: 0.001, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0)"
        );
        let adamw = BUILTINS.iter().find(|b| b.name == "adamw").unwrap();
        assert!(adamw.signature().ends_with("weight_decay: 0.01)"));
    }
}
