//! The closed set of IR operations and their type rules.
//!
//! Every op is data: a variant with typed attributes. Per-op knowledge lives in one `match` per
//! concern: the type rule here, semantics in the interpreter, the vector-Jacobian product in
//! autodiff, and later the lowering to kernels. Shapes are concrete: a graph is built for one
//! batch size, so every dimension is a number.

use std::fmt;

/// Element types in the IR. Class labels and token ids are `I64`; everything else `F32`
/// (the interpreter can evaluate `F32` graphs in f64 for gradient checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    I64,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        })
    }
}

/// A value's type: element type and concrete shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Type {
    pub fn f32(shape: Vec<usize>) -> Type {
        Type {
            dtype: DType::F32,
            shape,
        }
    }

    pub fn i64(shape: Vec<usize>) -> Type {
        Type {
            dtype: DType::I64,
            shape,
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        write!(f, "{}[{}]", self.dtype, dims.join(", "))
    }
}

/// What an input of a step graph holds, which decides who provides it each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A batch field from the data loader.
    Data,
    /// A trainable parameter (stays in place across steps).
    Param,
    /// Non-trained state kept across steps: batch-norm statistics, optimizer moments.
    State,
    /// A host-computed scalar given each step: learning rate, Adam's bias corrections, RNG seed.
    Scalar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Tanh,
    Sigmoid,
    Relu,
    Erf,
    Abs,
    Recip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    /// 1.0 where `a > b`, else 0.0.
    Greater,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
}

impl ReduceOp {
    /// The value a reduction starts from (and the result over no elements): every backend
    /// and the interpreter must agree on it.
    pub fn identity(self) -> f64 {
        match self {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f64::NEG_INFINITY,
        }
    }
}

/// Distributions of [`Op::Random`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// Uniform on [0, 1).
    Uniform,
    /// Standard normal.
    Normal,
}

/// Stride, padding and dilation of a 2-D window, per spatial axis (h, w).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Window {
    /// Output size of a convolution or pool over `input` along axis `i`, `None` if empty.
    pub fn output_size(&self, input: usize, i: usize) -> Option<usize> {
        let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
        let padded = input + 2 * self.padding[i];
        (padded >= span).then(|| (padded - span) / self.stride[i] + 1)
    }
}

/// One IR operation. Operands are the node's incoming edges, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A graph input; its type is given when the node is created.
    Input {
        name: String,
        role: Role,
    },
    /// A tensor of the node's type with every element `value`.
    Fill {
        value: f64,
    },
    /// Counter-based random numbers from the `I64[]` seed operand: element `i` of stream `s`
    /// depends only on (seed, s, i), so every backend draws the same numbers. See
    /// `interp::random` for the exact generator.
    Random {
        dist: Distribution,
        stream: u64,
    },
    Unary(UnaryOp),
    /// Elementwise on two operands of the same shape (broadcast explicitly first).
    Binary(BinaryOp),
    /// `(cond, a, b)`: `a` where `cond != 0`, else `b`.
    Select,
    Cast {
        to: DType,
    },
    /// Identity in value; cuts the gradient (`stop_gradient`, `detach`).
    StopGradient,
    /// NumPy broadcast of the operand to the node's shape (right-aligned; dims of 1 or missing
    /// dims expand).
    Broadcast,
    /// Same elements, the node's shape.
    Reshape,
    /// Output axis `i` is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// `len` elements from `start` along `axis`.
    Slice {
        axis: usize,
        start: usize,
        len: usize,
    },
    /// Operands joined along `axis`.
    Concat {
        axis: usize,
    },
    /// Reduce `axes` (sorted, removed from the shape).
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    /// `[.., M, K] x [.., K, N] -> [.., M, N]` with equal batch dims; `ta`/`tb` transpose the last
    /// two axes of an operand first.
    MatMul {
        ta: bool,
        tb: bool,
    },
    /// `(x [N, C, H, W], w [O, C, kh, kw]) -> [N, O, H', W']`, cross-correlation as PyTorch.
    Conv2d {
        window: Window,
    },
    /// `(x [N, I, H, W], w [I, O, kh, kw]) -> [N, O, H', W']`, the adjoint of `Conv2d`; the node's
    /// type fixes `H'`/`W'` (PyTorch's `output_padding`).
    ConvTranspose2d {
        window: Window,
    },
    /// `(x [N, C, H, W], dy [N, O, H', W']) -> dw [O, C, kh, kw]`: the weight gradient of `Conv2d`.
    Conv2dWeightGrad {
        window: Window,
    },
    MaxPool2d {
        window: Window,
    },
    /// `(x, dy) -> dx`: the gradient goes to the first maximum of each window.
    MaxPool2dGrad {
        window: Window,
    },
    /// Average over each window; padding counts as zeros in the average (PyTorch's default).
    AvgPool2d {
        window: Window,
    },
    /// `(dy) -> dx`, with `dx`'s shape the node's type.
    AvgPool2dGrad {
        window: Window,
    },
    /// `(table [V, D], ids I64[..]) -> [.., D]`.
    Gather,
    /// `(ids I64[..], dy [.., D]) -> [V, D]` adding rows at ids: the gradient of `Gather`.
    ScatterAdd,
    /// `(ids I64[..]) -> F32[.., classes]`.
    OneHot {
        classes: usize,
    },
    /// A loop over the leading axis of its sequence operands; see [`Scan`].
    Scan(Box<Scan>),
    /// Element `index` of a multi-output node (a `Scan`).
    Project {
        index: usize,
    },
}

