//! Native Rust kernels for the ops the fused elementwise code cannot express: convolutions
//! (im2col / col2im around a GEMM), pools, and the index and layout ops (`gather`,
//! `scatter_add`, `one_hot`, `concat`, `cast`). Each works in place on the arenas, allocates
//! nothing, and keeps the reference interpreter's semantics: the same shapes, padding, window
//! taps and first-maximum rule, and for everything but the GEMM-based convolutions the same f32
//! operations in the same order, so those results agree bit for bit.

use netc_compiler::ir::{DType, Op, Window};

use crate::exec::{Mat, gemm, views};
use crate::kernel::Slot;

/// Whether `op` (with operand dtypes `operands`, result dtype `out`) has a native kernel here.
/// Anything else (an i64 gather table, a scan) stays on the fallback.
pub fn supports(op: &Op, operands: &[DType], out: DType) -> bool {
    let all_f32 = operands.iter().all(|&d| d == DType::F32);
    match op {
        Op::Conv2d { .. }
        | Op::ConvTranspose2d { .. }
        | Op::Conv2dWeightGrad { .. }
        | Op::MaxPool2d { .. }
        | Op::MaxPool2dGrad { .. }
        | Op::AvgPool2d { .. }
        | Op::AvgPool2dGrad { .. } => all_f32 && out == DType::F32,
        Op::Gather => operands == [DType::F32, DType::I64],
        Op::ScatterAdd => operands == [DType::I64, DType::F32],
        Op::OneHot { .. } => operands == [DType::I64],
        Op::Concat { .. } => !operands.is_empty() && operands.iter().all(|&d| d == out),
        Op::Cast { to } => operands.len() == 1 && operands[0] != *to,
        _ => false,
    }
}

/// The im2col buffer (f32 elements) a convolution needs for one image: `rows x positions` of
/// its GEMM operand. Zero for every other op.
pub fn scratch_len(op: &Op, shapes: &[Vec<usize>], out: &[usize]) -> usize {
    match op {
        // col[C*kh*kw, H'*W'] of the image.
        Op::Conv2d { window } => {
            shapes[0][1] * window.kernel[0] * window.kernel[1] * out[2] * out[3]
        }
        // col[C*kh*kw, H'*W'] with H', W' those of dy.
        Op::Conv2dWeightGrad { window } => {
            shapes[0][1] * window.kernel[0] * window.kernel[1] * shapes[1][2] * shapes[1][3]
        }
        // col[O*kh*kw, H*W] over the input's positions, scattered into the output.
        Op::ConvTranspose2d { window } => {
            out[1] * window.kernel[0] * window.kernel[1] * shapes[0][2] * shapes[0][3]
        }
        _ => 0,
    }
}

