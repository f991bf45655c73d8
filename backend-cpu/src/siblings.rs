//! Sibling fusion: an elementwise kernel that reads, element for element, what an elementwise
//! kernel a few kernels before it wrote over the same shape takes that kernel in as a further
//! output of its own loop (`Kernel::Elementwise::also`), the read replaced by the sibling's
//! expression (code generation computes the shared part once: Cranelift's value numbering,
//! NVRTC's common subexpressions).
//!
//! Adam's update is three kernels per parameter: `m`, `v`, then the parameter from both. Merged,
//! each element's gradient, moments and parameter are read once and the three results written
//! once (10 arrays of traffic become 7) in one loop instead of three.
//!
//! Runs last in [`crate::plan::plan`], on final slots. Kernel `a` moves into a later kernel `b`
//! only when nothing in between reads or writes `a`'s output or writes what `a` reads (so
//! computing `a` at `b`'s place gives the same values), and every load of the merged loop that
//! touches one of its outputs reads exactly the element being written (each element's values
//! are all computed before any is stored, so no element sees another's new value).

use std::ops::Range;

use crate::kernel::{Expr, Footprint, Kernel, KernelProgram, Slot};
use crate::plan::row_major;

/// How far back a kernel looks for a sibling: Adam's three kernels are adjacent.
const WINDOW: usize = 4;

/// Merge every sibling into the kernel that reads it.
pub(crate) fn merge(program: &mut KernelProgram) {
    let mut b = 0;
    while b < program.kernels.len() {
        while let Some((a, target)) = sibling(&program.kernels, b) {
            let Kernel::Elementwise {
                out,
                expr,
                shape: a_shape,
                ..
            } = program.kernels.remove(a)
            else {
                unreachable!("siblings are elementwise")
            };
            b -= 1;
            let Kernel::Elementwise {
                expr: main,
                also,
                shape,
                ..
            } = &mut program.kernels[b]
            else {
                unreachable!("siblings merge into elementwise kernels")
            };
            let expr = over(&expr, &a_shape, &target).expect("checked by `sibling`");
            for e in std::iter::once(&mut *main).chain(also.iter_mut().map(|(_, e)| e)) {
                *e = over(e, shape, &target).expect("checked by `sibling`");
                inline(e, out, &expr);
            }
            *shape = target;
            also.push((out, expr));
        }
        b += 1;
    }
}

/// A kernel before `b` (nearest first) that can become a further output of `b`, with the
/// shape of the merged loop.
fn sibling(kernels: &[Kernel], b: usize) -> Option<(usize, Vec<usize>)> {
    let Kernel::Elementwise { shape, .. } = &kernels[b] else {
        return None;
    };
    (b.saturating_sub(WINDOW)..b).rev().find_map(|a| {
        let Kernel::Elementwise {
            out: a_out,
            shape: a_shape,
            expr: a_expr,
            also: a_also,
            ..
        } = &kernels[a]
        else {
            return None;
        };
        // A flat loop takes the other's shape (the same elements in the same order).
        let target = if shape.len() == 1 { a_shape } else { shape };
        let a_expr = over(a_expr, a_shape, target)?;
        let b_exprs = kernels[b]
            .elementwise_outputs()
            .map(|(_, e)| over(e, shape, target))
            .collect::<Option<Vec<_>>>()?;
        let element = row_major(target);
        let loads: Vec<_> = b_exprs.iter().flat_map(|e| e.load_ranges(target)).collect();
        let a_range = range(*a_out);
        let reads: Vec<_> = loads.iter().filter(|l| overlap(&l.0, &a_range)).collect();
        let merged_loads: Vec<_> = loads
            .iter()
            .cloned()
            .chain(a_expr.load_ranges(target))
            .collect();
        let outputs: Vec<Slot> = kernels[b]
            .elementwise_outputs()
            .map(|(s, _)| s)
            .chain(std::iter::once(*a_out))
            .collect();
        let fits = a_also.is_empty()
            && !reads.is_empty()
            && reads.iter().all(|l| l.1 == a_out.offset && l.2 == element)
            && quiet_between(
                &kernels[a + 1..b],
                a_range.clone(),
                &a_expr.load_ranges(target),
            )
            && element_wise(&merged_loads, &outputs, &element);
        fits.then(|| (a, target.clone()))
    })
}

