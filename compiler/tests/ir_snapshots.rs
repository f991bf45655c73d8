//! The optimized IR of every example's training steps, as canonical text, compared with
//! `tests/snapshots/ir/`: a change to lowering or a pass that alters a graph shows up in review.
//! `node_counts.txt` records each step's size after each stage. `BLESS=1` rewrites them.

use std::fmt::Write;
use std::path::PathBuf;

use netc_compiler::ir::text::dump;
use netc_compiler::lower::program::{CompileOptions, Stage, compile_run_with};

#[test]
fn example_ir_matches_snapshots() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let snapshots = root.join("tests/snapshots/ir");
    let bless = std::env::var_os("BLESS").is_some();
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    examples.sort();
    let mut counts = String::from("# example step: forward backward optimized (nodes)\n");
    let mut failures = Vec::new();
    for path in &examples {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(path).unwrap();
        let options = CompileOptions {
            batch: None,
            stage: Stage::Optimized,
        };
        let program =
            compile_run_with(&src, None, options).unwrap_or_else(|d| panic!("{stem}: {d:#?}"));
        for step in &program.steps {
            let sizes: Vec<String> = step
                .node_counts
                .iter()
                .map(|(_, n)| n.to_string())
                .collect();
            let _ = writeln!(counts, "{stem} {}: {}", step.name, sizes.join(" "));
            let file = snapshots.join(format!("{stem}.{}.ir", step.name));
            let text = dump(&step.graph);
            if bless {
                std::fs::write(&file, &text).unwrap();
            } else if std::fs::read_to_string(&file).unwrap_or_default() != text {
                failures.push(file.display().to_string());
            }
        }
    }
    let counts_file = snapshots.join("node_counts.txt");
    if bless {
        std::fs::write(&counts_file, &counts).unwrap();
    } else if std::fs::read_to_string(&counts_file).unwrap_or_default() != counts {
        failures.push(format!("{}:\n{counts}", counts_file.display()));
    }
    assert!(
        failures.is_empty(),
        "IR snapshots differ (BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}