/// A recurrence as one node: `body` runs `length` times. Operands: `carries` initial carry
/// values, then `xs` sequence inputs (sliced along axis 0 each step; reversed when `reverse`),
/// then `consts` loop-invariant inputs. The body's inputs are named `carry{i}`, `x{i}`, `const{i}`
/// in that order; its outputs are the new carries, then per-step outputs `y{j}`. The node's
/// results (read with [`Op::Project`]) are the final carries, then each `y{j}` stacked along a
/// new axis 0, aligned with the sequence inputs: `ys[k]` comes from the step that read `xs[k]`
/// (as JAX's `scan(reverse=True)`), so a backward LSTM's outputs line up with its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    pub body: super::Graph,
    pub length: usize,
    pub reverse: bool,
    pub carries: usize,
    pub xs: usize,
    pub consts: usize,
}

impl Op {
    /// The op's name in dumps: `matmul`, `conv2d`, `add`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Fill { .. } => "fill",
            Op::Random { .. } => "random",
            Op::Unary(u) => match u {
                UnaryOp::Neg => "neg",
                UnaryOp::Exp => "exp",
                UnaryOp::Log => "log",
                UnaryOp::Sqrt => "sqrt",
                UnaryOp::Tanh => "tanh",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Relu => "relu",
                UnaryOp::Erf => "erf",
                UnaryOp::Abs => "abs",
                UnaryOp::Recip => "recip",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "add",
                BinaryOp::Sub => "sub",
                BinaryOp::Mul => "mul",
                BinaryOp::Div => "div",
                BinaryOp::Max => "max",
                BinaryOp::Min => "min",
                BinaryOp::Greater => "greater",
            },
            Op::Select => "select",
            Op::Cast { .. } => "cast",
            Op::StopGradient => "stop_gradient",
            Op::Broadcast => "broadcast",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Reduce {
                op: ReduceOp::Sum, ..
            } => "reduce_sum",
            Op::Reduce {
                op: ReduceOp::Max, ..
            } => "reduce_max",
            Op::MatMul { .. } => "matmul",
            Op::Conv2d { .. } => "conv2d",
            Op::ConvTranspose2d { .. } => "conv_transpose2d",
            Op::Conv2dWeightGrad { .. } => "conv2d_weight_grad",
            Op::MaxPool2d { .. } => "max_pool2d",
            Op::MaxPool2dGrad { .. } => "max_pool2d_grad",
            Op::AvgPool2d { .. } => "avg_pool2d",
            Op::AvgPool2dGrad { .. } => "avg_pool2d_grad",
            Op::Gather => "gather",
            Op::ScatterAdd => "scatter_add",
            Op::OneHot { .. } => "one_hot",
            Op::Scan(_) => "scan",
            Op::Project { .. } => "project",
        }
    }

    /// Attributes in dumps, `[axis=1]`, or empty.
    pub fn attributes(&self) -> String {
        let w = |w: &Window| {
            format!(
                "kernel={}x{}, stride={}x{}, padding={}x{}, dilation={}x{}",
                w.kernel[0],
                w.kernel[1],
                w.stride[0],
                w.stride[1],
                w.padding[0],
                w.padding[1],
                w.dilation[0],
                w.dilation[1]
            )
        };
        let text = match self {
            Op::Input { name, role } => format!("{name}, {role:?}"),
            Op::Fill { value } => format!("{value:?}"),
            Op::Random { dist, stream } => format!("{dist:?}, stream={stream}"),
            Op::Cast { to } => to.to_string(),
            Op::Transpose { perm } => format!("perm={perm:?}"),
            Op::Slice { axis, start, len } => format!("axis={axis}, start={start}, len={len}"),
            Op::Concat { axis } => format!("axis={axis}"),
            Op::Reduce { axes, .. } => format!("axes={axes:?}"),
            Op::MatMul { ta, tb } => format!("ta={ta}, tb={tb}"),
            Op::Conv2d { window }
            | Op::ConvTranspose2d { window }
            | Op::Conv2dWeightGrad { window }
            | Op::MaxPool2d { window }
            | Op::MaxPool2dGrad { window }
            | Op::AvgPool2d { window }
            | Op::AvgPool2dGrad { window } => w(window),
            Op::OneHot { classes } => format!("classes={classes}"),
            Op::Scan(s) => format!(
                "length={}, reverse={}, carries={}, xs={}, consts={}",
                s.length, s.reverse, s.carries, s.xs, s.consts
            ),
            Op::Project { index } => format!("{index}"),
            _ => String::new(),
        };
        if text.is_empty() {
            text
        } else {
            format!("[{text}]")
        }
    }

    /// Is this op a leaf (no operands)?
    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Input { .. } | Op::Fill { .. })
    }

    /// Ops whose result depends on nothing but their operands and attributes (everything but
    /// inputs); used by CSE and folding.
    pub fn is_pure(&self) -> bool {
        !matches!(self, Op::Input { .. })
    }
}

