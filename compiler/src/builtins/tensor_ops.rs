//! Tensor operations: reshaping (`flatten`, `reshape`, `transpose`), reductions (`mean`, `sum`),
//! combining (`concat`, `matmul`), `dropout` and `repeat`; and the primitives for building
//! layers and values by hand: `param` (a learned tensor), `normal` (noise) and `class` (the type
//! of class labels).
//!
//! With `param`, `matmul` and the elementwise functions a user can write a layer that is not
//! built in, so these rules follow PyTorch's semantics exactly (`torch.flatten`, `torch.matmul`
//! broadcasting, `torch.cat`).

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use netc_grammar::DType;

use super::{
    Blame, Builtin, Default, Kind, Output, ParamType, RuleCtx, RuleError, Weight, param, spec_rule,
};
use super::{require_float, resolve_axis};
use crate::dim::{Dim, DimError};
use crate::types::{TensorType, Value};

/// The tensor-operation family, in reference order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "flatten",
        kind: Kind::Function,
        summary: "Merges the axes from `start` to the last into one (PyTorch `torch.flatten(x, start)`).",
        inputs: &["x"],
        params: &[param(
            "start",
            ParamType::Int,
            Default::Int(1),
            "first axis to merge; the batch axis 0 is kept by default",
        )],
        shape_rule: "[B, C, H, W] -> [B, C*H*W]; generally [d0, .., d(s-1), ds, .., dn] -> [d0, .., d(s-1), ds*..*dn]",
        rule: flatten,
    },
    Builtin {
        name: "reshape",
        kind: Kind::Function,
        summary: "The same elements in a new shape (PyTorch `x.reshape(shape)`); the element count must not change.",
        inputs: &["x"],
        params: &[param(
            "shape",
            ParamType::Shape,
            Default::Required,
            "the new shape, such as `[B, 4, 16]`",
        )],
        shape_rule: "[*] -> shape; product of dims unchanged",
        rule: reshape,
    },
    Builtin {
        name: "transpose",
        kind: Kind::Function,
        summary: "Swaps two axes (PyTorch `x.transpose(a, b)`); by default the last two.",
        inputs: &["x"],
        params: &[
            param("a", ParamType::Int, Default::Int(-2), "first axis"),
            param("b", ParamType::Int, Default::Int(-1), "second axis"),
        ],
        shape_rule: "[.., n, .., m, ..] -> [.., m, .., n, ..]",
        rule: transpose,
    },
    Builtin {
        name: "mean",
        kind: Kind::Function,
        summary: "Average over `axis` (one axis or a tuple), or over everything when no axis is given.",
        inputs: &["x"],
        params: &[
            param(
                "axis",
                ParamType::Axes,
                Default::Absent,
                "axis or tuple of axes to average over; none means all",
            ),
            param(
                "keepdim",
                ParamType::Bool,
                Default::Bool(false),
                "keep reduced axes as size 1",
            ),
        ],
        shape_rule: "[B, T, D] -> [B, D] with axis: 1; [*] -> [] with no axis",
        rule: mean,
    },
    Builtin {
        name: "sum",
        kind: Kind::Function,
        summary: "Sum over `axis` (one axis or a tuple), or over everything when no axis is given.",
        inputs: &["x"],
        params: &[
            param(
                "axis",
                ParamType::Axes,
                Default::Absent,
                "axis or tuple of axes to sum over; none means all",
            ),
            param(
                "keepdim",
                ParamType::Bool,
                Default::Bool(false),
                "keep reduced axes as size 1",
            ),
        ],
        shape_rule: "[B, T, D] -> [B, D] with axis: 1; [*] -> [] with no axis; integers sum to i64",
        rule: sum,
    },
    Builtin {
        name: "concat",
        kind: Kind::Function,
        summary: "Joins tensors along `axis` (PyTorch `torch.cat`); every other dimension must agree.",
        inputs: &["tensors..."],
        params: &[param(
            "axis",
            ParamType::Int,
            Default::Int(-1),
            "axis to join along",
        )],
        shape_rule: "[B, n] , [B, m] -> [B, n + m] with axis: -1",
        rule: concat,
    },
    Builtin {
        name: "matmul",
        kind: Kind::Function,
        summary: "Matrix product with batched, broadcast leading axes (PyTorch `torch.matmul`).",
        inputs: &["a", "b"],
        params: &[],
        shape_rule: "[*, n, k] , [*, k, m] -> [*, n, m]; leading axes broadcast; a vector operand loses its axis",
        rule: matmul,
    },
    Builtin {
        name: "dropout",
        kind: Kind::Function,
        summary: "Zeroes each element with probability `p` while training and rescales the rest by 1/(1-p).",
        inputs: &["x"],
        params: &[param(
            "p",
            ParamType::Probability,
            Default::Float(0.5),
            "probability of zeroing an element",
        )],
        shape_rule: "[*] -> [*]",
        rule: dropout,
    },
    Builtin {
        name: "repeat",
        kind: Kind::Layer,
        summary: "Applies `count` fresh copies of `layer` in sequence, each with its own weights.",
        inputs: &["x"],
        params: &[
            param(
                "count",
                ParamType::Size,
                Default::Required,
                "number of copies",
            ),
            param(
                "layer",
                ParamType::Layer,
                Default::Required,
                "the layer or block to copy, such as `Encoder(128, heads: 4)`",
            ),
        ],
        shape_rule: "[*] -> layer(layer(..layer(x))); applies count fresh copies of layer in sequence, each copy's output the next one's input",
        // The checker applies the copies itself (it needs to check the body once per copy).
        rule: spec_rule,
    },
    Builtin {
        name: "param",
        kind: Kind::Layer,
        summary: "A learned tensor of the given shape, for writing layers from primitives (`matmul`, `exp`, ...).",
        inputs: &[],
        params: &[
            param(
                "shape",
                ParamType::Shape,
                Default::Required,
                "shape of the tensor, such as `[64, 10]`",
            ),
            param(
                "init",
                ParamType::Word(&["zeros", "ones", "normal", "uniform", "kaiming"]),
                Default::Word("normal"),
                "initial values",
            ),
        ],
        shape_rule: "() -> shape; weight shape",
        rule: learned,
    },
    Builtin {
        name: "normal",
        kind: Kind::Constructor,
        summary: "A tensor of standard normal noise, drawn afresh at each step (a GAN's latent `z`).",
        inputs: &[],
        params: &[param(
            "shape",
            ParamType::Shape,
            Default::Required,
            "shape of the noise, such as `[B, 100, 1, 1]`",
        )],
        shape_rule: "() -> f32 shape",
        rule: normal,
    },
    Builtin {
        name: "class",
        kind: Kind::Constructor,
        summary: "The type of a class label: an integer in 0..count, checked against the width of the logits.",
        inputs: &[],
        params: &[param(
            "count",
            ParamType::Size,
            Default::Required,
            "number of classes",
        )],
        shape_rule: "() -> the type i64[] marked with count classes",
        rule: class,
    },
];

