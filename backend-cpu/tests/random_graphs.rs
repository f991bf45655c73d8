//! Random graphs of elementwise, broadcast, transpose, slice, select, reduce and matmul ops on
//! odd shapes (vector tails!) with random non-zero data: the backend must match the reference
//! interpreter (f32) within 1e-5 relative L2 on every output.

mod common;

use common::{Rng, load, random_inputs, reference, rel_l2};
use netc_backend_cpu::CompiledStep;
use netc_compiler::ir::{BinaryOp, Graph, NodeId, Op, ReduceOp, Role, Type, UnaryOp};
use netc_grammar::Span;

struct Builder {
    g: Graph,
    rng: Rng,
    inputs: usize,
}

impl Builder {
    fn add(&mut self, op: Op, operands: &[NodeId], given: Option<Type>) -> NodeId {
        self.g
            .add(op, operands, given, Span::default())
            .unwrap_or_else(|e| panic!("{}", e.message))
    }
    fn input(&mut self, shape: Vec<usize>) -> NodeId {
        self.inputs += 1;
        let name = format!("x{}", self.inputs);
        self.g
            .input(&name, Role::Data, Type::f32(shape), Span::default())
    }
    fn fill(&mut self, v: f64, shape: &[usize]) -> NodeId {
        self.add(Op::Fill { value: v }, &[], Some(Type::f32(shape.to_vec())))
    }
    fn unary(&mut self, u: UnaryOp, x: NodeId) -> NodeId {
        self.add(Op::Unary(u), &[x], None)
    }
    fn binary(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> NodeId {
        self.add(Op::Binary(b), &[x, y], None)
    }
    fn broadcast(&mut self, x: NodeId, shape: &[usize]) -> NodeId {
        self.add(Op::Broadcast, &[x], Some(Type::f32(shape.to_vec())))
    }
    fn reshape(&mut self, x: NodeId, shape: &[usize]) -> NodeId {
        self.add(Op::Reshape, &[x], Some(Type::f32(shape.to_vec())))
    }

    /// One random op producing a `[r, c]` value from the pool, kept in a bounded range.
    fn step(&mut self, pool: &[NodeId], r: usize, c: usize) -> NodeId {
        let s = [r, c];
        let pick = |b: &mut Builder| pool[b.rng.below(pool.len())];
        match self.rng.below(14) {
            0 => {
                let x = pick(self);
                let u = [
                    UnaryOp::Neg,
                    UnaryOp::Tanh,
                    UnaryOp::Sigmoid,
                    UnaryOp::Relu,
                    UnaryOp::Erf,
                    UnaryOp::Abs,
                ][self.rng.below(6)];
                self.unary(u, x)
            }
            1 => {
                // Functions with restricted domains, made safe.
                let x = pick(self);
                let a = self.unary(UnaryOp::Abs, x);
                let h = self.fill(0.5, &s);
                let y = self.binary(BinaryOp::Add, a, h);
                let u = [UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Recip][self.rng.below(3)];
                self.unary(u, y)
            }
            2 => {
                let x = pick(self);
                let t = self.unary(UnaryOp::Tanh, x);
                self.unary(UnaryOp::Exp, t)
            }
            3 | 4 => {
                let (x, y) = (pick(self), pick(self));
                let b = [
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Max,
                    BinaryOp::Min,
                ][self.rng.below(5)];
                self.binary(b, x, y)
            }
            5 => {
                // a * b + c (a fused multiply-add candidate).
                let (x, y, z) = (pick(self), pick(self), pick(self));
                let m = self.binary(BinaryOp::Mul, x, y);
                self.binary(BinaryOp::Add, m, z)
            }
            6 => {
                // Bias broadcast along rows, column broadcast, scalar broadcast.
                let x = pick(self);
                let b = match self.rng.below(3) {
                    0 => {
                        let v = self.input(vec![c]);
                        self.broadcast(v, &s)
                    }
                    1 => {
                        let v = self.input(vec![r, 1]);
                        self.broadcast(v, &s)
                    }
                    _ => {
                        let v = self.input(vec![]);
                        self.broadcast(v, &s)
                    }
                };
                self.binary(BinaryOp::Add, x, b)
            }
            7 => {
                // Softmax-like: x - max(x, axis 1), reduce sum, divide.
                let x = pick(self);
                let m = self.add(
                    Op::Reduce {
                        op: ReduceOp::Max,
                        axes: vec![1],
                    },
                    &[x],
                    None,
                );
                let m = self.reshape(m, &[r, 1]);
                let m = self.broadcast(m, &s);
                let d = self.binary(BinaryOp::Sub, x, m);
                let e = self.unary(UnaryOp::Exp, d);
                let z = self.add(
                    Op::Reduce {
                        op: ReduceOp::Sum,
                        axes: vec![1],
                    },
                    &[e],
                    None,
                );
                let z = self.reshape(z, &[r, 1]);
                let z = self.broadcast(z, &s);
                self.binary(BinaryOp::Div, e, z)
            }
            8 => {
                // Column sums broadcast back (reduce over axis 0), scaled.
                let x = pick(self);
                let m = self.add(
                    Op::Reduce {
                        op: ReduceOp::Sum,
                        axes: vec![0],
                    },
                    &[x],
                    None,
                );
                let m = self.broadcast(m, &s);
                let k = self.fill(1.0 / r as f64, &s);
                let m = self.binary(BinaryOp::Mul, m, k);
                self.binary(BinaryOp::Sub, x, m)
            }
            9 => {
                // matmul with a random [c, c] weight, either orientation, then tanh.
                let x = pick(self);
                let w = self.input(vec![c, c]);
                let tb = self.rng.below(2) == 1;
                let y = self.add(Op::MatMul { ta: false, tb }, &[x, w], None);
                self.unary(UnaryOp::Tanh, y)
            }
            10 => {
                // x^T x (ta) then x @ that: [r, c].
                let x = pick(self);
                let xtx = self.add(
                    Op::MatMul {
                        ta: true,
                        tb: false,
                    },
                    &[x, x],
                    None,
                );
                let k = self.fill(1.0 / r as f64, &[c, c]);
                let xtx = self.binary(BinaryOp::Mul, xtx, k);
                let y = self.add(
                    Op::MatMul {
                        ta: false,
                        tb: false,
                    },
                    &[x, xtx],
                    None,
                );
                self.unary(UnaryOp::Tanh, y)
            }
            11 => {
                // A transposed input and a slice of a wider one.
                let t = self.input(vec![c, r]);
                let t = self.add(Op::Transpose { perm: vec![1, 0] }, &[t], None);
                let w = self.input(vec![r + 2, c + 3]);
                let w = self.add(
                    Op::Slice {
                        axis: 1,
                        start: 2,
                        len: c,
                    },
                    &[w],
                    None,
                );
                let w = self.add(
                    Op::Slice {
                        axis: 0,
                        start: 1,
                        len: r,
                    },
                    &[w],
                    None,
                );
                let x = pick(self);
                let y = self.binary(BinaryOp::Mul, t, w);
                self.binary(BinaryOp::Add, x, y)
            }
            12 => {
                // select(greater(a, b), x, y)
                let (a, b, x, y) = (pick(self), pick(self), pick(self), pick(self));
                let cnd = self.binary(BinaryOp::Greater, a, b);
                self.add(Op::Select, &[cnd, x, y], None)
            }
            _ => {
                // Batched matmul through a reshape: [1, r, c] x [1, c, c].
                let x = pick(self);
                let x3 = self.reshape(x, &[1, r, c]);
                let w = self.input(vec![1, c, c]);
                let y = self.add(
                    Op::MatMul {
                        ta: false,
                        tb: false,
                    },
                    &[x3, w],
                    None,
                );
                let y = self.reshape(y, &[r, c]);
                self.unary(UnaryOp::Tanh, y)
            }
        }
    }
}

fn random_graph(seed: u64) -> Graph {
    let mut b = Builder {
        g: Graph::new(),
        rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        inputs: 0,
    };
    let rows = [1, 2, 3, 5, 7, 9, 16];
    let cols = [1, 3, 4, 5, 7, 11, 13, 17, 37];
    let r = rows[b.rng.below(rows.len())];
    let c = cols[b.rng.below(cols.len())];
    let mut pool: Vec<NodeId> = (0..3).map(|_| b.input(vec![r, c])).collect();
    let n = 4 + b.rng.below(10);
    for _ in 0..n {
        let y = b.step(&pool, r, c);
        pool.push(y);
    }
    // Outputs: the last value, and a random earlier one (a value with other users too).
    let last = *pool.last().unwrap();
    b.g.set_output("out", last);
    let mid = pool[3 + b.rng.below(pool.len() - 3)];
    b.g.set_output("mid", mid);
    // A sum of squares: a full reduction without cancellation (a plain sum of a centred value
    // is rounding noise around zero, which no relative test can judge).
    let sq = b.binary(BinaryOp::Mul, last, last);
    let total = b.add(
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![0, 1],
        },
        &[sq],
        None,
    );
    b.g.set_output("total", total);
    b.g
}

