//! The emulator and the lowering on small hand-made kernels: elementwise kernels and reductions
//! at odd sizes (tails, partial warps, grid-stride wrap-around) against direct loops, shuffle
//! and barrier semantics, and the faults the emulator must refuse (races, divergent barriers,
//! out-of-bounds accesses).

use netc_backend_cpu::kernel::{Coverage, Expr as KExpr, Kernel as KKernel, KernelProgram, Slot};
use netc_backend_cuda::emulate;
use netc_backend_cuda::gpu::{Builder, Builtin, Cmp, Expr, Mem, Stmt, Ty};
use netc_backend_cuda::lower::{Config, lower_plan};
use netc_compiler::ir::{BinaryOp, DType, Graph, ReduceOp, UnaryOp};

const TINY: Config = Config {
    block: 64,
    max_grid: 3,
};

fn slot(offset: usize, len: usize) -> Slot {
    Slot {
        dtype: DType::F32,
        offset,
        len,
    }
}

fn program(f32_len: usize, kernels: Vec<KKernel>) -> KernelProgram {
    KernelProgram {
        f32_len,
        i64_len: 0,
        inputs: Vec::new(),
        outputs: Vec::new(),
        kernels,
        updates: Vec::new(),
        coverage: Coverage::default(),
    }
}

/// Deterministic values in [-1, 1), never zero.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1 << 24) as f32;
            if x == 0.5 { 0.25 } else { x * 2.0 - 1.0 }
        })
        .collect()
}

/// Lower `plan` and run it on the emulator over `arena` (grown to the lowered arena's size).
fn run(plan: KernelProgram, arena: &mut Vec<f32>) {
    let p = lower_plan(plan, &Graph::new(), TINY).unwrap();
    arena.resize(p.f32_len, f32::NAN);
    emulate::run(&p, arena, &mut []).unwrap();
}

#[test]
fn elementwise_tails_and_strided_loads() {
    for (rows, cols) in [(1, 1), (1, 31), (3, 33), (7, 65), (13, 29)] {
        let n = rows * cols;
        // out[i, j] = max(x[i, j], 0.5) * yT[j, i] + relu(b[j])  (a transposed and a broadcast load)
        let (x, y, b, out) = (0, n, 2 * n, 2 * n + cols);
        let expr = KExpr::Fma(
            Box::new(KExpr::Binary(
                BinaryOp::Max,
                Box::new(KExpr::Load {
                    offset: x,
                    strides: vec![cols, 1],
                }),
                Box::new(KExpr::Const(0.5)),
            )),
            Box::new(KExpr::Load {
                offset: y,
                strides: vec![1, rows],
            }),
            Box::new(KExpr::Unary(
                UnaryOp::Relu,
                Box::new(KExpr::Load {
                    offset: b,
                    strides: vec![0, 1],
                }),
            )),
        );
        let mut arena = values(out + n, 7);
        let input = arena.clone();
        run(
            program(
                out + n,
                vec![KKernel::Elementwise {
                    node: 0,
                    out: slot(out, n),
                    shape: vec![rows, cols],
                    expr,
                    also: Vec::new(),
                }],
            ),
            &mut arena,
        );
        for i in 0..rows {
            for j in 0..cols {
                let want = input[x + i * cols + j]
                    .max(0.5)
                    .mul_add(input[y + j * rows + i], input[b + j].max(0.0));
                assert_eq!(
                    arena[out + i * cols + j],
                    want,
                    "[{rows}, {cols}] at ({i}, {j})"
                );
            }
        }
    }
}

#[test]
fn reductions_at_odd_sizes() {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3, 37], &[1]),
        (&[37, 3], &[0]),
        (&[5, 7, 9], &[0, 2]),
        (&[1000], &[0]),
        (&[2, 1, 129], &[2]),
        (&[4, 65], &[0, 1]),
    ];
    for (shape, axes) in cases {
        for op in [ReduceOp::Sum, ReduceOp::Max] {
            let n: usize = shape.iter().product();
            let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
            let outs: usize = kept.iter().map(|&a| shape[a]).product();
            let mut arena = values(n, 3);
            if op == ReduceOp::Max {
                arena[n / 2] = f32::NAN;
            }
            let input = arena.clone();
            let out = n.next_multiple_of(16);
            run(
                program(
                    out + outs,
                    vec![KKernel::Reduce {
                        node: 0,
                        op,
                        input: slot(0, n),
                        shape: shape.to_vec(),
                        axes: axes.to_vec(),
                        out: slot(out, outs),
                    }],
                ),
                &mut arena,
            );
            // Direct: fold each element into its output.
            let mut want = vec![
                if op == ReduceOp::Sum {
                    0.0f64
                } else {
                    f64::NEG_INFINITY
                };
                outs
            ];
            for (flat, &x) in input[..n].iter().enumerate() {
                let mut rest = flat;
                let mut idx = vec![0; shape.len()];
                for a in (0..shape.len()).rev() {
                    idx[a] = rest % shape[a];
                    rest /= shape[a];
                }
                let o = kept.iter().fold(0, |acc, &a| acc * shape[a] + idx[a]);
                let x = f64::from(x);
                want[o] = match op {
                    ReduceOp::Sum => want[o] + x,
                    ReduceOp::Max if x.is_nan() || x > want[o] => x,
                    ReduceOp::Max => want[o],
                };
            }
            for (o, w) in want.iter().enumerate() {
                let got = f64::from(arena[out + o]);
                let ok = if w.is_nan() {
                    got.is_nan()
                } else {
                    (got - w).abs() <= 1e-5 * (1.0 + w.abs())
                };
                assert!(
                    ok,
                    "{op:?} {shape:?} axes {axes:?}: output {o} is {got}, want {w}"
                );
            }
        }
    }
}