fn product(dims: &[Dim]) -> Result<Dim, DimError> {
    dims.iter().try_fold(Dim::known(1), |acc, d| acc.mul(d))
}

/// Dims whose value the algebra cannot see through (`(H - 4)/2`) make a symbolic comparison
/// inconclusive.
fn has_opaque(d: &Dim) -> bool {
    d.symbols().any(|s| s.contains('('))
}

fn flatten(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let x = &ctx.inputs[0];
    let start = resolve_axis(ctx, 0, ctx.args.int("start"), "start")?;
    let merged = product(&x.dims[start..]).map_err(|e| RuleError::dim(e, Blame::Input(0)))?;
    let mut dims = x.dims[..start].to_vec();
    dims.push(merged);
    Ok(Output::tensor(x.with_dims(dims)))
}

fn reshape(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let x = &ctx.inputs[0];
    let shape = ctx.args.shape("shape");
    let target = x.with_dims(shape.clone());
    let have = product(&x.dims).map_err(|e| RuleError::dim(e, Blame::Input(0)))?;
    let want = product(&shape).map_err(|e| RuleError::dim(e, Blame::Param("shape")))?;
    if have != want && !has_opaque(&have) && !has_opaque(&want) {
        return Err(RuleError::new(
            "N3002",
            format!(
                "cannot reshape {x} ({have} elements) to {} ({want} elements)",
                target.shape_text()
            ),
            Blame::Param("shape"),
            format!("this has {want} elements"),
        )
        .also(Blame::Input(0), format!("this is {x}, {have} elements"))
        .help("a reshape keeps every element, so the product of the dims must stay the same"));
    }
    Ok(Output::tensor(target))
}

