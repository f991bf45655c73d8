//! Max and average pools and their gradients over `[N, C, H, W]` planes, with the
//! interpreter's semantics (padding is -inf for max and counts as zero for average; a max
//! window's result comes from its first maximum in row-major tap order, and a NaN beats
//! everything and is never displaced), so results agree bit for bit.
//!
//! Windows entirely inside the plane (all of them, without padding) take a path with no
//! bounds logic, and the common 2x2 and 3x3 kernels get constant trip counts: the general
//! per-tap checks made pools 20% of a LeNet step. Max pools whose 2x2 stride-2 windows tile the
//! plane (LeNet's) go further, a row of windows at a time in a loop the compiler vectorizes.

use std::ops::Range;

use netc_compiler::ir::Window;

/// The input coordinate read by output position `pos` and tap `tap` along `axis`, or any value
/// `>= size` where it falls in the padding (the subtraction wraps instead of going negative).
#[inline]
fn coord(window: &Window, axis: usize, pos: usize, tap: usize) -> usize {
    (pos * window.stride[axis] + tap * window.dilation[axis]).wrapping_sub(window.padding[axis])
}

/// The window positions along `axis` whose every tap lies inside an input of `size`
/// elements, out of `out` positions: a contiguous range (empty when none does).
fn interior(win: &Window, axis: usize, out: usize, size: usize) -> Range<usize> {
    let (s, p) = (win.stride[axis], win.padding[axis]);
    let reach = (win.kernel[axis] - 1) * win.dilation[axis];
    // First i with i*s >= p; last with i*s - p + reach < size.
    let lo = p.div_ceil(s).min(out);
    let hi = if size + p > reach {
        ((size + p - reach - 1) / s + 1).min(out)
    } else {
        0
    };
    lo..hi.max(lo)
}

/// Whether the max so far, `m`, gives way to `v`: `v` is larger, or a NaN, and `m` is not a
/// NaN (the interpreter's rule).
#[inline(always)]
fn displaces(v: f32, m: f32) -> bool {
    (v > m || v.is_nan()) && !m.is_nan()
}

/// Whether the windows tile the plane: 2x2, stride 2, no padding or dilation (LeNet's pools),
/// so each row of windows reads two whole input rows and every input element is in at most
/// one window. These take a loop with no index arithmetic per window (the general path spent
/// 2 ns per input element).
fn tiles(win: &Window) -> bool {
    win.kernel == [2, 2] && win.stride == [2, 2] && win.padding == [0, 0] && win.dilation == [1, 1]
}

/// The pairs of input rows (each `2 * ow` long) under the `oh` rows of 2x2 windows of a plane
/// `iw` wide.
fn tile_rows(
    plane: &[f32],
    iw: usize,
    (oh, ow): (usize, usize),
) -> impl Iterator<Item = (&[f32], &[f32])> {
    plane
        .chunks_exact(2 * iw)
        .take(oh)
        .map(move |pair| (&pair[..2 * ow], &pair[iw..iw + 2 * ow]))
}

/// The first maximum of four taps in row-major order, as `(tap, value)`, by [`displaces`].
#[inline(always)]
fn first_max(taps: [f32; 4]) -> (u32, f32) {
    let (mut at, mut m) = (0, taps[0]);
    for (k, v) in (1..).zip(taps.into_iter().skip(1)) {
        let d = displaces(v, m);
        at = if d { k } else { at };
        m = if d { v } else { m };
    }
    (at, m)
}

/// One row of 2x2 windows over input rows `r0`, `r1`: the maxima into `y`. Indexed loops over
/// slices cut to length, which the compiler vectorizes (as scalar code its selects became
/// branches on the data, mispredicted on every other window).
#[inline(always)]
fn tile_row_max(r0: &[f32], r1: &[f32], y: &mut [f32]) {
    let ow = y.len();
    let (r0, r1) = (&r0[..2 * ow], &r1[..2 * ow]);
    for j in 0..ow {
        y[j] = first_max([r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]]).1;
    }
}

/// The gradient of [`tile_row_max`]: each window's `dy` at its first maximum in `g0`, `g1`
/// (the rows under `r0`, `r1`), zero at its other taps.
#[inline(always)]
fn tile_row_grad(r0: &[f32], r1: &[f32], dy: &[f32], g0: &mut [f32], g1: &mut [f32]) {
    let ow = dy.len();
    let (r0, r1) = (&r0[..2 * ow], &r1[..2 * ow]);
    let (g0, g1) = (&mut g0[..2 * ow], &mut g1[..2 * ow]);
    for j in 0..ow {
        let at = first_max([r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]]).0;
        let d = dy[j];
        g0[2 * j] = if at == 0 { d } else { 0.0 };
        g0[2 * j + 1] = if at == 1 { d } else { 0.0 };
        g1[2 * j] = if at == 2 { d } else { 0.0 };
        g1[2 * j + 1] = if at == 3 { d } else { 0.0 };
    }
}

