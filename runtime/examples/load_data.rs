//! Load the data sets of a `.net` file and report what was read and how long it took:
//! `cargo run --release -p netc-runtime --example load_data -- examples/mlp.net`.
//!
//! A quick way to check a data declaration against its files (and to time the loaders) without
//! training anything.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use netc_grammar::Severity;
use netc_runtime::data::{Dataset, load};

fn describe(name: &str, d: &Dataset) {
    let fields: Vec<String> = d
        .fields
        .iter()
        .map(|f| format!("{} {:?}", f.name, f.dims))
        .collect();
    println!("  {name}: {} samples ({})", d.len, fields.join(", "));
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: load_data FILE.net");
        return ExitCode::FAILURE;
    };
    let src = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (file, analysis) = netc_compiler::analyze(&src);
    if let Some(d) = analysis
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        eprintln!("{path}: {}", d.message);
        return ExitCode::FAILURE;
    }
    let base = Path::new(&path).parent().unwrap_or(Path::new("."));
    for (name, info) in &analysis.data {
        let t = Instant::now();
        match load(&file, info, base) {
            Ok(s) => {
                println!("data {name}: loaded in {:.3} s", t.elapsed().as_secs_f64());
                describe("train", &s.train);
                if let Some(v) = &s.val {
                    describe("val", v);
                }
                if let Some(v) = &s.test {
                    describe("test", v);
                }
                if let Some(v) = &s.vocab {
                    println!("  vocabulary: {} tokens", v.len());
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
