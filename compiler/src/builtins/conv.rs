//! Convolution and pooling over NCHW images: `conv2d`, `conv_transpose2d`, `max_pool`,
//! `avg_pool`.
//!
//! Output sizes follow PyTorch's formulas with floor division, computed on symbolic dims so a
//! model over `[B, 3, H, W]` still gets a printable shape. A size that is known and below 1 is
//! an error that shows the formula with the numbers, since that is how users debug it.

#![allow(
    clippy::result_large_err,
    reason = "rules return the framework's `RuleError` by value; see `Rule`"
)]

use super::{
    Blame, Builtin, Default, Kind, Output, Param, ParamType, RuleCtx, RuleError, Weight, param,
};
use super::{require_float, require_rank};
use crate::dim::Dim;

/// Arguments both convolutions (`CONV_*`) or both pools (`POOL_*`) take.
const CONV_KERNEL: Param = param(
    "kernel",
    ParamType::SizeOrPair,
    Default::Required,
    "kernel size `k` or `(kh, kw)`",
);
const CONV_BIAS: Param = param(
    "bias",
    ParamType::Bool,
    Default::Bool(true),
    "add a learned bias per output channel",
);
const POOL_KERNEL: Param = param(
    "kernel",
    ParamType::SizeOrPair,
    Default::Required,
    "window size `k` or `(kh, kw)`",
);
const POOL_STRIDE: Param = param(
    "stride",
    ParamType::SizeOrPair,
    Default::Absent,
    "step between windows; defaults to `kernel`",
);

/// The convolution family, in reference order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "conv2d",
        kind: Kind::Layer,
        summary: "2-D convolution (cross-correlation) over NCHW images (PyTorch `nn.Conv2d`); input channels are inferred.",
        inputs: &["x"],
        params: &[
            param("out", ParamType::Size, Default::Required, "output channels"),
            CONV_KERNEL,
            param(
                "stride",
                ParamType::SizeOrPair,
                Default::Int(1),
                "step between windows",
            ),
            param(
                "padding",
                ParamType::NonNegOrPair,
                Default::Int(0),
                "zeros added on each side",
            ),
            param(
                "dilation",
                ParamType::SizeOrPair,
                Default::Int(1),
                "spacing between kernel taps",
            ),
            CONV_BIAS,
        ],
        shape_rule: "[B, C, H, W] -> [B, out, H', W']; H' = (H + 2p - d(k-1) - 1)/s + 1; weight [out, C, kh, kw], bias [out]",
        rule: conv2d,
    },
    Builtin {
        name: "conv_transpose2d",
        kind: Kind::Layer,
        summary: "Transposed 2-D convolution, the adjoint of `conv2d`, for upsampling (PyTorch `nn.ConvTranspose2d`).",
        inputs: &["x"],
        params: &[
            param("out", ParamType::Size, Default::Required, "output channels"),
            CONV_KERNEL,
            param(
                "stride",
                ParamType::SizeOrPair,
                Default::Int(1),
                "upsampling factor",
            ),
            param(
                "padding",
                ParamType::NonNegOrPair,
                Default::Int(0),
                "rows and columns trimmed from each side",
            ),
            param(
                "output_padding",
                ParamType::NonNegOrPair,
                Default::Int(0),
                "extra rows and columns on one side, to pick among output sizes; smaller than stride",
            ),
            CONV_BIAS,
        ],
        shape_rule: "[B, C, H, W] -> [B, out, H', W']; H' = (H-1)s - 2p + (k-1) + output_padding + 1; weight [C, out, kh, kw], bias [out]",
        rule: conv_transpose2d,
    },
    Builtin {
        name: "max_pool",
        kind: Kind::Function,
        summary: "Largest value in each window (PyTorch `F.max_pool2d`); the stride defaults to the kernel size.",
        inputs: &["x"],
        params: &[
            POOL_KERNEL,
            POOL_STRIDE,
            param(
                "padding",
                ParamType::NonNegOrPair,
                Default::Int(0),
                "implicit padding on each side, at most half the kernel",
            ),
        ],
        shape_rule: "[B, C, H, W] -> [B, C, H', W']; H' = (H + 2p - k)/s + 1, s = k by default",
        rule: pool,
    },
    Builtin {
        name: "avg_pool",
        kind: Kind::Function,
        summary: "Mean of each window (PyTorch `F.avg_pool2d`, padding counted as zeros); the stride defaults to the kernel size.",
        inputs: &["x"],
        params: &[
            POOL_KERNEL,
            POOL_STRIDE,
            param(
                "padding",
                ParamType::NonNegOrPair,
                Default::Int(0),
                "zero padding on each side, at most half the kernel",
            ),
        ],
        shape_rule: "[B, C, H, W] -> [B, C, H', W']; H' = (H + 2p - k)/s + 1, s = k by default",
        rule: pool,
    },
];