/// The first maximum of the window whose first tap is `start`, every tap inside the plane:
/// `(index, value)`. `kh`, `kw` are constants after inlining at the call sites below.
#[inline(always)]
fn interior_max(
    plane: &[f32],
    start: usize,
    (kh, kw): (usize, usize),
    (dh, dw): (usize, usize),
) -> (usize, f32) {
    let (mut at, mut m) = (start, plane[start]);
    for a in 0..kh {
        for b in 0..kw {
            let i = start + a * dh + b * dw;
            let v = plane[i];
            // Selects rather than a branch: which tap holds the maximum is data, and
            // mispredicting it cost more than the comparisons.
            let d = displaces(v, m);
            at = if d { i } else { at };
            m = if d { v } else { m };
        }
    }
    (at, m)
}

/// The first in-bounds position (row-major within window `(i, j)`) holding the window's
/// maximum, as a flat index into the `[ih, iw]` plane, with that maximum. `None` for a window
/// entirely in the padding.
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
            if best.is_none_or(|(_, m)| displaces(value, m)) {
                best = Some((at, value));
            }
        }
    }
    best
}

/// Call `f(plane index, output index, window max)` for every window of every plane of `x`
/// (`[.., ih, iw]` planes, `oh x ow` windows each), windows in row-major order.
#[inline(always)]
fn each_window_max(
    x: &[f32],
    (ih, iw): (usize, usize),
    (oh, ow): (usize, usize),
    win: &Window,
    f: impl FnMut(usize, usize, Option<(usize, f32)>),
) {
    let dims = ((ih, iw), (oh, ow));
    match win.kernel {
        [2, 2] => windows_of::<2, 2>(x, dims, win, f),
        [3, 3] => windows_of::<3, 3>(x, dims, win, f),
        _ => windows_of::<0, 0>(x, dims, win, f),
    }
}

/// [`each_window_max`] for a `KH x KW` kernel known at compile time (`0 x 0`: the window's).
#[inline(always)]
fn windows_of<const KH: usize, const KW: usize>(
    x: &[f32],
    ((ih, iw), (oh, ow)): ((usize, usize), (usize, usize)),
    win: &Window,
    mut f: impl FnMut(usize, usize, Option<(usize, f32)>),
) {
    let kernel = if KH == 0 {
        (win.kernel[0], win.kernel[1])
    } else {
        (KH, KW)
    };
    let (rows, cols) = (interior(win, 0, oh, ih), interior(win, 1, ow, iw));
    let steps = (win.dilation[0] * iw, win.dilation[1]);
    for (p, plane) in x.chunks_exact(ih * iw).enumerate() {
        for i in 0..oh {
            let inside = rows.contains(&i);
            for j in 0..ow {
                let best = if inside && cols.contains(&j) {
                    let start = coord(win, 0, i, 0) * iw + coord(win, 1, j, 0);
                    Some(interior_max(plane, start, kernel, steps))
                } else {
                    window_max(plane, (ih, iw), win, i, j)
                };
                f(p, i * ow + j, best);
            }
        }
    }
}

/// `MaxPool2d`: each window's maximum (padding is -inf).
pub(super) fn max_pool2d(x: &[f32], y: &mut [f32], xs: [usize; 4], ys: [usize; 4], win: &Window) {
    let [_, _, ih, iw] = xs;
    let [_, _, oh, ow] = ys;
    if oh * ow == 0 || ih * iw == 0 {
        y.fill(f32::NEG_INFINITY);
        return;
    }
    if tiles(win) {
        let rows = x
            .chunks_exact(ih * iw)
            .flat_map(|plane| tile_rows(plane, iw, (oh, ow)));
        for ((r0, r1), line) in rows.zip(y.chunks_exact_mut(ow)) {
            tile_row_max(r0, r1, line);
        }
        return;
    }
    each_window_max(x, (ih, iw), (oh, ow), win, |p, o, best| {
        y[p * oh * ow + o] = best.map_or(f32::NEG_INFINITY, |(_, m)| m);
    });
}

/// `MaxPool2dGrad`: each window's `dy` added at its first maximum, windows in row-major order.
pub(super) fn max_pool2d_grad(
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
    if tiles(win) {
        let rows = x
            .chunks_exact(ih * iw)
            .flat_map(|plane| tile_rows(plane, iw, (oh, ow)));
        let grads = dx.chunks_exact_mut(ih * iw).flat_map(|plane| {
            plane
                .chunks_exact_mut(2 * iw)
                .take(oh)
                .map(|pair| pair.split_at_mut(iw))
        });
        for (((r0, r1), (g0, g1)), dy) in rows.zip(grads).zip(dy.chunks_exact(ow)) {
            tile_row_grad(r0, r1, dy, g0, g1);
        }
        return;
    }
    each_window_max(x, (ih, iw), (oh, ow), win, |p, o, best| {
        if let Some((at, _)) = best {
            dx[p * ih * iw + at] += dy[p * oh * ow + o];
        }
    });
}

/// `AvgPool2d`: each window's in-bounds sum (row-major) divided by `kh * kw`.
pub(super) fn avg_pool2d(x: &[f32], y: &mut [f32], xs: [usize; 4], ys: [usize; 4], win: &Window) {
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
pub(super) fn avg_pool2d_grad(
    dy: &[f32],
    dx: &mut [f32],
    ds: [usize; 4],
    xs: [usize; 4],
    win: &Window,
) {
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
