//! The `netc` binary as users run it: exit codes, JSON output, formatting, training, evaluation
//! and prediction on the shipped MLP example.

use std::path::PathBuf;
use std::process::Command;

fn netc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netc"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `command`, asserting it exits 0 (a failure shows its stderr).
fn succeed(command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn check_exit_codes() {
    succeed(netc().arg("check").arg(root().join("examples/mlp.net")));
    let bad = netc()
        .arg("check")
        .arg(root().join("tests/ui/syntax_dangling_pipe.net"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let usage = netc().arg("check").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let missing = netc()
        .arg("check")
        .arg("/nonexistent/file.net")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

#[test]
fn check_json_has_positions() {
    let out = netc()
        .args(["check", "--message-format", "json"])
        .arg(root().join("tests/ui/syntax_dangling_pipe.net"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["code"], "N1001");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["line_start"], 2);
    assert!(first["labels"].as_array().is_some_and(|l| !l.is_empty()));
}

#[test]
fn invalid_utf8_is_an_error_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("netc-cli-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.net");
    std::fs::write(&file, b"model M(x: f32[B]) { x \xff }\n").unwrap();
    let out = netc().arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid UTF-8"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fmt_check_accepts_the_examples() {
    for example in [
        "mlp",
        "lenet",
        "dcgan",
        "transformer",
        "sentiment_lstm",
        "mnist_mlp",
    ] {
        let out = netc()
            .args(["fmt", "--check"])
            .arg(root().join(format!("examples/{example}.net")))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{example}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn train_eval_and_predict() {
    let dir = std::env::temp_dir().join(format!("netc-cli-train-{}", std::process::id()));
    let out = succeed(
        netc()
            .args(["train", "--epochs", "2", "--json", "--out"])
            .arg(&dir)
            .arg(root().join("examples/mlp.net")),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["epochs"], 2);
    assert!(summary["validation"]["accuracy"].as_f64().unwrap() > 0.6);

    let checkpoint = dir.join("checkpoints/last.safetensors");
    let eval = succeed(
        netc()
            .args(["eval", "--json", "--checkpoint"])
            .arg(&checkpoint)
            .arg(root().join("examples/mlp.net")),
    );
    let metrics: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(metrics["accuracy"].as_f64().unwrap() > 0.6);

    let rows: String = std::fs::read_to_string(root().join("examples/data/digits.csv"))
        .unwrap()
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect();
    let input = dir.join("four.csv");
    std::fs::write(&input, &rows).unwrap();
    let predict = succeed(
        netc()
            .args(["predict", "--json", "--checkpoint"])
            .arg(&checkpoint)
            .arg("--input")
            .arg(&input)
            .arg(root().join("examples/mlp.net")),
    );
    let predictions: serde_json::Value = serde_json::from_slice(&predict.stdout).unwrap();
    assert_eq!(predictions.as_array().unwrap().len(), 4);

    // The same four digits as 8x8 greyscale PNGs predict exactly as the CSV rows do.
    let pngs: Vec<PathBuf> = rows
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let pixels: Vec<u8> = line
                .split(',')
                .take(64)
                .map(|v| v.parse().unwrap())
                .collect();
            let path = dir.join(format!("digit-{i}.png"));
            let mut encoder = png::Encoder::new(std::fs::File::create(&path).unwrap(), 8, 8);
            encoder.set_color(png::ColorType::Grayscale);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&pixels).unwrap();
            writer.finish().unwrap();
            path
        })
        .collect();
    let from_images = netc()
        .args(["predict", "--json", "--checkpoint"])
        .arg(&checkpoint)
        .args(
            pngs.iter()
                .flat_map(|p| [std::ffi::OsStr::new("--input"), p.as_os_str()]),
        )
        .arg(root().join("examples/mlp.net"))
        .output()
        .unwrap();
    assert_eq!(
        from_images.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&from_images.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&from_images.stdout).unwrap(),
        predictions
    );
    // A file that is not a PNG is named, with what was expected.
    let fake = dir.join("fake.png");
    std::fs::write(&fake, b"GIF89a").unwrap();
    let bad = netc()
        .args(["predict", "--checkpoint"])
        .arg(&checkpoint)
        .arg("--input")
        .arg(&fake)
        .arg(root().join("examples/mlp.net"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        format!(
            "error: {}: not a PNG file (expected the PNG signature at byte 0); give a .png, .npy or .csv\n",
            fake.display()
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tiny character-level model on the shipped Shakespeare slice: `netc sample` continues a
/// prompt with characters of the corpus, deterministically per seed, and refuses a model that
/// looks ahead.
#[test]
fn sample_text_from_a_language_model() {
    let dir = std::env::temp_dir().join(format!("netc-cli-sample-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = root().join("runtime/tests/fixtures/shakespeare-2000.txt");
    let program = |causal: bool| {
        format!(
            r#"
data corpus {{
  source text("{}", length: 16)
  chars: i32[16]
  target: i64[16]
  split val: 0.1, seed: 0
}}

model Lm(chars: i32[B, 16]) -> f32[B, 16, 60] {{
  let x = embedding(chars, 60, 16) + position_embedding(16, 16)
  let h = x + (x |> layer_norm |> self_attention(2, causal: {causal}))
  h |> layer_norm |> linear(60)
}}

train lm {{
  data corpus
  loss cross_entropy(Lm(chars), target)
  update Lm with adam(lr: 1e-2)
  epochs 3
  batch 8
  metrics accuracy
}}
"#,
            corpus.display()
        )
    };
    let vocab: std::collections::BTreeSet<char> =
        std::fs::read_to_string(&corpus).unwrap().chars().collect();
    assert!(
        vocab.len() <= 60,
        "the fixture has {} characters",
        vocab.len()
    );
    for causal in [true, false] {
        let file = dir.join(format!("lm-{causal}.net"));
        std::fs::write(&file, program(causal)).unwrap();
        let run_dir = dir.join(format!("run-{causal}"));
        let train = succeed(
            netc()
                .args(["train", "--json", "--out"])
                .arg(&run_dir)
                .arg(&file),
        );
        let summary: serde_json::Value = serde_json::from_slice(&train.stdout).unwrap();
        // Loss and accuracy over every position of every validation window.
        let loss = summary["validation"]["loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss < (60f64).ln(), "{loss}");
        assert!(summary["validation"]["accuracy"].as_f64().unwrap() > 0.0);
        let sample = |seed: &str| {
            netc()
                .args([
                    "sample", "--prompt", "First", "--length", "40", "--seed", seed,
                ])
                .arg("--checkpoint")
                .arg(run_dir.join("checkpoints/last.safetensors"))
                .arg(&file)
                .output()
                .unwrap()
        };
        let first = sample("1");
        if !causal {
            assert_eq!(first.status.code(), Some(1));
            assert_eq!(
                String::from_utf8_lossy(&first.stderr),
                "error: the model is not causal: its output at a position depends on later \
                 positions (use `self_attention(..., causal: true)` or a one-directional \
                 `lstm`/`gru`), so it cannot generate text one character at a time\n"
            );
            continue;
        }
        assert_eq!(
            first.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let text = String::from_utf8(first.stdout.clone()).unwrap();
        let generated = text
            .strip_prefix("First")
            .unwrap()
            .strip_suffix('\n')
            .unwrap();
        assert_eq!(generated.chars().count(), 40, "{text:?}");
        assert!(generated.chars().all(|c| vocab.contains(&c)), "{text:?}");
        assert_eq!(sample("1").stdout, first.stdout, "same seed, same text");
        let unknown = netc()
            .args(["sample", "--prompt", "\u{e9}", "--checkpoint"])
            .arg(run_dir.join("checkpoints/last.safetensors"))
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&unknown.stderr),
            "error: the prompt's character '\u{e9}' does not occur in the training text\n"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `netc sample` on a GAN run writes the image grid of its `sample` line from a checkpoint.
#[test]
fn sample_grid_from_a_gan() {
    let dir = std::env::temp_dir().join(format!("netc-cli-gan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gan.net");
    std::fs::write(
        &file,
        format!(
            r#"
data digits {{
  source csv("{}", label: 64)
  pixels: f32[64] |> scale(1 / 8) |> shift(-1)
}}

model Generator(z: f32[B, 8]) -> f32[B, 1, 8, 8] {{
  z |> linear(64) |> tanh |> reshape([B, 1, 8, 8])
}}

model Discriminator(x: f32[B, 1, 8, 8]) -> f32[B, 1] {{
  x |> flatten |> linear(16) |> leaky_relu(0.2) |> linear(1) |> sigmoid
}}

train gan {{
  data digits
  let z = normal([B, 8])
  let fake = Generator(z)
  step discriminator {{
    loss bce(Discriminator(reshape(pixels, [B, 1, 8, 8])), 1) + bce(Discriminator(stop_gradient(fake)), 0)
    update Discriminator with adam(lr: 2e-4)
  }}
  step generator {{
    loss bce(Discriminator(fake), 1)
    update Generator with adam(lr: 2e-4)
  }}
  epochs 1
  batch 16
  sample Generator(z), every: 1, to: "samples"
}}
"#,
            root().join("examples/data/digits.csv").display()
        ),
    )
    .unwrap();
    let run_dir = dir.join("run");
    succeed(
        netc()
            .args(["train", "--json", "--out"])
            .arg(&run_dir)
            .arg(&file),
    );
    let grid = dir.join("grid.png");
    succeed(
        netc()
            .args(["sample", "--seed", "3", "--checkpoint"])
            .arg(run_dir.join("checkpoints/last.safetensors"))
            .arg("--out")
            .arg(&grid)
            .arg(&file),
    );
    let png = std::fs::read(&grid).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `netc build --emit kernels` writes, beside the IR dumps, the kernel plan the native backend
/// compiles: the same text as the backend's own dump of the optimized step.
#[test]
fn build_emits_the_kernel_plan() {
    let dir = std::env::temp_dir().join(format!("netc-cli-kernels-{}", std::process::id()));
    succeed(
        netc()
            .args(["build", "--emit", "kernels", "--out"])
            .arg(&dir)
            .arg(root().join("examples/mlp.net")),
    );
    let text = std::fs::read_to_string(dir.join("train.kernels")).unwrap();
    let expected =
        std::fs::read_to_string(root().join("backend-cpu/tests/snapshots/mlp.train.kernels"))
            .unwrap();
    assert_eq!(text, expected);
    assert!(dir.join("train.9-optimized.ir").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `netc bench` prints one JSON object with its numbers; `--profile` adds the per-kernel table
/// on stderr, whose shares account for every kernel of the step.
#[test]
fn bench_reports_json_and_a_kernel_profile() {
    let out = succeed(
        netc()
            .args(["bench", "--warmup", "1", "--seconds", "0.1", "--profile"])
            .arg(root().join("benches/mlp.net")),
    );
    let json: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(json["model"], "mlp");
    assert_eq!(json["backend"], "cranelift");
    assert!(json["steps"].as_u64().unwrap() >= 3, "{json}");
    assert!(json["steps_per_s"].as_f64().unwrap() > 0.0, "{json}");
    // PyTorch's count for this step (issue 5's table): 385 024 FLOPs.
    assert_eq!(json["gflop_per_step"].as_f64().unwrap(), 0.000385, "{json}");
    assert!(json["gflop_per_s"].as_f64().unwrap() > 0.0, "{json}");
    let table = String::from_utf8(out.stderr).unwrap();
    assert!(table.contains("ms per iteration in kernels"), "{table}");
    assert!(table.contains(" matmul %"), "{table}");
    let shares: f64 = table
        .lines()
        .skip(1)
        .filter_map(|l| l.trim_start().split('%').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        (shares - 100.0).abs() < 1.0,
        "shares sum to {shares}: {table}"
    );
}