const LAYOUT: &str = "[B, C, H, W]";

/// One spatial axis of a window operation, its arguments already split per axis.
struct Axis<'a> {
    /// "height" or "width".
    name: &'a str,
    size: &'a Dim,
    kernel: Dim,
    stride: Dim,
    padding: Dim,
}

/// The `h` or `w` half of a pair argument.
fn pick(pair: (Dim, Dim), second: bool) -> Dim {
    if second { pair.1 } else { pair.0 }
}

/// Apply `f` to the height (axis 2) and width (axis 3) of the input, giving their new sizes.
fn spatial(
    ctx: &RuleCtx,
    mut f: impl FnMut(&Axis, bool) -> Result<Dim, RuleError>,
) -> Result<[Dim; 2], RuleError> {
    let x = &ctx.inputs[0];
    let mut out = [Dim::known(0), Dim::known(0)];
    for (i, name) in ["height", "width"].into_iter().enumerate() {
        let second = i == 1;
        let kernel = pick(ctx.args.pair("kernel"), second);
        // Pools leave `stride` absent to mean "the kernel size".
        let stride = if ctx.args.has("stride") {
            pick(ctx.args.pair("stride"), second)
        } else {
            kernel.clone()
        };
        let axis = Axis {
            name,
            size: &x.dims[2 + i],
            kernel,
            stride,
            padding: pick(ctx.args.pair("padding"), second),
        };
        out[i] = f(&axis, second)?;
    }
    Ok(out)
}

/// `(H + 2p - d(k-1) - 1)/s + 1`, symbolically; an error when known and below 1.
fn window_output(ctx: &RuleCtx, axis: &Axis, dilation: &Dim) -> Result<Dim, RuleError> {
    let err = |e| RuleError::dim(e, Blame::Call);
    let one = Dim::known(1);
    let span = dilation
        .mul(&axis.kernel.sub(&one).map_err(err)?)
        .map_err(err)?;
    let numerator = axis
        .size
        .add(&Dim::known(2).mul(&axis.padding).map_err(err)?)
        .and_then(|n| n.sub(&span))
        .and_then(|n| n.sub(&one))
        .map_err(err)?;
    let out = numerator
        .div(&axis.stride)
        .and_then(|q| q.add(&one))
        .map_err(err)?;
    if out.as_known().is_some_and(|n| n < 1) {
        let formula = format!(
            "({} + 2*{} - {}*({}-1) - 1)/{} + 1 = {out}",
            axis.size, axis.padding, dilation, axis.kernel, axis.stride
        );
        return Err(too_small(
            ctx,
            axis,
            formula,
            "a smaller kernel, more padding or a larger input",
        ));
    }
    Ok(out)
}

fn too_small(ctx: &RuleCtx, axis: &Axis, formula: String, fix: &str) -> RuleError {
    let x = &ctx.inputs[0];
    RuleError::new(
        "N3006",
        format!("the output {} would be below 1: {formula}", axis.name),
        Blame::Param("kernel"),
        format!("kernel {} over {} {}", axis.kernel, axis.name, axis.size),
    )
    .also(Blame::Input(0), format!("this is {x}"))
    .help(format!("use {fix}"))
}

fn conv2d(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_rank(ctx, 0, 4, LAYOUT)?;
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    let dilation = ctx.args.pair("dilation");
    let [h, w] = spatial(ctx, |axis, second| {
        window_output(ctx, axis, &pick(dilation.clone(), second))
    })?;
    let out = ctx.args.dim("out");
    let (kh, kw) = ctx.args.pair("kernel");
    let mut weights = vec![Weight::trainable(
        "weight",
        vec![out.clone(), x.dims[1].clone(), kh, kw],
    )];
    if ctx.args.bool("bias") {
        weights.push(Weight::trainable("bias", vec![out.clone()]));
    }
    Ok(Output::tensor(x.with_dims(vec![x.dims[0].clone(), out, h, w])).with_weights(weights))
}