#[test]
fn random_graphs_match_the_interpreter() {
    let mut worst = 0.0f64;
    for seed in 1..=120u64 {
        let graph = random_graph(seed);
        let mut rng = Rng(seed * 7 + 3);
        let inputs = random_inputs(&graph, &mut rng, 1.0);
        let expected = reference(&graph, &inputs);
        let mut step = CompiledStep::compile(&graph).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        load(&mut step, &inputs);
        step.run().unwrap();
        for name in ["out", "mid", "total"] {
            let want = expected[name].to_f32_vec().unwrap();
            let got = step.output(name).unwrap();
            let err = rel_l2(&got, &want);
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "seed {seed} output {name}: relative L2 error {err:e}\ngraph:\n{}\nkernels:\n{}",
                netc_compiler::ir::text::dump(&graph),
                step.program().dump()
            );
        }
    }
    eprintln!("worst relative L2 error: {worst:e}");
}

/// Special values keep the IR's semantics: relu keeps NaN and maps -0 to +0, max/min
/// propagate NaN, greater is false on NaN, select treats NaN as true.
#[test]
fn special_values_follow_the_ir() {
    let vals = [
        f32::NAN,
        -0.0,
        0.0,
        1.5,
        -2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3.0,
        f32::NAN,
    ];
    let n = vals.len();
    let mut g = Graph::new();
    let sp = Span::default();
    let x = g.input("x", Role::Data, Type::f32(vec![n]), sp);
    let y = g.input("y", Role::Data, Type::f32(vec![n]), sp);
    let mut outs = Vec::new();
    outs.push(g.add(Op::Unary(UnaryOp::Relu), &[x], None, sp).unwrap());
    for b in [BinaryOp::Max, BinaryOp::Min, BinaryOp::Greater] {
        outs.push(g.add(Op::Binary(b), &[x, y], None, sp).unwrap());
    }
    outs.push(g.add(Op::Select, &[x, y, x], None, sp).unwrap());
    for (i, o) in outs.iter().enumerate() {
        g.set_output(&format!("o{i}"), *o);
    }
    let mut ys = vals;
    ys.reverse();
    let inputs = std::collections::HashMap::from([
        (
            "x".to_string(),
            netc_compiler::ir::interp::Value::f32(vec![n], vals.to_vec()),
        ),
        (
            "y".to_string(),
            netc_compiler::ir::interp::Value::f32(vec![n], ys.to_vec()),
        ),
    ]);
    let expected = reference(&g, &inputs);
    let mut step = CompiledStep::compile(&g).unwrap();
    load(&mut step, &inputs);
    step.run().unwrap();
    for i in 0..outs.len() {
        let name = format!("o{i}");
        let want = expected[&name].to_f32_vec().unwrap();
        let got = step.output(&name).unwrap();
        for (a, b) in got.iter().zip(&want) {
            let same = (a.is_nan() && b.is_nan())
                || (a == b && a.is_sign_negative() == b.is_sign_negative())
                || (a == b && *a == 0.0 && i != 0);
            assert!(same, "{name}: got {got:?}, want {want:?}");
        }
    }
}
