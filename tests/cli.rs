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

#[test]
fn check_exit_codes() {
    let ok = netc()
        .arg("check")
        .arg(root().join("examples/mlp.net"))
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
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
    let out = netc()
        .args(["train", "--epochs", "2", "--json", "--out"])
        .arg(&dir)
        .arg(root().join("examples/mlp.net"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["epochs"], 2);
    assert!(summary["validation"]["accuracy"].as_f64().unwrap() > 0.6);

    let checkpoint = dir.join("checkpoints/last.safetensors");
    let eval = netc()
        .args(["eval", "--json", "--checkpoint"])
        .arg(&checkpoint)
        .arg(root().join("examples/mlp.net"))
        .output()
        .unwrap();
    assert_eq!(
        eval.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
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
    std::fs::write(&input, rows).unwrap();
    let predict = netc()
        .args(["predict", "--json", "--checkpoint"])
        .arg(&checkpoint)
        .arg("--input")
        .arg(&input)
        .arg(root().join("examples/mlp.net"))
        .output()
        .unwrap();
    assert_eq!(
        predict.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&predict.stderr)
    );
    let predictions: serde_json::Value = serde_json::from_slice(&predict.stdout).unwrap();
    assert_eq!(predictions.as_array().unwrap().len(), 4);
    std::fs::remove_dir_all(dir).unwrap();
}