fn conv_transpose2d(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_rank(ctx, 0, 4, LAYOUT)?;
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    let output_padding = ctx.args.pair("output_padding");
    let [h, w] = spatial(ctx, |axis, second| {
        let extra = pick(output_padding.clone(), second);
        if let (Some(op), Some(s)) = (extra.as_known(), axis.stride.as_known())
            && op >= s
        {
            return Err(RuleError::new(
                "N4010",
                format!(
                    "output_padding {op} must be smaller than the stride {s} ({})",
                    axis.name
                ),
                Blame::Param("output_padding"),
                format!("{op} is not below the stride {s}"),
            )
            .help("output_padding only chooses among the sizes a stride could have produced"));
        }
        let err = |e| RuleError::dim(e, Blame::Call);
        let one = Dim::known(1);
        let out = axis
            .size
            .sub(&one)
            .and_then(|n| n.mul(&axis.stride))
            .and_then(|n| n.sub(&Dim::known(2).mul(&axis.padding)?))
            .and_then(|n| n.add(&axis.kernel.sub(&one)?))
            .and_then(|n| n.add(&extra))
            .and_then(|n| n.add(&one))
            .map_err(err)?;
        if out.as_known().is_some_and(|n| n < 1) {
            let formula = format!(
                "({}-1)*{} - 2*{} + ({}-1) + {} + 1 = {out}",
                axis.size, axis.stride, axis.padding, axis.kernel, extra
            );
            return Err(too_small(
                ctx,
                axis,
                formula,
                "less padding or a larger kernel or stride",
            ));
        }
        Ok(out)
    })?;
    let out = ctx.args.dim("out");
    let (kh, kw) = ctx.args.pair("kernel");
    let mut weights = vec![Weight::trainable(
        "weight",
        vec![x.dims[1].clone(), out.clone(), kh, kw],
    )];
    if ctx.args.bool("bias") {
        weights.push(Weight::trainable("bias", vec![out.clone()]));
    }
    Ok(Output::tensor(x.with_dims(vec![x.dims[0].clone(), out, h, w])).with_weights(weights))
}

fn pool(ctx: &RuleCtx) -> Result<Output, RuleError> {
    require_rank(ctx, 0, 4, LAYOUT)?;
    require_float(ctx, 0)?;
    let x = &ctx.inputs[0];
    let [h, w] = spatial(ctx, |axis, _| {
        // PyTorch: "pad should be at most half of effective kernel size".
        if let (Some(p), Some(k)) = (axis.padding.as_known(), axis.kernel.as_known())
            && p.checked_mul(2).is_none_or(|twice| twice > k)
        {
            return Err(RuleError::new(
                "N4010",
                format!(
                    "padding {p} is more than half the kernel {k} ({})",
                    axis.name
                ),
                Blame::Param("padding"),
                format!("at most {} here", k / 2),
            )
            .help("a window made mostly of padding has nothing to pool; PyTorch rejects it too"));
        }
        let err = |e| RuleError::dim(e, Blame::Call);
        let numerator = axis
            .size
            .add(&Dim::known(2).mul(&axis.padding).map_err(err)?)
            .and_then(|n| n.sub(&axis.kernel))
            .map_err(err)?;
        let out = numerator
            .div(&axis.stride)
            .and_then(|q| q.add(&Dim::known(1)))
            .map_err(err)?;
        if out.as_known().is_some_and(|n| n < 1) {
            let formula = format!(
                "({} + 2*{} - {})/{} + 1 = {out}",
                axis.size, axis.padding, axis.kernel, axis.stride
            );
            return Err(too_small(
                ctx,
                axis,
                formula,
                "a smaller window or a larger input",
            ));
        }
        Ok(out)
    })?;
    Ok(Output::tensor(x.with_dims(vec![
        x.dims[0].clone(),
        x.dims[1].clone(),
        h,
        w,
    ])))
}

#[cfg(test)]
mod tests {
    use netc_grammar::DType;

    use super::*;
    use crate::builtins::{out_for_test, run_for_test, ty_for_test};
    use crate::types::{TensorType, Value};

    fn f32(shape: &str) -> TensorType {
        ty_for_test(DType::F32, shape)
    }

    fn run(name: &str, shape: &str, given: &[(&str, Value)]) -> Result<Output, RuleError> {
        run_for_test(BUILTINS, name, &[f32(shape)], given)
    }

