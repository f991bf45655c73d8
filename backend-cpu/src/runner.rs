//! Two calling conventions over cached compiled graphs ([`CompiledStep`] here, the CUDA
//! backend's steps through the same [`CompiledGraph`] trait), so the training loop can switch
//! backends without restructuring:
//!
//! - [`Runner::run`] is the interpreter's convention (`HashMap` of named [`Value`]s in and
//!   out): every input is copied in and every output out on each call. Evaluation and sampling
//!   use it; the copies are small next to what they compute.
//! - [`Runner::run_step`] keeps a run's persistent values (parameters, buffers, optimizer
//!   state) resident in the compiled steps' arenas between calls: a step copies in only the
//!   values some other holder changed since it last saw them, and [`Runner::sync`] brings the
//!   host's map up to date when it is read (validation, checkpoints). Converting every
//!   parameter to and from `f64` on each step cost a third of a small model's step.

use std::collections::HashMap;

use netc_compiler::ir::interp::{Data, Value};
use netc_compiler::ir::{DType, Graph, Op, Type};

use crate::CompiledStep;

/// A graph compiled for one device, with named inputs and outputs in its own memory: what a
/// [`Runner`] caches and drives. Implementors provide the typed accessors; the conversions to
/// and from [`Value`]s are shared.
pub trait CompiledGraph: Sized {
    /// Compile `graph` (plan and code generation).
    fn compile(graph: &Graph) -> Result<Self, String>;
    /// Milliseconds [`CompiledGraph::compile`] took.
    fn compile_ms(&self) -> f64;
    /// Whether the graph has an input of this name.
    fn has_input(&self, name: &str) -> bool;
    /// Set an f32 input from f64 elements (rounded to f32).
    fn set_input_f64(&mut self, name: &str, data: &[f64]) -> Result<(), String>;
    /// Set an i64 input.
    fn set_input_i64(&mut self, name: &str, data: &[i64]) -> Result<(), String>;
    /// Run the graph once; updates land in their inputs.
    fn run(&mut self) -> Result<(), String>;
    /// An f32 input's current value (a parameter after the last run's update).
    fn input_f32(&self, name: &str) -> Result<Vec<f32>, String>;
    /// An i64 input's current value.
    fn input_i64(&self, name: &str) -> Result<Vec<i64>, String>;
    /// An f32 output's value after the last run.
    fn output_f32(&self, name: &str) -> Result<Vec<f32>, String>;
    /// An i64 output's value after the last run.
    fn output_i64(&self, name: &str) -> Result<Vec<i64>, String>;

    /// Copy a value into the input of this name.
    fn set_value(&mut self, name: &str, value: &Value) -> Result<(), String> {
        match &value.data {
            Data::F(d) => self.set_input_f64(name, d),
            Data::I(d) => self.set_input_i64(name, d),
        }
    }

    /// An output's value after the last run, as a value of type `ty`.
    fn output_value(&self, name: &str, ty: &Type) -> Result<Value, String> {
        Ok(match ty.dtype {
            DType::F32 => Value::f32(ty.shape.clone(), self.output_f32(name)?),
            DType::I64 => Value::i64(ty.shape.clone(), self.output_i64(name)?),
        })
    }

    /// An input's current value, of type `ty`.
    fn input_value(&self, name: &str, ty: &Type) -> Result<Value, String> {
        Ok(match ty.dtype {
            DType::F32 => Value::f32(ty.shape.clone(), self.input_f32(name)?),
            DType::I64 => Value::i64(ty.shape.clone(), self.input_i64(name)?),
        })
    }

    /// Set input `name` to `other`'s input of the same name (through the host unless the
    /// backend can do better).
    fn copy_input_from(&mut self, other: &Self, name: &str) -> Result<(), String> {
        match other.input_f32(name) {
            Ok(data) => {
                let wide: Vec<f64> = data.into_iter().map(f64::from).collect();
                self.set_input_f64(name, &wide)
            }
            Err(_) => self.set_input_i64(name, &other.input_i64(name)?),
        }
    }

    /// Start or stop timing kernels (backends without a profiler ignore it).
    fn set_profiling(&mut self, _on: bool) {}
    /// Per kernel, its description and the time spent in it while profiling.
    fn profile(&self) -> Vec<(String, std::time::Duration)> {
        Vec::new()
    }
}

impl CompiledGraph for CompiledStep {
    fn compile(graph: &Graph) -> Result<Self, String> {
        CompiledStep::compile(graph)
    }

    fn compile_ms(&self) -> f64 {
        CompiledStep::compile_ms(self)
    }

