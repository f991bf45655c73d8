//! Updates in place: an elementwise kernel computing a parameter's or an optimizer moment's new
//! value writes it straight into the input's slot, instead of into a fresh buffer that the end
//! of the step copies back.
//!
//! For Adam that turns each parameter's traffic from 64 bytes per element (three kernels into
//! fresh buffers, then three copies) into 40, and frees the fresh buffers. It is safe when no
//! later kernel reads the old value, and the kernel itself reads the input only at the element
//! it is writing (so each element is read before it is overwritten, in any order of elements
//! and any split over threads).

use netc_compiler::ir::DType;

use crate::kernel::{Kernel, KernelProgram, Slot};
use crate::plan::row_major;
use crate::reuse::visit_kernel;

/// Rewrite every update of `program` that can happen in place, dropping its end-of-step copy.
/// Runs before [`crate::reuse::pack`], while every value still has its own buffer.
pub fn update_in_place(program: &mut KernelProgram) {
    let updates = std::mem::take(&mut program.updates);
    program.updates = updates
        .into_iter()
        .filter(|&(_, from, to)| !redirect(program, from, to))
        .collect();
}

fn inside(s: Slot, offset: usize) -> bool {
    s.offset <= offset && offset < s.offset + s.len
}

/// Make the kernel writing `from` write `to` instead, with every later reader of `from`
/// following, when that is safe; whether it was.
fn redirect(program: &mut KernelProgram, from: Slot, to: Slot) -> bool {
    if from.dtype != DType::F32 || to.dtype != DType::F32 || from.len != to.len || from.len == 0 {
        return false;
    }
    let Some(k) = program.kernels.iter().position(
        |k| matches!(k, Kernel::Elementwise { out, also, .. } if *out == from && also.is_empty()),
    ) else {
        return false;
    };
    let Kernel::Elementwise { shape, expr, .. } = &program.kernels[k] else {
        unreachable!("found above")
    };
    let contiguous = row_major(shape);
    let own_element_only = expr.loads().into_iter().all(|(offset, strides)| {
        !inside(to, offset) || (offset == to.offset && strides == contiguous)
    });
    if !own_element_only {
        return false;
    }
    // No later kernel may read the old value.
    let mut later_reads_input = false;
    for later in &mut program.kernels[k + 1..] {
        visit_kernel(later, &mut |dtype, offset| {
            later_reads_input |= dtype == DType::F32 && inside(to, *offset);
        });
    }
    if later_reads_input {
        return false;
    }
    let Kernel::Elementwise { out, .. } = &mut program.kernels[k] else {
        unreachable!("found above")
    };
    *out = to;
    for later in &mut program.kernels[k + 1..] {
        visit_kernel(later, &mut |dtype, offset| {
            if dtype == DType::F32 && inside(from, *offset) {
                *offset = to.offset + (*offset - from.offset);
            }
        });
    }
    for (_, s, _) in &mut program.outputs {
        if *s == from {
            *s = to;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use netc_compiler::ir::{BinaryOp, Graph, Op, Role, Type};
    use netc_grammar::Span;

    use crate::CompiledStep;

    /// A step with input `p [3, 3]` updated to `new(p)`, compiled.
    fn step(
        new: impl Fn(&mut Graph, netc_compiler::ir::NodeId) -> netc_compiler::ir::NodeId,
    ) -> CompiledStep {
        let mut g = Graph::new();
        let p = g.input("p", Role::Param, Type::f32(vec![3, 3]), Span::default());
        let n = new(&mut g, p);
        g.set_update("p_new", n, "p");
        CompiledStep::compile(&g).unwrap()
    }

    fn add(
        g: &mut Graph,
        op: Op,
        operands: &[netc_compiler::ir::NodeId],
    ) -> netc_compiler::ir::NodeId {
        g.add(op, operands, None, Span::default()).unwrap()
    }

    fn half(g: &mut Graph, x: netc_compiler::ir::NodeId) -> netc_compiler::ir::NodeId {
        let ty = Some(Type::f32(vec![3, 3]));
        let h = g
            .add(Op::Fill { value: 0.5 }, &[], ty, Span::default())
            .unwrap();
        add(g, Op::Binary(BinaryOp::Mul), &[x, h])
    }

    /// Running the step twice from `p = 0..9` gives `twice(p)`: the update reached the input.
    fn runs_twice(mut s: CompiledStep, twice: impl Fn(usize, usize) -> f32) {
        let p: Vec<f32> = (0..9).map(|i| i as f32).collect();
        s.set_input("p", &p).unwrap();
        s.run().unwrap();
        s.run().unwrap();
        let got = s.input("p").unwrap();
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(got[i * 3 + j], twice(i, j), "p[{i}, {j}]");
            }
        }
        assert_eq!(s.output("p_new").unwrap(), got);
    }

    #[test]
    fn an_elementwise_update_writes_its_input_and_needs_no_copy() {
        let s = step(half);
        assert!(s.program().updates.is_empty(), "{}", s.program().dump());
        runs_twice(s, |i, j| (i * 3 + j) as f32 * 0.25);
    }

    #[test]
    fn an_update_reading_other_elements_of_its_input_keeps_the_copy() {
        // p' = transpose(p) * 0.5: writing in place would read elements already overwritten.
        let s = step(|g, p| {
            let t = add(g, Op::Transpose { perm: vec![1, 0] }, &[p]);
            half(g, t)
        });
        assert_eq!(s.program().updates.len(), 1, "{}", s.program().dump());
        runs_twice(s, |i, j| (i * 3 + j) as f32 * 0.25);
    }
}
