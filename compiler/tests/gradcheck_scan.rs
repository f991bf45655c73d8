//! Finite-difference checks of the gradient through `Scan`, and of the lowered recurrent and
//! attention layers end to end.
//!
//! Everything runs in the f64 interpreter: random inputs, a loss that is a random projection of
//! the outputs, gradients from autodiff, compared with central differences (relative L2 error
//! below 1e-6). The scans are checked forwards and reversed, through the initial carries, the
//! sequence inputs and the loop-invariant inputs, with the loss reading the final carries, the
//! stacked outputs or both. The layers are compiled from `.net` source as a training step (loss
//! `mse` against a random target), and the step's parameter gradients are checked.

use std::collections::HashMap;

use netc_compiler::ir::interp::{self, Precision, Value};
use netc_compiler::ir::{
    BinaryOp, DType, Graph, NodeId, Op, ReduceOp, Role, Scan, Type, UnaryOp, autodiff,
};
use netc_compiler::lower::program::compile_run;
use netc_grammar::Span;

const S: Span = Span { start: 0, end: 0 };

/// A small deterministic generator (xorshift) for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1].
    fn value(&mut self) -> f64 {
        self.next() * 2.0 - 1.0
    }

    fn values(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.value() * scale).collect()
    }
}

fn f(shape: &[usize]) -> Type {
    Type::f32(shape.to_vec())
}

fn add(g: &mut Graph, op: Op, operands: &[NodeId], ty: Option<Type>) -> NodeId {
    g.add(op, operands, ty, S).unwrap()
}

/// Relative L2 distance of `a` from `b`.
fn rel_l2(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    diff / norm
}

/// The loss of `graph` (output `loss`) at `values`, in f64.
fn loss_at(graph: &Graph, values: &HashMap<String, Value>) -> f64 {
    interp::run(graph, values, Precision::F64).unwrap()["loss"]
        .as_f64_slice()
        .unwrap()[0]
}

/// Compare the analytic gradient of input `name` with central differences (step `h`) of the
/// loss at up to `max_coords` coordinates (all of them when the input is that small, else an
/// evenly spread subset).
fn compare(
    graph: &Graph,
    values: &HashMap<String, Value>,
    name: &str,
    analytic: &[f64],
    max_coords: usize,
    h: f64,
) {
    let base = values[name].as_f64_slice().unwrap().to_vec();
    let shape = values[name].ty.shape.clone();
    let stride = base.len().div_ceil(max_coords).max(1);
    let coords: Vec<usize> = (0..base.len()).step_by(stride).collect();
    let mut numeric = Vec::new();
    for &k in &coords {
        let at = |delta: f64| {
            let mut v = base.clone();
            v[k] += delta;
            let mut vals = values.clone();
            vals.insert(name.to_string(), Value::from_f64(shape.clone(), v));
            loss_at(graph, &vals)
        };
        numeric.push((at(h) - at(-h)) / (2.0 * h));
    }
    let picked: Vec<f64> = coords.iter().map(|&k| analytic[k]).collect();
    let norm: f64 = numeric.iter().map(|n| n * n).sum::<f64>().sqrt();
    assert!(
        norm > 1e-8,
        "gradient of {name} is zero: the check would prove nothing"
    );
    let rel = rel_l2(&picked, &numeric);
    assert!(
        rel < 1e-6,
        "{name}: relative error {rel:e}\nanalytic {picked:?}\nnumeric  {numeric:?}"
    );
}

/// Which results of the test scan the loss reads.
#[derive(Clone, Copy, Debug)]
enum Reads {
    Final,
    Ys,
    Both,
}

