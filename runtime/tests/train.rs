//! The training loop end to end on the MLP example and its shipped digits data: it learns, an
//! interrupted and resumed run ends bit for bit where an uninterrupted one does, and a loss that
//! becomes NaN stops training with a message naming the step.

use std::path::{Path, PathBuf};

use netc_compiler::ir::interp::{Data, Value};
use netc_compiler::lower::program::{CompileOptions, Program, Stage, compile_run_with};
use netc_runtime::checkpoint;
use netc_runtime::data::{self, Splits};
use netc_runtime::log::Progress;
use netc_runtime::train::{Backend, Options, train};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mlp.net")
}

fn compile(src: &str, batch: Option<usize>) -> Program {
    compile_run_with(
        src,
        None,
        CompileOptions {
            batch,
            stage: Stage::Optimized,
        },
    )
    .unwrap_or_else(|d| panic!("{d:#?}"))
}

fn load(program: &Program, file: &Path) -> Splits {
    let info = program.data.clone().expect("the example has data");
    data::load(&program.file, &info, file.parent().unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

/// The program compiled for the size of the last, partial validation batch.
fn tail_program(src: &str, program: &Program, data: &Splits) -> Option<Program> {
    let rows = data
        .val
        .as_ref()
        .map(|v| v.len % program.batch)
        .filter(|&r| r > 0)?;
    Some(compile(src, Some(rows)))
}

fn options(dir: &Path) -> Options {
    Options {
        epochs: Some(2),
        max_steps: None,
        seed: 3,
        run_dir: dir.to_path_buf(),
        resume: None,
        init: None,
        progress: Progress::Quiet,
        backend: Backend::Interp,
        check_numerics: false,
        stop: None,
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn learns_and_writes_its_logs() {
    let src = std::fs::read_to_string(example()).unwrap();
    let program = compile(&src, None);
    let data = load(&program, &example());
    let tail = tail_program(&src, &program, &data);
    let dir = temp("learns");
    let summary = train(
        &program,
        &data,
        tail.as_ref().and_then(|p| p.eval.as_ref()),
        &options(&dir),
    )
    .unwrap();
    assert_eq!(summary.epochs, 2);
    assert!(
        summary.final_train_loss < 1.5,
        "loss {} after 2 epochs",
        summary.final_train_loss
    );
    let accuracy = summary.validation["accuracy"];
    assert!(
        accuracy > 0.6,
        "validation accuracy {accuracy} after 2 epochs"
    );
    for file in [
        "metrics.jsonl",
        "summary.json",
        "curves.svg",
        "checkpoints/last.safetensors",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(jsonl.lines().any(|l| l.contains("\"val_accuracy\"")));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resumed_run_ends_with_the_same_weights_bit_for_bit() {
    let src = std::fs::read_to_string(example()).unwrap();
    let program = compile(&src, None);
    let data = load(&program, &example());
    let tail = tail_program(&src, &program, &data);
    let tail = tail.as_ref().and_then(|p| p.eval.as_ref());

    let whole = temp("whole");
    train(&program, &data, tail, &options(&whole)).unwrap();

    // Interrupt in the middle of the second epoch, then resume from the checkpoint it left.
    let parts = temp("parts");
    let per_epoch = (data.train.len / program.batch) as u64;
    let first = Options {
        max_steps: Some(per_epoch + 7),
        ..options(&parts)
    };
    train(&program, &data, tail, &first).unwrap();
    let resume_from = parts.join("checkpoints/last.safetensors");
    assert_eq!(
        checkpoint::load(&resume_from).unwrap().1.step,
        per_epoch + 7
    );
    let second = Options {
        resume: Some(resume_from),
        ..options(&parts)
    };
    train(&program, &data, tail, &second).unwrap();

    let (a, ma) = checkpoint::load(&whole.join("checkpoints/last.safetensors")).unwrap();
    let (b, mb) = checkpoint::load(&parts.join("checkpoints/last.safetensors")).unwrap();
    assert_eq!(ma.step, mb.step);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, va) in &a {
        assert_eq!(va.data, b[name].data, "`{name}` differs after resuming");
    }
    std::fs::remove_dir_all(whole).unwrap();
    std::fs::remove_dir_all(parts).unwrap();
}

#[test]
fn a_nan_loss_stops_training_and_names_the_step() {
    // A learning rate this large makes the logits overflow within a few steps.
    let src = std::fs::read_to_string(example())
        .unwrap()
        .replace("adam(lr: 1e-3)", "sgd(lr: 1e30)");
    let program = compile(&src, None);
    let data = load(&program, &example());
    let dir = temp("nan");
    let e = train(&program, &data, None, &options(&dir)).unwrap_err();
    assert!(
        e.message.starts_with("the loss of step `train` became"),
        "{}",
        e.message
    );
    assert!(e.message.contains("at step"), "{}", e.message);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_numerics_names_the_layer() {
    let src = std::fs::read_to_string(example())
        .unwrap()
        .replace("adam(lr: 1e-3)", "sgd(lr: 1e30)");
    let program = compile(&src, None);
    let data = load(&program, &example());
    let dir = temp("numerics");
    let e = train(
        &program,
        &data,
        None,
        &Options {
            check_numerics: true,
            ..options(&dir)
        },
    )
    .unwrap_err();
    let span = e.span.expect("the failing op's span");
    assert_eq!(&src[span.start..span.end], "linear(10)", "{}", e.message);
    assert!(
        e.message
            .contains("the first NaN or infinity comes from `matmul`"),
        "{}",
        e.message
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_interrupted_run_saves_a_checkpoint() {
    let src = std::fs::read_to_string(example()).unwrap();
    let program = compile(&src, None);
    let data = load(&program, &example());
    let dir = temp("interrupt");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let e = train(
        &program,
        &data,
        None,
        &Options {
            stop: Some(stop),
            ..options(&dir)
        },
    )
    .unwrap_err();
    assert!(
        e.message
            .starts_with("interrupted at step 1; checkpoint saved to"),
        "{}",
        e.message
    );
    assert_eq!(
        checkpoint::load(&dir.join("checkpoints/last.safetensors"))
            .unwrap()
            .1
            .step,
        1
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Train `src` (data beside the MLP example) for one epoch on the interpreter and on the native
/// backend, and compare every saved tensor.
fn trains_like_the_interpreter(src: &str, name: &str) {
    trains_on_like_the_interpreter(src, name, Backend::Cranelift);
}

/// [`trains_like_the_interpreter`] on `backend`; without a CUDA device a CUDA run prints that
/// it was skipped.
fn trains_on_like_the_interpreter(src: &str, name: &str, backend: Backend) {
    let program = compile(src, None);
    let data = load(&program, &example());
    let tail = tail_program(src, &program, &data);
    let tail = tail.as_ref().and_then(|p| p.eval.as_ref());
    let (a, b) = (
        temp(&format!("{name}-interp")),
        temp(&format!("{name}-cranelift")),
    );
    let one_epoch = |dir: &Path, backend| Options {
        epochs: Some(1),
        backend,
        ..options(dir)
    };
    train(&program, &data, tail, &one_epoch(&a, Backend::Interp)).unwrap();
    if let Err(e) = train(&program, &data, tail, &one_epoch(&b, backend)) {
        assert!(
            e.message.contains(netc_backend_cuda::device::NO_DEVICE),
            "{}",
            e.message
        );
        eprintln!("{}: skipped", e.message);
        return;
    }
    let (wa, _) = checkpoint::load(&a.join("checkpoints/last.safetensors")).unwrap();
    let (wb, _) = checkpoint::load(&b.join("checkpoints/last.safetensors")).unwrap();
    for (name, va) in &wa {
        // Batch norm's counters are saved as int64.
        let floats = |v: &Value| match &v.data {
            Data::F(x) => x.clone(),
            Data::I(x) => x.iter().map(|&i| i as f64).collect(),
        };
        let (x, y) = (floats(va), floats(&wb[name]));
        let diff: f64 = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = x.iter().map(|p| p * p).sum::<f64>().sqrt().max(1e-12);
        assert!(
            diff / norm < 1e-4,
            "`{name}` after one epoch: rel L2 {:e}",
            diff / norm
        );
    }
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn native_backend_trains_like_the_interpreter() {
    trains_like_the_interpreter(&std::fs::read_to_string(example()).unwrap(), "native");
}

/// A small GAN on the digits: two steps sharing parameters.
const GAN: &str = r#"
data digits {
  source csv("data/digits.csv", label: 64)
  pixels: f32[64] |> scale(1 / 16)
  label: class(10)
  shuffle seed: 1
}

model G(z: f32[B, 8]) -> f32[B, 64] {
  z |> linear(32, bias: false) |> batch_norm |> relu |> linear(64) |> sigmoid
}

model D(x: f32[B, 64]) -> f32[B, 1] {
  x |> linear(32) |> leaky_relu(0.2) |> linear(1) |> sigmoid
}

train gan {
  data digits
  let z = normal([B, 8])
  let fake = G(z)
  step discriminator {
    loss bce(D(pixels), 1) + bce(D(stop_gradient(fake)), 0)
    update D with adam(lr: 1e-2, betas: (0.5, 0.999))
  }
  step generator {
    loss bce(D(fake), 1)
    update G with adam(lr: 1e-2, betas: (0.5, 0.999))
  }
  epochs 1
  batch 32
}
"#;

/// Two steps sharing parameters: the generator step must see the discriminator's update of the
/// same batch, which the native backend holds in the other step's arena.
#[test]
fn native_backend_trains_a_gan_like_the_interpreter() {
    trains_like_the_interpreter(GAN, "gan");
}

/// The GAN run on a GPU (parameters resident on the device, shared between the two steps
/// through the runner); skipped without one.
#[test]
fn cuda_backend_trains_a_gan_like_the_interpreter() {
    trains_on_like_the_interpreter(GAN, "gan-cuda", Backend::Cuda);
}