/// Run one native kernel. Errors only where the interpreter errors too (an id out of range).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    f32s: &mut [f32],
    i64s: &mut [i64],
    op: &Op,
    shapes: &[Vec<usize>],
    out_shape: &[usize],
    inputs: &[Slot],
    out: Slot,
    scratch: Option<Slot>,
) -> Result<(), String> {
    let dims = |s: &[usize]| -> [usize; 4] { [s[0], s[1], s[2], s[3]] };
    let need_scratch = || scratch.ok_or("internal: convolution without scratch");
    match op {
        Op::Conv2d { window } => {
            let ([x, w], [y, col]) = views(f32s, [inputs[0], inputs[1]], [out, need_scratch()?]);
            conv2d(x, w, y, col, dims(&shapes[0]), dims(out_shape), window);
        }
        Op::Conv2dWeightGrad { window } => {
            let ([x, dy], [dw, col]) = views(f32s, [inputs[0], inputs[1]], [out, need_scratch()?]);
            conv2d_weight_grad(x, dy, dw, col, dims(&shapes[0]), dims(&shapes[1]), window);
        }
        Op::ConvTranspose2d { window } => {
            let ([x, w], [y, col]) = views(f32s, [inputs[0], inputs[1]], [out, need_scratch()?]);
            conv_transpose2d(x, w, y, col, dims(&shapes[0]), dims(out_shape), window);
        }
        Op::MaxPool2d { window } => {
            let ([x], [y]) = views(f32s, [inputs[0]], [out]);
            max_pool2d(x, y, dims(&shapes[0]), dims(out_shape), window);
        }
        Op::MaxPool2dGrad { window } => {
            let ([x, dy], [dx]) = views(f32s, [inputs[0], inputs[1]], [out]);
            max_pool2d_grad(x, dy, dx, dims(&shapes[0]), dims(&shapes[1]), window);
        }
        Op::AvgPool2d { window } => {
            let ([x], [y]) = views(f32s, [inputs[0]], [out]);
            avg_pool2d(x, y, dims(&shapes[0]), dims(out_shape), window);
        }
        Op::AvgPool2dGrad { window } => {
            let ([dy], [dx]) = views(f32s, [inputs[0]], [out]);
            avg_pool2d_grad(dy, dx, dims(&shapes[0]), dims(out_shape), window);
        }
        Op::Gather => {
            let ([table], [y]) = views(f32s, [inputs[0]], [out]);
            let ids = &i64s[inputs[1].offset..inputs[1].offset + inputs[1].len];
            let (rows, width) = (shapes[0][0], shapes[0][1]);
            for (dst, &id) in y.chunks_exact_mut(width.max(1)).zip(ids) {
                let r = row(id, rows, "gather")?;
                dst.copy_from_slice(&table[r * width..(r + 1) * width]);
            }
            if width == 0 {
                for &id in ids {
                    row(id, rows, "gather")?;
                }
            }
        }
        Op::ScatterAdd => {
            let ([dy], [y]) = views(f32s, [inputs[1]], [out]);
            let ids = &i64s[inputs[0].offset..inputs[0].offset + inputs[0].len];
            let (rows, width) = (out_shape[0], out_shape[1]);
            y.fill(0.0);
            for (s, &id) in ids.iter().enumerate() {
                let r = row(id, rows, "scatter_add")?;
                let src = &dy[s * width..(s + 1) * width];
                for (t, &v) in y[r * width..(r + 1) * width].iter_mut().zip(src) {
                    *t += v;
                }
            }
        }
        Op::OneHot { classes } => {
            let ([], [y]) = views::<f32, 0, 1>(f32s, [], [out]);
            let ids = &i64s[inputs[0].offset..inputs[0].offset + inputs[0].len];
            y.fill(0.0);
            for (s, &id) in ids.iter().enumerate() {
                y[s * classes + row(id, *classes, "one_hot")?] = 1.0;
            }
        }
        Op::Concat { axis } => match out.dtype {
            DType::F32 => concat(f32s, inputs, shapes, out_shape, *axis, out),
            DType::I64 => concat(i64s, inputs, shapes, out_shape, *axis, out),
        },
        Op::Cast { to: DType::I64 } => {
            let x = &f32s[inputs[0].offset..inputs[0].offset + inputs[0].len];
            // `as` truncates toward zero and saturates; NaN becomes 0 (the interpreter's rule).
            for (t, &v) in i64s[out.offset..out.offset + out.len].iter_mut().zip(x) {
                *t = v as i64;
            }
        }
        Op::Cast { to: DType::F32 } => {
            let x = &i64s[inputs[0].offset..inputs[0].offset + inputs[0].len];
            // Through f64, as the interpreter rounds (`x as f32` directly could differ by a
            // double rounding on huge ids).
            for (t, &v) in f32s[out.offset..out.offset + out.len].iter_mut().zip(x) {
                *t = v as f64 as f32;
            }
        }
        other => return Err(format!("internal: no native kernel for {}", other.name())),
    }
    Ok(())
}

/// An id checked against a table of `rows` rows, with the interpreter's error message.
fn row(id: i64, rows: usize, op: &str) -> Result<usize, String> {
    usize::try_from(id)
        .ok()
        .filter(|&r| r < rows)
        .ok_or_else(|| format!("{op}: id {id} is out of range for {rows} rows"))
}

