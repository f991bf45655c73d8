//! Throughput of the MLP training step on the interpreter and on this backend, and compile time
//! of every example's steps. Not a timed assertion: run with
//! `cargo test --release -p netc-backend-cpu --test speed -- --ignored --nocapture` and read.

mod common;

use std::time::Instant;

use common::{Rng, load, random_inputs};
use netc_backend_cpu::CompiledStep;
use netc_compiler::ir::interp::Value;
use netc_compiler::ir::interp::{self, Precision};
use netc_compiler::lower::program::{StepGraph, compile_run};

/// Inputs for a step: random data and parameters, the optimizer's scalars of step 1, seed 0.
fn inputs_for(step: &StepGraph, rng: &mut Rng) -> std::collections::HashMap<String, Value> {
    let mut inputs = random_inputs(&step.graph, rng, 0.1);
    for (optimizer, prefix, _) in &step.optimizers {
        for (n, v) in optimizer
            .scalar_names()
            .iter()
            .zip(optimizer.scalars(1, optimizer.base_lr()))
        {
            inputs.insert(format!("{prefix}.{n}"), Value::scalar(v));
        }
    }
    inputs.insert("rng_seed".into(), Value::scalar_i64(0));
    inputs
}

/// Steps per second of every step of an example at `batch`, running for about `secs` seconds
/// (at least one run after a warm-up run), and the fallback kernels left.
fn report_example(name: &str, batch: usize, secs: f64) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = std::fs::read_to_string(root.join(format!("examples/{name}.net"))).unwrap();
    let p = compile_run(&src, None, Some(batch)).unwrap();
    let mut rng = Rng(7);
    for s in &p.steps {
        let mut step = CompiledStep::compile(&s.graph).unwrap();
        let inputs = inputs_for(s, &mut rng);
        load(&mut step, &inputs);
        step.run().unwrap();
        let t = Instant::now();
        let mut n = 0;
        while n == 0 || t.elapsed().as_secs_f64() < secs {
            step.run().unwrap();
            n += 1;
        }
        let rate = f64::from(n) / t.elapsed().as_secs_f64();
        let mut fallbacks: Vec<String> = step
            .program()
            .kernels
            .iter()
            .filter_map(|k| match k {
                netc_backend_cpu::kernel::Kernel::Fallback { what, .. } => Some(what.clone()),
                _ => None,
            })
            .collect();
        fallbacks.sort();
        fallbacks.dedup();
        println!(
            "{name} {} (batch {batch}): {rate:.2} steps/s ({:.1} ms/step, {n} runs); fallbacks: {fallbacks:?}",
            s.name,
            1e3 / rate
        );
    }
}

/// LeNet and DCGAN training steps at batch 64 on this backend: the conv-heavy workloads.
#[test]
#[ignore]
fn report_conv_speed() {
    report_example("lenet", 64, 3.0);
    report_example("dcgan", 64, 5.0);
}

#[test]
#[ignore]
fn report_speed() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in ["mlp", "lenet", "sentiment_lstm", "transformer", "dcgan"] {
        let src = std::fs::read_to_string(root.join(format!("examples/{name}.net"))).unwrap();
        let p = compile_run(&src, None, None).unwrap();
        for step in &p.steps {
            let best = (0..3)
                .map(|_| CompiledStep::compile(&step.graph).unwrap().compile_ms())
                .fold(f64::INFINITY, f64::min);
            let c = CompiledStep::compile(&step.graph).unwrap();
            let cov = c.program().coverage;
            let fast = cov.fused + cov.library + cov.native;
            let total = fast + cov.fallback;
            println!(
                "{name} {}: compile {best:.1} ms, {} kernels, fast {}/{} compute nodes ({:.1}%; {} native), fallback {} ({} aliases, {} inputs)",
                step.name,
                c.program().kernels.len(),
                fast,
                total,
                100.0 * fast as f64 / total as f64,
                cov.native,
                cov.fallback,
                cov.aliases,
                cov.inputs
            );
        }
    }
    let src = std::fs::read_to_string(root.join("examples/mlp.net")).unwrap();
    let p = compile_run(&src, None, None).unwrap();
    let graph = &p.steps[0].graph;
    let mut rng = Rng(42);
    let mut inputs = random_inputs(graph, &mut rng, 0.1);
    for (optimizer, prefix, _) in &p.steps[0].optimizers {
        for (n, v) in optimizer
            .scalar_names()
            .iter()
            .zip(optimizer.scalars(1, optimizer.base_lr()))
        {
            inputs.insert(format!("{prefix}.{n}"), interp::Value::scalar(v));
        }
    }
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        interp::run(graph, &inputs, Precision::F32).unwrap();
    }
    let interp_rate = n as f64 / t.elapsed().as_secs_f64();
    let mut step = CompiledStep::compile(graph).unwrap();
    load(&mut step, &inputs);
    for _ in 0..100 {
        step.run().unwrap();
    }
    let n = 20000;
    let t = Instant::now();
    for _ in 0..n {
        step.run().unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "mlp step (batch 32): interpreter {interp_rate:.0} steps/s, cranelift {rate:.0} steps/s ({:.0}x)",
        rate / interp_rate
    );
}
