//! Native Rust kernels for the ops the fused elementwise code cannot express: convolutions
//! (im2col / col2im around a GEMM), pools, and the index and layout ops (`gather`,
//! `scatter_add`, `one_hot`, `concat`, `cast`). Each works in place on the arenas, allocates
//! nothing, and keeps the reference interpreter's semantics: the same shapes, padding, window
//! taps and first-maximum rule, and for everything but the GEMM-based convolutions the same f32
//! operations in the same order, so those results agree bit for bit.

use std::ops::Range;

use netc_compiler::ir::{DType, Op, Window};

use crate::exec::{Mat, gemm, views};
use crate::kernel::Slot;
use crate::par::{self, BATCH_WORK, fork_mut};

mod pool;

use pool::{avg_pool2d, avg_pool2d_grad, max_pool2d, max_pool2d_grad};

/// Per-thread buffers for convolutions split over images, sized once when a step is compiled
/// for several threads (empty for one thread: then the plan's arena scratch serves).
#[derive(Default)]
pub(crate) struct Workspace {
    /// One im2col / col2im buffer per part.
    cols: Vec<Vec<f32>>,
    /// One partial weight gradient per part, `partial` elements each.
    partials: Vec<f32>,
    partial: usize,
}

impl Workspace {
    /// Buffers for `threads` parts of the largest convolution among `ops` (op, operand shapes,
    /// result shape).
    pub(crate) fn new<'a>(
        threads: usize,
        ops: impl Iterator<Item = (&'a Op, &'a [Vec<usize>], &'a [usize])>,
    ) -> Workspace {
        if threads < 2 {
            return Workspace::default();
        }
        let (mut col, mut partial) = (0, 0);
        for (op, shapes, out) in ops {
            col = col.max(scratch_len(op, shapes, out));
            if let Op::Conv2dWeightGrad { .. } = op {
                partial = partial.max(out.iter().product());
            }
        }
        Workspace {
            cols: vec![vec![0.0; col]; threads],
            partials: vec![0.0; partial * threads],
            partial,
        }
    }
}

/// How many parts to split `n` images (or planes) into: one per thread when there are several
/// and the kernel does at least [`BATCH_WORK`] multiply-adds (or taps) in all.
fn parts(threads: usize, n: usize, work: usize) -> usize {
    if threads > 1 && n > 1 && work >= BATCH_WORK {
        threads.min(n)
    } else {
        1
    }
}

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

/// Elements of the im2col matrix of one GEMM: images are batched into one GEMM until its
/// column matrix reaches this size (512 KiB: it stays in L2 while the GEMM reads it).
const CHUNK_COL: usize = 1 << 17;

/// How a convolution batches its images: `images` per GEMM, whose column matrix is `rows x
/// (images * positions)` (or its transpose, built by [`im2row`]), plus a staging matrix of `other x (images * positions)` (the
/// output of a forward convolution, `dy` of a weight gradient, `x` of a transposed
/// convolution, each regrouped from per-image to per-channel rows).
#[derive(Clone, Copy, Debug)]
struct Chunk {
    images: usize,
    rows: usize,
    positions: usize,
    other: usize,
    /// Elements of one zero-padded image (the im2col source, or the col2im target), 0 when
    /// the convolution has no padding and works on the image itself.
    padded: usize,
    /// Elements of a weight-sized buffer: the transposed weight of a transposed convolution
    /// ([`conv_transpose2d`]), the row-padded sums of a weight gradient ([`padded_row`]).
    weight: usize,
}

impl Chunk {
    fn of(op: &Op, shapes: &[Vec<usize>], out: &[usize]) -> Option<Chunk> {
        let (rows, positions, other, image, window) = match op {
            // col[C*kh*kw, H'*W'] per image; the GEMM's output [O, H'*W'].
            Op::Conv2d { window } => (
                shapes[0][1] * window.kernel[0] * window.kernel[1],
                out[2] * out[3],
                out[1],
                &shapes[0][1..],
                window,
            ),
            // col^T[H'*W', C*kh*kw] (rows padded: `padded_row`) with H', W' those of dy; dy
            // regrouped [O, H'*W'].
            Op::Conv2dWeightGrad { window } => (
                padded_row(
                    shapes[0][1] * window.kernel[0] * window.kernel[1],
                    shapes[1][1],
                ),
                shapes[1][2] * shapes[1][3],
                shapes[1][1],
                &shapes[0][1..],
                window,
            ),
            // col[O*kh*kw, H*W] over the input's positions, scattered into the output; x
            // regrouped [I, H*W].
            Op::ConvTranspose2d { window } => (
                out[1] * window.kernel[0] * window.kernel[1],
                shapes[0][2] * shapes[0][3],
                shapes[0][1],
                &out[1..],
                window,
            ),
            _ => return None,
        };
        let padded = if window.padding == [0, 0] {
            0
        } else {
            image[0] * (image[1] + 2 * window.padding[0]) * (image[2] + 2 * window.padding[1])
        };
        let images = (CHUNK_COL / (rows * positions).max(1)).clamp(1, shapes[0][0].max(1));
        let weight = match op {
            Op::ConvTranspose2d { .. } => rows * other,
            Op::Conv2dWeightGrad { window } => {
                let k = shapes[0][1] * window.kernel[0] * window.kernel[1];
                if rows == k { 0 } else { rows * other }
            }
            _ => 0,
        };
        Some(Chunk {
            images,
            rows,
            positions,
            other,
            padded,
            weight,
        })
    }

