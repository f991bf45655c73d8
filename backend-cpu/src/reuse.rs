//! Liveness-based reuse of arena memory: values whose lifetimes do not overlap share memory.
//!
//! The planner gives every value its own buffer, in order; this pass then packs the buffers.
//! A buffer is live from the first kernel that touches it to the last (both included, so a
//! kernel never writes into memory it is still reading). Graph inputs (parameters, optimizer
//! state, batches), outputs and the sources of the end-of-step update copies live through the
//! whole step. Buffers are placed largest first at the lowest aligned offset that no buffer
//! with an overlapping lifetime occupies (greedy first fit, as TVM's and XLA's planners do), and
//! every offset in the program — slots and the loads of fused kernels, which may point inside
//! a buffer — is moved with its buffer.

use netc_compiler::ir::DType;

use crate::kernel::{Expr, Kernel, KernelProgram, RowStage, Slot};

/// Pack `program`'s buffers, `allocations` being every buffer the planner made, in increasing
/// offset order per arena. Shrinks `f32_len` and `i64_len`; the program computes the same.
pub fn pack(program: &mut KernelProgram, allocations: &[Slot]) {
    let f32s: Vec<Slot> = by_dtype(allocations, DType::F32);
    let i64s: Vec<Slot> = by_dtype(allocations, DType::I64);
    let end = program.kernels.len() + 1;
    let mut live = Liveness {
        f32s: vec![None; f32s.len()],
        i64s: vec![None; i64s.len()],
    };
    let buffers = Buffers {
        f32s: &f32s,
        i64s: &i64s,
    };
    for (k, kernel) in program.kernels.iter_mut().enumerate() {
        visit_kernel(kernel, &mut |dtype, offset| {
            let b = buffers.find(dtype, *offset);
            live.touch(dtype, b, k + 1, k + 1);
        });
    }
    let pinned = program
        .inputs
        .iter()
        .map(|(_, s, _)| s)
        .chain(program.outputs.iter().map(|(_, s, _)| s))
        .chain(program.updates.iter().flat_map(|(_, from, to)| [from, to]));
    for s in pinned.filter(|s| s.len > 0) {
        live.touch(s.dtype, buffers.find(s.dtype, s.offset), 0, end);
    }
    let (f32_base, f32_len) = assign(&f32s, &live.f32s, 16);
    let (i64_base, i64_len) = assign(&i64s, &live.i64s, 8);
    let moved = |dtype: DType, offset: usize| -> usize {
        let (list, base) = match dtype {
            DType::F32 => (&f32s, &f32_base),
            DType::I64 => (&i64s, &i64_base),
        };
        let b = buffers.find(dtype, offset);
        base[b] + (offset - list[b].offset)
    };
    for kernel in &mut program.kernels {
        visit_kernel(kernel, &mut |dtype, offset| *offset = moved(dtype, *offset));
    }
    let slots = program
        .inputs
        .iter_mut()
        .chain(program.outputs.iter_mut())
        .map(|(_, s, _)| s)
        .chain(
            program
                .updates
                .iter_mut()
                .flat_map(|(_, from, to)| [from, to]),
        );
    for s in slots {
        // An empty value has nothing to move; any offset will do.
        s.offset = if s.len > 0 {
            moved(s.dtype, s.offset)
        } else {
            0
        };
    }
    program.f32_len = f32_len.next_multiple_of(16);
    program.i64_len = i64_len;
}

fn by_dtype(allocations: &[Slot], dtype: DType) -> Vec<Slot> {
    allocations
        .iter()
        .filter(|s| s.dtype == dtype)
        .copied()
        .collect()
}

/// The planner's buffers of each arena, sorted by offset.
struct Buffers<'a> {
    f32s: &'a [Slot],
    i64s: &'a [Slot],
}

impl Buffers<'_> {
    /// The buffer containing `offset` (the last one starting at or before it; empty buffers
    /// share their offset with the next and are never the answer for a real access).
    fn find(&self, dtype: DType, offset: usize) -> usize {
        let list = match dtype {
            DType::F32 => self.f32s,
            DType::I64 => self.i64s,
        };
        list.partition_point(|s| s.offset <= offset)
            .checked_sub(1)
            .expect("every offset lies in a planned buffer")
    }
}

/// Per buffer: the first and last kernel (1-based; 0 and `kernels + 1` mean "before" and
/// "after the step") that touch it, `None` when nothing does.
struct Liveness {
    f32s: Vec<Option<(usize, usize)>>,
    i64s: Vec<Option<(usize, usize)>>,
}