/// `Concat`: for each index of the axes before `axis`, each operand's contiguous block in turn.
fn concat<T: Copy>(
    arena: &mut [T],
    inputs: &[Slot],
    shapes: &[Vec<usize>],
    out_shape: &[usize],
    axis: usize,
    out: Slot,
) {
    let outer: usize = out_shape[..axis].iter().product();
    let inner: usize = out_shape[axis + 1..].iter().product();
    let mut at = out.offset;
    for o in 0..outer {
        for (s, shape) in inputs.iter().zip(shapes) {
            let block = shape[axis] * inner;
            let from = s.offset + o * block;
            let ([src], [dst]) = views(
                arena,
                [Slot {
                    dtype: s.dtype,
                    offset: from,
                    len: block,
                }],
                [Slot {
                    dtype: out.dtype,
                    offset: at,
                    len: block,
                }],
            );
            dst.copy_from_slice(src);
            at += block;
        }
    }
}

/// The input coordinate read by output position `pos` and tap `tap` along `axis`, or any value
/// `>= size` where it falls in the padding (the subtraction wraps instead of going negative).
#[inline]
fn coord(window: &Window, axis: usize, pos: usize, tap: usize) -> usize {
    (pos * window.stride[axis] + tap * window.dilation[axis]).wrapping_sub(window.padding[axis])
}

/// The range `j0..j1` of the `ow` window positions whose tap `b` along w lands inside a row of
/// `iw` elements (they are contiguous: the coordinate grows with `j`).
#[inline]
fn valid(win: &Window, b: usize, ow: usize, iw: usize) -> (usize, usize) {
    let (s, off, p) = (win.stride[1], b * win.dilation[1], win.padding[1]);
    // First j with j*s + off >= p, and first j with j*s + off >= p + iw.
    let first_at = |bound: usize| bound.saturating_sub(off).div_ceil(s).min(ow);
    let j0 = first_at(p);
    (j0, first_at(p + iw).max(j0))
}