/// `h' = tanh((h W + x_t + b) * k)` over `xs` `[T, B, H]` from `h0` `[B, H]`, with consts `W`
/// `[H, H]`, `b` `[H]` (adjoints summed after the loop as contractions over rows) and `k`
/// `[B, H]` (adjoint kept as a running sum); a second carry `s' = s + h' * x_t` (a running sum the first carry feeds),
/// and two per-step outputs `h'` and `h' * s`. The loss is a random projection of what `reads`
/// says.
fn scan_case(reverse: bool, reads: Reads, seed: u64) {
    let (t, b, h) = (4, 2, 3);
    let mut body = Graph::new();
    let hc = body.input("carry0", Role::Data, f(&[b, h]), S);
    let sc = body.input("carry1", Role::Data, f(&[b, h]), S);
    let x = body.input("x0", Role::Data, f(&[b, h]), S);
    let w = body.input("const0", Role::Data, f(&[h, h]), S);
    let bias = body.input("const1", Role::Data, f(&[h]), S);
    let k = body.input("const2", Role::Data, f(&[b, h]), S);
    let hw = add(
        &mut body,
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[hc, w],
        None,
    );
    let bb = add(&mut body, Op::Broadcast, &[bias], Some(f(&[b, h])));
    let pre = add(&mut body, Op::Binary(BinaryOp::Add), &[hw, x], None);
    let pre = add(&mut body, Op::Binary(BinaryOp::Add), &[pre, bb], None);
    let pre = add(&mut body, Op::Binary(BinaryOp::Mul), &[pre, k], None);
    let h_new = add(&mut body, Op::Unary(UnaryOp::Tanh), &[pre], None);
    let hx = add(&mut body, Op::Binary(BinaryOp::Mul), &[h_new, x], None);
    let s_new = add(&mut body, Op::Binary(BinaryOp::Add), &[sc, hx], None);
    let y1 = add(&mut body, Op::Binary(BinaryOp::Mul), &[h_new, sc], None);
    body.set_output("carry0", h_new);
    body.set_output("carry1", s_new);
    body.set_output("y0", h_new);
    body.set_output("y1", y1);

    let mut g = Graph::new();
    let names = ["h0", "s0", "xs", "w", "b", "k"];
    let types = [
        f(&[b, h]),
        f(&[b, h]),
        f(&[t, b, h]),
        f(&[h, h]),
        f(&[h]),
        f(&[b, h]),
    ];
    let inputs: Vec<NodeId> = names
        .iter()
        .zip(&types)
        .map(|(n, ty)| g.input(n, Role::Param, ty.clone(), S))
        .collect();
    let scan = Scan {
        body,
        length: t,
        reverse,
        carries: 2,
        xs: 1,
        consts: 3,
    };
    let node = add(&mut g, Op::Scan(Box::new(scan)), &inputs, Some(f(&[])));
    let results = [
        (0, f(&[b, h])),
        (1, f(&[b, h])),
        (2, f(&[t, b, h])),
        (3, f(&[t, b, h])),
    ];
    let read: Vec<usize> = match reads {
        Reads::Final => vec![0, 1],
        Reads::Ys => vec![2, 3],
        Reads::Both => vec![0, 1, 2, 3],
    };
    let mut rng = Rng(0x9E3779B97F4A7C15 ^ seed);
    let mut values: HashMap<String, Value> = HashMap::new();
    let mut terms = Vec::new();
    for &index in &read {
        let ty = results[index].1.clone();
        let p = add(&mut g, Op::Project { index }, &[node], Some(ty.clone()));
        let r_name = format!("r{index}");
        let r = g.input(&r_name, Role::Data, ty.clone(), S);
        values.insert(
            r_name,
            Value::from_f64(ty.shape.clone(), rng.values(ty.numel(), 1.0)),
        );
        let prod = add(&mut g, Op::Binary(BinaryOp::Mul), &[p, r], None);
        let axes = (0..ty.rank()).collect();
        terms.push(add(
            &mut g,
            Op::Reduce {
                op: ReduceOp::Sum,
                axes,
            },
            &[prod],
            None,
        ));
    }
    let loss = terms
        .into_iter()
        .reduce(|a, c| add(&mut g, Op::Binary(BinaryOp::Add), &[a, c], None))
        .unwrap();
    g.set_output("loss", loss);
    let grads = autodiff::grad(&mut g, loss, &inputs).unwrap();
    // W's and b's adjoints are contractions after the loop; the backward scan carries only the
    // adjoints of h and s and the running sum of k's.
    let backward_carries = g
        .topo_order()
        .into_iter()
        .find_map(|id| match &g.node(id).op {
            Op::Scan(s) if s.reverse != reverse => Some(s.carries),
            _ => None,
        });
    assert_eq!(backward_carries, Some(3));
    for (name, grad) in names.iter().zip(&grads) {
        g.set_output(
            &format!("grad.{name}"),
            grad.unwrap_or_else(|| panic!("no gradient for {name}")),
        );
    }
    for (name, ty) in names.iter().zip(&types) {
        values.insert(
            name.to_string(),
            Value::from_f64(ty.shape.clone(), rng.values(ty.numel(), 0.8)),
        );
    }
    let result = interp::run(&g, &values, Precision::F64).unwrap();
    for name in names {
        let analytic = result[&format!("grad.{name}")]
            .as_f64_slice()
            .unwrap()
            .to_vec();
        compare(&g, &values, name, &analytic, usize::MAX, 1e-6);
    }
}

