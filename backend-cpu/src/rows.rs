//! Row fusion: a reduction over the last axis and the elementwise kernels next to it that run
//! over the same rows become one [`Kernel::Rows`] kernel, computed row by row.
//!
//! Softmax is five kernels over `[rows, len]` (scale, max, exp, sum, divide) and layer norm six
//! (sum, mean, squared deviations, sum, inverse deviation, normalize); each streams its whole
//! operand through memory. Done row by row, a row's values stay in the L1 cache from one stage
//! to the next. Only consecutive kernels join (nothing moves past anything else), and only when
//! row-by-row order computes the same values: every access of a value the run writes must be
//! to the row being computed ([`legal`]).
//!
//! Runs in [`crate::plan::plan`] before buffers share memory ([`crate::reuse::pack`]): a value
//! dead after one stage may not share its memory with a later stage's (row by row, the later
//! stage would overwrite rows not yet computed), and packing keeps every buffer of a kernel
//! apart.

use std::ops::Range;

use crate::kernel::{Expr, Footprint, Kernel, KernelProgram, RowStage, Slot, reduced_dims};

/// Replace every fusable run of kernels by one row kernel.
pub(crate) fn fuse(program: &mut KernelProgram) {
    let mut i = 0;
    while i < program.kernels.len() {
        let Some((rows, len)) = last_axis(&program.kernels[i]) else {
            i += 1;
            continue;
        };
        let stage = |k: &Kernel| as_stage(k, rows, len);
        let mut run: Vec<RowStage> = vec![stage(&program.kernels[i]).expect("a last-axis reduce")];
        let mut start = i;
        while start > 0 {
            let Some(s) = stage(&program.kernels[start - 1]) else {
                break;
            };
            let mut longer = vec![s];
            longer.extend(run.iter().cloned());
            if !legal(&longer, rows, len) {
                break;
            }
            run = longer;
            start -= 1;
        }
        let mut end = i + 1;
        while end < program.kernels.len() {
            let Some(s) = stage(&program.kernels[end]) else {
                break;
            };
            run.push(s);
            if !legal(&run, rows, len) {
                run.pop();
                break;
            }
            end += 1;
        }
        if run.len() > 1 {
            let elsewhere = read_outside(program, start..end);
            inline_into_reductions(&mut run, rows, len, &elsewhere);
            program.kernels.splice(
                start..end,
                [Kernel::Rows {
                    rows,
                    len,
                    stages: run,
                }],
            );
            i = start + 1;
        } else {
            i += 1;
        }
    }
}

/// Every f32 range read by a kernel outside `run` (an index range of `program.kernels`) or
/// handed out by the step (its outputs and update copies).
fn read_outside(program: &KernelProgram, run: Range<usize>) -> Vec<Range<usize>> {
    let kernels = program.kernels[..run.start]
        .iter()
        .chain(&program.kernels[run.end..])
        .flat_map(|k| Footprint::f32s(&k.footprint().reads));
    let handed_out = program
        .outputs
        .iter()
        .map(|(_, s, _)| *s)
        .chain(
            program
                .updates
                .iter()
                .flat_map(|(_, from, to)| [*from, *to]),
        )
        .map(range);
    kernels.chain(handed_out).collect()
}

/// A map read only by the reduction right after it (a layer norm's squared deviations) is
/// computed inside the reduction's loop instead of stored: one row of traffic less each way.
/// `elsewhere` is every range read outside the run (other kernels, the step's outputs).
fn inline_into_reductions(
    stages: &mut Vec<RowStage>,
    rows: usize,
    len: usize,
    elsewhere: &[Range<usize>],
) {
    let mut s = 0;
    while s + 1 < stages.len() {
        let fed = match (&stages[s], &stages[s + 1]) {
            (RowStage::Map { width, outs, .. }, RowStage::Reduce { expr, .. })
                if *width == len
                    && outs.len() == 1
                    && *expr
                        == (Expr::Load {
                            offset: outs[0].0.offset,
                            strides: vec![len, 1],
                        }) =>
            {
                let out = range(outs[0].0);
                let read_by_others = stages
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != s + 1)
                    .flat_map(|(_, st)| {
                        let shape = [rows, st.columns(len)];
                        st.outputs()
                            .into_iter()
                            .flat_map(move |(_, _, e)| e.load_ranges(&shape))
                    })
                    .any(|(r, _, _)| overlap(&r, &out));
                !read_by_others && elsewhere.iter().all(|r| !overlap(r, &out))
            }
            _ => false,
        };
        if fed {
            let RowStage::Map { mut outs, .. } = stages.remove(s) else {
                unreachable!("checked above")
            };
            let RowStage::Reduce { expr, .. } = &mut stages[s] else {
                unreachable!("checked above")
            };
            *expr = outs.remove(0).1;
        } else {
            s += 1;
        }
    }
}