/// `col[(c, a, b), (i, j)] = img[c, i*s - p + a*d, j*s - p + b*d]` (zero in the padding) for
/// an image `[c, ih, iw]` and `oh x ow` window positions: the GEMM operand of a convolution.
fn im2col(
    img: &[f32],
    (c, ih, iw): (usize, usize, usize),
    (oh, ow): (usize, usize),
    win: &Window,
    col: &mut [f32],
) {
    let positions = oh * ow;
    let mut rows = col.chunks_exact_mut(positions.max(1));
    for ch in 0..c {
        let plane = &img[ch * ih * iw..(ch + 1) * ih * iw];
        for a in 0..win.kernel[0] {
            for b in 0..win.kernel[1] {
                let Some(dst) = rows.next() else { return };
                for (i, line) in dst.chunks_exact_mut(ow.max(1)).enumerate().take(oh) {
                    let h = coord(win, 0, i, a);
                    if h >= ih {
                        line.fill(0.0);
                        continue;
                    }
                    let src = &plane[h * iw..(h + 1) * iw];
                    let (j0, j1) = valid(win, b, ow, iw);
                    line[..j0].fill(0.0);
                    line[j1..].fill(0.0);
                    let first = coord(win, 1, j0, b);
                    let s = win.stride[1];
                    if s == 1 {
                        line[j0..j1].copy_from_slice(&src[first..first + (j1 - j0)]);
                    } else {
                        for (t, &x) in line[j0..j1].iter_mut().zip(src[first..].iter().step_by(s)) {
                            *t = x;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `img[c, i*s - p + a*d, j*s - p + b*d] += col[(c, a, b), (i, j)]`
/// for every in-bounds target (`img` must start zeroed).
fn col2im(
    col: &[f32],
    (c, ih, iw): (usize, usize, usize),
    (oh, ow): (usize, usize),
    win: &Window,
    img: &mut [f32],
) {
    let positions = oh * ow;
    let mut rows = col.chunks_exact(positions.max(1));
    for ch in 0..c {
        let plane = &mut img[ch * ih * iw..(ch + 1) * ih * iw];
        for a in 0..win.kernel[0] {
            for b in 0..win.kernel[1] {
                let Some(src) = rows.next() else { return };
                for (i, line) in src.chunks_exact(ow.max(1)).enumerate().take(oh) {
                    let h = coord(win, 0, i, a);
                    if h >= ih {
                        continue;
                    }
                    let dst = &mut plane[h * iw..(h + 1) * iw];
                    let (j0, j1) = valid(win, b, ow, iw);
                    let first = coord(win, 1, j0, b);
                    let s = win.stride[1];
                    if s == 1 {
                        for (t, &x) in dst[first..first + (j1 - j0)].iter_mut().zip(&line[j0..j1]) {
                            *t += x;
                        }
                    } else {
                        for (t, &x) in dst[first..].iter_mut().step_by(s).zip(&line[j0..j1]) {
                            *t += x;
                        }
                    }
                }
            }
        }
    }
}

/// `Conv2d`, per image: `y[n] (O x P) = w (O x K) x col (K x P)` with `K = C*kh*kw` and `P`
/// the output positions.
fn conv2d(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    col: &mut [f32],
    xs: [usize; 4],
    ys: [usize; 4],
    win: &Window,
) {
    let [n, c, ih, iw] = xs;
    let [_, o, oh, ow] = ys;
    let (k, p) = (c * win.kernel[0] * win.kernel[1], oh * ow);
    let col = &mut col[..k * p];
    for img in 0..n {
        im2col(
            &x[img * c * ih * iw..(img + 1) * c * ih * iw],
            (c, ih, iw),
            (oh, ow),
            win,
            col,
        );
        gemm(
            (o, p, k),
            &mut y[img * o * p..(img + 1) * o * p],
            (p, 1),
            false,
            Mat {
                data: w,
                rs: k,
                cs: 1,
            },
            Mat {
                data: col,
                rs: p,
                cs: 1,
            },
        );
    }
}

/// `Conv2dWeightGrad`: `dw (O x K) = sum_n dy[n] (O x P) x col[n]^T (P x K)`, accumulated over
/// the images by the GEMM.
fn conv2d_weight_grad(
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    col: &mut [f32],
    xs: [usize; 4],
    ds: [usize; 4],
    win: &Window,
) {
    let [n, c, ih, iw] = xs;
    let [_, o, oh, ow] = ds;
    let (k, p) = (c * win.kernel[0] * win.kernel[1], oh * ow);
    let col = &mut col[..k * p];
    dw.fill(0.0);
    for img in 0..n {
        im2col(
            &x[img * c * ih * iw..(img + 1) * c * ih * iw],
            (c, ih, iw),
            (oh, ow),
            win,
            col,
        );
        gemm(
            (o, k, p),
            dw,
            (k, 1),
            true,
            Mat {
                data: &dy[img * o * p..(img + 1) * o * p],
                rs: p,
                cs: 1,
            },
            Mat {
                data: col,
                rs: 1,
                cs: p,
            },
        );
    }
}

/// `ConvTranspose2d` with `w [I, O, kh, kw]`, per image: `col (O*kh*kw x H*W) = w^T x x[n]`,
/// then col2im scatters it into the zeroed output.
fn conv_transpose2d(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    col: &mut [f32],
    xs: [usize; 4],
    ys: [usize; 4],
    win: &Window,
) {
    let [n, ci, h, wd] = xs;
    let [_, o, oh, ow] = ys;
    let (k, p) = (o * win.kernel[0] * win.kernel[1], h * wd);
    let col = &mut col[..k * p];
    y.fill(0.0);
    for img in 0..n {
        gemm(
            (k, p, ci),
            col,
            (p, 1),
            false,
            Mat {
                data: w,
                rs: 1,
                cs: k,
            },
            Mat {
                data: &x[img * ci * p..(img + 1) * ci * p],
                rs: p,
                cs: 1,
            },
        );
        col2im(
            col,
            (o, oh, ow),
            (h, wd),
            win,
            &mut y[img * o * oh * ow..(img + 1) * o * oh * ow],
        );
    }
}

/// The first in-bounds position (row-major within window `(i, j)`) holding the window's
/// maximum, as a flat index into the `[ih, iw]` plane, with that maximum; a NaN beats
/// everything and is never displaced. `None` for a window entirely in the padding.
#[inline]
fn window_max(
    plane: &[f32],
    (ih, iw): (usize, usize),
    win: &Window,
    i: usize,
    j: usize,
) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for a in 0..win.kernel[0] {
        let h = coord(win, 0, i, a);
        if h >= ih {
            continue;
        }
        for b in 0..win.kernel[1] {
            let v = coord(win, 1, j, b);
            if v >= iw {
                continue;
            }
            let at = h * iw + v;
            let value = plane[at];
            let better = match best {
                None => true,
                Some((_, m)) => !m.is_nan() && (value.is_nan() || value > m),
            };
            if better {
                best = Some((at, value));
            }
        }
    }
    best
}

/// `MaxPool2d`: each window's maximum (padding is -inf).
fn max_pool2d(x: &[f32], y: &mut [f32], xs: [usize; 4], ys: [usize; 4], win: &Window) {
    let [_, _, ih, iw] = xs;
    let [_, _, oh, ow] = ys;
    if oh * ow == 0 || ih * iw == 0 {
        y.fill(f32::NEG_INFINITY);
        return;
    }
    for (plane, out) in x.chunks_exact(ih * iw).zip(y.chunks_exact_mut(oh * ow)) {
        for i in 0..oh {
            for j in 0..ow {
                out[i * ow + j] =
                    window_max(plane, (ih, iw), win, i, j).map_or(f32::NEG_INFINITY, |(_, m)| m);
            }
        }
    }
}

/// `MaxPool2dGrad`: each window's `dy` added at its first maximum, windows in row-major order.
fn max_pool2d_grad(
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    xs: [usize; 4],
    ds: [usize; 4],
    win: &Window,
) {
    let [_, _, ih, iw] = xs;
    let [_, _, oh, ow] = ds;
    dx.fill(0.0);
    if oh * ow == 0 || ih * iw == 0 {
        return;
    }
    for ((plane, g), d) in x
        .chunks_exact(ih * iw)
        .zip(dy.chunks_exact(oh * ow))
        .zip(dx.chunks_exact_mut(ih * iw))
    {
        for i in 0..oh {
            for j in 0..ow {
                if let Some((at, _)) = window_max(plane, (ih, iw), win, i, j) {
                    d[at] += g[i * ow + j];
                }
            }
        }
    }
}

/// `AvgPool2d`: each window's in-bounds sum (row-major) divided by `kh * kw`.
fn avg_pool2d(x: &[f32], y: &mut [f32], xs: [usize; 4], ys: [usize; 4], win: &Window) {
    let [_, _, ih, iw] = xs;
    let [_, _, oh, ow] = ys;
    let count = (win.kernel[0] * win.kernel[1]) as f32;
    if oh * ow == 0 || ih * iw == 0 {
        y.fill(0.0);
        return;
    }
    for (plane, out) in x.chunks_exact(ih * iw).zip(y.chunks_exact_mut(oh * ow)) {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = 0.0f32;
                for a in 0..win.kernel[0] {
                    let h = coord(win, 0, i, a);
                    if h >= ih {
                        continue;
                    }
                    for b in 0..win.kernel[1] {
                        let v = coord(win, 1, j, b);
                        if v < iw {
                            acc += plane[h * iw + v];
                        }
                    }
                }
                out[i * ow + j] = acc / count;
            }
        }
    }
}

/// `AvgPool2dGrad`: each window's `dy / (kh * kw)` added to its in-bounds positions.
fn avg_pool2d_grad(dy: &[f32], dx: &mut [f32], ds: [usize; 4], xs: [usize; 4], win: &Window) {
    let [_, _, oh, ow] = ds;
    let [_, _, ih, iw] = xs;
    let count = (win.kernel[0] * win.kernel[1]) as f32;
    dx.fill(0.0);
    if oh * ow == 0 || ih * iw == 0 {
        return;
    }
    for (g, d) in dy.chunks_exact(oh * ow).zip(dx.chunks_exact_mut(ih * iw)) {
        for i in 0..oh {
            for j in 0..ow {
                let share = g[i * ow + j] / count;
                for a in 0..win.kernel[0] {
                    let h = coord(win, 0, i, a);
                    if h >= ih {
                        continue;
                    }
                    for b in 0..win.kernel[1] {
                        let v = coord(win, 1, j, b);
                        if v < iw {
                            d[h * iw + v] += share;
                        }
                    }
                }
            }
        }
    }
}