/// The type rule of each op: the output type from the operand types, or why the operands are
/// invalid. `given` is the type stated when creating the node, for ops whose output cannot be
/// derived from operands alone (inputs, fills, reshapes, broadcasts, transposed convolutions).
pub fn infer(op: &Op, operands: &[&Type], given: Option<&Type>) -> Result<Type, String> {
    let need = |n: usize| -> Result<(), String> {
        if operands.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{} takes {n} operand(s), got {}",
                op.name(),
                operands.len()
            ))
        }
    };
    let given_type = || {
        given
            .cloned()
            .ok_or_else(|| format!("{} needs an explicit result type", op.name()))
    };
    let f32_only = |t: &Type| -> Result<(), String> {
        if t.dtype == DType::F32 {
            Ok(())
        } else {
            Err(format!("{} needs f32 operands, got {t}", op.name()))
        }
    };
    match op {
        Op::Input { .. } | Op::Fill { .. } => {
            need(0)?;
            given_type()
        }
        Op::Random { .. } => {
            need(1)?;
            if operands[0].dtype != DType::I64 || !operands[0].shape.is_empty() {
                return Err("random takes an i64[] seed".into());
            }
            given_type()
        }
        Op::Unary(_) => {
            need(1)?;
            f32_only(operands[0])?;
            Ok(operands[0].clone())
        }
        Op::Binary(_) => {
            need(2)?;
            f32_only(operands[0])?;
            if operands[0] != operands[1] {
                return Err(format!(
                    "{} needs equal types, got {} and {}",
                    op.name(),
                    operands[0],
                    operands[1]
                ));
            }
            Ok(operands[0].clone())
        }
        Op::Select => {
            need(3)?;
            if operands[0].shape != operands[1].shape || operands[1] != operands[2] {
                return Err(format!(
                    "select needs equal shapes, got {}, {}, {}",
                    operands[0], operands[1], operands[2]
                ));
            }
            Ok(operands[1].clone())
        }
        Op::StopGradient => {
            need(1)?;
            Ok(operands[0].clone())
        }
        Op::Cast { to } => {
            need(1)?;
            Ok(Type {
                dtype: *to,
                shape: operands[0].shape.clone(),
            })
        }
        Op::Broadcast => {
            need(1)?;
            let out = given_type()?;
            let (x, o) = (&operands[0].shape, &out.shape);
            if x.len() > o.len()
                || x.iter()
                    .rev()
                    .zip(o.iter().rev())
                    .any(|(a, b)| *a != 1 && a != b)
            {
                return Err(format!("cannot broadcast {} to {}", operands[0], out));
            }
            Ok(Type {
                dtype: operands[0].dtype,
                shape: out.shape,
            })
        }
        Op::Reshape => {
            need(1)?;
            let out = given_type()?;
            if out.numel() != operands[0].numel() {
                return Err(format!("cannot reshape {} to {}", operands[0], out));
            }
            Ok(Type {
                dtype: operands[0].dtype,
                shape: out.shape,
            })
        }
        Op::Transpose { perm } => {
            need(1)?;
            let x = operands[0];
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..x.rank()).collect::<Vec<_>>() {
                return Err(format!("bad permutation {perm:?} for {x}"));
            }
            Ok(Type {
                dtype: x.dtype,
                shape: perm.iter().map(|&p| x.shape[p]).collect(),
            })
        }
        Op::Slice { axis, start, len } => {
            need(1)?;
            let x = operands[0];
            if *axis >= x.rank() || start + len > x.shape[*axis] {
                return Err(format!(
                    "slice {start}..{} on axis {axis} out of range for {x}",
                    start + len
                ));
            }
            let mut shape = x.shape.clone();
            shape[*axis] = *len;
            Ok(Type {
                dtype: x.dtype,
                shape,
            })
        }
        Op::Concat { axis } => {
            let first = operands.first().ok_or("concat needs operands")?;
            if *axis >= first.rank() {
                return Err(format!("concat axis {axis} out of range for {first}"));
            }
            let mut shape = first.shape.clone();
            shape[*axis] = 0;
            for t in operands {
                let same = t.rank() == first.rank()
                    && t.dtype == first.dtype
                    && (0..t.rank()).all(|i| i == *axis || t.shape[i] == first.shape[i]);
                if !same {
                    return Err(format!("concat operands disagree: {first} and {t}"));
                }
                shape[*axis] += t.shape[*axis];
            }
            Ok(Type {
                dtype: first.dtype,
                shape,
            })
        }
        Op::Reduce { axes, .. } => {
            need(1)?;
            let x = operands[0];
            if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= x.rank()) {
                return Err(format!("bad reduction axes {axes:?} for {x}"));
            }
            let shape = (0..x.rank())
                .filter(|i| !axes.contains(i))
                .map(|i| x.shape[i])
                .collect();
            Ok(Type {
                dtype: x.dtype,
                shape,
            })
        }
        Op::MatMul { ta, tb } => {
            need(2)?;
            let (a, b) = (operands[0], operands[1]);
            f32_only(a)?;
            if a.rank() < 2
                || a.rank() != b.rank()
                || a.shape[..a.rank() - 2] != b.shape[..b.rank() - 2]
            {
                return Err(format!("matmul needs equal batch dims, got {a} and {b}"));
            }
            let r = a.rank();
            let (m, ka) = if *ta {
                (a.shape[r - 1], a.shape[r - 2])
            } else {
                (a.shape[r - 2], a.shape[r - 1])
            };
            let (kb, n) = if *tb {
                (b.shape[r - 1], b.shape[r - 2])
            } else {
                (b.shape[r - 2], b.shape[r - 1])
            };
            if ka != kb {
                return Err(format!(
                    "matmul inner dims differ: {a} and {b} (ta={ta}, tb={tb})"
                ));
            }
            let mut shape = a.shape[..r - 2].to_vec();
            shape.extend([m, n]);
            Ok(Type::f32(shape))
        }
        Op::Conv2d { window } => {
            need(2)?;
            let (x, w) = (operands[0], operands[1]);
            if x.rank() != 4
                || w.rank() != 4
                || x.shape[1] != w.shape[1]
                || w.shape[2..] != window.kernel
            {
                return Err(format!("conv2d operands {x} and {w} do not fit {window:?}"));
            }
            let h = window
                .output_size(x.shape[2], 0)
                .ok_or("conv2d output is empty")?;
            let wd = window
                .output_size(x.shape[3], 1)
                .ok_or("conv2d output is empty")?;
            Ok(Type::f32(vec![x.shape[0], w.shape[0], h, wd]))
        }
        Op::ConvTranspose2d { window } => {
            need(2)?;
            let (x, w) = (operands[0], operands[1]);
            let out = given_type()?;
            let fits = x.rank() == 4
                && w.rank() == 4
                && out.rank() == 4
                && x.shape[1] == w.shape[0]
                && out.shape[1] == w.shape[1]
                && out.shape[0] == x.shape[0]
                && w.shape[2..] == window.kernel
                && window.output_size(out.shape[2], 0) == Some(x.shape[2])
                && window.output_size(out.shape[3], 1) == Some(x.shape[3]);
            if !fits {
                return Err(format!(
                    "conv_transpose2d {x} * {w} cannot produce {out} with {window:?}"
                ));
            }
            Ok(out)
        }
        Op::Conv2dWeightGrad { window } => {
            need(2)?;
            let (x, dy) = (operands[0], operands[1]);
            let fits = x.rank() == 4
                && dy.rank() == 4
                && x.shape[0] == dy.shape[0]
                && window.output_size(x.shape[2], 0) == Some(dy.shape[2])
                && window.output_size(x.shape[3], 1) == Some(dy.shape[3]);
            if !fits {
                return Err(format!(
                    "conv2d_weight_grad operands {x} and {dy} do not fit {window:?}"
                ));
            }
            Ok(Type::f32(vec![
                dy.shape[1],
                x.shape[1],
                window.kernel[0],
                window.kernel[1],
            ]))
        }
        Op::MaxPool2d { window } | Op::AvgPool2d { window } => {
            need(1)?;
            let x = operands[0];
            if x.rank() != 4 {
                return Err(format!("{} needs [N, C, H, W], got {x}", op.name()));
            }
            let h = window
                .output_size(x.shape[2], 0)
                .ok_or("pool output is empty")?;
            let w = window
                .output_size(x.shape[3], 1)
                .ok_or("pool output is empty")?;
            Ok(Type::f32(vec![x.shape[0], x.shape[1], h, w]))
        }
        Op::MaxPool2dGrad { window } => {
            need(2)?;
            let pooled = infer(&Op::MaxPool2d { window: *window }, &operands[..1], None)?;
            if &pooled != operands[1] {
                return Err(format!(
                    "max_pool2d_grad: dy {} does not match pooled {pooled}",
                    operands[1]
                ));
            }
            Ok(operands[0].clone())
        }
        Op::AvgPool2dGrad { window } => {
            need(1)?;
            let out = given_type()?;
            let pooled = infer(&Op::AvgPool2d { window: *window }, &[&out], None)?;
            if &pooled != operands[0] {
                return Err(format!(
                    "avg_pool2d_grad: dy {} does not match pooled {pooled}",
                    operands[0]
                ));
            }
            Ok(out)
        }
        Op::Gather => {
            need(2)?;
            let (table, ids) = (operands[0], operands[1]);
            if table.rank() != 2 || ids.dtype != DType::I64 {
                return Err(format!(
                    "gather needs a [V, D] table and i64 ids, got {table} and {ids}"
                ));
            }
            let mut shape = ids.shape.clone();
            shape.push(table.shape[1]);
            Ok(Type {
                dtype: table.dtype,
                shape,
            })
        }
        Op::ScatterAdd => {
            need(2)?;
            let (ids, dy) = (operands[0], operands[1]);
            let out = given_type()?;
            let mut expect = ids.shape.clone();
            expect.push(out.shape.get(1).copied().unwrap_or(0));
            if ids.dtype != DType::I64 || out.rank() != 2 || dy.shape != expect {
                return Err(format!("scatter_add: ids {ids}, dy {dy} do not fit {out}"));
            }
            Ok(out)
        }
        Op::OneHot { classes } => {
            need(1)?;
            if operands[0].dtype != DType::I64 {
                return Err(format!("one_hot needs i64 ids, got {}", operands[0]));
            }
            let mut shape = operands[0].shape.clone();
            shape.push(*classes);
            Ok(Type::f32(shape))
        }
        Op::Scan(_) | Op::Project { .. } => given_type(),
    }
}