/// `(rows, len)` of a reduction over the trailing axes only (after dropping size-1 axes and
/// merging neighbours), with at least two of each.
fn last_axis(kernel: &Kernel) -> Option<(usize, usize)> {
    let Kernel::Reduce { shape, axes, .. } = kernel else {
        return None;
    };
    match reduced_dims(shape, axes).as_slice() {
        [(rows, false), (len, true)] if *rows > 1 && *len > 1 => Some((*rows, *len)),
        _ => None,
    }
}

/// `kernel` as a stage over `[rows, len]`: a reduction over exactly those rows, or an
/// elementwise kernel over `rows * len` elements (width `len`) or `rows` (width 1) whose every
/// load is affine in `(row, column)`.
fn as_stage(kernel: &Kernel, rows: usize, len: usize) -> Option<RowStage> {
    match kernel {
        Kernel::Reduce {
            node,
            op,
            input,
            out,
            ..
        } => (last_axis(kernel) == Some((rows, len))).then(|| RowStage::Reduce {
            node: *node,
            op: *op,
            expr: Expr::Load {
                offset: input.offset,
                strides: vec![len, 1],
            },
            out: *out,
        }),
        Kernel::Elementwise { node, shape, .. } => {
            let n: usize = shape.iter().product();
            let width = if n == rows * len {
                len
            } else if n == rows {
                1
            } else {
                return None;
            };
            let outs = kernel
                .elementwise_outputs()
                .map(|(slot, expr)| Some((slot, expr.reshaped(shape, &[rows, width])?)))
                .collect::<Option<Vec<_>>>()?;
            Some(RowStage::Map {
                node: *node,
                width,
                outs,
            })
        }
        _ => None,
    }
}

/// Whether running `stages` row by row computes what running them one after another does:
/// values the run writes are written as whole rows to distinct slots (two stages may write
/// the same slot only alike), and every load that touches one reads it at the row being
/// computed (a row's element, or its value per row, as the writer laid it out).
pub(crate) fn legal(stages: &[RowStage], rows: usize, len: usize) -> bool {
    let outputs: Vec<(Slot, usize)> = stages
        .iter()
        .flat_map(|st| st.outputs().into_iter().map(|(s, w, _)| (s, w)))
        .collect();
    let writes_agree = outputs.iter().enumerate().all(|(i, (a, wa))| {
        outputs[i + 1..]
            .iter()
            .all(|(b, wb)| !overlap(&range(*a), &range(*b)) || (a == b && wa == wb))
    });
    let sizes_fit = outputs.iter().all(|(s, w)| s.len == rows * w);
    writes_agree
        && sizes_fit
        && stages.iter().all(|st| {
            let shape = [rows, st.columns(len)];
            st.outputs()
                .iter()
                .flat_map(|(_, _, e)| e.load_ranges(&shape))
                .all(|(r, offset, strides)| {
                    outputs.iter().all(|(o, w)| {
                        !overlap(&r, &range(*o)) || (offset == o.offset && strides == along_row(*w))
                    })
                })
        })
}

/// The strides that read a value of `width` per row at the current row's element (`[1, 0]`:
/// one value per row, the same for every column).
fn along_row(width: usize) -> Vec<usize> {
    if width == 1 {
        vec![1, 0]
    } else {
        vec![width, 1]
    }
}

fn range(s: Slot) -> Range<usize> {
    s.offset..s.offset + s.len
}

fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use netc_compiler::ir::interp::{self, Precision, Value};
    use netc_compiler::ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, Role, Type, UnaryOp};
    use netc_grammar::Span;

    use super::*;

    fn node(g: &mut Graph, op: Op, operands: &[NodeId], ty: Option<Vec<usize>>) -> NodeId {
        g.add(op, operands, ty.map(Type::f32), Span::default())
            .unwrap()
    }

    /// `op` over the rows of `x` (its last axis).
    fn reduce_rows(g: &mut Graph, op: ReduceOp, x: NodeId) -> NodeId {
        node(g, Op::Reduce { op, axes: vec![1] }, &[x], None)
    }

    /// `v` (one value per row of `[rows, len]`) broadcast along the rows.
    fn per_row(g: &mut Graph, v: NodeId, rows: usize, len: usize) -> NodeId {
        let column = node(g, Op::Reshape, &[v], Some(vec![rows, 1]));
        node(g, Op::Broadcast, &[column], Some(vec![rows, len]))
    }

    /// Softmax over the rows of `[rows, len]`, then layer-norm-style centring of the result
    /// by its row mean: three reductions and the maps between them.
    fn softmax_then_centre(rows: usize, len: usize) -> Graph {
        let mut g = Graph::new();
        let x = g.input("x", Role::Data, Type::f32(vec![rows, len]), Span::default());
        let max = reduce_rows(&mut g, ReduceOp::Max, x);
        let max = per_row(&mut g, max, rows, len);
        let shifted = node(&mut g, Op::Binary(BinaryOp::Sub), &[x, max], None);
        let e = node(&mut g, Op::Unary(UnaryOp::Exp), &[shifted], None);
        let sum = reduce_rows(&mut g, ReduceOp::Sum, e);
        let sum = per_row(&mut g, sum, rows, len);
        let p = node(&mut g, Op::Binary(BinaryOp::Div), &[e, sum], None);
        let total = reduce_rows(&mut g, ReduceOp::Sum, p);
        let scale = node(
            &mut g,
            Op::Fill {
                value: 1.0 / len as f64,
            },
            &[],
            Some(vec![rows]),
        );
        let mean = node(&mut g, Op::Binary(BinaryOp::Mul), &[total, scale], None);
        let mean = per_row(&mut g, mean, rows, len);
        let centred = node(&mut g, Op::Binary(BinaryOp::Sub), &[p, mean], None);
        g.set_output("p", p);
        g.set_output("centred", centred);
        g
    }

    /// `(x - mean) / sqrt(var + 1e-5)` over the rows of `[rows, len]`.
    fn layer_norm(rows: usize, len: usize) -> Graph {
        let mut g = Graph::new();
        let x = g.input("x", Role::Data, Type::f32(vec![rows, len]), Span::default());
        let inv_len = node(
            &mut g,
            Op::Fill {
                value: 1.0 / len as f64,
            },
            &[],
            Some(vec![rows]),
        );
        let sum = reduce_rows(&mut g, ReduceOp::Sum, x);
        let mean = node(&mut g, Op::Binary(BinaryOp::Mul), &[sum, inv_len], None);
        let mean = per_row(&mut g, mean, rows, len);
        let d = node(&mut g, Op::Binary(BinaryOp::Sub), &[x, mean], None);
        let d2 = node(&mut g, Op::Binary(BinaryOp::Mul), &[d, d], None);
        let ss = reduce_rows(&mut g, ReduceOp::Sum, d2);
        let var = node(&mut g, Op::Binary(BinaryOp::Mul), &[ss, inv_len], None);
        let eps = node(&mut g, Op::Fill { value: 1e-5 }, &[], Some(vec![rows]));
        let var = node(&mut g, Op::Binary(BinaryOp::Add), &[var, eps], None);
        let std = node(&mut g, Op::Unary(UnaryOp::Sqrt), &[var], None);
        let std = per_row(&mut g, std, rows, len);
        let y = node(&mut g, Op::Binary(BinaryOp::Div), &[d, std], None);
        g.set_output("y", y);
        g
    }

    /// The squared deviations, read only by their sum, are computed inside the sum's loop.
    #[test]
    fn a_map_read_only_by_the_next_reduction_is_computed_inside_it() {
        let g = layer_norm(5, 19);
        let kernels = checked(&g, &data(5 * 19), 1);
        let [Kernel::Rows { stages, .. }] = kernels.as_slice() else {
            panic!("not one row kernel: {kernels:?}")
        };
        let reductions: Vec<&Expr> = stages
            .iter()
            .filter_map(|s| match s {
                RowStage::Reduce { expr, .. } => Some(expr),
                RowStage::Map { .. } => None,
            })
            .collect();
        assert_eq!(reductions.len(), 2);
        assert!(matches!(reductions[0], Expr::Load { .. }));
        assert!(matches!(reductions[1], Expr::Binary(BinaryOp::Mul, _, _)));
    }

    /// Compile `g` for `threads`, run it on `x` and compare every output with the interpreter;
    /// returns the planned kernels.
    fn checked(g: &Graph, x: &[f64], threads: usize) -> Vec<Kernel> {
        let mut step = crate::CompiledStep::compile_with_threads(g, threads).unwrap();
        step.set_input_f64("x", x).unwrap();
        step.run().unwrap();
        let shape = g.ty(g.inputs()[0]).shape.clone();
        let values = HashMap::from([("x".to_string(), Value::from_f64(shape, x.to_vec()))]);
        let want = interp::run(g, &values, Precision::F32).unwrap();
        for o in &g.outputs {
            let got = step.output(&o.name).unwrap();
            let want = want[&o.name].to_f32_vec().unwrap();
            let (mut err, mut norm) = (0.0f64, 0.0f64);
            for (a, b) in got.iter().zip(&want) {
                err += f64::from(a - b).powi(2);
                norm += f64::from(*b).powi(2);
            }
            assert!(norm > 0.0);
            assert!(
                (err / norm).sqrt() < 1e-6,
                "{}: rel err {}",
                o.name,
                (err / norm).sqrt()
            );
        }
        step.program().kernels.clone()
    }

    fn data(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 37 + 11) % 23) as f64 * 0.4 - 4.0)
            .collect()
    }

    /// Odd sizes: rows of 13 run three vector steps and a scalar tail; 7 rows split unevenly
    /// over two threads.
    #[test]
    fn softmax_and_centring_become_one_row_kernel_matching_the_interpreter() {
        for threads in [1, 2] {
            let g = softmax_then_centre(7, 13);
            let kernels = checked(&g, &data(7 * 13), threads);
            assert_eq!(kernels.len(), 1, "{kernels:?}");
            let Kernel::Rows { rows, len, stages } = &kernels[0] else {
                panic!("not a row kernel: {kernels:?}")
            };
            assert_eq!((*rows, *len, stages.len()), (7, 13, 7));
        }
        // Large enough that the split over threads is taken.
        let g = softmax_then_centre(300, 67);
        checked(&g, &data(300 * 67), 2);
    }

    fn slot(offset: usize, len: usize) -> Slot {
        Slot {
            dtype: DType::F32,
            offset,
            len,
        }
    }

    fn load(offset: usize, strides: [usize; 2]) -> Expr {
        Expr::Load {
            offset,
            strides: strides.to_vec(),
        }
    }

    /// A map over `[4, 8]` writing `out` from `expr`.
    fn map(out: Slot, expr: Expr) -> RowStage {
        RowStage::Map {
            node: 0,
            width: 8,
            outs: vec![(out, expr)],
        }
    }

    #[test]
    fn only_accesses_of_the_current_row_may_touch_what_the_run_writes() {
        let a = slot(0, 32);
        let b = slot(32, 32);
        let sum = RowStage::Reduce {
            node: 0,
            op: ReduceOp::Sum,
            expr: load(0, [8, 1]),
            out: slot(64, 4),
        };
        // Row by row: b from a's element, then a sum of a's row.
        assert!(legal(
            &[
                map(a, load(100, [8, 1])),
                map(b, load(0, [8, 1])),
                sum.clone()
            ],
            4,
            8
        ));
        // A per-row value read along its row.
        assert!(legal(&[sum.clone(), map(b, load(64, [1, 0]))], 4, 8));
        // b reads row 0 of a for every row: rows 1.. of a are not written yet.
        assert!(!legal(
            &[map(a, load(100, [8, 1])), map(b, load(0, [0, 1]))],
            4,
            8
        ));
        // The sum reads a transposed.
        let across = RowStage::Reduce {
            node: 0,
            op: ReduceOp::Sum,
            expr: load(0, [1, 4]),
            out: slot(64, 4),
        };
        assert!(!legal(&[map(a, load(100, [8, 1])), across], 4, 8));
        // b reuses memory of the sums, laid out differently.
        assert!(!legal(&[sum, map(slot(60, 32), load(100, [8, 1]))], 4, 8));
        // A later stage writes what an earlier one read from other rows.
        assert!(!legal(
            &[map(b, load(0, [0, 1])), map(a, load(100, [8, 1]))],
            4,
            8
        ));
    }

    #[test]
    fn strides_view_flat_and_split_shapes_as_rows() {
        use crate::kernel::restride;
        // A flat contiguous kernel over 6 x 4 elements.
        assert_eq!(restride(&[24], &[1], &[6, 4]), Some(vec![4, 1]));
        // A value per row broadcast along the row.
        assert_eq!(restride(&[6, 4], &[1, 0], &[6, 4]), Some(vec![1, 0]));
        // Rows split over two axes, contiguous.
        assert_eq!(restride(&[2, 3, 4], &[12, 4, 1], &[6, 4]), Some(vec![4, 1]));
        // A parameter broadcast over rows.
        assert_eq!(restride(&[6, 4], &[0, 1], &[6, 4]), Some(vec![0, 1]));
        // Per-row values of a flat kernel.
        assert_eq!(restride(&[6], &[1], &[6, 1]), Some(vec![1, 0]));
        // A transposed read is affine too.
        assert_eq!(restride(&[6, 4], &[1, 6], &[6, 4]), Some(vec![1, 6]));
        // Broadcast over the first of two row axes: not affine in the row.
        assert_eq!(restride(&[2, 12], &[0, 1], &[6, 4]), None);
    }
}