fn transpose(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let x = &ctx.inputs[0];
    let a = resolve_axis(ctx, 0, ctx.args.int("a"), "a")?;
    let b = resolve_axis(ctx, 0, ctx.args.int("b"), "b")?;
    let mut dims = x.dims.clone();
    dims.swap(a, b);
    Ok(Output::tensor(x.with_dims(dims)))
}

/// The type after reducing over the `axis` argument (all axes when absent or empty).
fn reduced(ctx: &RuleCtx) -> Result<TensorType, RuleError> {
    let x = &ctx.inputs[0];
    let axes = if ctx.args.has("axis") {
        ctx.args.axes("axis")
    } else {
        Vec::new()
    };
    let mut reduce = vec![axes.is_empty(); x.rank()];
    let mut seen = vec![false; x.rank()];
    for axis in axes {
        let i = resolve_axis(ctx, 0, axis, "axis")?;
        if seen[i] {
            return Err(RuleError::new(
                "N3009",
                format!("axis {i} of {x} is listed twice"),
                Blame::Param("axis"),
                format!("axis {axis} repeats an axis"),
            ));
        }
        seen[i] = true;
        reduce[i] = true;
    }
    let keep = ctx.args.bool("keepdim");
    let dims = x
        .dims
        .iter()
        .zip(&reduce)
        .filter_map(|(d, r)| match (r, keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::known(1)),
            (true, false) => None,
        })
        .collect();
    Ok(x.with_dims(dims))
}

fn mean(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_float(ctx, 0)?;
    Ok(Output::tensor(reduced(ctx)?))
}

fn sum(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let mut ty = reduced(ctx)?;
    // As in PyTorch, integer and boolean sums are 64-bit integers.
    if !ty.dtype.is_float() {
        ty.dtype = DType::I64;
    }
    Ok(Output::tensor(ty))
}

fn concat(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let Some(first) = ctx.inputs.first() else {
        return Err(RuleError::new(
            "N2005",
            "expected at least one tensor to join",
            Blame::Call,
            "no tensors",
        ));
    };
    let axis = resolve_axis(ctx, 0, ctx.args.int("axis"), "axis")?;
    let mut dims = first.dims.clone();
    for (i, t) in ctx.inputs.iter().enumerate().skip(1) {
        let mismatch = |code, message: String| {
            RuleError::new(code, message, Blame::Input(i), format!("this is {t}"))
                .also(Blame::Input(0), format!("this is {first}"))
        };
        if t.dtype != first.dtype {
            return Err(mismatch(
                "N3004",
                format!("cannot join {first} and {t}: the element types differ"),
            ));
        }
        if t.rank() != first.rank() {
            return Err(mismatch(
                "N3003",
                format!("cannot join {first} and {t}: the ranks differ"),
            ));
        }
        for (j, (a, b)) in first.dims.iter().zip(&t.dims).enumerate() {
            if j == axis {
                dims[j] = dims[j]
                    .add(b)
                    .map_err(|e| RuleError::dim(e, Blame::Input(i)))?;
            } else if a != b {
                return Err(mismatch(
                    "N3002",
                    format!("cannot join {first} and {t} along axis {axis}: axis {j} differs ({a} vs {b})"),
                )
                .help("every axis except the one joined along must have the same size"));
            }
        }
    }
    Ok(Output::tensor(first.with_dims(dims)))
}

