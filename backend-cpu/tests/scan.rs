//! `Scan` on the native path (a nested compiled body) against the reference interpreter, forward
//! and reversed, on random data: final carries and the stacked, aligned per-step outputs.

mod common;

use common::{Rng, load, random_inputs, reference, rel_l2};
use netc_backend_cpu::CompiledStep;
use netc_backend_cpu::kernel::Kernel;
use netc_compiler::ir::{BinaryOp, Graph, NodeId, Op, Role, Scan, Type, UnaryOp};
use netc_grammar::Span;

fn add(g: &mut Graph, op: Op, operands: &[NodeId], ty: Option<Type>) -> NodeId {
    g.add(op, operands, ty, Span::default())
        .unwrap_or_else(|e| panic!("{}", e.message))
}

/// A body over `carry0` `[b, h]` (h), `carry1` `[b, h]` (a running sum), `x0` `[b, h]`,
/// `const0` `[h, h]`: `h' = tanh(h W + x)`, `s' = s + h'`, ys `h'` and `x` (an input as an
/// output).
fn body(b: usize, h: usize) -> Graph {
    let mut g = Graph::new();
    let sp = Span::default();
    let c0 = g.input("carry0", Role::Data, Type::f32(vec![b, h]), sp);
    let c1 = g.input("carry1", Role::Data, Type::f32(vec![b, h]), sp);
    let x = g.input("x0", Role::Data, Type::f32(vec![b, h]), sp);
    let w = g.input("const0", Role::Data, Type::f32(vec![h, h]), sp);
    let mm = add(
        &mut g,
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[c0, w],
        None,
    );
    let pre = add(&mut g, Op::Binary(BinaryOp::Add), &[mm, x], None);
    let hn = add(&mut g, Op::Unary(UnaryOp::Tanh), &[pre], None);
    let s = add(&mut g, Op::Binary(BinaryOp::Add), &[c1, hn], None);
    g.set_output("h", hn);
    g.set_output("s", s);
    g.set_output("y0", hn);
    g.set_output("y1", x);
    g
}

fn scan_graph(reverse: bool) -> Graph {
    let (t, b, h) = (7, 3, 5);
    let mut g = Graph::new();
    let sp = Span::default();
    let h0 = g.input("h0", Role::Data, Type::f32(vec![b, h]), sp);
    let s0 = g.input("s0", Role::Data, Type::f32(vec![b, h]), sp);
    let xs = g.input("xs", Role::Data, Type::f32(vec![t, b, h]), sp);
    let w = g.input("w", Role::Data, Type::f32(vec![h, h]), sp);
    let scan = Scan {
        body: body(b, h),
        length: t,
        reverse,
        carries: 2,
        xs: 1,
        consts: 1,
    };
    let state = Type::f32(vec![b, h]);
    let node = add(
        &mut g,
        Op::Scan(Box::new(scan)),
        &[h0, s0, xs, w],
        Some(state.clone()),
    );
    let seq = Type::f32(vec![t, b, h]);
    // Projections out of order, one carry left unused.
    let ys1 = add(&mut g, Op::Project { index: 3 }, &[node], Some(seq.clone()));
    let last_s = add(&mut g, Op::Project { index: 1 }, &[node], Some(state));
    let ys0 = add(&mut g, Op::Project { index: 2 }, &[node], Some(seq));
    g.set_output("ys1", ys1);
    g.set_output("last_s", last_s);
    g.set_output("ys0", ys0);
    g
}

fn check(reverse: bool) {
    let g = scan_graph(reverse);
    let mut rng = Rng(if reverse { 11 } else { 5 });
    let inputs = random_inputs(&g, &mut rng, 1.0);
    let want = reference(&g, &inputs);
    let mut step = CompiledStep::compile(&g).unwrap();
    assert!(
        step.program()
            .kernels
            .iter()
            .any(|k| matches!(k, Kernel::Fallback { what, .. } if what.starts_with("scan"))),
        "the scan is one kernel"
    );
    load(&mut step, &inputs);
    // Twice: the second run must not see state left by the first.
    for _ in 0..2 {
        step.run().unwrap();
        for name in ["ys1", "last_s", "ys0"] {
            let got = step.output(name).unwrap();
            let w: Vec<f32> = match &want[name].data {
                netc_compiler::ir::interp::Data::F(d) => d.iter().map(|&x| x as f32).collect(),
                netc_compiler::ir::interp::Data::I(_) => unreachable!(),
            };
            let err = rel_l2(&got, &w);
            assert!(err < 1e-5, "{name} (reverse {reverse}): rel l2 {err}");
        }
    }
}

#[test]
fn forward_scan_matches_interpreter() {
    check(false);
}

#[test]
fn reversed_scan_matches_interpreter() {
    check(true);
}

/// A profile lists the scan's own time and each body kernel under it (`kN > ...`), and the
/// scan's line is its self time: at most the time measured around the whole run.
#[test]
fn profiles_time_the_body_under_the_scan() {
    let g = scan_graph(false);
    let inputs = random_inputs(&g, &mut Rng(3), 1.0);
    let mut step = CompiledStep::compile(&g).unwrap();
    load(&mut step, &inputs);
    step.set_profiling(true);
    let started = std::time::Instant::now();
    step.run().unwrap();
    let wall = started.elapsed();
    let profile = step.profile();
    let scan = profile
        .iter()
        .position(|(line, _)| line.contains("fallback") && line.contains("scan["))
        .expect("the scan's line");
    let prefix = format!("{} > ", profile[scan].0.split(' ').next().unwrap());
    let body: Vec<_> = profile
        .iter()
        .filter(|(l, _)| l.starts_with(&prefix))
        .collect();
    assert!(
        body.iter().any(|(l, _)| l.contains(" matmul ")),
        "{profile:#?}"
    );
    let total: std::time::Duration = profile.iter().map(|(_, t)| *t).sum();
    assert!(total <= wall, "{total:?} of kernels in a {wall:?} run");
    step.set_profiling(false);
    assert!(step.profile().is_empty());
}