    fn has_input(&self, name: &str) -> bool {
        CompiledStep::has_input(self, name)
    }

    fn set_input_f64(&mut self, name: &str, data: &[f64]) -> Result<(), String> {
        CompiledStep::set_input_f64(self, name, data)
    }

    fn set_input_i64(&mut self, name: &str, data: &[i64]) -> Result<(), String> {
        CompiledStep::set_input_i64(self, name, data)
    }

    fn run(&mut self) -> Result<(), String> {
        CompiledStep::run(self)
    }

    fn input_f32(&self, name: &str) -> Result<Vec<f32>, String> {
        self.input(name)
    }

    fn input_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        CompiledStep::input_i64(self, name)
    }

    fn output_f32(&self, name: &str) -> Result<Vec<f32>, String> {
        self.output(name)
    }

    fn output_i64(&self, name: &str) -> Result<Vec<i64>, String> {
        CompiledStep::output_i64(self, name)
    }

    /// Arena to arena, no conversion.
    fn copy_input_from(&mut self, other: &Self, name: &str) -> Result<(), String> {
        CompiledStep::copy_input_from(self, other, name)
    }

    fn set_profiling(&mut self, on: bool) {
        CompiledStep::set_profiling(self, on);
    }

    fn profile(&self) -> Vec<(String, std::time::Duration)> {
        CompiledStep::profile(self)
    }
}

/// A cached step: the graph's identity (its address and size). The graphs must outlive the
/// runner and not change (a training loop's `Program` does neither).
type Key = (usize, usize);

/// Compiled steps keyed by graph identity, compiled on first use, and where the newest copy
/// of each persistent value lives.
pub struct Runner<S: CompiledGraph = CompiledStep> {
    cache: HashMap<Key, S>,
    /// Persistent values some step updated: the newest version, the step holding it, and the
    /// version the host's map holds. A value not listed is newest in the host's map.
    versions: HashMap<String, Version>,
    /// Per step: the version of each persistent value its arena holds.
    held: HashMap<Key, HashMap<String, u64>>,
    /// Per step: the names of its inputs that are persistent values (found on its first run).
    persistent: HashMap<Key, Vec<String>>,
    /// The last version number handed out.
    clock: u64,
    /// Whether steps time their kernels ([`CompiledStep::set_profiling`]).
    profiling: bool,
    /// The cached steps in the order they were compiled, to name them in profiles.
    order: Vec<Key>,
}

/// Where a persistent value's newest copy is.
struct Version {
    newest: u64,
    holder: Key,
    host: u64,
}

impl<S: CompiledGraph> Default for Runner<S> {
    fn default() -> Self {
        Runner {
            cache: HashMap::new(),
            versions: HashMap::new(),
            held: HashMap::new(),
            persistent: HashMap::new(),
            clock: 0,
            profiling: false,
            order: Vec::new(),
        }
    }
}

impl Runner {
    /// An empty cache of natively compiled steps (other backends: `Runner::default()`).
    pub fn new() -> Runner {
        Runner::default()
    }
}

impl<S: CompiledGraph> Runner<S> {
    /// Milliseconds spent compiling every graph compiled so far (plan and code generation,
    /// not the first run), for `netc bench`'s `compile_ms`.
    pub fn compile_ms(&self) -> f64 {
        self.cache.values().map(S::compile_ms).sum()
    }