fn matmul(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_float(ctx, 0)?;
    require_float(ctx, 1)?;
    let (a, b) = (&ctx.inputs[0], &ctx.inputs[1]);
    let both = |code, message: String, first: usize| {
        let (here, there) = if first == 0 { (a, b) } else { (b, a) };
        RuleError::new(
            code,
            message,
            Blame::Input(first),
            format!("this is {here}"),
        )
        .also(Blame::Input(1 - first), format!("this is {there}"))
    };
    if a.dtype != b.dtype {
        return Err(both(
            "N3004",
            format!("cannot multiply {a} by {b}: the element types differ"),
            1,
        ));
    }
    for (i, t) in [a, b].into_iter().enumerate() {
        if t.rank() == 0 {
            return Err(RuleError::new(
                "N3003",
                format!("expected a vector or matrix, found the scalar {t}"),
                Blame::Input(i),
                format!("this is {t}"),
            )
            .help("scale by a number with `*` instead"));
        }
    }
    let one = Dim::known(1);
    let mut ad = a.dims.clone();
    let mut bd = b.dims.clone();
    let (a_vector, b_vector) = (ad.len() == 1, bd.len() == 1);
    if a_vector {
        ad.insert(0, one.clone());
    }
    if b_vector {
        bd.push(one.clone());
    }
    let (a_batch, a_mat) = ad.split_at(ad.len() - 2);
    let (b_batch, b_mat) = bd.split_at(bd.len() - 2);
    if a_mat[1] != b_mat[0] {
        return Err(both(
            "N3002",
            format!("inner dimensions differ: {a} has {} columns but {b} has {} rows", a_mat[1], b_mat[0]),
            0,
        )
        .help("matmul multiplies [.., n, k] by [.., k, m]: the last axis of the first must equal the second-to-last of the second"));
    }
    let rank = a_batch.len().max(b_batch.len());
    let mut dims = Vec::with_capacity(rank + 2);
    for i in 0..rank {
        let da = (i + a_batch.len()).checked_sub(rank).map(|j| &a_batch[j]);
        let db = (i + b_batch.len()).checked_sub(rank).map(|j| &b_batch[j]);
        let d = match (da, db) {
            (Some(x), Some(y)) if x == y || *y == one => x.clone(),
            (Some(x), Some(y)) if *x == one => y.clone(),
            (Some(x), None) => x.clone(),
            (None, Some(y)) => y.clone(),
            _ => {
                return Err(both(
                    "N3002",
                    format!("the batch axes of {a} and {b} cannot be broadcast together"),
                    0,
                )
                .help("leading axes must be equal, or 1 to broadcast"));
            }
        };
        dims.push(d);
    }
    if !a_vector {
        dims.push(a_mat[0].clone());
    }
    if !b_vector {
        dims.push(b_mat[1].clone());
    }
    Ok(Output::tensor(a.with_dims(dims)))
}

fn dropout(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    Ok(Output::tensor(x.with_dims(x.dims.clone())))
}

fn learned(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let dims = ctx.args.shape("shape");
    Ok(Output::tensor(TensorType::f32(dims.clone()))
        .with_weights(vec![Weight::trainable("weight", dims)]))
}

fn normal(ctx: &RuleCtx) -> Result<Output, RuleError> {
    Ok(Output::tensor(TensorType::f32(ctx.args.shape("shape"))))
}

