//! Convolutions and pools over `[N, C, H, W]` tensors, written as the direct loop nests of
//! their definitions. Window position `(i, j)` with kernel tap `(a, b)` reads input pixel
//! `(i * stride - padding + a * dilation, j * ...)`; taps that fall in the padding read zero
//! (convolutions, average pools) or -inf (max pools), which here means they are skipped.

use super::{Precision, Value, floats};
use crate::ir::{Type, Window};

/// The input coordinate read by output position `pos` and kernel tap `tap` along spatial `axis`
/// (0 = h, 1 = w), or `None` where it falls in the padding.
fn tap(window: &Window, axis: usize, pos: usize, tap: usize, size: usize) -> Option<usize> {
    let padded = pos * window.stride[axis] + tap * window.dilation[axis];
    padded
        .checked_sub(window.padding[axis])
        .filter(|&x| x < size)
}

/// Flat index of `[n, c, h, w]` in a tensor of 4-D `shape`.
fn at(shape: &[usize], n: usize, c: usize, h: usize, w: usize) -> usize {
    ((n * shape[1] + c) * shape[2] + h) * shape[3] + w
}

/// `Conv2d`: `out[n, o, i, j] = sum_{c, a, b} x[n, c, i*s - p + a*d, j*s - p + b*d] * w[o, c, a, b]`,
/// summed in the order `c, a, b`.
pub(super) fn conv2d(
    x: &Value,
    w: &Value,
    window: &Window,
    out: &Type,
    p: Precision,
) -> Result<Vec<f64>, String> {
    let (xv, wv) = (floats(x, "conv2d")?, floats(w, "conv2d")?);
    let (xs, ws, os) = (&x.ty.shape, &w.ty.shape, &out.shape);
    let mut result = vec![0.0; out.numel()];
    for n in 0..os[0] {
        for o in 0..os[1] {
            for i in 0..os[2] {
                for j in 0..os[3] {
                    let mut acc = 0.0;
                    for c in 0..xs[1] {
                        for a in 0..ws[2] {
                            for b in 0..ws[3] {
                                if let (Some(h), Some(v)) =
                                    (tap(window, 0, i, a, xs[2]), tap(window, 1, j, b, xs[3]))
                                {
                                    acc =
                                        p.mac(acc, xv[at(xs, n, c, h, v)], wv[at(ws, o, c, a, b)]);
                                }
                            }
                        }
                    }
                    result[at(os, n, o, i, j)] = acc;
                }
            }
        }
    }
    Ok(result)
}