/// A one-block kernel of `threads` threads around `body`.
fn kernel(threads: u32, build: impl FnOnce(&mut Builder)) -> netc_backend_cuda::gpu::Kernel {
    let mut b = Builder::new();
    build(&mut b);
    b.finish("test".into(), 0, "test".into(), 1, threads)
        .unwrap()
}

fn tid() -> Expr {
    Expr::Builtin(Builtin::ThreadIdx)
}

#[test]
fn shuffle_down_reads_the_lane_below_and_keeps_its_own_past_the_warp() {
    let k = kernel(64, |b| {
        let v = b.var(Ty::F32);
        b.push(Stmt::Let(v, Expr::Cast(Ty::I64, Ty::F32, tid().boxed())));
        let w = b.var(Ty::F32);
        b.push(Stmt::ShflDown {
            dst: w,
            src: v,
            delta: 3,
        });
        b.push(Stmt::Store(Mem::F, tid(), Expr::Var(w)));
    });
    let mut f = vec![0.0; 64];
    emulate::launch(&k, &mut f, &mut [], &mut 0).unwrap();
    for (t, &x) in f.iter().enumerate() {
        let lane = t % 32;
        let want = if lane + 3 < 32 { t + 3 } else { t };
        assert_eq!(x, want as f32, "thread {t}");
    }
}

#[test]
fn barriers_inside_a_uniform_loop_order_shared_memory() {
    // Three rounds of: write own slot, barrier, read the neighbour's, barrier.
    let k = kernel(96, |b| {
        let s = b.shared(Ty::F32, 96);
        let acc = b.var(Ty::F32);
        b.push(Stmt::Let(acc, Expr::F32(1.0)));
        b.for_(Expr::I64(0), Expr::I64(3), Expr::I64(1), |b, _| {
            b.push(Stmt::Store(s, tid(), Expr::Var(acc)));
            b.push(Stmt::Barrier);
            let next = Expr::arith(
                netc_backend_cuda::gpu::Arith::Rem,
                Expr::plus(tid(), Expr::I64(1)),
                Expr::I64(96),
            );
            b.push(Stmt::Set(
                acc,
                Expr::Binary(
                    BinaryOp::Add,
                    Expr::Var(acc).boxed(),
                    Expr::Load(s, next.boxed()).boxed(),
                ),
            ));
            b.push(Stmt::Barrier);
        });
        b.push(Stmt::Store(Mem::F, tid(), Expr::Var(acc)));
    });
    let mut f = vec![0.0; 96];
    emulate::launch(&k, &mut f, &mut [], &mut 0).unwrap();
    assert!(f.iter().all(|&x| x == 8.0), "{f:?}");
}

#[test]
fn a_missing_barrier_is_a_race() {
    let k = kernel(64, |b| {
        let s = b.shared(Ty::F32, 64);
        b.push(Stmt::Store(s, tid(), Expr::F32(1.0)));
        let other = Expr::arith(
            netc_backend_cuda::gpu::Arith::Rem,
            Expr::plus(tid(), Expr::I64(1)),
            Expr::I64(64),
        );
        b.push(Stmt::Store(Mem::F, tid(), Expr::Load(s, other.boxed())));
    });
    let err = emulate::launch(&k, &mut [0.0; 64], &mut [], &mut 0).unwrap_err();
    assert!(err.contains("race"), "{err}");
}

#[test]
fn a_barrier_in_divergent_code_is_refused() {
    let k = kernel(64, |b| {
        b.if_(Expr::cmp(Cmp::Lt, tid(), Expr::I64(16)), |b| {
            b.push(Stmt::Barrier)
        });
    });
    let err = emulate::launch(&k, &mut [], &mut [], &mut 0).unwrap_err();
    assert!(err.contains("diverge"), "{err}");
}

#[test]
fn a_shuffle_in_part_of_a_warp_is_refused() {
    let k = kernel(32, |b| {
        let v = b.var(Ty::F32);
        b.push(Stmt::Let(v, Expr::F32(1.0)));
        let w = b.var(Ty::F32);
        b.if_(Expr::cmp(Cmp::Lt, tid(), Expr::I64(5)), |b| {
            b.push(Stmt::ShflDown {
                dst: w,
                src: v,
                delta: 1,
            });
        });
    });
    assert!(emulate::launch(&k, &mut [], &mut [], &mut 0).is_err());
}

#[test]
fn out_of_bounds_accesses_are_errors() {
    let k = kernel(32, |b| {
        b.push(Stmt::Store(
            Mem::F,
            Expr::plus(tid(), Expr::I64(30)),
            Expr::F32(1.0),
        ));
    });
    let err = emulate::launch(&k, &mut [0.0; 32], &mut [], &mut 0).unwrap_err();
    assert!(err.contains("out of bounds"), "{err}");
}