    fn compiled(&mut self, graph: &Graph) -> Result<(Key, &mut S), String> {
        let key = (std::ptr::from_ref(graph) as usize, graph.node_count());
        let step = match self.cache.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut step = S::compile(graph)?;
                step.set_profiling(self.profiling);
                self.order.push(key);
                e.insert(step)
            }
        };
        Ok((key, step))
    }

    /// Time every kernel of every compiled step from now on (or stop), from zero.
    pub fn set_profiling(&mut self, on: bool) {
        self.profiling = on;
        for step in self.cache.values_mut() {
            step.set_profiling(on);
        }
    }

    /// Every kernel of every compiled step with the time spent in it since profiling started,
    /// slowest first; with several graphs, each line starts with the graph's number (in the
    /// order they were first run).
    pub fn profile(&self) -> Vec<(String, std::time::Duration)> {
        let several = self.order.len() > 1;
        let mut all: Vec<_> = self
            .order
            .iter()
            .enumerate()
            .flat_map(|(n, key)| {
                self.cache[key].profile().into_iter().map(move |(line, t)| {
                    (
                        if several {
                            format!("#{n} {line}")
                        } else {
                            line
                        },
                        t,
                    )
                })
            })
            .collect();
        all.sort_by_key(|k| std::cmp::Reverse(k.1));
        all
    }

    /// Evaluate `graph` like `interp::run(graph, inputs, Precision::F32)`: every input the
    /// graph declares is taken from `inputs` (missing ones read as zeros), every output returned.
    pub fn run(
        &mut self,
        graph: &Graph,
        inputs: &HashMap<String, Value>,
    ) -> Result<HashMap<String, Value>, String> {
        let (_, step) = self.compiled(graph)?;
        for (name, value) in inputs {
            if step.has_input(name) {
                step.set_value(name, value)?;
            }
        }
        step.run()?;
        graph
            .outputs
            .iter()
            .map(|o| {
                Ok((
                    o.name.clone(),
                    step.output_value(&o.name, graph.ty(o.node))?,
                ))
            })
            .collect()
    }

    /// Run a training step: `inputs` are this call's data and scalars; every other input the
    /// graph declares that `state` names is a persistent value, taken from wherever its newest
    /// copy is. The step's updates stay in its arena (`state` is not written: call
    /// [`Runner::sync`] before reading it). Returns the outputs named in `wanted`.
    ///
    /// Between `run_step` calls `state` must only change through [`Runner::sync`], and a graph
    /// run this way is not also given to [`Runner::run`] (which would overwrite its resident
    /// values behind the runner's back).
    pub fn run_step(
        &mut self,
        graph: &Graph,
        inputs: &HashMap<String, Value>,
        state: &HashMap<String, Value>,
        wanted: &[&str],
    ) -> Result<Vec<Value>, String> {
        let (key, _) = self.compiled(graph)?;
        for (name, value) in inputs {
            let step = self.cache.get_mut(&key).expect("compiled above");
            if step.has_input(name) {
                step.set_value(name, value)?;
            }
        }
        let names = self.persistent.entry(key).or_insert_with(|| {
            graph
                .inputs()
                .into_iter()
                .filter_map(|id| match &graph.node(id).op {
                    Op::Input { name, .. } if state.contains_key(name) => Some(name.clone()),
                    _ => None,
                })
                .collect()
        });
        for name in names.iter() {
            if inputs.contains_key(name) {
                continue;
            }
            let host = &state[name];
            let (newest, from) = match self.versions.get(name) {
                Some(v) if v.host != v.newest => (v.newest, Some(v.holder)),
                Some(v) => (v.newest, None),
                None => (0, None),
            };
            let held = self.held.entry(key).or_default();
            if held.get(name) == Some(&newest) {
                continue;
            }
            set_version(held, name, newest);
            match from {
                None => self
                    .cache
                    .get_mut(&key)
                    .expect("compiled")
                    .set_value(name, host)?,
                Some(holder) => {
                    let [Some(to), Some(from)] = self.cache.get_disjoint_mut([&key, &holder])
                    else {
                        return Err(format!("internal: the holder of `{name}` is gone"));
                    };
                    to.copy_input_from(from, name)?;
                }
            }
        }
        let step = self.cache.get_mut(&key).expect("compiled above");
        step.run()?;
        let held = self.held.entry(key).or_default();
        for o in &graph.outputs {
            if let Some(name) = &o.updates {
                self.clock += 1;
                set_version(held, name, self.clock);
                match self.versions.get_mut(name) {
                    Some(v) => (v.newest, v.holder) = (self.clock, key),
                    None => {
                        self.versions.insert(
                            name.clone(),
                            Version {
                                newest: self.clock,
                                holder: key,
                                host: 0,
                            },
                        );
                    }
                }
            }
        }
        wanted
            .iter()
            .map(|&name| {
                let o = graph
                    .outputs
                    .iter()
                    .find(|o| o.name == name)
                    .ok_or_else(|| format!("the step has no output `{name}`"))?;
                step.output_value(name, graph.ty(o.node))
            })
            .collect()
    }

    /// Copy every persistent value whose newest copy is in a compiled step into `state`.
    pub fn sync(&mut self, state: &mut HashMap<String, Value>) -> Result<(), String> {
        for (name, v) in &mut self.versions {
            if v.host == v.newest {
                continue;
            }
            let step = &self.cache[&v.holder];
            let Some(current) = state.get_mut(name) else {
                continue;
            };
            *current = step.input_value(name, &current.ty)?;
            v.host = v.newest;
        }
        Ok(())
    }
}

/// Record that a step holds `version` of `name`, allocating the name only the first time (this
/// runs for every parameter on every step).
fn set_version(held: &mut HashMap<String, u64>, name: &str, version: u64) {
    match held.get_mut(name) {
        Some(v) => *v = version,
        None => {
            held.insert(name.to_string(), version);
        }
    }
}