    /// Scratch elements: the weight-sized buffer, the column matrix, the staging matrix and
    /// the padded image.
    fn len(&self) -> usize {
        self.weight + (self.rows + self.other) * self.images * self.positions + self.padded
    }

    /// The weight-sized buffer's part of `scratch`, and the rest.
    fn weight(self, scratch: &mut [f32]) -> (&mut [f32], &mut [f32]) {
        scratch.split_at_mut(self.weight)
    }

    /// `scratch` (after the weight-sized buffer) cut into the column matrix, the staging matrix
    /// and the padded image for a batch of `n` images.
    fn split(self, scratch: &mut [f32], n: usize) -> (&mut [f32], &mut [f32], &mut [f32]) {
        let (col, rest) = scratch.split_at_mut(self.rows * n * self.positions);
        let (staged, rest) = rest.split_at_mut(self.other * n * self.positions);
        (col, staged, &mut rest[..self.padded])
    }
}

/// The scratch (f32 elements) a convolution needs for one batch of images ([`CHUNK_COL`]):
/// its im2col matrix and a staging matrix. Zero for every other op.
pub fn scratch_len(op: &Op, shapes: &[Vec<usize>], out: &[usize]) -> usize {
    Chunk::of(op, shapes, out).map_or(0, |c| c.len())
}

/// A native kernel's operands and result, as planned.
pub(crate) struct Call<'a> {
    /// The IR op, attributes included.
    pub op: &'a Op,
    /// The operands' shapes.
    pub shapes: &'a [Vec<usize>],
    /// The result's shape.
    pub out_shape: &'a [usize],
    /// The operands' slots.
    pub inputs: &'a [Slot],
    /// The result's slot.
    pub out: Slot,
    /// The plan's convolution scratch (one image's im2col buffer).
    pub scratch: Option<Slot>,
}

