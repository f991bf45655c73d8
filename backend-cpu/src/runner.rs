//! A drop-in for the interpreter's calling convention (`HashMap` of named [`Value`]s in and
//! out), so the training loop can switch backends without restructuring: graphs are compiled on
//! first use and cached.
//!
//! This convention copies every input in and every output out on each call, which costs a
//! little next to the in-place [`CompiledStep`] API; it is the simplest correct integration.

use std::collections::HashMap;

use netc_compiler::ir::interp::{Data, Value};
use netc_compiler::ir::{DType, Graph, Type};

use crate::CompiledStep;

/// Compiled steps keyed by graph identity (its address and size), compiled on first use. The
/// graphs must outlive the runner and not change (a training loop's `Program` does neither).
#[derive(Default)]
pub struct Runner {
    cache: HashMap<(usize, usize), CompiledStep>,
}

impl Runner {
    /// An empty cache.
    pub fn new() -> Runner {
        Runner::default()
    }

    /// Milliseconds spent compiling every graph compiled so far (plan and code generation,
    /// not the first run), for `netc bench`'s `compile_ms`.
    pub fn compile_ms(&self) -> f64 {
        self.cache.values().map(CompiledStep::compile_ms).sum()
    }

    /// Evaluate `graph` like `interp::run(graph, inputs, Precision::F32)`: every input the
    /// graph declares is taken from `inputs` (missing ones read as zeros), every output returned.
    pub fn run(
        &mut self,
        graph: &Graph,
        inputs: &HashMap<String, Value>,
    ) -> Result<HashMap<String, Value>, String> {
        let key = (std::ptr::from_ref(graph) as usize, graph.node_count());
        let step = match self.cache.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(CompiledStep::compile(graph)?),
        };
        for (name, value) in inputs {
            if !step.has_input(name) {
                continue;
            }
            match &value.data {
                Data::F(d) => step.set_input_f64(name, d)?,
                Data::I(d) => step.set_input_i64(name, d)?,
            }
        }
        step.run()?;
        let mut out = HashMap::new();
        for o in &graph.outputs {
            let ty: &Type = graph.ty(o.node);
            let value = match ty.dtype {
                DType::F32 => Value::from_f64(
                    ty.shape.clone(),
                    step.output_slice(&o.name)?
                        .iter()
                        .map(|&x| f64::from(x))
                        .collect(),
                ),
                DType::I64 => Value::i64(ty.shape.clone(), step.output_i64(&o.name)?),
            };
            out.insert(o.name.clone(), value);
        }
        Ok(out)
    }
}
