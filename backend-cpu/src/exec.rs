//! The kernels that run as Rust code: reductions, GEMM calls, the interpreter fallback, and the
//! one function that enters JIT code. All the `unsafe` of the crate is in this file: entering
//! generated code and the `gemm` crate's pointer API.

use std::collections::HashMap;
use std::ops::Range;

use netc_compiler::ir::interp::{self, Precision, Value};
use netc_compiler::ir::{DType, Graph, ReduceOp};

use crate::kernel::Slot;

/// The signature of every generated kernel: the f32 arena's base address and the part
/// `lo..hi` of the outermost dimension to compute.
type KernelFn = unsafe extern "C" fn(*mut f32, i64, i64);

/// The arena's base address, handed to the threads that compute disjoint parts of one kernel.
#[derive(Clone, Copy)]
struct Base(*mut f32);

impl Base {
    /// The address (a method, so closures capture the whole `Base`, which is `Sync`).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: a `Base` is only dereferenced by code that writes disjoint elements from each thread
// and reads only elements no thread writes during the same kernel (see `call_kernel` and
// `matmul`), while the arena's `&mut` borrow is held by the caller for the whole fork.
unsafe impl Send for Base {}
// SAFETY: as above.
unsafe impl Sync for Base {}

/// Run the generated kernel at `code` on `arena`: rows `0..rows` of its outermost dimension, in
/// `parts` contiguous parts on the thread pool (rank-1 kernels split at multiples of 16
/// elements, so every part but the last runs whole vectors).
///
/// Safety argument (why this is sound although it is `unsafe` inside): `code` comes from
/// [`crate::codegen::Jit::finish`] for a kernel planned against an arena of exactly
/// `arena.len()` elements, and the planner only emits loads and stores inside slots of that plan
/// (every offset plus extent is below `f32_len`, checked by `CompiledStep::compile`). The code
/// touches no other memory, does not unwind, and the `Jit` owning it outlives the call (both
/// live in the same `CompiledStep`). A call with `lo..hi` stores only the output elements of
/// those rows, and the output slot overlaps none of the kernel's operands (the plan gives every
/// kernel a fresh output, and liveness reuse never hands a kernel's output memory to a value
/// it reads), so parts running at once write disjoint memory and read memory nobody writes.
pub(crate) fn call_kernel(
    code: *const u8,
    arena: &mut [f32],
    rows: usize,
    align: usize,
    parts: usize,
) {
    // SAFETY: `code` was produced with the signature `fn(*mut f32, i64, i64)` in the host's
    // default calling convention, which is `extern "C"`.
    let f: KernelFn = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
    let base = Base(arena.as_mut_ptr());
    crate::par::fork(rows, parts, align, &|_, r| {
        // SAFETY: see above; `r` is inside `0..rows`, the rows the code was generated for.
        unsafe { f(base.get(), r.start as i64, r.end as i64) }
    });
}

/// `out = a x b` for `batch` row-major matrices (`a` is `[m, k]`, or `[k, m]` when `ta`; `b` is
/// `[k, n]`, or `[n, k]` when `tb`), through the `gemm` crate. With several `threads`, a large
/// batch is split into contiguous parts of matrices (each computed exactly as on one thread),
/// and a single large matrix product uses `gemm`'s own threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    arena: &mut [f32],
    a: Slot,
    b: Slot,
    out: Slot,
    batch: usize,
    (m, n, k): (usize, usize, usize),
    ta: bool,
    tb: bool,
    threads: usize,
) {
    let end = |s: Slot| s.offset + s.len;
    assert!(
        end(a) <= arena.len() && end(b) <= arena.len() && end(out) <= arena.len(),
        "matmul slots outside the arena"
    );
    assert!(a.len == batch * m * k && b.len == batch * k * n && out.len == batch * m * n);
    let disjoint = |x: Slot| end(x) <= out.offset || end(out) <= x.offset;
    assert!(
        disjoint(a) && disjoint(b),
        "matmul output overlaps an operand"
    );
    if out.len == 0 {
        return;
    }
    let (lhs_rs, lhs_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rhs_rs, rhs_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let base = Base(arena.as_mut_ptr());
    let one = |i: usize, parallelism: gemm::Parallelism| {
        let base = base.get();
        // SAFETY: the asserts above keep every matrix inside `arena`, the output is disjoint
        // from the operands, and the strides describe exactly the `m x k`, `k x n` and `m x n`
        // row-major (or transposed) blocks at these offsets. Calls for different `i` at once
        // write disjoint output matrices and read only operands.
        unsafe {
            raw_gemm(
                (m, n, k),
                (base.add(out.offset + i * m * n), n as isize, 1),
                false,
                (base.add(a.offset + i * m * k), lhs_rs, lhs_cs),
                (base.add(b.offset + i * k * n), rhs_rs, rhs_cs),
                parallelism,
            );
        }
    };
    let work = m * n * k;
    if threads > 1 && batch > 1 && batch * work >= crate::par::BATCH_WORK {
        crate::par::fork(batch, threads.min(batch), 1, &|_, r| {
            r.for_each(|i| one(i, gemm::Parallelism::None));
        });
    } else {
        let parallelism = if threads > 1 && work >= crate::par::GEMM_WORK {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        (0..batch).for_each(|i| one(i, parallelism));
    }
}

/// `(input, output)` views of two disjoint ranges of the arena.
fn split(arena: &mut [f32], input: Range<usize>, out: Range<usize>) -> (&[f32], &mut [f32]) {
    if input.end <= out.start {
        let (lo, hi) = arena.split_at_mut(out.start);
        (&lo[input], &mut hi[..out.end - out.start])
    } else {
        assert!(out.end <= input.start, "reduce output overlaps its input");
        let (lo, hi) = arena.split_at_mut(input.start);
        (&hi[..input.end - input.start], &mut lo[out])
    }
}

/// `Reduce`: fold each input element, in row-major order, into its output element (f32
/// arithmetic, so the result equals the interpreter's f32 run exactly).
pub(crate) fn reduce(
    arena: &mut [f32],
    op: ReduceOp,
    input: Slot,
    shape: &[usize],
    axes: &[usize],
    out: Slot,
) {
    let (x, y) = split(
        arena,
        input.offset..input.offset + input.len,
        out.offset..out.offset + out.len,
    );
    y.fill(op.identity() as f32);
    if x.is_empty() {
        return;
    }
    let mut dims = crate::kernel::reduced_dims(shape, axes);
    if dims.is_empty() {
        dims.push((1, false));
    }
    // Output strides of the kept dims (row-major over the kept dims), 0 for reduced ones.
    let mut ostride = vec![0; dims.len()];
    let mut s = 1;
    for d in (0..dims.len()).rev() {
        if !dims[d].1 {
            ostride[d] = s;
            s *= dims[d].0;
        }
    }
    let fold = |acc: f32, v: f32| match op {
        ReduceOp::Sum => acc + v,
        ReduceOp::Max if v.is_nan() || v > acc => v,
        ReduceOp::Max => acc,
    };
    let last = dims.len() - 1;
    let (n, inner_reduced) = dims[last];
    let mut idx = vec![0usize; last];
    let mut i = 0;
    loop {
        let o: usize = idx.iter().zip(&ostride).map(|(a, b)| a * b).sum();
        let row = &x[i..i + n];
        if inner_reduced && op == ReduceOp::Sum {
            y[o] += sum(row);
        } else if inner_reduced {
            y[o] = row.iter().fold(y[o], |acc, &v| fold(acc, v));
        } else {
            for (t, &v) in y[o..o + n].iter_mut().zip(row) {
                *t = fold(*t, v);
            }
        }
        i += n;
        // Advance the odometer over the outer dims.
        let mut d = last;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < dims[d].0 {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// The sum of `row` in sixteen interleaved partial sums, added pairwise at the end: the
/// additions vectorize (a sequential sum waits on each add's latency, 0.85 ns per element),
/// and the result is at least as accurate as the sequential one.
fn sum(row: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut blocks = row.chunks_exact(16);
    for block in &mut blocks {
        for (l, &v) in lanes.iter_mut().zip(block) {
            *l += v;
        }
    }
    for (l, &v) in lanes.iter_mut().zip(blocks.remainder()) {
        *l += v;
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

/// Evaluate a fallback kernel's one-op graph with the reference interpreter (f32 precision),
/// reading its operands from the arenas and writing its results back.
pub(crate) fn fallback(
    f32s: &mut [f32],
    i64s: &mut [i64],
    graph: &Graph,
    inputs: &[Slot],
    outputs: &[Slot],
) -> Result<(), String> {
    let mut values = HashMap::new();
    for (i, (s, id)) in inputs.iter().zip(graph.inputs()).enumerate() {
        let shape = graph.ty(id).shape.clone();
        let r = s.offset..s.offset + s.len;
        let v = match s.dtype {
            DType::F32 => Value::f32(shape, f32s[r].to_vec()),
            DType::I64 => Value::i64(shape, i64s[r].to_vec()),
        };
        values.insert(format!("in{i}"), v);
    }
    let mut results = interp::run(graph, &values, Precision::F32).map_err(|e| e.message)?;
    for (i, s) in outputs.iter().enumerate() {
        let v = results
            .remove(&format!("out{i}"))
            .ok_or("internal: fallback output missing")?;
        let r = s.offset..s.offset + s.len;
        match (&v.data, s.dtype) {
            (interp::Data::F(d), DType::F32) => {
                for (t, &x) in f32s[r].iter_mut().zip(d) {
                    *t = x as f32;
                }
            }
            (interp::Data::I(d), DType::I64) => i64s[r].copy_from_slice(d),
            _ => return Err("internal: fallback result of the wrong type".into()),
        }
    }
    Ok(())
}

/// Disjoint views of slots of one arena: shared views of the `ins` (which may overlap each
/// other) and mutable views of the `outs`, for native kernels that read some slots and write
/// others. Panics unless every `out` is inside the arena and overlaps no other slot, which is
/// exactly what makes handing out these references sound. Fixed-size arrays: no allocation.
pub(crate) fn views<T, const I: usize, const O: usize>(
    arena: &mut [T],
    ins: [Slot; I],
    outs: [Slot; O],
) -> ([&[T]; I], [&mut [T]; O]) {
    let end = |s: &Slot| s.offset + s.len;
    for s in ins.iter().chain(&outs) {
        assert!(
            end(s) <= arena.len(),
            "native kernel slot outside the arena"
        );
    }
    for (i, o) in outs.iter().enumerate() {
        let apart = |s: &Slot| s.len == 0 || o.len == 0 || end(s) <= o.offset || end(o) <= s.offset;
        assert!(
            ins.iter().all(apart) && outs.iter().skip(i + 1).all(apart),
            "native kernel output overlaps another slot"
        );
    }
    let base = arena.as_mut_ptr();
    // SAFETY: every slot lies inside `arena` (checked above), and each mutable view is disjoint
    // from every other view, so no element is reachable through a `&mut` and any other
    // reference at once; all views borrow `arena` mutably for their whole lifetime (elided), so it outlives them
    // and nothing else can touch it meanwhile.
    let ins = ins.map(|s| unsafe { std::slice::from_raw_parts(base.add(s.offset), s.len) as &[T] });
    let outs = outs.map(|s| unsafe { std::slice::from_raw_parts_mut(base.add(s.offset), s.len) });
    (ins, outs)
}

/// `dst = lhs x rhs` (`dst += ...` when `accumulate`) through `gemm::gemm`, each matrix given as
/// `(pointer, row stride, column stride)`. The crate turns every product into one with a
/// column-major destination itself (so transposing the call first changes nothing), and reads
/// an operand in place only in its preferred layout, packing it on every call otherwise: the
/// callers lay out operands that are reused across calls accordingly (see `native.rs`).
///
/// # Safety
/// Every element the strides reach for the `m x k`, `k x n` and `m x n` extents must be valid,
/// and `dst` must overlap neither operand (nor, for parallel calls, another call's `dst`).
unsafe fn raw_gemm(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (*mut f32, isize, isize),
    accumulate: bool,
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    parallelism: gemm::Parallelism,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs.0,
            lhs.2,
            lhs.1,
            rhs.0,
            rhs.2,
            rhs.1,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A strided matrix view for [`gemm`]: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    /// The elements the strides reach (checked by [`gemm`]).
    pub data: &'a [f32],
    /// Row stride, in elements.
    pub rs: usize,
    /// Column stride, in elements.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix whose rows are `len` elements long.
    pub fn rows(data: &'a [f32], len: usize) -> Mat<'a> {
        Mat {
            data,
            rs: len,
            cs: 1,
        }
    }
}

/// `dst = lhs x rhs` (or `dst += lhs x rhs` when `accumulate`) for an `m x k` `lhs`, a `k x n`
/// `rhs` and an `m x n` `dst` with element `(i, j)` at `dst[i * dst_rs + j * dst_cs]`, through
/// the same `gemm` call as [`matmul`] (one thread). Safe: every extent is checked against its
/// slice, and the borrows guarantee `dst` aliases neither operand.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    let reach = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        reach(m, n, dst_rs, dst_cs) < dst.len(),
        "gemm dst out of range"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    assert!(
        reach(m, k, lhs.rs, lhs.cs) < lhs.data.len()
            && reach(k, n, rhs.rs, rhs.cs) < rhs.data.len(),
        "gemm operand out of range"
    );
    // SAFETY: the asserts keep every element the strides reach inside its slice; `dst` is a
    // unique borrow, so it overlaps neither operand.
    unsafe {
        raw_gemm(
            (m, n, k),
            (dst.as_mut_ptr(), dst_rs as isize, dst_cs as isize),
            accumulate,
            (lhs.data.as_ptr(), lhs.rs as isize, lhs.cs as isize),
            (rhs.data.as_ptr(), rhs.rs as isize, rhs.cs as isize),
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    /// Every length around the sixteen lanes and a long row: the lanes and the tail all count.
    #[test]
    fn lane_sums_add_every_element() {
        for n in (0..40).chain([1000, 4097]) {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32) * 0.25 - 12.0)
                .collect();
            let exact: f64 = row.iter().map(|&v| f64::from(v)).sum();
            let got = f64::from(super::sum(&row));
            assert!(
                (got - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                "n={n}: {got} vs {exact}"
            );
        }
    }

    /// Products with few rows or few columns, strided and transposed operands and a padded
    /// destination, accumulating or not, against a plain f64 sum.
    #[test]
    fn gemm_matches_plain_sums() {
        use super::{Mat, gemm};
        let value = |i: usize| ((i * 29 % 53) as f32) * 0.125 - 3.0;
        for (m, n, k) in [
            (6, 40, 7),
            (40, 6, 7),
            (3, 75, 31),
            (16, 6, 5),
            (17, 13, 64),
        ] {
            // lhs stored transposed (column-major), rhs row-major, dst with a padded row.
            let lhs: Vec<f32> = (0..m * k).map(value).collect();
            let rhs: Vec<f32> = (0..k * n).map(|i| value(i + 7)).collect();
            for accumulate in [false, true] {
                let ld = n + 3;
                let mut dst: Vec<f32> = (0..m * ld).map(|i| value(i + 3)).collect();
                let before = dst.clone();
                let a = Mat {
                    data: &lhs,
                    rs: 1,
                    cs: m,
                };
                gemm(
                    (m, n, k),
                    &mut dst,
                    (ld, 1),
                    accumulate,
                    a,
                    Mat::rows(&rhs, n),
                );
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|l| f64::from(lhs[l * m + i]) * f64::from(rhs[l * n + j]))
                            .sum();
                        let want = dot
                            + if accumulate {
                                f64::from(before[i * ld + j])
                            } else {
                                0.0
                            };
                        let got = f64::from(dst[i * ld + j]);
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{m}x{n}x{k} acc={accumulate} ({i}, {j}): {got} vs {want}"
                        );
                    }
                    // The padding between rows is untouched.
                    assert_eq!(
                        &dst[i * ld + n..(i + 1) * ld],
                        &before[i * ld + n..(i + 1) * ld]
                    );
                }
            }
        }
    }
}
