//! Tests of the graph-IR optimization passes (`ir::passes`).
//!
//! Each pass gets a small hand-built graph where it fires, checked twice: the canonical dump
//! after the pass (what changed) and the reference interpreter before and after on random
//! inputs (nothing that the graph computes changed). A randomized test then builds many small
//! well-typed graphs full of redundancy (constants 0 and 1, duplicated subexpressions, layout
//! chains), runs each pass alone and the whole pipeline, and compares the outputs again.

use std::collections::HashMap;

use netc_compiler::ir::interp::{self, Data, Precision, Value};
use netc_compiler::ir::passes::{self, cse, dce, fold, simplify};
use netc_compiler::ir::{
    BinaryOp, DType, Distribution, Graph, NodeId, Op, ReduceOp, Role, Scan, Type, UnaryOp, op, text,
};
use netc_grammar::Span;

// ---------------------------------------------------------------------------------------------
// Helpers: a deterministic PRNG, a graph builder, evaluation and comparison.

/// SplitMix64: tiny, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Builds graphs with a fresh span per node, so dumps show which node survived.
struct Builder {
    g: Graph,
    next_span: usize,
}

impl Builder {
    fn new() -> Self {
        Builder {
            g: Graph::new(),
            next_span: 0,
        }
    }

    fn span(&mut self) -> Span {
        self.next_span += 1;
        Span::new(self.next_span, self.next_span + 1)
    }

    fn input(&mut self, name: &str, ty: Type) -> NodeId {
        let span = self.span();
        self.g.input(name, Role::Data, ty, span)
    }

    fn add(&mut self, op: Op, operands: &[NodeId], given: Option<Type>) -> NodeId {
        let span = self.span();
        match self.g.add(op, operands, given, span) {
            Ok(n) => n,
            Err(e) => panic!("ill-typed test graph: {}", e.message),
        }
    }

    fn fill(&mut self, value: f64, ty: Type) -> NodeId {
        self.add(Op::Fill { value }, &[], Some(ty))
    }

    fn un(&mut self, op: UnaryOp, a: NodeId) -> NodeId {
        self.add(Op::Unary(op), &[a], None)
    }

    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        self.add(Op::Binary(op), &[a, b], None)
    }

    fn reshape(&mut self, a: NodeId, shape: &[usize]) -> NodeId {
        let dtype = self.g.ty(a).dtype;
        self.add(
            Op::Reshape,
            &[a],
            Some(Type {
                dtype,
                shape: shape.to_vec(),
            }),
        )
    }

    fn broadcast(&mut self, a: NodeId, shape: &[usize]) -> NodeId {
        let dtype = self.g.ty(a).dtype;
        self.add(
            Op::Broadcast,
            &[a],
            Some(Type {
                dtype,
                shape: shape.to_vec(),
            }),
        )
    }

    fn transpose(&mut self, a: NodeId, perm: &[usize]) -> NodeId {
        self.add(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[a],
            None,
        )
    }

    fn reduce(&mut self, op: ReduceOp, a: NodeId, axes: &[usize]) -> NodeId {
        self.add(
            Op::Reduce {
                op,
                axes: axes.to_vec(),
            },
            &[a],
            None,
        )
    }
}

fn f32t(shape: &[usize]) -> Type {
    Type::f32(shape.to_vec())
}

/// Random values for every input of `graph`: floats in ±[0.05, 2] (never zero), small ints.
fn random_inputs(graph: &Graph, rng: &mut Rng) -> HashMap<String, Value> {
    let mut inputs = HashMap::new();
    for n in graph.inputs() {
        let node = graph.node(n);
        let Op::Input { name, .. } = &node.op else {
            unreachable!()
        };
        let k = node.ty.numel();
        let value = match node.ty.dtype {
            DType::F32 => {
                let data = (0..k)
                    .map(|_| {
                        let magnitude = 0.05 + 1.95 * rng.unit();
                        if rng.chance(0.5) {
                            -magnitude
                        } else {
                            magnitude
                        }
                    })
                    .collect();
                Value::from_f64(node.ty.shape.clone(), data)
            }
            DType::I64 => Value::i64(
                node.ty.shape.clone(),
                (0..k).map(|_| rng.below(5) as i64).collect(),
            ),
        };
        inputs.insert(name.clone(), value);
    }
    inputs
}

fn eval(
    graph: &Graph,
    inputs: &HashMap<String, Value>,
    precision: Precision,
) -> HashMap<String, Value> {
    match interp::run(graph, inputs, precision) {
        Ok(outputs) => outputs,
        Err(e) => panic!("interpreter failed: {e}\n{}", text::dump(graph)),
    }
}

/// ‖after − before‖ / ‖before‖ over one output (0 when both are exactly zero). Non-finite
/// elements must agree (both NaN, or the same infinity) and are left out of the norms.
fn relative_error(before: &Value, after: &Value) -> f64 {
    assert_eq!(before.ty, after.ty, "an output changed type");
    match (&before.data, &after.data) {
        (Data::F(b), Data::F(a)) => {
            let (mut diff, mut norm) = (0.0, 0.0);
            for (&x, &y) in b.iter().zip(a) {
                if !x.is_finite() || !y.is_finite() {
                    let same = (x.is_nan() && y.is_nan()) || x == y;
                    if !same {
                        return f64::INFINITY;
                    }
                    continue;
                }
                diff += (x - y) * (x - y);
                norm += x * x;
            }
            if norm == 0.0 {
                if diff == 0.0 { 0.0 } else { f64::INFINITY }
            } else {
                (diff / norm).sqrt()
            }
        }
        (Data::I(b), Data::I(a)) if a == b => 0.0,
        _ => f64::INFINITY,
    }
}

/// Equal element by element (NaN matching NaN; `-0 == +0`).
fn identical(a: &Value, b: &Value) -> bool {
    match (&a.data, &b.data) {
        (Data::F(x), Data::F(y)) => x
            .iter()
            .zip(y)
            .all(|(p, q)| p == q || (p.is_nan() && q.is_nan())),
        (x, y) => x == y,
    }
}

