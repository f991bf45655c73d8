//! `netc bench`: how fast a compiled training step runs, on synthetic data of the right shapes.
//! Speed is measured and reported as numbers, never asserted.

use std::collections::HashMap;
use std::time::Instant;

use netc_compiler::ir::interp::Value;
use netc_compiler::ir::{DType, Op, Role};
use netc_compiler::lower::program::Program;

use crate::init::initial_value;
use crate::train::{Backend, Executor};

/// One benchmark's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub model: String,
    pub backend: &'static str,
    pub threads: usize,
    pub batch: usize,
    /// Compiling the step graphs to native code (0 for the interpreter).
    pub compile_ms: f64,
    pub steps_per_s: f64,
    pub samples_per_s: f64,
    pub peak_rss_mb: f64,
    pub steps: u64,
    /// Floating-point operations of one iteration's matmuls and convolutions (PyTorch's
    /// counting), and the rate they ran at.
    pub gflop_per_step: f64,
    pub gflop_per_s: f64,
    /// With profiling: each kernel's milliseconds per iteration, slowest first.
    pub profile: Vec<(String, f64)>,
}

impl BenchResult {
    /// The profile as a table: the `top` slowest kernels with their share of the time, the
    /// rest summed on one line.
    pub fn profile_table(&self, top: usize) -> String {
        let total: f64 = self.profile.iter().map(|(_, ms)| ms).sum();
        let mut out = format!("{total:.3} ms per iteration in kernels; slowest first:\n");
        let share = |ms: f64| 100.0 * ms / total.max(1e-12);
        for (line, ms) in self.profile.iter().take(top) {
            let line: String = line.chars().take(160).collect();
            out.push_str(&format!("{:5.1}% {ms:8.3} ms  {line}\n", share(*ms)));
        }
        if self.profile.len() > top {
            let rest: f64 = self.profile[top..].iter().map(|(_, ms)| ms).sum();
            let n = self.profile.len() - top;
            out.push_str(&format!(
                "{:5.1}% {rest:8.3} ms  ({n} other kernels)\n",
                share(rest)
            ));
        }
        out
    }

    /// One JSON object, as `netc bench` prints it.
    pub fn json(&self) -> String {
        format!(
            "{{\"model\": \"{}\", \"backend\": \"{}\", \"threads\": {}, \"batch\": {}, \"compile_ms\": {:.2}, \"steps_per_s\": {:.3}, \"samples_per_s\": {:.1}, \"peak_rss_mb\": {:.1}, \"steps\": {}, \"gflop_per_step\": {:.6}, \"gflop_per_s\": {:.2}}}",
            self.model,
            self.backend,
            self.threads,
            self.batch,
            self.compile_ms,
            self.steps_per_s,
            self.samples_per_s,
            self.peak_rss_mb,
            self.steps,
            self.gflop_per_step,
            self.gflop_per_s
        )
    }
}