/// `expr`, from a loop over `from`, as the same computation over `to`: unchanged when the
/// shapes agree; a flat loop re-expressed ([`Expr::reshaped`]). `None` for any other pair of
/// shapes.
fn over(expr: &Expr, from: &[usize], to: &[usize]) -> Option<Expr> {
    if from == to {
        return Some(expr.clone());
    }
    if from.len() != 1 {
        return None;
    }
    expr.reshaped(from, to)
}

fn range(s: Slot) -> Range<usize> {
    s.offset..s.offset + s.len
}

fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Whether no kernel of `between` touches `out` or writes anything in `reads`.
fn quiet_between(
    between: &[Kernel],
    out: Range<usize>,
    reads: &[(Range<usize>, usize, Vec<usize>)],
) -> bool {
    between.iter().all(|k| {
        let f = k.footprint();
        let (read, written) = (Footprint::f32s(&f.reads), Footprint::f32s(&f.writes));
        read.iter().chain(&written).all(|r| !overlap(r, &out))
            && written
                .iter()
                .all(|w| reads.iter().all(|(r, _, _)| !overlap(w, r)))
    })
}

/// Whether every load that touches an output reads exactly the element being written there.
fn element_wise(
    loads: &[(Range<usize>, usize, Vec<usize>)],
    outputs: &[Slot],
    element: &[usize],
) -> bool {
    let disjoint = outputs.iter().enumerate().all(|(i, x)| {
        outputs[i + 1..]
            .iter()
            .all(|y| !overlap(&range(*x), &range(*y)))
    });
    disjoint
        && loads.iter().all(|(r, offset, strides)| {
            outputs.iter().all(|o| {
                !overlap(r, &range(*o)) || (*offset == o.offset && strides.as_slice() == element)
            })
        })
}

