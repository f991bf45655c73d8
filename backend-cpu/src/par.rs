//! Threads: how many a compiled step uses, and the two ways work is split over them.
//!
//! The count is fixed when a step is compiled ([`crate::CompiledStep::compile_with_threads`];
//! [`crate::CompiledStep::compile`] takes [`threads`], 1 unless [`set_threads`] said otherwise)
//! and work runs on rayon's global pool. A kernel is split only when it is large enough to pay
//! for waking the other threads (the thresholds below: a fork-join costs some microseconds, so
//! work of well under a millisecond stays on one thread; on the shared 2-core machine, under
//! load, `gemm` on 2 threads did not beat 1 thread at any size, see ARCHITECTURE.md), always
//! into the same contiguous parts for a given thread count, so every run of a step computes the
//! same bits. Splits that keep each output's arithmetic unchanged (elementwise
//! chunks, images of a forward convolution, matrices of a batch) give exactly the one-thread
//! result; the only splits that change a summation order are the weight gradient of a
//! convolution (per-part partial sums, added in part order) and a single large GEMM (`gemm`'s
//! own split).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Use `n` threads (at least 1) in steps compiled from now on, and size rayon's global pool
/// to match when it does not exist yet. The CLI's `--threads N`.
pub fn set_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Relaxed);
    if n > 1 {
        // Fails only when the pool already exists; then it keeps its size, and work is still
        // split into `n` parts.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

/// The thread count new steps are compiled for (1 by default: deterministic and cheapest for
/// small models).
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Elementwise kernels with at least this much work (elements times operations) are split.
pub(crate) const ELEMENTWISE_WORK: usize = 1 << 17;
/// A single GEMM with at least this many multiply-adds (`m * n * k`) uses `gemm`'s threads.
pub(crate) const GEMM_WORK: usize = 1 << 21;
/// Convolutions, pools and batched matmuls with at least this many multiply-adds (or window
/// taps) are split over images or matrices.
pub(crate) const BATCH_WORK: usize = 1 << 18;

/// The bounds of part `i` of `parts` contiguous parts of `0..n`, each starting at a multiple
/// of `align` (the last part takes the rest).
pub(crate) fn part(n: usize, parts: usize, align: usize, i: usize) -> Range<usize> {
    let at = |i: usize| {
        if i >= parts {
            n
        } else {
            (n * i / parts).next_multiple_of(align.max(1)).min(n)
        }
    };
    at(i)..at(i + 1)
}

/// `f(i, part(n, parts, align, i))` for every part `i`, in parallel (inline for one part).
pub(crate) fn fork(n: usize, parts: usize, align: usize, f: &(dyn Fn(usize, Range<usize>) + Sync)) {
    fn go(
        lo: usize,
        hi: usize,
        n: usize,
        parts: usize,
        align: usize,
        f: &(dyn Fn(usize, Range<usize>) + Sync),
    ) {
        if hi - lo == 1 {
            f(lo, part(n, parts, align, lo));
        } else {
            let mid = lo + (hi - lo) / 2;
            rayon::join(
                || go(lo, mid, n, parts, align, f),
                || go(mid, hi, n, parts, align, f),
            );
        }
    }
    go(0, parts.max(1), n, parts.max(1), align, f);
}

/// The work of one part in [`fork_mut`]: its groups, its share of the output, its state.
pub(crate) type PartFn<'a, T, S> = dyn Fn(Range<usize>, &mut [T], &mut S) + Sync + 'a;

/// Split `out` (made of `out.len() / unit` groups: images, planes) into `states.len()`
/// contiguous parts as [`part`] does (at multiples of `align` groups), and run `f(groups, out_part, state)` on each in parallel,
/// `groups` being the part's range of group indices and `state` its own scratch.
pub(crate) fn fork_mut<T: Send, S: Send>(
    out: &mut [T],
    (unit, align): (usize, usize),
    states: &mut [S],
    f: &PartFn<'_, T, S>,
) {
    fn go<T: Send, S: Send>(
        first: usize,
        out: &mut [T],
        unit: usize,
        states: &mut [S],
        (groups, parts, align): (usize, usize, usize),
        f: &PartFn<'_, T, S>,
    ) {
        if states.len() == 1 {
            let r = part(groups, parts, align, first);
            f(r, out, &mut states[0]);
        } else {
            let half = states.len() / 2;
            let split = part(groups, parts, align, first + half).start
                - part(groups, parts, align, first).start;
            let (a, b) = out.split_at_mut(split * unit);
            let (sa, sb) = states.split_at_mut(half);
            rayon::join(
                || go(first, a, unit, sa, (groups, parts, align), f),
                || go(first + half, b, unit, sb, (groups, parts, align), f),
            );
        }
    }
    let groups = out.len() / unit.max(1);
    let parts = states.len();
    if parts > 0 {
        go(0, out, unit.max(1), states, (groups, parts, align), f);
    }
}
