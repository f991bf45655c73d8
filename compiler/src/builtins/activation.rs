//! Activations and other elementwise functions: `relu`, `gelu`, `softmax`, `exp`, ...,
//! plus `stop_gradient` (alias `detach`), which passes values through but cuts gradients.
//!
//! None of them creates weights and all keep the input's shape, so one rule serves most of
//! them; `softmax` and `log_softmax` also check their axis.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, param};
use super::{require_float, resolve_axis};

/// The activation family, in reference order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "relu",
        kind: Kind::Function,
        summary: "Rectified linear unit, `max(x, 0)` (PyTorch `F.relu`).",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "leaky_relu",
        kind: Kind::Function,
        summary: "`x` where positive, `slope * x` elsewhere (PyTorch `F.leaky_relu`).",
        inputs: &["x"],
        params: &[param(
            "slope",
            ParamType::Float,
            Default::Float(0.01),
            "slope for negative inputs",
        )],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "gelu",
        kind: Kind::Function,
        summary: "Gaussian error linear unit, `x * Phi(x)` (PyTorch `F.gelu`); exact erf form by default.",
        inputs: &["x"],
        params: &[param(
            "approximate",
            ParamType::Word(&["none", "tanh"]),
            Default::Word("none"),
            "`none` for the exact erf form, `tanh` for the tanh approximation",
        )],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "tanh",
        kind: Kind::Function,
        summary: "Hyperbolic tangent, squashing to (-1, 1).",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "sigmoid",
        kind: Kind::Function,
        summary: "Logistic function `1 / (1 + exp(-x))`, squashing to (0, 1).",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "softmax",
        kind: Kind::Function,
        summary: "Normalised exponentials along `axis`, summing to 1 (PyTorch `F.softmax`).",
        inputs: &["x"],
        params: &[param(
            "axis",
            ParamType::Int,
            Default::Int(-1),
            "axis to normalise; negative counts from the end",
        )],
        shape_rule: "[*] -> [*]",
        rule: along_axis,
    },
    Builtin {
        name: "log_softmax",
        kind: Kind::Function,
        summary: "Logarithm of `softmax` along `axis`, computed stably (PyTorch `F.log_softmax`).",
        inputs: &["x"],
        params: &[param(
            "axis",
            ParamType::Int,
            Default::Int(-1),
            "axis to normalise; negative counts from the end",
        )],
        shape_rule: "[*] -> [*]",
        rule: along_axis,
    },
    Builtin {
        name: "exp",
        kind: Kind::Function,
        summary: "Elementwise `e^x`.",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "log",
        kind: Kind::Function,
        summary: "Elementwise natural logarithm.",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "sqrt",
        kind: Kind::Function,
        summary: "Elementwise square root.",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: elementwise,
    },
    Builtin {
        name: "stop_gradient",
        kind: Kind::Function,
        summary: "The same values with gradients cut, as PyTorch's `.detach()`: a loss through it updates nothing before it.",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: identity,
    },
    Builtin {
        name: "detach",
        kind: Kind::Function,
        summary: "Alias of `stop_gradient`: the same values with gradients cut (PyTorch `.detach()`).",
        inputs: &["x"],
        params: &[],
        shape_rule: "[*] -> [*]",
        rule: identity,
    },
];

/// A floating-point elementwise map: the output has the input's type.
fn elementwise(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    Ok(Output::tensor(x.with_dims(x.dims.clone())))
}

/// An elementwise map that normalises along `axis` (softmax): the axis must exist.
fn along_axis(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_float(ctx, 0)?;
    resolve_axis(ctx, 0, ctx.args.int("axis"), "axis")?;
    let x = &ctx.inputs[0];
    Ok(Output::tensor(x.with_dims(x.dims.clone())))
}

/// Values pass through unchanged, of any element type; the checker clears the gradient path.
fn identity(ctx: &RuleCtx) -> Result<Output, RuleError> {
    Ok(Output::tensor(ctx.inputs[0].clone()))
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

    #[test]
    fn elementwise_functions_keep_the_shape() {
        for name in [
            "relu",
            "leaky_relu",
            "gelu",
            "tanh",
            "sigmoid",
            "softmax",
            "log_softmax",
            "exp",
            "log",
            "sqrt",
        ] {
            let out = run(name, "B, 10", &[]).unwrap();
            assert_eq!(out_for_test(&out).to_string(), "f32[B, 10]", "{name}");
            assert!(out.weights.is_empty());
        }
    }

    #[test]
    fn integer_inputs_are_rejected() {
        let err = run_for_test(BUILTINS, "relu", &[ty_for_test(DType::I64, "B")], &[]).unwrap_err();
        assert_eq!(err.code, "N3004");
        assert!(err.message.contains("i64[B]"), "{}", err.message);
    }

    #[test]
    fn softmax_axis_must_exist() {
        assert!(run("softmax", "B, T, 10", &[("axis", Value::Int(-3))]).is_ok());
        assert!(run("log_softmax", "B, T, 10", &[("axis", Value::Int(2))]).is_ok());
        let err = run("softmax", "B, 10", &[("axis", Value::Int(2))]).unwrap_err();
        assert_eq!(err.code, "N3009");
        assert_eq!(err.message, "axis 2 is out of range for f32[B, 10]");
        let err = run("log_softmax", "B, 10", &[("axis", Value::Int(-3))]).unwrap_err();
        assert_eq!(err.code, "N3009");
        let err = run("softmax", "", &[]).unwrap_err();
        assert_eq!(err.code, "N3009");
    }

    #[test]
    fn stop_gradient_and_detach_pass_any_type_through() {
        let mut labels = ty_for_test(DType::I64, "B");
        labels.classes = Some(10);
        for name in ["stop_gradient", "detach"] {
            let out = run_for_test(BUILTINS, name, std::slice::from_ref(&labels), &[]).unwrap();
            assert_eq!(out_for_test(&out), labels);
        }
    }
}