/// Replace every load of `out` (all element for element, checked by [`sibling`]) by `value`.
fn inline(expr: &mut Expr, out: Slot, value: &Expr) {
    match expr {
        Expr::Load { offset, .. } => {
            if *offset == out.offset {
                *expr = value.clone();
            }
        }
        Expr::Const(_) => {}
        Expr::Unary(_, a) => inline(a, out, value),
        Expr::Binary(_, a, b) => {
            inline(a, out, value);
            inline(b, out, value);
        }
        Expr::Fma(a, b, c) | Expr::Select(a, b, c) => {
            inline(a, out, value);
            inline(b, out, value);
            inline(c, out, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use netc_compiler::ir::interp::{self, Precision, Value};
    use netc_compiler::ir::{BinaryOp, Graph, NodeId, Op, Role, Type, UnaryOp};
    use netc_grammar::Span;

    use crate::kernel::Kernel;

    fn add(g: &mut Graph, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        g.add(Op::Binary(op), &[a, b], None, Span::default())
            .unwrap()
    }

    fn constant(g: &mut Graph, value: f64, shape: &[usize]) -> NodeId {
        let op = Op::Fill { value };
        g.add(op, &[], Some(Type::f32(shape.to_vec())), Span::default())
            .unwrap()
    }

    /// The outputs of each elementwise kernel planned for `g`, after checking that the
    /// compiled step matches the interpreter on `inputs`.
    fn planned(g: &Graph, inputs: &[(&str, Vec<f64>)]) -> Vec<usize> {
        let mut step = crate::CompiledStep::compile(g).unwrap();
        let mut values = HashMap::new();
        for (name, data) in inputs {
            step.set_input_f64(name, data).unwrap();
            let id = g
                .inputs()
                .into_iter()
                .find(|&i| matches!(&g.node(i).op, Op::Input { name: n, .. } if n == name));
            let ty = g.ty(id.unwrap()).clone();
            values.insert(name.to_string(), Value::from_f64(ty.shape, data.clone()));
        }
        step.run().unwrap();
        let want = interp::run(g, &values, Precision::F32).unwrap();
        for o in &g.outputs {
            let got = step.output(&o.name).unwrap();
            let want = want[&o.name].to_f32_vec().unwrap();
            // Within rounding: the compiled code contracts a multiply and an add into an fma.
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{}: {a} vs {b}",
                    o.name
                );
            }
        }
        crate::plan::plan(g)
            .unwrap()
            .kernels
            .iter()
            .filter_map(|k| match k {
                Kernel::Elementwise { also, .. } => Some(1 + also.len()),
                _ => None,
            })
            .collect()
    }

    fn data(n: usize, seed: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 37 + seed * 11) % 23) as f64 * 0.25 - 2.5)
            .collect()
    }

    /// Momentum SGD's shape: `m' = 0.9 m + g` (an update output), then `p' = p - 0.1 m'`
    /// reading it element for element: one loop with two outputs.
    #[test]
    fn an_update_read_element_for_element_joins_its_reader() {
        let mut g = Graph::new();
        let ty = Type::f32(vec![37]);
        let p = g.input("p", Role::Param, ty.clone(), Span::default());
        let m = g.input("m", Role::State, ty.clone(), Span::default());
        let grad = g.input("g", Role::Data, ty, Span::default());
        let decay = constant(&mut g, 0.9, &[37]);
        let kept = add(&mut g, BinaryOp::Mul, m, decay);
        let m2 = add(&mut g, BinaryOp::Add, kept, grad);
        let lr = constant(&mut g, 0.1, &[37]);
        let step = add(&mut g, BinaryOp::Mul, m2, lr);
        let p2 = add(&mut g, BinaryOp::Sub, p, step);
        g.set_update("m2", m2, "m");
        g.set_update("p2", p2, "p");
        let inputs = [("p", data(37, 1)), ("m", data(37, 2)), ("g", data(37, 3))];
        assert_eq!(planned(&g, &inputs), vec![2]);
    }

    /// A loop over `[6, 8]` (it reads `x` transposed) joins a flat reader of its output: the
    /// reader's loads are re-expressed over `[6, 8]`.
    #[test]
    fn a_flat_reader_takes_its_siblings_shape() {
        let mut g = Graph::new();
        let x = g.input("x", Role::Data, Type::f32(vec![8, 6]), Span::default());
        let y = g.input("y", Role::Data, Type::f32(vec![6, 8]), Span::default());
        let xt = g
            .add(
                Op::Transpose { perm: vec![1, 0] },
                &[x],
                None,
                Span::default(),
            )
            .unwrap();
        let a = g
            .add(Op::Unary(UnaryOp::Sigmoid), &[xt], None, Span::default())
            .unwrap();
        let b = add(&mut g, BinaryOp::Mul, a, y);
        g.set_output("a", a);
        g.set_output("b", b);
        let inputs = [("x", data(48, 6)), ("y", data(48, 7))];
        assert_eq!(planned(&g, &inputs), vec![2]);
    }

    /// A value read transposed by its reader stays its own kernel: merged, one element's store
    /// could land before another element's load of the old value. (`a` reads `x` transposed
    /// too, so both loops keep the same two-dimensional shape.)
    #[test]
    fn a_value_read_across_elements_stays_separate() {
        let mut g = Graph::new();
        let ty = Type::f32(vec![6, 6]);
        let x = g.input("x", Role::Data, ty.clone(), Span::default());
        let y = g.input("y", Role::Data, ty, Span::default());
        let transpose = |g: &mut Graph, v| {
            g.add(
                Op::Transpose { perm: vec![1, 0] },
                &[v],
                None,
                Span::default(),
            )
            .unwrap()
        };
        let one = constant(&mut g, 1.0, &[6, 6]);
        let xt = transpose(&mut g, x);
        let a = add(&mut g, BinaryOp::Add, xt, one);
        let at = transpose(&mut g, a);
        let b = add(&mut g, BinaryOp::Mul, at, y);
        g.set_output("a", a);
        g.set_output("b", b);
        let inputs = [("x", data(36, 4)), ("y", data(36, 5))];
        assert_eq!(planned(&g, &inputs), vec![1, 1]);
    }
}