/// `after` computes what `before` computes: same output names and types, and values within
/// relative L2 error 1e-6 in f64 runs (1e-5 in f32 runs) on a few random inputs. The passes
/// promise more, and this checks it too: every element is equal (`==`, or both NaN), since
/// no pass rounds differently from the graph it rewrites.
fn assert_same_semantics(before: &Graph, after: &Graph, seed: u64, what: &str) {
    let mut rng = Rng(seed);
    let names = |g: &Graph| {
        g.outputs
            .iter()
            .map(|o| (o.name.clone(), o.updates.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(before), names(after), "outputs changed");
    for _ in 0..3 {
        let inputs = random_inputs(before, &mut rng);
        for (precision, tolerance) in [(Precision::F64, 1e-6), (Precision::F32, 1e-5)] {
            let want = eval(before, &inputs, precision);
            let got = eval(after, &inputs, precision);
            for (name, w) in &want {
                let error = relative_error(w, &got[name]);
                assert!(
                    error < tolerance && identical(w, &got[name]),
                    "{what}: output {name} differs ({precision:?}, relative error {error:e}: {:?} vs {:?})\nbefore:\n{}\nafter:\n{}",
                    w.data,
                    got[name].data,
                    text::dump(before),
                    text::dump(after)
                );
            }
        }
    }
}

/// Every node's type still follows from its operands, operands are numbered 0..k, outputs
/// point at live nodes; scan bodies too.
fn assert_well_typed(graph: &Graph) {
    for n in graph.graph.node_indices() {
        let node = graph.node(n);
        let operands = graph.operands(n);
        let mut slots: Vec<usize> = graph
            .graph
            .edges_directed(n, petgraph::Direction::Incoming)
            .map(|e| *e.weight())
            .collect();
        slots.sort_unstable();
        assert_eq!(
            slots,
            (0..operands.len()).collect::<Vec<_>>(),
            "operand slots of {}",
            node.op.name()
        );
        let types: Vec<&Type> = operands.iter().map(|&o| graph.ty(o)).collect();
        let inferred = op::infer(&node.op, &types, Some(&node.ty));
        assert_eq!(
            inferred.as_ref(),
            Ok(&node.ty),
            "{} is ill-typed",
            node.op.name()
        );
        if let Op::Scan(scan) = &node.op {
            assert_well_typed(&scan.body);
        }
    }
    for o in &graph.outputs {
        assert!(
            graph.graph.contains_node(o.node),
            "output {} points at a removed node",
            o.name
        );
    }
}

/// Run one pass on a copy of `graph`; check the dump, the count, types and semantics.
fn check_pass(
    graph: &Graph,
    pass: fn(&mut Graph) -> usize,
    changed: usize,
    expected: &str,
) -> Graph {
    let mut after = graph.clone();
    let n = pass(&mut after);
    let dump = text::dump(&after);
    assert_eq!(dump, expected, "dump after the pass:\n{dump}");
    assert_eq!(n, changed, "nodes changed");
    assert_well_typed(&after);
    assert_same_semantics(graph, &after, 7, "pass");
    after
}

// ---------------------------------------------------------------------------------------------
// One hand-built graph per pass.

#[test]
fn dce_removes_unused_nodes_but_keeps_inputs() {
    let mut b = Builder::new();
    let x = b.input("x", f32t(&[2, 3]));
    let _unused = b.input("unused", f32t(&[3]));
    let e = b.un(UnaryOp::Exp, x);
    let t = b.un(UnaryOp::Tanh, x);
    let _dead = b.un(UnaryOp::Neg, t);
    let _dead_fill = b.fill(1.0, f32t(&[2, 3]));
    let s = b.reduce(ReduceOp::Sum, e, &[1]);
    b.g.set_output("y", s);
    b.g.set_update("x_new", e, "x");
    let after = check_pass(
        &b.g,
        dce::run,
        3,
        "%0 = input[x, Data] : f32[2, 3]  @1..2\n\
         %1 = input[unused, Data] : f32[3]  @2..3\n\
         %2 = exp(%0) : f32[2, 3]  @3..4\n\
         %3 = reduce_sum[axes=[1]](%2) : f32[2]  @7..8\n\
         output y = %3\n\
         update x_new = %2 -> x\n",
    );
    let mut again = after.clone();
    assert_eq!(dce::run(&mut again), 0, "dce is idempotent");
}

#[test]
fn cse_merges_duplicates_in_one_run() {
    let mut b = Builder::new();
    let x = b.input("x", f32t(&[2, 3]));
    let z = b.input("z", f32t(&[2, 3]));
    let seed = b.input("seed", Type::i64(vec![]));
    let a1 = b.un(UnaryOp::Exp, x);
    let a2 = b.un(UnaryOp::Exp, x);
    let ez = b.un(UnaryOp::Exp, z);
    let b1 = b.bin(BinaryOp::Add, a1, x);
    let b2 = b.bin(BinaryOp::Add, a2, x);
    let zero = b.fill(0.0, f32t(&[2, 3]));
    let neg_zero = b.fill(-0.0, f32t(&[2, 3]));
    let zero2 = b.fill(0.0, f32t(&[2, 3]));
    let c1 = b.bin(BinaryOp::Mul, b1, zero);
    let c2 = b.bin(BinaryOp::Mul, b2, neg_zero);
    let c3 = b.bin(BinaryOp::Mul, b2, zero2);
    let r1 = b.add(
        Op::Random {
            dist: Distribution::Uniform,
            stream: 1,
        },
        &[seed],
        Some(f32t(&[2, 3])),
    );
    let r2 = b.add(
        Op::Random {
            dist: Distribution::Uniform,
            stream: 1,
        },
        &[seed],
        Some(f32t(&[2, 3])),
    );
    let r3 = b.add(
        Op::Random {
            dist: Distribution::Uniform,
            stream: 2,
        },
        &[seed],
        Some(f32t(&[2, 3])),
    );
    let s1 = b.bin(BinaryOp::Add, r1, r2);
    let s2 = b.bin(BinaryOp::Add, s1, r3);
    let s3 = b.bin(BinaryOp::Add, s2, ez);
    b.g.set_output("c1", c1);
    b.g.set_output("c2", c2);
    b.g.set_output("c3", c3);
    b.g.set_output("r", s3);
    check_pass(
        &b.g,
        cse::run,
        5,
        "%0 = input[x, Data] : f32[2, 3]  @1..2\n\
         %1 = input[z, Data] : f32[2, 3]  @2..3\n\
         %2 = input[seed, Data] : i64[]  @3..4\n\
         %3 = exp(%0) : f32[2, 3]  @4..5\n\
         %4 = exp(%1) : f32[2, 3]  @6..7\n\
         %5 = add(%3, %0) : f32[2, 3]  @7..8\n\
         %6 = fill[0.0] : f32[2, 3]  @9..10\n\
         %7 = fill[-0.0] : f32[2, 3]  @10..11\n\
         %8 = mul(%5, %6) : f32[2, 3]  @12..13\n\
         %9 = mul(%5, %7) : f32[2, 3]  @13..14\n\
         %10 = random[Uniform, stream=1](%2) : f32[2, 3]  @15..16\n\
         %11 = random[Uniform, stream=2](%2) : f32[2, 3]  @17..18\n\
         %12 = add(%10, %10) : f32[2, 3]  @18..19\n\
         %13 = add(%12, %11) : f32[2, 3]  @19..20\n\
         %14 = add(%13, %4) : f32[2, 3]  @20..21\n\
         output c1 = %8\n\
         output c2 = %9\n\
         output c3 = %8\n\
         output r = %14\n",
    );
}

#[test]
fn fold_turns_constant_expressions_into_fills() {
    let mut b = Builder::new();
    let x = b.input("x", f32t(&[2, 3]));
    let two = b.fill(2.0, f32t(&[3]));
    let three = b.fill(3.0, f32t(&[3]));
    let six = b.bin(BinaryOp::Mul, two, three);
    let wide = b.broadcast(six, &[2, 3]);
    let total = b.reduce(ReduceOp::Sum, wide, &[0, 1]);
    let biggest = b.reduce(ReduceOp::Max, wide, &[0]);
    let zero = b.fill(0.0, f32t(&[]));
    let one = b.un(UnaryOp::Exp, zero);
    // exp(1) and erf(1) are not f32 values: folding would pick one rounding and change what
    // the f64 mode computes, so they stay.
    let e = b.un(UnaryOp::Exp, one);
    let erf = b.un(UnaryOp::Erf, one);
    // 1 + 2^-23 is an f32, but 3 + 3 * 2^-23 is not: summing it element by element rounds.
    let odd = b.fill(1.0 + f64::from(f32::EPSILON), f32t(&[]));
    let odd_wide = b.broadcast(odd, &[4]);
    let inexact_sum = b.reduce(ReduceOp::Sum, odd_wide, &[0]);
    let tiny = b.fill(1e-300, f32t(&[]));
    let tiny_sum = b.bin(BinaryOp::Add, tiny, zero);
    let minus = b.fill(-1.5, f32t(&[2, 3]));
    let r = b.un(UnaryOp::Relu, minus);
    let t = b.transpose(minus, &[1, 0]);
    let int = b.add(Op::Cast { to: DType::I64 }, &[t], None);
    let scaled = b.bin(BinaryOp::Mul, x, wide);
    let shifted = b.bin(BinaryOp::Add, scaled, r);
    let big = b.reduce(ReduceOp::Sum, x, &[0]);
    let nan = b.fill(f64::NAN, f32t(&[3]));
    let kept = b.bin(BinaryOp::Max, nan, biggest);
    b.g.set_output("y", shifted);
    b.g.set_output("total", total);
    b.g.set_output("e", e);
    b.g.set_output("erf", erf);
    b.g.set_output("int", int);
    b.g.set_output("big", big);
    b.g.set_output("kept", kept);
    b.g.set_output("inexact_sum", inexact_sum);
    b.g.set_output("tiny_sum", tiny_sum);
    let after = check_pass(
        &b.g,
        fold::run,
        9,
        "%0 = input[x, Data] : f32[2, 3]  @1..2\n\
         %1 = fill[2.0] : f32[3]  @2..3\n\
         %2 = fill[3.0] : f32[3]  @3..4\n\
         %3 = fill[6.0] : f32[3]  @4..5\n\
         %4 = fill[6.0] : f32[2, 3]  @5..6\n\
         %5 = fill[36.0] : f32[]  @6..7\n\
         %6 = fill[6.0] : f32[3]  @7..8\n\
         %7 = fill[0.0] : f32[]  @8..9\n\
         %8 = fill[1.0] : f32[]  @9..10\n\
         %9 = exp(%8) : f32[]  @10..11\n\
         %10 = erf(%8) : f32[]  @11..12\n\
         %11 = fill[1.0000001192092896] : f32[]  @12..13\n\
         %12 = fill[1.0000001192092896] : f32[4]  @13..14\n\
         %13 = reduce_sum[axes=[0]](%12) : f32[]  @14..15\n\
         %14 = fill[1e-300] : f32[]  @15..16\n\
         %15 = add(%14, %7) : f32[]  @16..17\n\
         %16 = fill[-1.5] : f32[2, 3]  @17..18\n\
         %17 = fill[0.0] : f32[2, 3]  @18..19\n\
         %18 = fill[-1.5] : f32[3, 2]  @19..20\n\
         %19 = fill[-1.0] : i64[3, 2]  @20..21\n\
         %20 = mul(%0, %4) : f32[2, 3]  @21..22\n\
         %21 = add(%20, %17) : f32[2, 3]  @22..23\n\
         %22 = reduce_sum[axes=[0]](%0) : f32[3]  @23..24\n\
         %23 = fill[NaN] : f32[3]  @24..25\n\
         %24 = max(%23, %6) : f32[3]  @25..26\n\
         output y = %21\n\
         output total = %5\n\
         output e = %9\n\
         output erf = %10\n\
         output int = %19\n\
         output big = %22\n\
         output kept = %24\n\
         output inexact_sum = %13\n\
         output tiny_sum = %15\n",
    );
    assert_eq!(
        fold::run(&mut after.clone()),
        0,
        "fold reaches a fixpoint in one run"
    );
}

#[test]
fn simplify_removes_identities_and_merges_layout_chains() {
    let mut b = Builder::new();
    let x = b.input("x", f32t(&[2, 3]));
    let one = b.fill(1.0, f32t(&[2, 3]));
    let zero = b.fill(0.0, f32t(&[2, 3]));
    let a = b.bin(BinaryOp::Mul, x, one);
    let c = b.bin(BinaryOp::Mul, one, a);
    let d = b.bin(BinaryOp::Add, c, zero);
    let e = b.bin(BinaryOp::Add, zero, d);
    let f = b.bin(BinaryOp::Sub, e, zero);
    let g = b.bin(BinaryOp::Div, f, one);
    let n1 = b.un(UnaryOp::Neg, g);
    let n2 = b.un(UnaryOp::Neg, n1);
    let t1 = b.transpose(n2, &[1, 0]);
    let t2 = b.transpose(t1, &[1, 0]);
    let times_zero = b.bin(BinaryOp::Mul, t2, zero);
    let r1 = b.reshape(x, &[3, 2]);
    let r2 = b.reshape(r1, &[6]);
    let r3 = b.reshape(r2, &[2, 3]);
    let same = b.reshape(r3, &[2, 3]);
    let bc = b.broadcast(same, &[2, 3]);
    let red = b.reduce(ReduceOp::Sum, bc, &[]);
    let sg1 = b.add(Op::StopGradient, &[red], None);
    let sg2 = b.add(Op::StopGradient, &[sg1], None);
    let flat = b.reshape(x, &[3, 2]);
    let flat2 = b.reshape(flat, &[6]);
    let x3 = b.input("x3", f32t(&[2, 3, 4]));
    let p1 = b.transpose(x3, &[1, 2, 0]);
    let p2 = b.transpose(p1, &[0, 2, 1]);
    let b1 = b.broadcast(x, &[1, 2, 3]);
    let b2 = b.broadcast(b1, &[4, 2, 3]);
    b.g.set_output("identity", n2);
    b.g.set_output("times_zero", times_zero);
    b.g.set_output("chain", sg2);
    b.g.set_output("flat", flat2);
    b.g.set_output("perm", p2);
    b.g.set_output("wide", b2);
    let after = check_pass(
        &b.g,
        simplify::run,
        17,
        "%0 = input[x, Data] : f32[2, 3]  @1..2\n\
         %1 = fill[1.0] : f32[2, 3]  @2..3\n\
         %2 = fill[0.0] : f32[2, 3]  @3..4\n\
         %3 = neg(%0) : f32[2, 3]  @10..11\n\
         %4 = transpose[perm=[1, 0]](%0) : f32[3, 2]  @12..13\n\
         %5 = mul(%0, %2) : f32[2, 3]  @14..15\n\
         %6 = reshape(%0) : f32[3, 2]  @15..16\n\
         %7 = reshape(%0) : f32[6]  @16..17\n\
         %8 = stop_gradient(%0) : f32[2, 3]  @21..22\n\
         %9 = reshape(%0) : f32[3, 2]  @23..24\n\
         %10 = reshape(%0) : f32[6]  @24..25\n\
         %11 = input[x3, Data] : f32[2, 3, 4]  @25..26\n\
         %12 = transpose[perm=[1, 2, 0]](%11) : f32[3, 4, 2]  @26..27\n\
         %13 = transpose[perm=[1, 0, 2]](%11) : f32[3, 2, 4]  @27..28\n\
         %14 = broadcast(%0) : f32[1, 2, 3]  @28..29\n\
         %15 = broadcast(%0) : f32[4, 2, 3]  @29..30\n\
         output identity = %0\n\
         output times_zero = %5\n\
         output chain = %8\n\
         output flat = %10\n\
         output perm = %13\n\
         output wide = %15\n",
    );
    // Nothing is left to simplify; the pipeline then drops what became dead.
    assert_eq!(simplify::run(&mut after.clone()), 0);
    let mut optimized = b.g.clone();
    passes::optimize(&mut optimized);
    assert_eq!(
        text::dump(&optimized),
        "%0 = input[x, Data] : f32[2, 3]  @1..2\n\
         %1 = fill[0.0] : f32[2, 3]  @3..4\n\
         %2 = mul(%0, %1) : f32[2, 3]  @14..15\n\
         %3 = reshape(%0) : f32[6]  @16..17\n\
         %4 = stop_gradient(%0) : f32[2, 3]  @21..22\n\
         %5 = input[x3, Data] : f32[2, 3, 4]  @25..26\n\
         %6 = transpose[perm=[1, 0, 2]](%5) : f32[3, 2, 4]  @27..28\n\
         %7 = broadcast(%0) : f32[4, 2, 3]  @29..30\n\
         output identity = %0\n\
         output times_zero = %2\n\
         output chain = %4\n\
         output flat = %3\n\
         output perm = %6\n\
         output wide = %7\n"
    );
    assert_same_semantics(&b.g, &optimized, 11, "optimize");
}

#[test]
fn simplify_leaves_rewrites_that_change_types() {
    // `x * 1` where `1` is a fill: equal types always (binary ops need them). A transpose pair
    // that does not cancel keeps its (composed) permutation; `x * 0` stays (NaN and inf).
    let mut b = Builder::new();
    let x = b.input("x", f32t(&[2, 3]));
    let zero = b.fill(0.0, f32t(&[2, 3]));
    let two = b.fill(2.0, f32t(&[2, 3]));
    let m = b.bin(BinaryOp::Mul, x, zero);
    let n = b.bin(BinaryOp::Mul, two, m);
    let s = b.bin(BinaryOp::Sub, zero, n);
    b.g.set_output("y", s);
    let mut after = b.g.clone();
    assert_eq!(simplify::run(&mut after), 0);
}

/// The gradients of four slices of one tensor (an LSTM's gates), each zero-padded back to the
/// whole width and summed, become one concat of the four; a sum whose values overlap stays.
#[test]
fn simplify_turns_sums_of_padded_slices_into_one_concat() {
    let mut b = Builder::new();
    let parts: Vec<NodeId> = (0..4)
        .map(|i| b.input(&format!("d{i}"), f32t(&[2, 3])))
        .collect();
    let padded: Vec<NodeId> = (0..4)
        .map(|i| {
            let mut blocks = Vec::new();
            if i > 0 {
                blocks.push(b.fill(0.0, f32t(&[2, 3 * i])));
            }
            blocks.push(parts[i]);
            if i < 3 {
                blocks.push(b.fill(0.0, f32t(&[2, 3 * (3 - i)])));
            }
            b.add(Op::Concat { axis: 1 }, &blocks, None)
        })
        .collect();
    let s1 = b.bin(BinaryOp::Add, padded[0], padded[1]);
    let s2 = b.bin(BinaryOp::Add, s1, padded[2]);
    let s3 = b.bin(BinaryOp::Add, s2, padded[3]);
    // Overlapping: d0 padded right plus a full-width value.
    let whole = b.input("whole", f32t(&[2, 12]));
    let overlap = b.bin(BinaryOp::Add, padded[0], whole);
    b.g.set_output("sum", s3);
    b.g.set_output("overlap", overlap);
    let mut after = b.g.clone();
    assert_eq!(simplify::run(&mut after), 3);
    let sum = after.output("sum").unwrap();
    assert_eq!(after.node(sum).op, Op::Concat { axis: 1 });
    assert_eq!(after.operands(sum), parts);
    let overlap = after.output("overlap").unwrap();
    assert_eq!(after.node(overlap).op, Op::Binary(BinaryOp::Add));
    assert_well_typed(&after);
    assert_same_semantics(&b.g, &after, 5, "padded sums");
}

#[test]
fn optimize_cleans_a_backward_style_graph() {
    // What autodiff produces for y = sum(x * w): a seed of ones, a multiply by ones, a reshape
    // of a reshape, a broadcast, and the same broadcast built twice.
    let mut b = Builder::new();
    let x = b.input("x", f32t(&[2, 3]));
    let w = b.input("w", f32t(&[2, 3]));
    let xw = b.bin(BinaryOp::Mul, x, w);
    let y = b.reduce(ReduceOp::Sum, xw, &[0, 1]);
    let seed = b.fill(1.0, f32t(&[]));
    let ones = b.fill(1.0, f32t(&[]));
    let g = b.bin(BinaryOp::Mul, seed, ones);
    let r1 = b.reshape(g, &[1, 1]);
    let r2 = b.reshape(r1, &[1, 1]);
    let gx = b.broadcast(r2, &[2, 3]);
    let gx2 = b.broadcast(r2, &[2, 3]);
    let dw = b.bin(BinaryOp::Mul, gx, x);
    let dx = b.bin(BinaryOp::Mul, gx2, w);
    let lr = b.input("lr", f32t(&[]));
    let lr_wide = b.broadcast(lr, &[2, 3]);
    let step = b.bin(BinaryOp::Mul, lr_wide, dw);
    let w_new = b.bin(BinaryOp::Sub, w, step);
    b.g.set_output("loss", y);
    b.g.set_output("dx", dx);
    b.g.set_update("w_new", w_new, "w");
    let before = b.g.node_count();
    let mut after = b.g.clone();
    let stats = passes::optimize(&mut after);
    assert_eq!(
        stats.iter().map(|s| s.0).collect::<Vec<_>>(),
        ["simplify", "fold", "cse", "dce"]
    );
    assert_eq!(
        text::dump(&after),
        "%0 = input[x, Data] : f32[2, 3]  @1..2\n\
         %1 = input[w, Data] : f32[2, 3]  @2..3\n\
         %2 = mul(%0, %1) : f32[2, 3]  @3..4\n\
         %3 = reduce_sum[axes=[0, 1]](%2) : f32[]  @4..5\n\
         %4 = input[lr, Data] : f32[]  @14..15\n\
         %5 = broadcast(%4) : f32[2, 3]  @15..16\n\
         %6 = mul(%5, %0) : f32[2, 3]  @16..17\n\
         %7 = sub(%1, %6) : f32[2, 3]  @17..18\n\
         output loss = %3\n\
         output dx = %1\n\
         update w_new = %7 -> w\n"
    );
    assert!(after.node_count() < before);
    assert_well_typed(&after);
    assert_same_semantics(&b.g, &after, 3, "optimize");
    assert!(
        passes::optimize(&mut after).iter().all(|s| s.1 == 0),
        "optimize reaches a fixpoint"
    );
}

#[test]
fn passes_recurse_into_scan_bodies() {
    // body(carry0 [3], x0 [3], const0 [3]) -> (stop_gradient(stop_gradient(tanh(carry0 + x0 * 1))),
    //                                          (carry0 + x0 * 1) * const0), with duplicates.
    let body = |b: &mut Builder| -> Graph {
        let mut s = Builder {
            g: Graph::new(),
            next_span: b.next_span,
        };
        let carry = s.input("carry0", f32t(&[3]));
        let x = s.input("x0", f32t(&[3]));
        let c = s.input("const0", f32t(&[3]));
        let one = s.fill(1.0, f32t(&[3]));
        let a = s.bin(BinaryOp::Mul, x, one);
        let sum = s.bin(BinaryOp::Add, carry, a);
        let sum2 = s.bin(BinaryOp::Add, carry, a);
        let t = s.un(UnaryOp::Tanh, sum);
        let _dead = s.un(UnaryOp::Exp, x);
        let sg1 = s.add(Op::StopGradient, &[t], None);
        let sg2 = s.add(Op::StopGradient, &[sg1], None);
        let y = s.bin(BinaryOp::Mul, sum2, c);
        s.g.set_output("carry0", sg2);
        s.g.set_output("y0", y);
        b.next_span = s.next_span;
        s.g
    };
    let mut b = Builder::new();
    let h0 = b.input("h0", f32t(&[3]));
    let xs = b.input("xs", f32t(&[4, 3]));
    let w = b.input("w", f32t(&[3]));
    let scan = |body: Graph| {
        Op::Scan(Box::new(Scan {
            body,
            length: 4,
            reverse: false,
            carries: 1,
            xs: 1,
            consts: 1,
        }))
    };
    let body1 = body(&mut b);
    let s1 = b.add(scan(body1.clone()), &[h0, xs, w], Some(f32t(&[3])));
    let s2 = b.add(scan(body1), &[h0, xs, w], Some(f32t(&[3])));
    let h = b.add(Op::Project { index: 0 }, &[s1], Some(f32t(&[3])));
    let ys = b.add(Op::Project { index: 1 }, &[s2], Some(f32t(&[4, 3])));
    let ys2 = b.add(Op::Project { index: 1 }, &[s1], Some(f32t(&[4, 3])));
    let total = b.bin(BinaryOp::Add, ys, ys2);
    b.g.set_output("h", h);
    b.g.set_output("ys", total);
    let mut after = b.g.clone();
    let stats = passes::optimize(&mut after);
    let changed: usize = stats.iter().map(|s| s.1).sum();
    assert!(changed > 0);
    assert_eq!(
        text::dump(&after),
        "%0 = input[h0, Data] : f32[3]  @1..2\n\
         %1 = input[xs, Data] : f32[4, 3]  @2..3\n\
         %2 = input[w, Data] : f32[3]  @3..4\n\
         %3 = scan[length=4, reverse=false, carries=1, xs=1, consts=1](%0, %1, %2) : f32[3]  @16..17\n\
         \x20 body {\n\
         \x20   %0 = input[carry0, Data] : f32[3]  @4..5\n\
         \x20   %1 = input[x0, Data] : f32[3]  @5..6\n\
         \x20   %2 = input[const0, Data] : f32[3]  @6..7\n\
         \x20   %3 = add(%0, %1) : f32[3]  @9..10\n\
         \x20   %4 = tanh(%3) : f32[3]  @11..12\n\
         \x20   %5 = stop_gradient(%4) : f32[3]  @13..14\n\
         \x20   %6 = mul(%3, %2) : f32[3]  @15..16\n\
         \x20   output carry0 = %5\n\
         \x20   output y0 = %6\n\
         \x20 }\n\
         %4 = project[0](%3) : f32[3]  @18..19\n\
         %5 = project[1](%3) : f32[4, 3]  @19..20\n\
         %6 = add(%5, %5) : f32[4, 3]  @21..22\n\
         output h = %4\n\
         output ys = %6\n"
    );
    assert_well_typed(&after);
    assert_same_semantics(&b.g, &after, 5, "optimize");
}

#[test]
fn pipeline_lists_the_passes_in_order() {
    let names: Vec<&str> = passes::PIPELINE.iter().map(|p| p.0).collect();
    assert_eq!(names, ["simplify", "fold", "cse", "dce"]);
    let mut empty = Graph::new();
    assert_eq!(
        passes::optimize(&mut empty),
        vec![("simplify", 0), ("fold", 0), ("cse", 0), ("dce", 0)]
    );
}

// ---------------------------------------------------------------------------------------------
// Random graphs.

const SHAPES: &[&[usize]] = &[
    &[2, 3],
    &[3],
    &[3, 2],
    &[2, 1, 3],
    &[6],
    &[],
    &[2, 3, 2],
    &[1, 3],
    &[2, 3, 4],
    &[4, 6],
    &[2, 2, 2],
];
const CONSTANTS: &[f64] = &[0.0, 1.0, -1.0, 0.5, 2.0, -0.0, 1.5, -0.25, 3.0, 1.0, 0.0];

/// A random graph generator keeping, for each node made, a rough bound on its magnitude so
/// products never overflow (large values go through `tanh` before reuse).
struct Gen {
    b: Builder,
    rng: Rng,
    pool: Vec<(NodeId, f64)>,
    seed: Option<NodeId>,
}

impl Gen {
    fn ty(&self, n: NodeId) -> Type {
        self.b.g.ty(n).clone()
    }

    /// A random node of the pool, tamed when it may be large.
    fn operand(&mut self) -> (NodeId, f64) {
        // Prefer recent nodes, so graphs get deep.
        let len = self.pool.len();
        let i = if self.rng.chance(0.6) {
            len - 1 - self.rng.below(len.min(4))
        } else {
            self.rng.below(len)
        };
        let (n, bound) = self.pool[i];
        if bound > 50.0 {
            let t = self.b.un(UnaryOp::Tanh, n);
            self.pool.push((t, 1.0));
            (t, 1.0)
        } else {
            (n, bound)
        }
    }

    fn constant(&mut self) -> f64 {
        *self.rng.pick(CONSTANTS)
    }

    fn fill_like(&mut self, n: NodeId) -> (NodeId, f64) {
        let c = self.constant();
        let ty = self.ty(n);
        (self.b.fill(c, ty), c.abs())
    }

    /// A shape with the same number of elements as `shape`.
    fn same_size_shape(&mut self, shape: &[usize]) -> Vec<usize> {
        let numel: usize = shape.iter().product();
        let mut options: Vec<Vec<usize>> = SHAPES
            .iter()
            .filter(|s| s.iter().product::<usize>() == numel)
            .map(|s| s.to_vec())
            .collect();
        options.push(vec![numel]);
        options.push(vec![1, numel]);
        options.push(shape.to_vec());
        self.rng.pick(&options).clone()
    }

    fn step(&mut self) {
        let (a, ba) = self.operand();
        let ta = self.ty(a);
        let rank = ta.rank();
        let made: (NodeId, f64) = match self.rng.below(16) {
            0 => {
                let u = *self.rng.pick(&[
                    UnaryOp::Neg,
                    UnaryOp::Exp,
                    UnaryOp::Log,
                    UnaryOp::Sqrt,
                    UnaryOp::Tanh,
                    UnaryOp::Sigmoid,
                    UnaryOp::Relu,
                    UnaryOp::Erf,
                    UnaryOp::Abs,
                    UnaryOp::Recip,
                ]);
                match u {
                    UnaryOp::Exp => {
                        let t = self.b.un(UnaryOp::Tanh, a);
                        (self.b.un(u, t), 3.0)
                    }
                    UnaryOp::Sqrt => {
                        let t = self.b.un(UnaryOp::Abs, a);
                        (self.b.un(u, t), ba.sqrt() + 1.0)
                    }
                    UnaryOp::Log | UnaryOp::Recip => {
                        let t = self.b.un(UnaryOp::Abs, a);
                        let one = self.b.fill(1.0, ta.clone());
                        let p = self.b.bin(BinaryOp::Add, t, one);
                        (self.b.un(u, p), ba + 1.0)
                    }
                    UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Erf => (self.b.un(u, a), 1.0),
                    _ => (self.b.un(u, a), ba),
                }
            }
            1 | 2 => {
                // Binary with a partner of the same type: another node, itself, or a fill.
                let partners: Vec<(NodeId, f64)> = self
                    .pool
                    .iter()
                    .copied()
                    .filter(|&(n, bound)| self.b.g.ty(n) == &ta && bound <= 50.0)
                    .collect();
                let (c, bc) = if !partners.is_empty() && self.rng.chance(0.7) {
                    *self.rng.pick(&partners)
                } else {
                    self.fill_like(a)
                };
                let (x, y) = if self.rng.chance(0.5) { (a, c) } else { (c, a) };
                match *self.rng.pick(&[
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Div,
                    BinaryOp::Max,
                    BinaryOp::Min,
                    BinaryOp::Greater,
                ]) {
                    BinaryOp::Div => {
                        let t = self.b.un(UnaryOp::Abs, y);
                        let one = self.b.fill(1.0, ta.clone());
                        let d = self.b.bin(BinaryOp::Add, t, one);
                        (self.b.bin(BinaryOp::Div, x, d), ba.max(bc))
                    }
                    BinaryOp::Mul => (self.b.bin(BinaryOp::Mul, x, y), ba * bc),
                    BinaryOp::Greater => (self.b.bin(BinaryOp::Greater, x, y), 1.0),
                    op => (self.b.bin(op, x, y), ba + bc),
                }
            }
            3 => {
                // Identity-like binary with a constant 0 or 1 (or another constant).
                let c = *self.rng.pick(&[0.0, 1.0, 1.0, 0.0, -0.0, 2.0]);
                let f = self.b.fill(c, ta.clone());
                let op =
                    *self
                        .rng
                        .pick(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div]);
                let op = if op == BinaryOp::Div && c == 0.0 {
                    BinaryOp::Mul
                } else {
                    op
                };
                let (x, y) = if self.rng.chance(0.5) && op != BinaryOp::Div {
                    (f, a)
                } else {
                    (a, f)
                };
                (self.b.bin(op, x, y), ba * 2.0 + 2.0)
            }
            4 => {
                let s = self.same_size_shape(&ta.shape);
                let r = self.b.reshape(a, &s);
                if self.rng.chance(0.5) {
                    let s2 = self.same_size_shape(&s);
                    (self.b.reshape(r, &s2), ba)
                } else {
                    (r, ba)
                }
            }
            5 => {
                let perm = self.permutation(rank);
                let t = self.b.transpose(a, &perm);
                if self.rng.chance(0.6) {
                    let mut inverse = vec![0; rank];
                    for (i, &p) in perm.iter().enumerate() {
                        inverse[p] = i;
                    }
                    let q = if self.rng.chance(0.3) {
                        inverse
                    } else {
                        self.permutation(rank)
                    };
                    (self.b.transpose(t, &q), ba)
                } else {
                    (t, ba)
                }
            }
            6 => {
                let mut shape: Vec<usize> = ta
                    .shape
                    .iter()
                    .map(|&d| if d == 1 { 2 } else { d })
                    .collect();
                if self.rng.chance(0.5) && rank < 4 {
                    shape.insert(0, 2);
                }
                if self.rng.chance(0.2) {
                    shape = ta.shape.clone();
                }
                let bc = self.b.broadcast(a, &shape);
                if self.rng.chance(0.3) && shape.len() < 4 {
                    let mut wider = shape.clone();
                    wider.insert(0, 2);
                    (self.b.broadcast(bc, &wider), ba)
                } else {
                    (bc, ba)
                }
            }
            7 => {
                let axes: Vec<usize> = (0..rank).filter(|_| self.rng.chance(0.5)).collect();
                let op = if self.rng.chance(0.6) {
                    ReduceOp::Sum
                } else {
                    ReduceOp::Max
                };
                (self.b.reduce(op, a, &axes), ba * ta.numel().max(1) as f64)
            }
            8 if rank >= 2 => {
                // a @ a^T or a^T @ a: always well-typed.
                let ta_flag = self.rng.chance(0.5);
                let k = if ta_flag {
                    ta.shape[rank - 2]
                } else {
                    ta.shape[rank - 1]
                };
                let m = self.b.add(
                    Op::MatMul {
                        ta: ta_flag,
                        tb: !ta_flag,
                    },
                    &[a, a],
                    None,
                );
                (m, ba * ba * k as f64)
            }
            9 => {
                // Duplicate an existing non-input node exactly.
                let candidates: Vec<(NodeId, f64)> = self
                    .pool
                    .iter()
                    .copied()
                    .filter(|&(n, _)| !matches!(self.b.g.node(n).op, Op::Input { .. }))
                    .collect();
                if candidates.is_empty() {
                    return;
                }
                let (n, bound) = *self.rng.pick(&candidates);
                (self.duplicate(n), bound)
            }
            10 => {
                // A constant expression, folded, then combined with `a`.
                let shape = self.rng.pick(SHAPES).to_vec();
                let (c1, c2) = (self.constant(), self.constant());
                let f1 = self.b.fill(c1, f32t(&shape));
                let f2 = self.b.fill(c2, f32t(&shape));
                let op =
                    *self
                        .rng
                        .pick(&[BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub, BinaryOp::Max]);
                let mut c = self.b.bin(op, f1, f2);
                if self.rng.chance(0.5) {
                    let u = *self.rng.pick(&[
                        UnaryOp::Exp,
                        UnaryOp::Tanh,
                        UnaryOp::Neg,
                        UnaryOp::Erf,
                        UnaryOp::Sigmoid,
                    ]);
                    c = self.b.un(u, c);
                }
                let numel: usize = shape.iter().product();
                let summed = if self.rng.chance(0.5) && !shape.is_empty() {
                    let s = self.b.reduce(ReduceOp::Sum, c, &[0]);
                    self.b.reshape(s, &[numel / shape[0]])
                } else {
                    self.b.reshape(c, &[numel])
                };
                // Bring the constant to `a`'s type through a scalar.
                let scalar = self.b.reduce(ReduceOp::Max, summed, &[0]);
                let wide = self.b.broadcast(scalar, &ta.shape);
                (self.b.bin(BinaryOp::Add, a, wide), ba + 30.0)
            }
            11 => {
                let gt = self.fill_like(a).0;
                let cond = self.b.bin(BinaryOp::Greater, a, gt);
                let (other, bo) = self.fill_like(a);
                let (x, y) = if self.rng.chance(0.5) {
                    (a, other)
                } else {
                    (other, a)
                };
                let y = if self.rng.chance(0.2) { x } else { y };
                (self.b.add(Op::Select, &[cond, x, y], None), ba.max(bo))
            }
            12 => {
                let n1 = self.b.un(UnaryOp::Neg, a);
                let n2 = self.b.un(UnaryOp::Neg, n1);
                let s1 = self.b.add(Op::StopGradient, &[n2], None);
                if self.rng.chance(0.5) {
                    (self.b.add(Op::StopGradient, &[s1], None), ba)
                } else {
                    (self.b.add(Op::Cast { to: DType::F32 }, &[s1], None), ba)
                }
            }
            13 if rank >= 1 => {
                let axis = self.rng.below(rank);
                let dim = ta.shape[axis];
                let s = if self.rng.chance(0.5) || dim < 2 {
                    self.b.add(
                        Op::Slice {
                            axis,
                            start: 0,
                            len: dim,
                        },
                        &[a],
                        None,
                    )
                } else {
                    self.b.add(
                        Op::Slice {
                            axis,
                            start: 1,
                            len: dim - 1,
                        },
                        &[a],
                        None,
                    )
                };
                let parts = if self.rng.chance(0.5) {
                    vec![s]
                } else {
                    vec![s, s]
                };
                (self.b.add(Op::Concat { axis }, &parts, None), ba)
            }
            14 => {
                // Integer round trip: truncation through i64 and back.
                let i = self.b.add(Op::Cast { to: DType::I64 }, &[a], None);
                (self.b.add(Op::Cast { to: DType::F32 }, &[i], None), ba)
            }
            15 => {
                // Dropout-like masks: equal streams merge, different streams do not.
                let seed = match self.seed {
                    Some(s) => s,
                    None => {
                        let s = self.b.input("seed", Type::i64(vec![]));
                        self.seed = Some(s);
                        s
                    }
                };
                let stream = self.rng.below(2) as u64;
                let r = self.b.add(
                    Op::Random {
                        dist: Distribution::Uniform,
                        stream,
                    },
                    &[seed],
                    Some(ta.clone()),
                );
                let half = self.b.fill(0.5, ta.clone());
                let mask = self.b.bin(BinaryOp::Greater, r, half);
                (self.b.bin(BinaryOp::Mul, a, mask), ba)
            }
            _ => return,
        };
        self.pool.push(made);
    }

    /// A uniformly random permutation of `0..rank`.
    fn permutation(&mut self, rank: usize) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() {
            let j = self.rng.below(i + 1);
            perm.swap(i, j);
        }
        perm
    }

    /// The same op on the same operands again.
    fn duplicate(&mut self, n: NodeId) -> NodeId {
        let node = self.b.g.node(n).clone();
        let operands = self.b.g.operands(n);
        self.b.add(node.op, &operands, Some(node.ty))
    }
}