    fn shape_of(name: &str, shape: &str, given: &[(&str, Value)]) -> String {
        out_for_test(&run(name, shape, given).unwrap()).to_string()
    }

    fn dims(items: &[i64]) -> Vec<Dim> {
        items.iter().map(|i| Dim::known(*i)).collect()
    }

    fn int(v: i64) -> Value {
        Value::Int(v)
    }

    #[test]
    fn lenet_shapes() {
        let out = run(
            "conv2d",
            "B, 3, 32, 32",
            &[("out", int(6)), ("kernel", int(5))],
        )
        .unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 6, 28, 28]");
        assert_eq!(
            out.weights,
            vec![
                Weight::trainable("weight", dims(&[6, 3, 5, 5])),
                Weight::trainable("bias", dims(&[6]))
            ]
        );
        assert_eq!(
            shape_of("max_pool", "B, 6, 28, 28", &[("kernel", int(2))]),
            "f32[B, 6, 14, 14]"
        );
        assert_eq!(
            shape_of(
                "conv2d",
                "B, 6, 14, 14",
                &[("out", int(16)), ("kernel", int(5))]
            ),
            "f32[B, 16, 10, 10]"
        );
        assert_eq!(
            shape_of("max_pool", "B, 16, 10, 10", &[("kernel", int(2))]),
            "f32[B, 16, 5, 5]"
        );
    }

    #[test]
    fn dcgan_generator_chain() {
        let first = [
            ("out", int(256)),
            ("kernel", int(4)),
            ("bias", Value::Bool(false)),
        ];
        let out = run("conv_transpose2d", "B, 100, 1, 1", &first).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 256, 4, 4]");
        assert_eq!(
            out.weights,
            vec![Weight::trainable("weight", dims(&[100, 256, 4, 4]))]
        );
        let up = |c| {
            vec![
                ("out", int(c)),
                ("kernel", int(4)),
                ("stride", int(2)),
                ("padding", int(1)),
            ]
        };
        assert_eq!(
            shape_of("conv_transpose2d", "B, 256, 4, 4", &up(128)),
            "f32[B, 128, 8, 8]"
        );
        assert_eq!(
            shape_of("conv_transpose2d", "B, 128, 8, 8", &up(64)),
            "f32[B, 64, 16, 16]"
        );
        let out = run("conv_transpose2d", "B, 64, 16, 16", &up(3)).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 3, 32, 32]");
        assert_eq!(
            out.weights,
            vec![
                Weight::trainable("weight", dims(&[64, 3, 4, 4])),
                Weight::trainable("bias", dims(&[3]))
            ]
        );
    }

    #[test]
    fn dcgan_discriminator_chain() {
        let down = |c| {
            vec![
                ("out", int(c)),
                ("kernel", int(4)),
                ("stride", int(2)),
                ("padding", int(1)),
            ]
        };
        assert_eq!(
            shape_of("conv2d", "B, 3, 32, 32", &down(64)),
            "f32[B, 64, 16, 16]"
        );
        assert_eq!(
            shape_of("conv2d", "B, 64, 16, 16", &down(128)),
            "f32[B, 128, 8, 8]"
        );
        assert_eq!(
            shape_of("conv2d", "B, 128, 8, 8", &down(256)),
            "f32[B, 256, 4, 4]"
        );
        assert_eq!(
            shape_of(
                "conv2d",
                "B, 256, 4, 4",
                &[("out", int(1)), ("kernel", int(4))]
            ),
            "f32[B, 1, 1, 1]"
        );
    }

    #[test]
    fn stride_padding_dilation_and_pairs() {
        // (32 + 2*2 - 2*(3-1) - 1)/2 + 1 = 16
        let given = [
            ("out", int(8)),
            ("kernel", int(3)),
            ("stride", int(2)),
            ("padding", int(2)),
            ("dilation", int(2)),
        ];
        assert_eq!(
            shape_of("conv2d", "B, 3, 32, 32", &given),
            "f32[B, 8, 16, 16]"
        );
        let pair = |a, b| Value::Tuple(vec![int(a), int(b)]);
        let given = [
            ("out", int(4)),
            ("kernel", pair(3, 5)),
            ("padding", pair(1, 0)),
        ];
        let out = run("conv2d", "B, 3, 10, 20", &given).unwrap();
        assert_eq!(out_for_test(&out).to_string(), "f32[B, 4, 10, 16]");
        assert_eq!(out.weights[0].dims, dims(&[4, 3, 3, 5]));
        // avg_pool with an explicit stride and padding: (7 + 2*1 - 3)/2 + 1 = 4
        let given = [("kernel", int(3)), ("stride", int(2)), ("padding", int(1))];
        assert_eq!(
            shape_of("avg_pool", "B, 8, 7, 7", &given),
            "f32[B, 8, 4, 4]"
        );
        // output_padding picks the larger of two sizes: (4-1)*2 - 2*1 + (3-1) + 1 + 1 = 8
        let given = [
            ("out", int(4)),
            ("kernel", int(3)),
            ("stride", int(2)),
            ("padding", int(1)),
            ("output_padding", int(1)),
        ];
        assert_eq!(
            shape_of("conv_transpose2d", "B, 8, 4, 4", &given),
            "f32[B, 4, 8, 8]"
        );
    }

    #[test]
    fn kernel_larger_than_input() {
        let err = run(
            "conv2d",
            "B, 3, 5, 5",
            &[("out", int(8)), ("kernel", int(7))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N3006");
        assert_eq!(
            err.message,
            "the output height would be below 1: (5 + 2*0 - 1*(7-1) - 1)/1 + 1 = -1"
        );
        assert_eq!(err.blame, Blame::Param("kernel"));
        assert_eq!(
            err.also,
            vec![(Blame::Input(0), "this is f32[B, 3, 5, 5]".to_string())]
        );
        let err = run("max_pool", "B, 3, 1, 8", &[("kernel", int(2))]).unwrap_err();
        assert_eq!(err.code, "N3006");
        assert_eq!(
            err.message,
            "the output height would be below 1: (1 + 2*0 - 2)/2 + 1 = 0"
        );
        let given = [("out", int(3)), ("kernel", int(1)), ("padding", int(2))];
        let err = run("conv_transpose2d", "B, 3, 2, 2", &given).unwrap_err();
        assert_eq!(err.code, "N3006");
        assert_eq!(
            err.message,
            "the output height would be below 1: (2-1)*1 - 2*2 + (1-1) + 0 + 1 = -2"
        );
    }

    #[test]
    fn invalid_hyper_parameters() {
        let err = run(
            "max_pool",
            "B, 3, 8, 8",
            &[("kernel", int(2)), ("padding", int(2))],
        )
        .unwrap_err();
        assert_eq!(err.code, "N4010");
        let given = [
            ("out", int(3)),
            ("kernel", int(4)),
            ("stride", int(2)),
            ("output_padding", int(2)),
        ];
        let err = run("conv_transpose2d", "B, 3, 8, 8", &given).unwrap_err();
        assert_eq!(err.code, "N4010");
    }

    #[test]
    fn symbolic_sizes_stay_printable() {
        let given = [("out", int(16)), ("kernel", int(3)), ("stride", int(2))];
        let out = out_for_test(&run("conv2d", "B, 3, H, W", &given).unwrap());
        assert_eq!(out.to_string(), "f32[B, 16, (H - 3)/2 + 1, (W - 3)/2 + 1]");
        let out = out_for_test(
            &run(
                "conv2d",
                "B, 3, H, W",
                &[("out", int(16)), ("kernel", int(5))],
            )
            .unwrap(),
        );
        assert_eq!(out.to_string(), "f32[B, 16, H - 4, W - 4]");
        let out = out_for_test(&run("max_pool", "B, 3, H, W", &[("kernel", int(2))]).unwrap());
        assert_eq!(out.to_string(), "f32[B, 3, (H - 2)/2 + 1, (W - 2)/2 + 1]");
        let up = [
            ("out", int(3)),
            ("kernel", int(4)),
            ("stride", int(2)),
            ("padding", int(1)),
        ];
        let out = out_for_test(&run("conv_transpose2d", "B, 8, H, W", &up).unwrap());
        assert_eq!(out.to_string(), "f32[B, 3, 2*H, 2*W]");
    }

    #[test]
    fn layout_is_checked() {
        assert_eq!(
            run("conv2d", "B, 64", &[("out", int(8)), ("kernel", int(3))])
                .unwrap_err()
                .code,
            "N3003"
        );
        let ids = ty_for_test(DType::I64, "B, 1, 8, 8");
        let err = run_for_test(BUILTINS, "max_pool", &[ids], &[("kernel", int(2))]).unwrap_err();
        assert_eq!(err.code, "N3004");
    }
}
