//! Data-movement ops and row-major index arithmetic. Each op computes, for every output element
//! in row-major order, the flat index of the input element it copies.

use super::{Data, Value};
use crate::ir::Type;

/// Row-major strides: the flat distance between neighbours along each axis.
pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// The multi-index of flat position `flat` in `shape`, written into `index`.
pub(super) fn unravel(mut flat: usize, shape: &[usize], index: &mut [usize]) {
    for axis in (0..shape.len()).rev() {
        index[axis] = flat % shape[axis];
        flat /= shape[axis];
    }
}

/// For each output element of shape `out`, the input flat index `source(out_index)`.
fn sources(out: &[usize], mut source: impl FnMut(&[usize]) -> usize) -> Vec<usize> {
    let numel: usize = out.iter().product();
    let mut index = vec![0; out.len()];
    (0..numel)
        .map(|flat| {
            unravel(flat, out, &mut index);
            source(&index)
        })
        .collect()
}

/// NumPy broadcast: shapes align on the right; an input axis of size 1 repeats its one element.
pub(super) fn broadcast(x: &Value, out: &Type) -> Data {
    let shape = &x.ty.shape;
    let in_strides = strides(shape);
    let offset = out.rank() - shape.len();
    let src = sources(&out.shape, |index| {
        (0..shape.len())
            .map(|k| {
                if shape[k] == 1 {
                    0
                } else {
                    index[k + offset] * in_strides[k]
                }
            })
            .sum()
    });
    x.data.pick(&src)
}

/// Transpose: output axis `i` is input axis `perm[i]`, so `out[idx] = in[idx']` where
/// `idx'[perm[i]] = idx[i]`.
pub(super) fn transpose(x: &Value, perm: &[usize], out: &Type) -> Data {
    let in_strides = strides(&x.ty.shape);
    let src = sources(&out.shape, |index| {
        (0..perm.len())
            .map(|i| index[i] * in_strides[perm[i]])
            .sum()
    });
    x.data.pick(&src)
}

/// Slice: `out[.., i, ..] = in[.., start + i, ..]` along `axis`.
pub(super) fn slice(x: &Value, axis: usize, start: usize, out: &Type) -> Data {
    let in_strides = strides(&x.ty.shape);
    let src = sources(&out.shape, |index| {
        (0..index.len())
            .map(|k| (index[k] + if k == axis { start } else { 0 }) * in_strides[k])
            .sum()
    });
    x.data.pick(&src)
}

/// Concat along `axis`: for each index of the axes before `axis` (the outer index), the
/// operands' contiguous blocks follow each other.
pub(super) fn concat(args: &[&Value], axis: usize, out: &Type) -> Result<Data, String> {
    let outer: usize = out.shape[..axis].iter().product();
    let inner: usize = out.shape[axis + 1..].iter().product();
    let mut data = Data::empty(out.dtype);
    for o in 0..outer {
        for arg in args {
            let block = arg.ty.shape[axis] * inner;
            data.extend_range(&arg.data, o * block..(o + 1) * block)?;
        }
    }
    Ok(data)
}

/// Element `i` of `x` along axis 0, one step of a scan's sequence input.
pub(super) fn leading_slice(x: &Value, i: usize) -> Value {
    let shape = x.ty.shape[1..].to_vec();
    let ty = Type {
        dtype: x.ty.dtype,
        shape,
    };
    let block = ty.numel();
    let range = i * block..(i + 1) * block;
    let data = match &x.data {
        Data::F(v) => Data::F(v[range].to_vec()),
        Data::I(v) => Data::I(v[range].to_vec()),
    };
    Value { ty, data }
}