#[test]
fn scan_gradients_match_finite_differences() {
    for (k, reverse) in [false, true].into_iter().enumerate() {
        for (m, reads) in [Reads::Final, Reads::Ys, Reads::Both]
            .into_iter()
            .enumerate()
        {
            scan_case(reverse, reads, (k * 3 + m) as u64 + 1);
        }
    }
}

#[test]
fn scan_gradient_keeps_the_graph_size_fixed() {
    // The backward pass of a scan is one more scan: the node count does not depend on T.
    let count = |t: usize| {
        let mut body = Graph::new();
        let c = body.input("carry0", Role::Data, f(&[2]), S);
        let x = body.input("x0", Role::Data, f(&[2]), S);
        let sum = add(&mut body, Op::Binary(BinaryOp::Add), &[c, x], None);
        let y = add(&mut body, Op::Unary(UnaryOp::Tanh), &[sum], None);
        body.set_output("carry0", y);
        body.set_output("y0", y);
        let mut g = Graph::new();
        let h0 = g.input("h0", Role::Param, f(&[2]), S);
        let xs = g.input("xs", Role::Param, f(&[t, 2]), S);
        let scan = Scan {
            body,
            length: t,
            reverse: false,
            carries: 1,
            xs: 1,
            consts: 0,
        };
        let node = add(&mut g, Op::Scan(Box::new(scan)), &[h0, xs], Some(f(&[])));
        let ys = add(&mut g, Op::Project { index: 1 }, &[node], Some(f(&[t, 2])));
        let loss = add(
            &mut g,
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0, 1],
            },
            &[ys],
            None,
        );
        autodiff::grad(&mut g, loss, &[h0, xs]).unwrap();
        total_nodes(&g)
    };
    assert_eq!(count(3), count(300));
}

/// Nodes of a graph and of every scan body in it, recursively.
fn total_nodes(g: &Graph) -> usize {
    g.graph
        .node_indices()
        .map(|n| match &g.node(n).op {
            Op::Scan(s) => 1 + total_nodes(&s.body),
            _ => 1,
        })
        .sum()
}