impl Liveness {
    fn touch(&mut self, dtype: DType, buffer: usize, first: usize, last: usize) {
        let span = match dtype {
            DType::F32 => &mut self.f32s[buffer],
            DType::I64 => &mut self.i64s[buffer],
        };
        *span = Some(match *span {
            Some((a, b)) => (a.min(first), b.max(last)),
            None => (first, last),
        });
    }
}

/// Offsets for `buffers` (greedy first fit, largest first) and the arena length they need.
/// A buffer no kernel touches gets no memory.
fn assign(buffers: &[Slot], live: &[Option<(usize, usize)>], align: usize) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..buffers.len()).filter(|&b| live[b].is_some()).collect();
    order.sort_by_key(|&b| (std::cmp::Reverse(buffers[b].len), b));
    let mut base = vec![0; buffers.len()];
    // Placed buffers: (offset, end, first, last).
    let mut placed: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(order.len());
    let mut arena = 0;
    for b in order {
        let (first, last) = live[b].expect("filtered above");
        let mut clashes: Vec<(usize, usize)> = placed
            .iter()
            .filter(|p| p.2 <= last && first <= p.3)
            .map(|p| (p.0, p.1))
            .collect();
        clashes.sort_unstable();
        let len = buffers[b].len;
        let mut offset = 0;
        for (start, stop) in clashes {
            if offset + len <= start {
                break;
            }
            offset = offset.max(stop.next_multiple_of(align));
        }
        base[b] = offset;
        placed.push((offset, offset + len, first, last));
        arena = arena.max(offset + len);
    }
    (base, arena)
}

/// Call `f` on every arena offset `kernel` reads or writes (each slot's first element, and
/// each fused load's base), so the caller can record or move it.
pub(crate) fn visit_kernel(kernel: &mut Kernel, f: &mut impl FnMut(DType, &mut usize)) {
    let slot = |s: &mut Slot, f: &mut dyn FnMut(DType, &mut usize)| {
        if s.len > 0 {
            f(s.dtype, &mut s.offset);
        }
    };
    // A fused loop's outputs and the bases of its expressions' loads.
    let fused = |outs: Vec<(&mut Slot, &mut Expr)>, f: &mut dyn FnMut(DType, &mut usize)| {
        for (out, expr) in outs {
            slot(out, f);
            for (offset, _) in expr.loads_mut() {
                f(DType::F32, offset);
            }
        }
    };
    match kernel {
        Kernel::Elementwise {
            out, expr, also, ..
        } => fused(
            std::iter::once((out, expr))
                .chain(also.iter_mut().map(|(o, e)| (o, e)))
                .collect(),
            f,
        ),
        Kernel::Reduce { input, out, .. } => {
            slot(input, f);
            slot(out, f);
        }
        Kernel::MatMul { a, b, out, .. } => {
            slot(a, f);
            slot(b, f);
            slot(out, f);
        }
        Kernel::Native {
            inputs,
            out,
            scratch,
            ..
        } => {
            for s in inputs.iter_mut().chain(std::iter::once(out)) {
                slot(s, f);
            }
            if let Some(s) = scratch {
                slot(s, f);
            }
        }
        Kernel::Fallback {
            inputs, outputs, ..
        } => {
            for s in inputs.iter_mut().chain(outputs.iter_mut()) {
                slot(s, f);
            }
        }
        Kernel::Copy { from, to } => {
            slot(from, f);
            slot(to, f);
        }
        Kernel::Rows { stages, .. } => {
            for stage in stages {
                let outs = match stage {
                    RowStage::Reduce { expr, out, .. } => vec![(out, expr)],
                    RowStage::Map { outs, .. } => outs.iter_mut().map(|(o, e)| (o, e)).collect(),
                };
                fused(outs, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lifetimes_share_and_overlapping_ones_do_not() {
        let slot = |offset, len| Slot {
            dtype: DType::F32,
            offset,
            len,
        };
        // a: kernels 1-2, b: kernels 2-3 (overlap at 2), c: kernels 3-4 (disjoint from a).
        let buffers = [slot(0, 10), slot(16, 10), slot(32, 10)];
        let live = [Some((1, 2)), Some((2, 3)), Some((3, 4))];
        let (base, len) = assign(&buffers, &live, 16);
        assert_eq!(base[0], base[2], "a and c never live together");
        assert_ne!(base[0], base[1]);
        assert_eq!(len, 26);
    }

    #[test]
    fn untouched_buffers_get_no_memory() {
        let buffers = [Slot {
            dtype: DType::F32,
            offset: 0,
            len: 100,
        }];
        assert_eq!(assign(&buffers, &[None], 16).1, 0);
    }
}