/// Run `warmup` untimed iterations (each runs every step graph of the run once), then time
/// iterations for at least `seconds` (and at least 3). With `profile`, then run as many again
/// timing each kernel (the clock reads would distort the first measurement).
pub fn bench(
    program: &Program,
    model: &str,
    backend: Backend,
    warmup: u64,
    seconds: f64,
    profile: bool,
) -> Result<BenchResult, String> {
    let mut values: HashMap<String, Value> = HashMap::new();
    for (i, spec) in program.params.iter().enumerate() {
        values.insert(spec.name.clone(), initial_value(spec, 0, i as u64));
    }
    let classes = |name: &str| {
        program
            .data
            .as_ref()
            .and_then(|d| d.fields.iter().find(|f| f.name == name))
            .and_then(|f| f.ty.classes)
            .unwrap_or(1)
            .max(1)
    };
    // Parameters and optimizer state persist between steps, as in training; the rest (batch,
    // scalars, seed) is fed on every step.
    let mut state = values;
    let mut inputs: Vec<HashMap<String, Value>> = Vec::new();
    for step in &program.steps {
        let mut map = HashMap::new();
        for id in step.graph.inputs() {
            let node = step.graph.node(id);
            let Op::Input { name, role } = &node.op else {
                continue;
            };
            let n = node.ty.numel();
            let value = match (role, node.ty.dtype) {
                (Role::Param | Role::State, _) if state.contains_key(name) => continue,
                (_, DType::I64) if node.ty.shape.is_empty() => Value::scalar_i64(7),
                (_, DType::I64) => Value::i64(
                    node.ty.shape.clone(),
                    (0..n as i64).map(|i| i % classes(name)).collect(),
                ),
                (Role::Scalar, _) => Value::scalar(1e-3),
                (Role::State, _) => {
                    state.insert(
                        name.clone(),
                        Value::from_f64(node.ty.shape.clone(), vec![0.0; n]),
                    );
                    continue;
                }
                _ => Value::from_f64(
                    node.ty.shape.clone(),
                    (0..n)
                        .map(|i| ((i * 7919 % 1000) as f64) / 1000.0 - 0.5)
                        .collect(),
                ),
            };
            map.insert(name.clone(), value);
        }
        // The optimizers' own scalars (at step 1), so parameters evolve as in training rather
        // than diverge into NaNs and subnormals, which run at different speeds.
        for (optimizer, prefix, _) in &step.optimizers {
            let values = optimizer.scalars(1, optimizer.base_lr());
            for (name, value) in optimizer.scalar_names().iter().zip(values) {
                map.insert(format!("{prefix}.{name}"), Value::scalar(value));
            }
        }
        inputs.push(map);
    }
    let mut exec = Executor::new(backend);
    let mut iteration = |exec: &mut Executor| -> Result<(), String> {
        for (step, map) in program.steps.iter().zip(&inputs) {
            exec.run_step(&step.graph, map, &mut state, &[])?;
        }
        Ok(())
    };
    let compile_started = Instant::now();
    iteration(&mut exec)?;
    // The first run compiles and runs once; count it as compile time minus a warm run below.
    let first = compile_started.elapsed().as_secs_f64();
    for _ in 0..warmup {
        iteration(&mut exec)?;
    }
    let warm = Instant::now();
    iteration(&mut exec)?;
    let one = warm.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut steps = 0u64;
    while steps < 3 || started.elapsed().as_secs_f64() < seconds {
        iteration(&mut exec)?;
        steps += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let steps_per_s = steps as f64 / elapsed;
    let gflop_per_step = program
        .steps
        .iter()
        .map(|s| netc_compiler::ir::flops::contraction_flops(&s.graph) as f64 / 1e9)
        .sum::<f64>();
    let mut kernels = Vec::new();
    if profile {
        exec.set_profiling(true);
        for _ in 0..steps {
            iteration(&mut exec)?;
        }
        kernels = exec
            .profile()
            .into_iter()
            .map(|(line, t)| (line, t.as_secs_f64() * 1e3 / steps as f64))
            .collect();
        exec.set_profiling(false);
    }
    Ok(BenchResult {
        model: model.to_string(),
        backend: match backend {
            Backend::Cranelift => "cranelift",
            Backend::Interp => "interp",
            Backend::Cuda => "cuda",
        },
        threads: if backend == Backend::Cranelift {
            netc_backend_cpu::threads()
        } else {
            1
        },
        batch: program.batch,
        // The backend's own compile time where it reports one; otherwise the first run less a
        // warm one (which also counts first-touch page faults and library warm-up).
        compile_ms: match (backend, exec.compile_ms()) {
            (Backend::Interp, _) => 0.0,
            (_, Some(ms)) => ms,
            _ => ((first - one).max(0.0)) * 1e3,
        },
        steps_per_s,
        samples_per_s: steps_per_s * program.batch as f64,
        peak_rss_mb: peak_rss_mb(),
        steps,
        gflop_per_step,
        gflop_per_s: gflop_per_step * steps_per_s,
        profile: kernels,
    })
}

/// The process's peak resident memory (Linux `VmHWM`), in MiB; 0 where unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
