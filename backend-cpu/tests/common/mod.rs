//! Shared test helpers: a small deterministic PRNG, random inputs for a graph, and running a
//! graph on both the interpreter and the backend.

#![allow(dead_code)]

use std::collections::HashMap;

use netc_backend_cpu::CompiledStep;
use netc_compiler::ir::interp::{self, Precision, Value};
use netc_compiler::ir::{DType, Graph, Op};

/// xorshift64*: deterministic, dependency-free randomness for tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [-1, 1), never exactly zero.
    pub fn unit(&mut self) -> f32 {
        let x = (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        if x == 0.0 { 0.5 } else { x }
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }
}

/// `||a - b|| / max(||b||, tiny)`.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| f64::from(y).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Load interpreter-style inputs into a compiled step.
pub fn load(step: &mut CompiledStep, inputs: &HashMap<String, Value>) {
    for (name, v) in inputs {
        if !step.has_input(name) {
            continue;
        }
        match &v.data {
            interp::Data::F(d) => {
                let d: Vec<f32> = d.iter().map(|&x| x as f32).collect();
                step.set_input(name, &d).unwrap();
            }
            interp::Data::I(d) => step.set_input_i64(name, d).unwrap(),
        }
    }
}

/// Run the interpreter (f32) on `inputs`.
pub fn reference(graph: &Graph, inputs: &HashMap<String, Value>) -> HashMap<String, Value> {
    interp::run(graph, inputs, Precision::F32).unwrap_or_else(|e| panic!("interpreter: {e}"))
}

/// Random inputs for every input node of `graph`: floats in [-scale, scale), ids valid for
/// whatever consumes them (one_hot classes, gather rows), seeds fixed.
pub fn random_inputs(graph: &Graph, rng: &mut Rng, scale: f32) -> HashMap<String, Value> {
    let mut inputs = HashMap::new();
    for id in graph.inputs() {
        let node = graph.node(id);
        let Op::Input { name, .. } = &node.op else {
            continue;
        };
        let ty = &node.ty;
        let v = match ty.dtype {
            DType::F32 => Value::f32(ty.shape.clone(), rng.vec(ty.numel(), scale)),
            DType::I64 => {
                let bound = id_bound(graph, id) as u64;
                Value::i64(
                    ty.shape.clone(),
                    (0..ty.numel())
                        .map(|_| (rng.next() % bound) as i64)
                        .collect(),
                )
            }
        };
        inputs.insert(name.clone(), v);
    }
    inputs
}

/// The exclusive upper bound of valid ids for an i64 input: the classes of a one_hot or the
/// rows of a gather table it reaches through reshapes, slices and transposes.
fn id_bound(graph: &Graph, id: netc_compiler::ir::NodeId) -> usize {
    let mut stack = vec![id];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        for u in graph.users(n) {
            match &graph.node(u).op {
                Op::OneHot { classes } => return *classes,
                Op::Gather => return graph.ty(graph.operands(u)[0]).shape[0],
                Op::ScatterAdd => return graph.ty(u).shape[0],
                Op::Scan(scan) => {
                    // Ids fed into a scan: look inside its body for the consumer.
                    let pos = graph.operands(u).iter().position(|&o| o == n).unwrap_or(0);
                    let nc = scan.carries;
                    let name = if pos < nc {
                        format!("carry{pos}")
                    } else if pos < nc + scan.xs {
                        format!("x{}", pos - nc)
                    } else {
                        format!("const{}", pos - nc - scan.xs)
                    };
                    if let Some(inner) = scan.body.find_input(&name) {
                        return id_bound(&scan.body, inner);
                    }
                }
                Op::Reshape
                | Op::Slice { .. }
                | Op::Transpose { .. }
                | Op::Broadcast
                | Op::Concat { .. } => stack.push(u),
                _ => {}
            }
        }
    }
    2
}