/// Run one native kernel, convolutions and pools split over `threads` where large enough.
/// Errors only where the interpreter errors too (an id out of range).
pub(crate) fn run(
    f32s: &mut [f32],
    i64s: &mut [i64],
    call: &Call<'_>,
    threads: usize,
    ws: &mut Workspace,
) -> Result<(), String> {
    let Call {
        op,
        shapes,
        out_shape,
        inputs,
        out,
        scratch,
    } = *call;
    let dims = |s: &[usize]| -> [usize; 4] { [s[0], s[1], s[2], s[3]] };
    let need_scratch = || scratch.ok_or("internal: convolution without scratch");
    let need_chunk = || Chunk::of(op, shapes, out_shape).ok_or("internal: not a convolution");
    // Multiply-adds of a convolution's GEMMs over `n` images.
    let conv_work = |c: Chunk, n: usize| n * c.other * c.rows * c.positions;
    match op {
        Op::Conv2d { window } | Op::ConvTranspose2d { window } => {
            // Both map images of `x` to images of `y` through one weight: split over images.
            let conv = if matches!(op, Op::Conv2d { .. }) {
                conv2d
            } else {
                conv_transpose2d
            };
            let ([x, w], [y, col]) = views(f32s, [inputs[0], inputs[1]], [out, need_scratch()?]);
            let (xs, ys) = (dims(&shapes[0]), dims(out_shape));
            let chunk = need_chunk()?;
            let k = parts(threads, xs[0], conv_work(chunk, xs[0]));
            if k == 1 {
                conv(x, w, y, col, (xs, ys), window, (0..xs[0], chunk));
            } else {
                let unit = ys[1] * ys[2] * ys[3];
                fork_mut(y, (unit, chunk.images), &mut ws.cols[..k], &|r, y, col| {
                    conv(x, w, y, col, (xs, ys), window, (r, chunk));
                });
            }
        }
        Op::Conv2dWeightGrad { window } => {
            let ([x, dy], [dw, col]) = views(f32s, [inputs[0], inputs[1]], [out, need_scratch()?]);
            let (xs, ds) = (dims(&shapes[0]), dims(&shapes[1]));
            let chunk = need_chunk()?;
            let k = parts(threads, xs[0], conv_work(chunk, xs[0]));
            if k == 1 {
                conv2d_weight_grad(x, dy, dw, col, (xs, ds), window, (0..xs[0], chunk));
            } else {
                // Each part sums its images into its own partial; the partials are added in
                // part order, so the result depends on the thread count but not on timing.
                let n = xs[0];
                let len = ws.partial;
                fork_mut(
                    &mut ws.partials[..k * len],
                    (len, 1),
                    &mut ws.cols[..k],
                    &|r, partial, col| {
                        let images = par::part(n, k, chunk.images, r.start);
                        conv2d_weight_grad(
                            x,
                            dy,
                            &mut partial[..dw.len()],
                            col,
                            (xs, ds),
                            window,
                            (images, chunk),
                        );
                    },
                );
                dw.copy_from_slice(&ws.partials[..dw.len()]);
                for p in ws.partials.chunks_exact(len).take(k).skip(1) {
                    for (t, &v) in dw.iter_mut().zip(p) {
                        *t += v;
                    }
                }
            }
        }
        Op::MaxPool2d { window } => {
            let ([x], [y]) = views(f32s, [inputs[0]], [out]);
            let (xs, ys) = (dims(&shapes[0]), dims(out_shape));
            let taps = window.kernel[0] * window.kernel[1] * ys[2] * ys[3];
            pooled(threads, y, ys[2] * ys[3], taps, &|r, y| {
                let x = &x[r.start * xs[2] * xs[3]..r.end * xs[2] * xs[3]];
                max_pool2d(x, y, xs, ys, window);
            });
        }
        Op::MaxPool2dGrad { window } => {
            let ([x, dy], [dx]) = views(f32s, [inputs[0], inputs[1]], [out]);
            let (xs, ds) = (dims(&shapes[0]), dims(&shapes[1]));
            let taps = window.kernel[0] * window.kernel[1] * ds[2] * ds[3];
            pooled(threads, dx, xs[2] * xs[3], taps, &|r, dx| {
                let x = &x[r.start * xs[2] * xs[3]..r.end * xs[2] * xs[3]];
                let dy = &dy[r.start * ds[2] * ds[3]..r.end * ds[2] * ds[3]];
                max_pool2d_grad(x, dy, dx, xs, ds, window);
            });
        }
        Op::AvgPool2d { window } => {
            let ([x], [y]) = views(f32s, [inputs[0]], [out]);
            let (xs, ys) = (dims(&shapes[0]), dims(out_shape));
            let taps = window.kernel[0] * window.kernel[1] * ys[2] * ys[3];
            pooled(threads, y, ys[2] * ys[3], taps, &|r, y| {
                let x = &x[r.start * xs[2] * xs[3]..r.end * xs[2] * xs[3]];
                avg_pool2d(x, y, xs, ys, window);
            });
        }
        Op::AvgPool2dGrad { window } => {
            let ([dy], [dx]) = views(f32s, [inputs[0]], [out]);
            let (ds, xs) = (dims(&shapes[0]), dims(out_shape));
            let taps = window.kernel[0] * window.kernel[1] * ds[2] * ds[3];
            pooled(threads, dx, xs[2] * xs[3], taps, &|r, dx| {
                let dy = &dy[r.start * ds[2] * ds[3]..r.end * ds[2] * ds[3]];
                avg_pool2d_grad(dy, dx, ds, xs, window);
            });
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

/// A pool (or pool gradient) over the planes (image x channel) of `out`, `plane` elements
/// each, `taps` window taps per plane: `f(planes, out_part)` once, or per part in parallel
/// (planes are independent, so the result is the same).
fn pooled(
    threads: usize,
    out: &mut [f32],
    plane: usize,
    taps: usize,
    f: &(dyn Fn(Range<usize>, &mut [f32]) + Sync),
) {
    let planes = out.len() / plane.max(1);
    let k = parts(threads, planes, planes * taps);
    if k == 1 || plane == 0 {
        f(0..planes, out);
    } else {
        let mut units = vec![(); k];
        fork_mut(out, (plane, 1), &mut units, &|r, out, _| f(r, out));
    }
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

/// The planes of a `[c, ih, iw]` image with the window's padding as zeros around each, in
/// `buf` (the image itself when there is no padding), and their padded height and width:
/// with the padding in memory, every window tap reads inside its plane and im2col needs no
/// bounds tests.
fn padded<'a>(
    img: &'a [f32],
    (c, ih, iw): (usize, usize, usize),
    win: &Window,
    buf: &'a mut [f32],
) -> (&'a [f32], usize, usize) {
    let [ph, pw] = win.padding;
    if ph == 0 && pw == 0 {
        return (&img[..c * ih * iw], ih, iw);
    }
    let (h, w) = (ih + 2 * ph, iw + 2 * pw);
    let buf = &mut buf[..c * h * w];
    buf.fill(0.0);
    for (dst, src) in buf
        .chunks_exact_mut(h * w)
        .zip(img.chunks_exact((ih * iw).max(1)))
    {
        for (line, row) in dst[ph * w..]
            .chunks_exact_mut(w)
            .zip(src.chunks_exact(iw.max(1)))
        {
            copy_row(&mut line[pw..pw + iw], row);
        }
    }
    (buf, h, w)
}

/// `col[(c, a, b) * ld + (i, j)] = img[c, i*s - p + a*d, j*s - p + b*d]` (zero in the
/// padding) for an image `[c, ih, iw]` and `oh x ow` window positions: the GEMM operand of a
/// convolution, rows `ld` elements apart (several images side by side). `pad` holds the padded
/// image ([`padded`]).
fn im2col(
    img: &[f32],
    dims: (usize, usize, usize),
    (oh, ow): (usize, usize),
    win: &Window,
    (col, ld): (&mut [f32], usize),
    pad: &mut [f32],
) {
    let (planes, h, w) = padded(img, dims, win, pad);
    let ([s0, s1], [d0, d1]) = (win.stride, win.dilation);
    let mut rows = col.chunks_mut(ld.max(1));
    for plane in planes.chunks_exact((h * w).max(1)).take(dims.0) {
        for a in 0..win.kernel[0] {
            for b in 0..win.kernel[1] {
                let Some(dst) = rows.next() else { return };
                for (i, line) in dst[..oh * ow].chunks_exact_mut(ow.max(1)).enumerate() {
                    gather_row(line, &plane[(i * s0 + a * d0) * w + b * d1..], s1);
                }
            }
        }
    }
}

/// The transpose of [`im2col`] for one image: `rows[(i, j) * ld + (c, a, b)] = img[c, i*s - p +
/// a*d, j*s - p + b*d]` (zero in the padding, and in each row's `ld - K` last elements),
/// `K = c*kh*kw`: each window position's taps in
/// one row, the order a weight gradient's GEMM reads them in. The common kernel widths copy
/// each kernel row as one fixed-size array (a `memcpy` call per row cost more than the copy).
fn im2row(
    img: &[f32],
    dims: (usize, usize, usize),
    (oh, ow): (usize, usize),
    win: &Window,
    rows: (&mut [f32], usize),
    pad: &mut [f32],
) {
    let padded = padded(img, dims, win, pad);
    let layout = (dims.0, (oh, ow), win);
    match win.kernel[1] {
        3 => im2row_kw::<3>(padded, layout, rows),
        4 => im2row_kw::<4>(padded, layout, rows),
        5 => im2row_kw::<5>(padded, layout, rows),
        _ => im2row_kw::<0>(padded, layout, rows),
    }
}

/// [`im2row`] from the padded planes `(planes, h, w)`, for kernels `KW` wide (`0`: any width).
fn im2row_kw<const KW: usize>(
    (planes, h, w): (&[f32], usize, usize),
    (c, (oh, ow), win): (usize, (usize, usize), &Window),
    (rows, ld): (&mut [f32], usize),
) {
    let ([s0, s1], [d0, d1], [kh, kw]) = (win.stride, win.dilation, win.kernel);
    let k = c * kh * kw;
    for (i, line) in rows.chunks_exact_mut((ow * ld).max(1)).take(oh).enumerate() {
        if ld > k {
            for row in line.chunks_exact_mut(ld) {
                row[k..].fill(0.0);
            }
        }
        let mut at = 0;
        for plane in planes.chunks_exact((h * w).max(1)).take(c) {
            for a in 0..kh {
                let src = &plane[(i * s0 + a * d0) * w..];
                for (j, dst) in line.chunks_exact_mut(ld).enumerate() {
                    let from = j * s1;
                    if KW > 0 && d1 == 1 {
                        let taps: [f32; KW] = src[from..from + KW].try_into().expect("KW taps");
                        dst[at..at + KW].copy_from_slice(&taps);
                    } else {
                        for (b, t) in dst[at..at + kw].iter_mut().enumerate() {
                            *t = src[from + b * d1];
                        }
                    }
                }
                at += kw;
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the rows of im2col (a few to a few dozen floats): eight at a
/// time as fixed-size arrays, which compile to vector moves, where `copy_from_slice` calls
/// `memcpy`, whose call cost more than the copy (a third of LeNet's im2col time).
#[inline(always)]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    if n < 8 {
        for (t, &x) in dst[..n].iter_mut().zip(src) {
            *t = x;
        }
        return;
    }
    let mut at = 0;
    while at + 8 <= n {
        let block: [f32; 8] = src[at..at + 8].try_into().expect("eight elements");
        *<&mut [f32; 8]>::try_from(&mut dst[at..at + 8]).expect("eight elements") = block;
        at += 8;
    }
    if at < n {
        // The last eight, overlapping what is already copied.
        let block: [f32; 8] = src[n - 8..n].try_into().expect("eight elements");
        *<&mut [f32; 8]>::try_from(&mut dst[n - 8..n]).expect("eight elements") = block;
    }
}

/// `line[j] = src[j * s]` for every `j` of `line`: one im2col row.
#[inline(always)]
fn gather_row(line: &mut [f32], src: &[f32], s: usize) {
    match s {
        1 => copy_row(line, &src[..line.len()]),
        // DCGAN's stride: pairs, so the loop has no stride arithmetic.
        2 => {
            for (t, pair) in line.iter_mut().zip(src.chunks(2)) {
                *t = pair[0];
            }
        }
        _ => {
            for (t, &x) in line.iter_mut().zip(src.iter().step_by(s)) {
                *t = x;
            }
        }
    }
}

/// `dst[j * s] += line[j]` for every `j` of `line`: one col2im row, the adjoint of
/// [`gather_row`].
#[inline(always)]
fn scatter_add_row(dst: &mut [f32], line: &[f32], s: usize) {
    match s {
        1 => {
            for (t, &x) in dst.iter_mut().zip(line) {
                *t += x;
            }
        }
        2 => {
            for (pair, &x) in dst.chunks_mut(2).zip(line) {
                pair[0] += x;
            }
        }
        _ => {
            for (t, &x) in dst.iter_mut().step_by(s).zip(line) {
                *t += x;
            }
        }
    }
}

/// The adjoint of [`im2col`]: `img[c, i*s - p + a*d, j*s - p + b*d] = sum of col[(c, a, b) *
/// ld + (i, j)]` over the taps that land on each element (`img` is overwritten). With padding
/// the sums go to the padded image in `pad` first, whose interior is then copied out.
fn col2im(
    (col, ld): (&[f32], usize),
    (c, ih, iw): (usize, usize, usize),
    (oh, ow): (usize, usize),
    win: &Window,
    img: &mut [f32],
    pad: &mut [f32],
) {
    let [ph, pw] = win.padding;
    let (h, w) = (ih + 2 * ph, iw + 2 * pw);
    let direct = ph == 0 && pw == 0;
    let planes = if direct {
        &mut img[..c * h * w]
    } else {
        &mut pad[..c * h * w]
    };
    let ([s0, s1], [d0, d1]) = (win.stride, win.dilation);
    let doubled = win.kernel == [2 * s0, 2 * s1] && [d0, d1] == [1, 1];
    let col = (col, ld);
    if doubled && s1 == 2 {
        gather_doubled::<2>(col, c, (oh, ow), (h, w), s0, planes);
    } else if doubled && s1 == 1 {
        gather_doubled::<1>(col, c, (oh, ow), (h, w), s0, planes);
    } else {
        planes.fill(0.0);
        scatter(col, (oh, ow), (h, w), win, planes);
    }
    if !direct {
        for (dst, src) in img
            .chunks_exact_mut((ih * iw).max(1))
            .zip(pad.chunks_exact(h * w))
        {
            for (row, line) in dst
                .chunks_exact_mut(iw.max(1))
                .zip(src[ph * w..].chunks_exact(w))
            {
                copy_row(row, &line[pw..pw + iw]);
            }
        }
    }
}

/// col2im's sums by scattering each column row into the (zeroed) padded planes.
fn scatter(
    (col, ld): (&[f32], usize),
    (oh, ow): (usize, usize),
    (h, w): (usize, usize),
    win: &Window,
    planes: &mut [f32],
) {
    let ([s0, s1], [d0, d1]) = (win.stride, win.dilation);
    let mut rows = col.chunks(ld.max(1));
    for plane in planes.chunks_exact_mut((h * w).max(1)) {
        for a in 0..win.kernel[0] {
            for b in 0..win.kernel[1] {
                let Some(src) = rows.next() else { return };
                for (i, line) in src[..oh * ow].chunks_exact(ow.max(1)).enumerate() {
                    let at = (i * s0 + a * d0) * w + b * d1;
                    scatter_add_row(&mut plane[at..], line, s1);
                }
            }
        }
    }
}

/// col2im's sums for a window twice as long as its stride (DCGAN's 4x4, stride 2), gathered:
/// padded element `(y, x)` is the sum of the taps that land on it, at most two per axis (`a =
/// y % s` from window row `y / s`, `a + s` from the row before), so each element costs a few
/// loads and one add to its line where scattering costs four read-modify-writes of single
/// elements. `S` is the stride along rows (the lines are built `S` elements at a time).
fn gather_doubled<const S: usize>(
    (col, ld): (&[f32], usize),
    c: usize,
    (oh, ow): (usize, usize),
    (h, w): (usize, usize),
    s0: usize,
    planes: &mut [f32],
) {
    let (k0, k1) = (2 * s0, 2 * S);
    for (ci, plane) in planes.chunks_exact_mut((h * w).max(1)).take(c).enumerate() {
        for (y, line) in plane.chunks_exact_mut(w.max(1)).enumerate() {
            let (a, i) = (y % s0, y / s0);
            // The taps along y: (kernel row, window row) pairs.
            let taps = [(a, Some(i)), (a + s0, i.checked_sub(1))];
            let taps = taps
                .iter()
                .filter_map(|&(a, i)| i.filter(|&i| i < oh).map(|i| (a, i)));
            line.fill(0.0);
            for (a, i) in taps {
                // Column rows of taps (a, b) ("near": x = b + j*S) and (a, b + S) ("far":
                // x = b + (j + 1)*S), for every b.
                let row = |b: usize| {
                    let at = ((ci * k0 + a) * k1 + b) * ld + i * ow;
                    &col[at..at + ow]
                };
                let near: [&[f32]; S] = std::array::from_fn(row);
                let far: [&[f32]; S] = std::array::from_fn(|b| row(b + S));
                let mut groups = line.chunks_mut(S);
                // x in [0, S): near taps of window column 0 only.
                if let Some(first) = groups.next() {
                    for (b, t) in first.iter_mut().enumerate() {
                        *t += near[b][0];
                    }
                }
                // Window columns 1..ow: both taps, S lanes at a time.
                for (j, group) in (1..ow).zip(&mut groups) {
                    if group.len() == S {
                        for b in 0..S {
                            group[b] += near[b][j] + far[b][j - 1];
                        }
                    } else {
                        for (b, t) in group.iter_mut().enumerate() {
                            *t += near[b][j] + far[b][j - 1];
                        }
                    }
                }
                // The far taps of the last window column.
                if let Some(last) = groups.next() {
                    for (b, t) in last.iter_mut().enumerate() {
                        *t += far[b][ow - 1];
                    }
                }
            }
        }
    }
}

/// `dst = src^T` for a row-major `[rows, cols]` `src`, in 16 x 16 blocks (both sides stay in
/// cache lines that are reused).
fn transpose(src: &[f32], (rows, cols): (usize, usize), dst: &mut [f32]) {
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// Where row `r` of image `j` lives in `c` images of `rows x p` matrices, as `(offset in the
/// per-image layout [c, rows, p], offset in the side-by-side layout [rows, c * p])` — the
/// latter is a batched GEMM's operand or result. Each run is `p` elements long.
fn side_by_side(c: usize, rows: usize, p: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..c).flat_map(move |j| (0..rows).map(move |r| ((j * rows + r) * p, r * c * p + j * p)))
}

/// `c` images of `rows x p` matrices from the per-image layout into `out`, side by side.
fn gather_side_by_side(src: &[f32], out: &mut [f32], (c, rows, p): (usize, usize, usize)) {
    for (a, b) in side_by_side(c, rows, p) {
        out[b..b + p].copy_from_slice(&src[a..a + p]);
    }
}

/// The images of `images` in batches of `chunk.images` (the last may be smaller), as
/// `(index of the first image relative to the range start, image indices)`.
fn batches(images: Range<usize>, chunk: Chunk) -> impl Iterator<Item = (usize, Range<usize>)> {
    let start = images.start;
    images
        .clone()
        .step_by(chunk.images.max(1))
        .map(move |i| (i - start, i..(i + chunk.images).min(images.end)))
}

/// Whether a window over an `h x w` image is one dense product: no padding, unit dilation and
/// the kernel exactly the image, so its only position reads the whole image in im2col's order
/// and the convolution is a plain matrix product over the images, with no im2col or col2im
/// (DCGAN's layers between 4x4 maps and 1x1 codes, which spent ~15 ns per one-element row).
fn dense(win: &Window, (h, w): (usize, usize)) -> bool {
    win.padding == [0, 0] && win.dilation == [1, 1] && win.kernel == [h, w]
}

/// Whether a convolution's im2col is cheaper built row by row ([`im2col`]: runs of `ow`
/// contiguous taps) than position by position ([`im2row`]: runs of `kw`): for stride-1 windows
/// narrower than the output (LeNet's 5x5 over 28 columns: 18% faster steps); strided windows
/// (DCGAN's 4x4, stride 2) gather every other element row by row and go 5% faster by position.
fn rows_are_longer(win: &Window, ow: usize) -> bool {
    win.stride[1] == 1 && ow > win.kernel[1]
}

/// `Conv2d` of the images in `images`, a batch at a time: `Y (O x c*P) = w (O x K) x col (K x
/// c*P)` with `K = C*kh*kw`, `P` the output positions and `c` images side by side (`col` built
/// in whichever layout [`rows_are_longer`] picks), then `Y` regrouped into `y` (which starts at
/// the range's first image).
fn conv2d(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    (xs, ys): ([usize; 4], [usize; 4]),
    win: &Window,
    (images, chunk): (Range<usize>, Chunk),
) {
    let [_, c, ih, iw] = xs;
    let [_, o, oh, ow] = ys;
    let (k, p) = (chunk.rows, chunk.positions);
    let image = c * ih * iw;
    if dense(win, (ih, iw)) {
        // y[i, o] = x[i, :] . w[o, :]
        let (n, x) = (images.len(), &x[images.start * k..images.end * k]);
        let w = Mat {
            data: w,
            rs: 1,
            cs: k,
        };
        gemm((n, o, k), y, (o, 1), false, Mat::rows(x, k), w);
        return;
    }
    let by_rows = rows_are_longer(win, ow);
    for (at, batch) in batches(images, chunk) {
        let n = batch.len();
        let (col, out, pad) = chunk.split(scratch, n);
        for (j, img) in batch.enumerate() {
            let x = &x[img * image..(img + 1) * image];
            if by_rows {
                im2col(
                    x,
                    (c, ih, iw),
                    (oh, ow),
                    win,
                    (&mut col[j * p..], n * p),
                    pad,
                );
            } else {
                im2row(
                    x,
                    (c, ih, iw),
                    (oh, ow),
                    win,
                    (&mut col[j * p * k..], k),
                    pad,
                );
            }
        }
        let y = &mut y[at * o * p..(at + n) * o * p];
        // One image: the GEMM writes its output in place.
        let dst = if n == 1 { &mut *y } else { &mut *out };
        gemm(
            (o, n * p, k),
            dst,
            (n * p, 1),
            false,
            Mat {
                data: w,
                rs: k,
                cs: 1,
            },
            if by_rows {
                Mat {
                    data: col,
                    rs: n * p,
                    cs: 1,
                }
            } else {
                Mat {
                    data: col,
                    rs: 1,
                    cs: k,
                }
            },
        );
        if n > 1 {
            for (a, b) in side_by_side(n, o, p) {
                y[a..a + p].copy_from_slice(&out[b..b + p]);
            }
        }
    }
}

/// The row length of a weight gradient's `col^T` for `k` taps and `o` output channels: `k`
/// rounded up to a multiple of 8 when there are at most 48 channels. Then the GEMM library
/// reads `col^T` in place (its rows a whole number of 8-lane vectors, the other side at most
/// eight 6-wide tiles); otherwise it copies (packs) the whole matrix first, which for LeNet's
/// 75- and 150-tap rows cost as much as building it.
fn padded_row(k: usize, o: usize) -> usize {
    if o <= 48 { k.next_multiple_of(8) } else { k }
}

/// `Conv2dWeightGrad` over the images in `images`: `dw (O x K) = sum over batches of dY (O x
/// c*P) x col^T (c*P x K)`, `dY` being `c` images of `dy` side by side, accumulated by the GEMM.
/// `col^T` is built directly ([`im2row`]): with the positions as the GEMM's depth, reading it
/// row by row runs 1.4-1.8x faster than through `col`'s strides for few-channel layers. Its
/// rows may be padded with zeros ([`padded_row`]); then the sums go to a padded `O x ld`
/// buffer first.
fn conv2d_weight_grad(
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    scratch: &mut [f32],
    (xs, ds): ([usize; 4], [usize; 4]),
    win: &Window,
    (images, chunk): (Range<usize>, Chunk),
) {
    let [_, c, ih, iw] = xs;
    let [_, o, oh, ow] = ds;
    let (k, ld, p) = (
        c * win.kernel[0] * win.kernel[1],
        chunk.rows,
        chunk.positions,
    );
    let image = c * ih * iw;
    if dense(win, (ih, iw)) {
        // dw[o, :] = sum over the images of dy[i, o] x[i, :]
        let (n, x) = (images.len(), &x[images.start * k..images.end * k]);
        let dy = Mat {
            data: &dy[images.start * o..images.end * o],
            rs: 1,
            cs: o,
        };
        gemm((o, k, n), dw, (k, 1), false, dy, Mat::rows(x, k));
        return;
    }
    let (padded_sums, scratch) = chunk.weight(scratch);
    let sums = if ld == k { &mut *dw } else { &mut *padded_sums };
    sums.fill(0.0);
    for (_, batch) in batches(images, chunk) {
        let n = batch.len();
        let (col, staged, pad) = chunk.split(scratch, n);
        for (j, img) in batch.clone().enumerate() {
            let x = &x[img * image..(img + 1) * image];
            im2row(
                x,
                (c, ih, iw),
                (oh, ow),
                win,
                (&mut col[j * p * ld..], ld),
                pad,
            );
        }
        let dy = &dy[batch.start * o * p..batch.end * o * p];
        let lhs = if n == 1 {
            dy
        } else {
            gather_side_by_side(dy, staged, (n, o, p));
            &*staged
        };
        gemm(
            (o, ld, n * p),
            sums,
            (ld, 1),
            true,
            Mat {
                data: lhs,
                rs: n * p,
                cs: 1,
            },
            Mat {
                data: col,
                rs: ld,
                cs: 1,
            },
        );
    }
    if ld != k {
        for (row, padded) in dw.chunks_exact_mut(k).zip(padded_sums.chunks_exact(ld)) {
            row.copy_from_slice(&padded[..k]);
        }
    }
}

/// `ConvTranspose2d` with `w [I, O, kh, kw]` of the images in `images`, a batch at a time:
/// `col (O*kh*kw x c*H*W) = w^T x X` with `X` the `c` images of `x` side by side, then col2im
/// scatters each image's columns into its output image (`y` starts at the range's first image).
fn conv_transpose2d(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    (xs, ys): ([usize; 4], [usize; 4]),
    win: &Window,
    (images, chunk): (Range<usize>, Chunk),
) {
    let [_, ci, h, wd] = xs;
    let [_, o, oh, ow] = ys;
    let (k, p) = (chunk.rows, chunk.positions);
    if (h, wd) == (1, 1) && dense(win, (oh, ow)) {
        // y[i, :] = x[i, :] w, the whole output image being one window
        let (n, x) = (images.len(), &x[images.start * ci..images.end * ci]);
        gemm(
            (n, k, ci),
            y,
            (k, 1),
            false,
            Mat::rows(x, ci),
            Mat::rows(w, k),
        );
        return;
    }
    // `w^T` row-major: the GEMM library reads it in place (the depth, `I`, contiguous) where it
    // would repack `w` for every batch of images (20-25% of these GEMMs' time).
    let (wt, scratch) = chunk.weight(scratch);
    transpose(w, (ci, k), wt);
    for (at, batch) in batches(images, chunk) {
        let n = batch.len();
        let (col, staged, pad) = chunk.split(scratch, n);
        let x = &x[batch.start * ci * p..batch.end * ci * p];
        let rhs = if n == 1 {
            x
        } else {
            gather_side_by_side(x, staged, (n, ci, p));
            &*staged
        };
        gemm(
            (k, n * p, ci),
            col,
            (n * p, 1),
            false,
            Mat::rows(wt, ci),
            Mat {
                data: rhs,
                rs: n * p,
                cs: 1,
            },
        );
        for j in 0..n {
            let image = o * oh * ow;
            col2im(
                (&col[j * p..], n * p),
                (o, oh, ow),
                (h, wd),
                win,
                &mut y[(at + j) * image..(at + j + 1) * image],
                pad,
            );
        }
    }
}