/// `ConvTranspose2d` with `x [N, I, H, W]`, `w [I, O, kh, kw]`: starting from zeros of the
/// node's type, `out[n, o, i*s - p + a*d, j*s - p + b*d] += x[n, c, i, j] * w[c, o, a, b]` for
/// every `n, c, i, j, o, a, b` in that order, skipping targets outside the output.
pub(super) fn conv_transpose2d(
    x: &Value,
    w: &Value,
    window: &Window,
    out: &Type,
    p: Precision,
) -> Result<Vec<f64>, String> {
    let (xv, wv) = (
        floats(x, "conv_transpose2d")?,
        floats(w, "conv_transpose2d")?,
    );
    let (xs, ws, os) = (&x.ty.shape, &w.ty.shape, &out.shape);
    let mut result = vec![0.0; out.numel()];
    for n in 0..xs[0] {
        for c in 0..xs[1] {
            for i in 0..xs[2] {
                for j in 0..xs[3] {
                    let xval = xv[at(xs, n, c, i, j)];
                    for o in 0..os[1] {
                        for a in 0..ws[2] {
                            for b in 0..ws[3] {
                                if let (Some(h), Some(v)) =
                                    (tap(window, 0, i, a, os[2]), tap(window, 1, j, b, os[3]))
                                {
                                    let k = at(os, n, o, h, v);
                                    result[k] = p.mac(result[k], xval, wv[at(ws, c, o, a, b)]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(result)
}

/// `Conv2dWeightGrad`: `dw[o, c, a, b] = sum_{n, i, j} x[n, c, i*s - p + a*d, j*s - p + b*d] *
/// dy[n, o, i, j]`, summed in the order `n, i, j`.
pub(super) fn conv2d_weight_grad(
    x: &Value,
    dy: &Value,
    window: &Window,
    out: &Type,
    p: Precision,
) -> Result<Vec<f64>, String> {
    let (xv, dyv) = (
        floats(x, "conv2d_weight_grad")?,
        floats(dy, "conv2d_weight_grad")?,
    );
    let (xs, ds, os) = (&x.ty.shape, &dy.ty.shape, &out.shape);
    let mut result = vec![0.0; out.numel()];
    for o in 0..os[0] {
        for c in 0..os[1] {
            for a in 0..os[2] {
                for b in 0..os[3] {
                    let mut acc = 0.0;
                    for n in 0..ds[0] {
                        for i in 0..ds[2] {
                            for j in 0..ds[3] {
                                if let (Some(h), Some(v)) =
                                    (tap(window, 0, i, a, xs[2]), tap(window, 1, j, b, xs[3]))
                                {
                                    acc =
                                        p.mac(acc, xv[at(xs, n, c, h, v)], dyv[at(ds, n, o, i, j)]);
                                }
                            }
                        }
                    }
                    result[at(os, o, c, a, b)] = acc;
                }
            }
        }
    }
    Ok(result)
}

/// The in-bounds input positions `(h, w)` of window `(i, j)`, in row-major order of the taps.
fn window_taps(
    window: &Window,
    i: usize,
    j: usize,
    height: usize,
    width: usize,
) -> Vec<(usize, usize)> {
    let mut taps = Vec::new();
    for a in 0..window.kernel[0] {
        for b in 0..window.kernel[1] {
            if let (Some(h), Some(v)) = (tap(window, 0, i, a, height), tap(window, 1, j, b, width))
            {
                taps.push((h, v));
            }
        }
    }
    taps
}

/// The first position (row-major within the window) holding the window's maximum, and that
/// maximum; padding counts as -inf, so it is never chosen over an in-bounds element. A NaN
/// counts as larger than everything (it propagates, as in PyTorch). `None` for a window lying
/// entirely in the padding (its maximum is -inf).
fn window_max(
    xv: &[f64],
    xs: &[usize],
    n: usize,
    c: usize,
    taps: &[(usize, usize)],
) -> Option<((usize, usize), f64)> {
    let mut best: Option<((usize, usize), f64)> = None;
    for &(h, v) in taps {
        let value = xv[at(xs, n, c, h, v)];
        let better = match best {
            None => true,
            Some((_, b)) => !b.is_nan() && (value.is_nan() || value > b),
        };
        if better {
            best = Some(((h, v), value));
        }
    }
    best
}

/// `MaxPool2d`: the maximum of each window (padding is -inf).
pub(super) fn max_pool2d(x: &Value, window: &Window, out: &Type) -> Result<Vec<f64>, String> {
    let xv = floats(x, "max_pool2d")?;
    let (xs, os) = (&x.ty.shape, &out.shape);
    let mut result = vec![0.0; out.numel()];
    for n in 0..os[0] {
        for c in 0..os[1] {
            for i in 0..os[2] {
                for j in 0..os[3] {
                    let taps = window_taps(window, i, j, xs[2], xs[3]);
                    let max = window_max(xv, xs, n, c, &taps).map_or(f64::NEG_INFINITY, |(_, m)| m);
                    result[at(os, n, c, i, j)] = max;
                }
            }
        }
    }
    Ok(result)
}

/// `MaxPool2dGrad(x, dy)`: each window's `dy` is added to `dx` at the first position of the
/// window attaining its maximum; overlapping windows accumulate, in row-major window order.
pub(super) fn max_pool2d_grad(
    x: &Value,
    dy: &Value,
    window: &Window,
    out: &Type,
    p: Precision,
) -> Result<Vec<f64>, String> {
    let (xv, dyv) = (
        floats(x, "max_pool2d_grad")?,
        floats(dy, "max_pool2d_grad")?,
    );
    let (xs, ds) = (&x.ty.shape, &dy.ty.shape);
    let mut result = vec![0.0; out.numel()];
    for n in 0..ds[0] {
        for c in 0..ds[1] {
            for i in 0..ds[2] {
                for j in 0..ds[3] {
                    let taps = window_taps(window, i, j, xs[2], xs[3]);
                    if let Some(((h, v), _)) = window_max(xv, xs, n, c, &taps) {
                        let k = at(xs, n, c, h, v);
                        result[k] = p.round(result[k] + dyv[at(ds, n, c, i, j)]);
                    }
                }
            }
        }
    }
    Ok(result)
}

/// `AvgPool2d`: the sum of each window's in-bounds elements, in row-major order, divided by
/// `kh * kw` (padding counts as zeros: PyTorch's `count_include_pad=True`).
pub(super) fn avg_pool2d(
    x: &Value,
    window: &Window,
    out: &Type,
    p: Precision,
) -> Result<Vec<f64>, String> {
    let xv = floats(x, "avg_pool2d")?;
    let (xs, os) = (&x.ty.shape, &out.shape);
    let count = (window.kernel[0] * window.kernel[1]) as f64;
    let mut result = vec![0.0; out.numel()];
    for n in 0..os[0] {
        for c in 0..os[1] {
            for i in 0..os[2] {
                for j in 0..os[3] {
                    let mut acc = 0.0;
                    for (h, v) in window_taps(window, i, j, xs[2], xs[3]) {
                        acc = p.round(acc + xv[at(xs, n, c, h, v)]);
                    }
                    result[at(os, n, c, i, j)] = p.round(acc / count);
                }
            }
        }
    }
    Ok(result)
}

/// `AvgPool2dGrad(dy)`: each window's `dy / (kh * kw)` is added to every in-bounds position of
/// the window, into zeros of the node's type.
pub(super) fn avg_pool2d_grad(
    dy: &Value,
    window: &Window,
    out: &Type,
    p: Precision,
) -> Result<Vec<f64>, String> {
    let dyv = floats(dy, "avg_pool2d_grad")?;
    let (ds, os) = (&dy.ty.shape, &out.shape);
    let count = (window.kernel[0] * window.kernel[1]) as f64;
    let mut result = vec![0.0; out.numel()];
    for n in 0..ds[0] {
        for c in 0..ds[1] {
            for i in 0..ds[2] {
                for j in 0..ds[3] {
                    let share = p.round(dyv[at(ds, n, c, i, j)] / count);
                    for (h, v) in window_taps(window, i, j, os[2], os[3]) {
                        let k = at(os, n, c, h, v);
                        result[k] = p.round(result[k] + share);
                    }
                }
            }
        }
    }
    Ok(result)
}
