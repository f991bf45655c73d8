//! Every example's training step on the backend against the reference interpreter: the MLP for
//! several consecutive steps (updates fed back) within 1e-5, every other example for one step
//! within 1e-4 (LeNet and DCGAN also on two threads), on the loss and every updated parameter
//! and state. Also the kernel dump of the MLP step as a snapshot (`BLESS=1` rewrites it).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{Rng, load, random_inputs, reference, rel_l2};
use netc_backend_cpu::CompiledStep;
use netc_compiler::ir::interp::Value;
use netc_compiler::ir::{Op, Role};
use netc_compiler::lower::program::{Program, StepGraph, compile_run};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn program(name: &str, batch: Option<usize>) -> Program {
    let src = std::fs::read_to_string(root().join(format!("examples/{name}.net"))).unwrap();
    compile_run(&src, None, batch).unwrap_or_else(|d| panic!("{name}: {d:#?}"))
}

/// Inputs of a step: random data and parameters, zero state, the optimizer's scalars of step
/// `t`, seed 0.
fn step_inputs(step: &StepGraph, rng: &mut Rng, t: u64) -> HashMap<String, Value> {
    let g = &step.graph;
    let mut inputs = random_inputs(g, rng, 1.0);
    for id in g.inputs() {
        let node = g.node(id);
        let Op::Input { name, role } = &node.op else {
            continue;
        };
        match role {
            Role::Param => {
                inputs.insert(
                    name.clone(),
                    Value::f32(node.ty.shape.clone(), rng.vec(node.ty.numel(), 0.2)),
                );
            }
            Role::State if node.ty.dtype == netc_compiler::ir::DType::F32 => {
                let fill = if name.ends_with("running_var") {
                    1.0
                } else {
                    0.0
                };
                inputs.insert(
                    name.clone(),
                    Value::f32(node.ty.shape.clone(), vec![fill; node.ty.numel()]),
                );
            }
            _ => {}
        }
    }
    set_scalars(step, &mut inputs, t);
    inputs.insert("rng_seed".into(), Value::scalar_i64(0));
    inputs
}

fn set_scalars(step: &StepGraph, inputs: &mut HashMap<String, Value>, t: u64) {
    for (optimizer, prefix, _) in &step.optimizers {
        for (name, value) in optimizer
            .scalar_names()
            .iter()
            .zip(optimizer.scalars(t, optimizer.base_lr()))
        {
            inputs.insert(format!("{prefix}.{name}"), Value::scalar(value));
        }
    }
}

/// Run `steps` consecutive steps on both; check the loss and every update within `tol`.
fn check(name: &str, step: &StepGraph, steps: u64, tol: f64) {
    check_on(name, step, steps, tol, 1);
}