/// A random well-typed graph with at least one duplicated subexpression reaching an output.
fn random_graph(seed: u64) -> Graph {
    let mut rng = Rng(seed);
    let mut maker = Gen {
        b: Builder::new(),
        rng: Rng(rng.next()),
        pool: Vec::new(),
        seed: None,
    };
    let inputs = 2 + rng.below(3);
    for i in 0..inputs {
        let shape = rng.pick(SHAPES).to_vec();
        let x = maker.b.input(&format!("x{i}"), f32t(&shape));
        maker.pool.push((x, 2.0));
    }
    let steps = 6 + rng.below(25);
    for _ in 0..steps {
        maker.step();
    }
    // Guaranteed redundancy: the last non-input node, built twice and added.
    let last = maker
        .pool
        .iter()
        .rev()
        .map(|&(n, _)| n)
        .find(|&n| !matches!(maker.b.g.node(n).op, Op::Input { .. }));
    let last = match last {
        Some(n) => n,
        None => maker.b.un(UnaryOp::Tanh, maker.pool[0].0),
    };
    let again = maker.duplicate(last);
    let out = maker.b.bin(BinaryOp::Add, last, again);
    maker.b.g.set_output("main", out);
    // Most nodes reach an output (so the comparison sees them); a few are left dead.
    let sinks: Vec<NodeId> = maker
        .pool
        .iter()
        .map(|p| p.0)
        .filter(|&n| {
            maker.b.g.users(n).is_empty() && !matches!(maker.b.g.node(n).op, Op::Input { .. })
        })
        .collect();
    for (k, &n) in sinks.iter().enumerate() {
        if rng.chance(0.8) {
            maker.b.g.set_output(&format!("sink{k}"), n);
        }
    }
    // An update output where some node has an input's type.
    let input_nodes = maker.b.g.inputs();
    let target = input_nodes
        .iter()
        .copied()
        .find(|&i| maker.b.g.ty(i).dtype == DType::F32);
    if let Some(i) = target {
        let ty = maker.b.g.ty(i).clone();
        let same: Vec<NodeId> = maker
            .pool
            .iter()
            .map(|p| p.0)
            .filter(|&n| maker.b.g.ty(n) == &ty)
            .collect();
        let Op::Input { name, .. } = maker.b.g.node(i).op.clone() else {
            unreachable!()
        };
        let n = *rng.pick(&same);
        maker.b.g.set_update(&format!("{name}_new"), n, &name);
    }
    maker.b.g
}