/// Compile `model` (a model `M(x: f32[B, T, F])` and whatever it needs) into a training step
/// with `mse(M(x), y)`, fill parameters and data with random numbers, and check every parameter
/// gradient against central differences (at most `coords` coordinates per parameter).
fn check_layer(model: &str, x_shape: [usize; 2], y_shape: &[usize], batch: usize, coords: usize) {
    let y_decl: Vec<String> = y_shape.iter().map(usize::to_string).collect();
    let src = format!(
        "data d {{\n  source npy(features: \"x.npy\", labels: \"y.npy\")\n  x: f32[{}, {}]\n  label: f32[{}]\n}}\n\n{model}\n\n\
         train t {{\n  data d\n  loss mse(M(x), label)\n  update M with sgd(lr: 0.1)\n  epochs 1\n  batch {batch}\n}}\n",
        x_shape[0],
        x_shape[1],
        y_decl.join(", ")
    );
    let program = compile_run(&src, None, Some(batch)).unwrap_or_else(|d| panic!("{d:#?}\n{src}"));
    let mut graph = program.steps[0].graph.clone();
    graph
        .outputs
        .retain(|o| o.name == "loss" || o.name.starts_with("grad."));
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let mut values: HashMap<String, Value> = HashMap::new();
    for spec in &program.params {
        let scale = 0.6;
        values.insert(
            spec.name.clone(),
            Value::from_f64(spec.ty.shape.clone(), rng.values(spec.ty.numel(), scale)),
        );
    }
    let mut x_full = vec![batch];
    x_full.extend(x_shape);
    let mut y_full = vec![batch];
    y_full.extend(y_shape);
    values.insert(
        "x".into(),
        Value::from_f64(x_full.clone(), rng.values(x_full.iter().product(), 1.0)),
    );
    values.insert(
        "label".into(),
        Value::from_f64(y_full.clone(), rng.values(y_full.iter().product(), 1.0)),
    );
    values.insert("rng_seed".into(), Value::scalar_i64(3));
    let result = interp::run(&graph, &values, Precision::F64).unwrap();
    let mut checked = 0;
    for spec in &program.params {
        let Some(grad) = result.get(&format!("grad.{}", spec.name)) else {
            panic!("no gradient for {}", spec.name);
        };
        assert_eq!(grad.ty.dtype, DType::F32);
        compare(
            &graph,
            &values,
            &spec.name,
            grad.as_f64_slice().unwrap(),
            coords,
            // The layers' gradients are small (mse averages over every output) while the loss is
            // about 1, so a wider step keeps rounding in the difference quotient negligible;
            // the truncation error (h^2 times the third derivative) is still far below 1e-6.
            1e-4,
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn lstm_gradients_match_finite_differences() {
    let model = "model M(x: f32[B, 5, 3]) -> f32[B, 5, 8] {\n  x |> lstm(4, layers: 2, bidirectional: true)\n}";
    check_layer(model, [5, 3], &[5, 8], 2, 12);
    let model = "model M(x: f32[B, 5, 3]) -> f32[B, 4] {\n  x |> lstm(4, output: final)\n}";
    check_layer(model, [5, 3], &[4], 2, 12);
}

#[test]
fn lstm_with_dropout_between_layers_matches_finite_differences() {
    // The dropout mask is a function of the seed input, so the loss is a smooth function of the
    // parameters for a fixed seed.
    let model = "model M(x: f32[B, 4, 3]) -> f32[B, 6] {\n  x |> lstm(3, layers: 2, bidirectional: true, output: final, dropout: 0.3)\n}";
    check_layer(model, [4, 3], &[6], 2, 10);
}

#[test]
fn gru_gradients_match_finite_differences() {
    let model = "model M(x: f32[B, 5, 3]) -> f32[B, 5, 8] {\n  x |> gru(4, layers: 2, bidirectional: true)\n}";
    check_layer(model, [5, 3], &[5, 8], 2, 12);
    let model = "model M(x: f32[B, 5, 3]) -> f32[B, 8] {\n  x |> gru(4, bidirectional: true, output: final)\n}";
    check_layer(model, [5, 3], &[8], 2, 12);
}

#[test]
fn attention_gradients_match_finite_differences() {
    let model = "model M(x: f32[B, 4, 6]) -> f32[B, 4, 6] {\n  x |> self_attention(heads: 2)\n}";
    check_layer(model, [4, 6], &[4, 6], 2, 16);
    let model = "model M(x: f32[B, 4, 6]) -> f32[B, 4, 6] {\n  x |> self_attention(heads: 3, causal: true, dropout: 0.2)\n}";
    check_layer(model, [4, 6], &[4, 6], 2, 16);
    let model = "model M(x: f32[B, 4, 6]) -> f32[B, 4, 6] {\n  let memory = x |> transpose(1, 2) |> linear(6) |> tanh   # [B, 6, 6]: Tk != Tq\n  attention(x, memory, heads: 2)\n}";
    check_layer(model, [4, 6], &[4, 6], 2, 16);
}

#[test]
fn scan_with_passthroughs_integer_carries_and_two_gradient_passes() {
    // Body: h' = tanh(h * k + x_t), k passed through unchanged, an i64 counter passed through;
    // y0 = h (the incoming carry itself, so the residual output already exists), y1 = h'.
    for reverse in [false, true] {
        let (t, n) = (5, 3);
        let mut body = Graph::new();
        let h = body.input("carry0", Role::Data, f(&[n]), S);
        let k = body.input("carry1", Role::Data, f(&[n]), S);
        let count = body.input("carry2", Role::Data, Type::i64(vec![]), S);
        let x = body.input("x0", Role::Data, f(&[n]), S);
        let hk = add(&mut body, Op::Binary(BinaryOp::Mul), &[h, k], None);
        let pre = add(&mut body, Op::Binary(BinaryOp::Add), &[hk, x], None);
        let h_new = add(&mut body, Op::Unary(UnaryOp::Tanh), &[pre], None);
        for (name, node) in [
            ("carry0", h_new),
            ("carry1", k),
            ("carry2", count),
            ("y0", h),
            ("y1", h_new),
        ] {
            body.set_output(name, node);
        }
        let mut g = Graph::new();
        let h0 = g.input("h0", Role::Param, f(&[n]), S);
        let k0 = g.input("k0", Role::Param, f(&[n]), S);
        let c0 = g.input("c0", Role::Data, Type::i64(vec![]), S);
        let xs = g.input("xs", Role::Param, f(&[t, n]), S);
        let scan = Scan {
            body,
            length: t,
            reverse,
            carries: 3,
            xs: 1,
            consts: 0,
        };
        let node = add(
            &mut g,
            Op::Scan(Box::new(scan)),
            &[h0, k0, c0, xs],
            Some(f(&[])),
        );
        let mut rng = Rng(77 + u64::from(reverse));
        let mut values: HashMap<String, Value> = HashMap::new();
        let mut loss = None;
        for (index, ty) in [(0, f(&[n])), (1, f(&[n])), (3, f(&[t, n])), (4, f(&[t, n]))] {
            let p = add(&mut g, Op::Project { index }, &[node], Some(ty.clone()));
            let r = g.input(&format!("r{index}"), Role::Data, ty.clone(), S);
            values.insert(
                format!("r{index}"),
                Value::from_f64(ty.shape.clone(), rng.values(ty.numel(), 1.0)),
            );
            let prod = add(&mut g, Op::Binary(BinaryOp::Mul), &[p, r], None);
            let axes = (0..ty.rank()).collect();
            let term = add(
                &mut g,
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes,
                },
                &[prod],
                None,
            );
            loss = Some(match loss {
                Some(l) => add(&mut g, Op::Binary(BinaryOp::Add), &[l, term], None),
                None => term,
            });
        }
        let loss = loss.unwrap();
        g.set_output("loss", loss);
        // Two passes over the same graph (two optimizers of one step do this): the second must
        // reuse the residual outputs the first added, and agree with it.
        let first = autodiff::grad(&mut g, loss, &[h0, k0, xs]).unwrap();
        let second = autodiff::grad(&mut g, loss, &[xs, h0, k0]).unwrap();
        let names = ["h0", "k0", "xs"];
        for (name, grad) in names.iter().zip(&first) {
            g.set_output(&format!("grad.{name}"), grad.unwrap());
        }
        for (name, grad) in ["xs", "h0", "k0"].iter().zip(&second) {
            g.set_output(&format!("again.{name}"), grad.unwrap());
        }
        if let Op::Scan(s) = &g.node(node).op {
            assert_eq!(
                s.body.outputs.len(),
                3 + 2 + 2,
                "residuals added once: for k and the counter"
            );
        }
        for (name, shape) in [("h0", vec![n]), ("k0", vec![n]), ("xs", vec![t, n])] {
            let len = shape.iter().product();
            values.insert(
                name.to_string(),
                Value::from_f64(shape, rng.values(len, 0.8)),
            );
        }
        values.insert("c0".to_string(), Value::i64(vec![], vec![4]));
        let result = interp::run(&g, &values, Precision::F64).unwrap();
        for name in names {
            let analytic = result[&format!("grad.{name}")]
                .as_f64_slice()
                .unwrap()
                .to_vec();
            assert_eq!(
                analytic,
                result[&format!("again.{name}")].as_f64_slice().unwrap()
            );
            compare(&g, &values, name, &analytic, usize::MAX, 1e-6);
        }
    }
}