/// [`check`] with the backend's step compiled for `threads` threads.
fn check_on(name: &str, step: &StepGraph, steps: u64, tol: f64, threads: usize) {
    let mut rng = Rng(0x5EED ^ name.len() as u64);
    let mut inputs = step_inputs(step, &mut rng, 1);
    let mut compiled = CompiledStep::compile_with_threads(&step.graph, threads)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let c = compiled.program().coverage;
    eprintln!(
        "{name} {}: compile {:.1} ms, {} kernels; nodes: {} inputs, {} aliases, {} fused, {} library, {} native, {} fallback",
        step.name,
        compiled.compile_ms(),
        compiled.program().kernels.len(),
        c.inputs,
        c.aliases,
        c.fused,
        c.library,
        c.native,
        c.fallback
    );
    load(&mut compiled, &inputs);
    for t in 1..=steps {
        if t > 1 {
            // Fresh batch and the scalars of step t; parameters and state stay in place.
            let fresh = step_inputs(step, &mut rng, t);
            for id in step.graph.inputs() {
                if let Op::Input {
                    name,
                    role: Role::Data | Role::Scalar,
                } = &step.graph.node(id).op
                {
                    inputs.insert(name.clone(), fresh[name].clone());
                }
            }
            set_scalars(step, &mut inputs, t);
            let data_only: HashMap<String, Value> = step
                .graph
                .inputs()
                .into_iter()
                .filter_map(|id| match &step.graph.node(id).op {
                    Op::Input {
                        name,
                        role: Role::Data | Role::Scalar,
                    } => Some((name.clone(), inputs[name].clone())),
                    _ => None,
                })
                .collect();
            load(&mut compiled, &data_only);
        }
        let expected = reference(&step.graph, &inputs);
        compiled.run().unwrap_or_else(|e| panic!("{name}: {e}"));
        let loss_want = expected["loss"].to_f32_vec().unwrap();
        let loss_got = compiled.output("loss").unwrap();
        let err = rel_l2(&loss_got, &loss_want);
        assert!(
            err < tol,
            "{name} step {t}: loss {loss_got:?} vs {loss_want:?} ({err:e})"
        );
        let mut worst = (0.0, String::new());
        for o in &step.graph.outputs {
            let Some(target) = &o.updates else { continue };
            let Some(want) = expected[&o.name].to_f32_vec() else {
                continue;
            };
            // The value now in the input's slot (the update was applied in place).
            let got = compiled.input(target).unwrap();
            let err = rel_l2(&got, &want);
            if err > worst.0 {
                worst = (err, target.clone());
            }
            assert!(
                err < tol,
                "{name} step {t}: update of {target}: relative error {err:e}"
            );
            inputs.insert(target.clone(), expected[&o.name].clone());
        }
        eprintln!(
            "{name} step {t}: loss error {err:e}, worst update {:e} ({})",
            worst.0, worst.1
        );
    }
}

#[test]
fn mlp_matches_the_interpreter_over_several_steps() {
    let p = program("mlp", None);
    check("mlp", &p.steps[0], 4, 1e-5);
}

#[test]
fn lenet_matches_the_interpreter() {
    let p = program("lenet", Some(2));
    check("lenet", &p.steps[0], 1, 1e-4);
}

#[test]
fn sentiment_lstm_matches_the_interpreter() {
    let p = program("sentiment_lstm", Some(2));
    check("sentiment_lstm", &p.steps[0], 1, 1e-4);
}

#[test]
fn transformer_matches_the_interpreter() {
    let p = program("transformer", Some(2));
    check("transformer", &p.steps[0], 1, 1e-4);
}

#[test]
fn dcgan_matches_the_interpreter() {
    let p = program("dcgan", Some(2));
    for step in &p.steps {
        check("dcgan", step, 1, 1e-4);
    }
}

/// The convolutional examples on two threads, at batches large enough that convolutions, pools
/// and elementwise kernels are split.
#[test]
fn conv_examples_match_the_interpreter_on_two_threads() {
    let p = program("lenet", Some(8));
    check_on("lenet", &p.steps[0], 2, 1e-4, 2);
    let p = program("dcgan", Some(4));
    for step in &p.steps {
        check_on("dcgan", step, 1, 1e-4, 2);
    }
}

#[test]
fn mlp_kernels_match_snapshot() {
    let p = program("mlp", None);
    let compiled = CompiledStep::compile(&p.steps[0].graph).unwrap();
    let text = compiled.program().dump();
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/mlp.train.kernels");
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &text).unwrap();
    } else {
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            want == text,
            "kernel dump differs from {} (BLESS=1 to accept):\n{text}",
            file.display()
        );
    }
}

/// The interpreter-compatible `Runner` (what the training loop calls) gives the interpreter's
/// outputs, also on a second call served from its cache.
#[test]
fn runner_matches_the_interpreter() {
    let p = program("mlp", None);
    let step = &p.steps[0];
    let mut rng = Rng(9);
    let inputs = step_inputs(step, &mut rng, 1);
    let expected = reference(&step.graph, &inputs);
    let mut runner = netc_backend_cpu::Runner::new();
    for _ in 0..2 {
        let got = runner.run(&step.graph, &inputs).unwrap();
        assert_eq!(got.len(), expected.len());
        for (name, want) in &expected {
            let err = rel_l2(
                &got[name].to_f32_vec().unwrap(),
                &want.to_f32_vec().unwrap(),
            );
            assert!(err < 1e-5, "{name}: {err:e}");
        }
    }
}