#[test]
fn random_graphs_keep_their_meaning() {
    let mut fired = [0usize; 4];
    for seed in 0..300u64 {
        let graph = random_graph(seed);
        assert_well_typed(&graph);
        // Each pass alone.
        for (i, &(name, pass)) in passes::PIPELINE.iter().enumerate() {
            let mut after = graph.clone();
            let n = pass(&mut after);
            fired[i] += n;
            assert_well_typed(&after);
            if n == 0 {
                assert_eq!(
                    text::dump(&after),
                    text::dump(&graph),
                    "{name} changed the graph but reported 0"
                );
            }
            assert_same_semantics(&graph, &after, seed, &format!("seed {seed}, {name} alone"));
        }
        // The whole pipeline.
        let mut after = graph.clone();
        let stats = passes::optimize(&mut after);
        assert_well_typed(&after);
        assert_same_semantics(
            &graph,
            &after,
            seed ^ 0xabc,
            &format!("seed {seed}, optimize"),
        );
        assert!(
            after.node_count() < graph.node_count(),
            "seed {seed}: optimize did not shrink a redundant graph ({stats:?})\n{}",
            text::dump(&graph)
        );
        let again = passes::optimize(&mut after.clone());
        assert!(
            again.iter().all(|s| s.1 == 0),
            "seed {seed}: no fixpoint after optimize: {again:?}"
        );
        // Inputs are the interface: all kept.
        assert_eq!(after.inputs().len(), graph.inputs().len());
    }
    assert!(
        fired.iter().all(|&n| n > 100),
        "every pass fires often: {fired:?}"
    );
}