fn class(ctx: &RuleCtx) -> Result<Output, RuleError> {
    let count = ctx.args.dim("count");
    match count.as_known() {
        Some(c) if c >= 2 => Ok(Output {
            value: Value::Type(TensorType {
                dtype: DType::I64,
                dims: Vec::new(),
                classes: Some(c),
            }),
            weights: Vec::new(),
        }),
        Some(c) => Err(RuleError::new(
            "N4010",
            format!("a class label needs at least 2 classes, found {c}"),
            Blame::Param("count"),
            "fewer than 2 classes",
        )
        .help("for a yes/no target declare an `f32[1]` field and use `bce_with_logits`")),
        None => Err(RuleError::new(
            "N4010",
            format!("the number of classes must be a known number, found {count}"),
            Blame::Param("count"),
            "not a known number",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::{out_for_test, run_for_test, ty_for_test};

    fn f32(shape: &str) -> TensorType {
        ty_for_test(DType::F32, shape)
    }

    fn run(
        name: &str,
        inputs: &[TensorType],
        given: &[(&str, Value)],
    ) -> Result<TensorType, RuleError> {
        run_for_test(BUILTINS, name, inputs, given).map(|o| out_for_test(&o))
    }

    fn shape(items: &[i64]) -> Value {
        Value::List(items.iter().map(|i| Value::Int(*i)).collect())
    }

    #[test]
    fn flatten_merges_from_start() {
        assert_eq!(
            run("flatten", &[f32("B, 16, 5, 5")], &[])
                .unwrap()
                .to_string(),
            "f32[B, 400]"
        );
        assert_eq!(
            run("flatten", &[f32("B, 1, 1, 1")], &[])
                .unwrap()
                .to_string(),
            "f32[B, 1]"
        );
        assert_eq!(
            run("flatten", &[f32("B, T, 4, 8")], &[("start", Value::Int(2))])
                .unwrap()
                .to_string(),
            "f32[B, T, 32]"
        );
        assert_eq!(
            run("flatten", &[f32("B, T, D")], &[("start", Value::Int(0))])
                .unwrap()
                .to_string(),
            "f32[B*D*T]"
        );
        assert_eq!(
            run("flatten", &[f32("B, 10")], &[("start", Value::Int(-1))])
                .unwrap()
                .to_string(),
            "f32[B, 10]"
        );
        assert_eq!(run("flatten", &[f32("B")], &[]).unwrap_err().code, "N3009");
    }

    #[test]
    fn reshape_keeps_the_element_count() {
        let out = run("reshape", &[f32("4, 16")], &[("shape", shape(&[2, 32]))]).unwrap();
        assert_eq!(out.to_string(), "f32[2, 32]");
        let err = run("reshape", &[f32("4, 16")], &[("shape", shape(&[3, 32]))]).unwrap_err();
        assert_eq!(err.code, "N3002");
        assert_eq!(
            err.message,
            "cannot reshape f32[4, 16] (64 elements) to [3, 32] (96 elements)"
        );
        let b = Value::Dim(Dim::symbol("B"));
        let ok = Value::List(vec![b.clone(), Value::Int(8), Value::Int(8)]);
        assert_eq!(
            run("reshape", &[f32("B, 64")], &[("shape", ok)])
                .unwrap()
                .to_string(),
            "f32[B, 8, 8]"
        );
        let bad = Value::List(vec![b, Value::Int(8), Value::Int(9)]);
        assert_eq!(
            run("reshape", &[f32("B, 64")], &[("shape", bad)])
                .unwrap_err()
                .code,
            "N3002"
        );
    }

    #[test]
    fn transpose_swaps_axes() {
        assert_eq!(
            run("transpose", &[f32("B, T, D")], &[])
                .unwrap()
                .to_string(),
            "f32[B, D, T]"
        );
        let given = [("a", Value::Int(0)), ("b", Value::Int(1))];
        assert_eq!(
            run("transpose", &[f32("B, T, D")], &given)
                .unwrap()
                .to_string(),
            "f32[T, B, D]"
        );
        assert_eq!(
            run("transpose", &[f32("B")], &[]).unwrap_err().code,
            "N3009"
        );
    }

    #[test]
    fn reductions() {
        let x = f32("B, T, D");
        assert_eq!(
            run("mean", std::slice::from_ref(&x), &[("axis", Value::Int(1))])
                .unwrap()
                .to_string(),
            "f32[B, D]"
        );
        assert_eq!(
            run("mean", std::slice::from_ref(&x), &[])
                .unwrap()
                .to_string(),
            "f32[]"
        );
        let keep = [("axis", Value::Int(-1)), ("keepdim", Value::Bool(true))];
        assert_eq!(
            run("sum", std::slice::from_ref(&x), &keep)
                .unwrap()
                .to_string(),
            "f32[B, T, 1]"
        );
        let two = Value::Tuple(vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(
            run("sum", std::slice::from_ref(&x), &[("axis", two)])
                .unwrap()
                .to_string(),
            "f32[B]"
        );
        let twice = Value::Tuple(vec![Value::Int(1), Value::Int(-2)]);
        assert_eq!(
            run("sum", std::slice::from_ref(&x), &[("axis", twice)])
                .unwrap_err()
                .code,
            "N3009"
        );
        assert_eq!(
            run("mean", std::slice::from_ref(&x), &[("axis", Value::Int(3))])
                .unwrap_err()
                .code,
            "N3009"
        );
        assert_eq!(
            run("sum", &[ty_for_test(DType::I32, "B, 4")], &[])
                .unwrap()
                .to_string(),
            "i64[]"
        );
        assert_eq!(
            run("mean", &[ty_for_test(DType::I32, "B, 4")], &[])
                .unwrap_err()
                .code,
            "N3004"
        );
    }

    #[test]
    fn concat_sums_the_joined_axis() {
        let out = run("concat", &[f32("B, 48"), f32("B, 48"), f32("B, 4")], &[]).unwrap();
        assert_eq!(out.to_string(), "f32[B, 100]");
        let out = run(
            "concat",
            &[f32("B, T, 8"), f32("B, T, 8")],
            &[("axis", Value::Int(1))],
        )
        .unwrap();
        assert_eq!(out.to_string(), "f32[B, 2*T, 8]");
        let err = run("concat", &[f32("B, 48"), f32("B, 48, 2")], &[]).unwrap_err();
        assert_eq!(err.code, "N3003");
        let err = run("concat", &[f32("B, 48"), f32("4, 48")], &[]).unwrap_err();
        assert_eq!(err.code, "N3002");
        assert_eq!(err.blame, Blame::Input(1));
        let err = run(
            "concat",
            &[f32("B, 48"), ty_for_test(DType::I64, "B, 2")],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.code, "N3004");
    }

    #[test]
    fn matmul_batches_and_broadcasts() {
        assert_eq!(
            run("matmul", &[f32("B, 64"), f32("64, 10")], &[])
                .unwrap()
                .to_string(),
            "f32[B, 10]"
        );
        assert_eq!(
            run("matmul", &[f32("B, H, T, 8"), f32("B, H, 8, T")], &[])
                .unwrap()
                .to_string(),
            "f32[B, H, T, T]"
        );
        assert_eq!(
            run("matmul", &[f32("B, T, D"), f32("D, 4")], &[])
                .unwrap()
                .to_string(),
            "f32[B, T, 4]"
        );
        assert_eq!(
            run("matmul", &[f32("1, T, D"), f32("B, D, 4")], &[])
                .unwrap()
                .to_string(),
            "f32[B, T, 4]"
        );
        assert_eq!(
            run("matmul", &[f32("D"), f32("D")], &[])
                .unwrap()
                .to_string(),
            "f32[]"
        );
        assert_eq!(
            run("matmul", &[f32("B, T, D"), f32("D")], &[])
                .unwrap()
                .to_string(),
            "f32[B, T]"
        );
        assert_eq!(
            run("matmul", &[f32("D"), f32("D, 5")], &[])
                .unwrap()
                .to_string(),
            "f32[5]"
        );
        let err = run("matmul", &[f32("B, 3"), f32("4, 5")], &[]).unwrap_err();
        assert_eq!(err.code, "N3002");
        assert_eq!(
            err.message,
            "inner dimensions differ: f32[B, 3] has 3 columns but f32[4, 5] has 4 rows"
        );
        assert_eq!(
            err.also,
            vec![(Blame::Input(1), "this is f32[4, 5]".to_string())]
        );
        let err = run("matmul", &[f32("2, T, D"), f32("3, D, 4")], &[]).unwrap_err();
        assert_eq!(err.code, "N3002");
        assert_eq!(
            run("matmul", &[f32(""), f32("3")], &[]).unwrap_err().code,
            "N3003"
        );
    }

    #[test]
    fn dropout_keeps_the_shape() {
        assert_eq!(
            run("dropout", &[f32("B, 256")], &[("p", Value::Float(0.3))])
                .unwrap()
                .to_string(),
            "f32[B, 256]"
        );
    }

    #[test]
    fn param_creates_a_learned_tensor() {
        let out = run_for_test(BUILTINS, "param", &[], &[("shape", shape(&[64, 10]))]).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[64, 10]");
        assert_eq!(
            out.weights,
            vec![Weight::trainable(
                "weight",
                vec![Dim::known(64), Dim::known(10)]
            )]
        );
    }

    #[test]
    fn constructors() {
        let z = Value::List(vec![
            Value::Dim(Dim::symbol("B")),
            Value::Int(100),
            Value::Int(1),
            Value::Int(1),
        ]);
        let out = run_for_test(BUILTINS, "normal", &[], &[("shape", z)]).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 100, 1, 1]");
        assert!(out.weights.is_empty());
        let out = run_for_test(BUILTINS, "class", &[], &[("count", Value::Int(10))]).unwrap();
        assert!(
            matches!(out.value, Value::Type(ref t) if *t == TensorType { dtype: DType::I64, dims: vec![], classes: Some(10) })
        );
        let err = run_for_test(BUILTINS, "class", &[], &[("count", Value::Int(1))]).unwrap_err();
        assert_eq!(err.code, "N4010");
        let err = run_for_test(
            BUILTINS,
            "class",
            &[],
            &[("count", Value::Dim(Dim::symbol("C")))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N4010");
    }
}
