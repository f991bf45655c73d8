//! UI tests: every `tests/ui/*.net` is checked and its diagnostics, rendered exactly as
//! `netc check` prints them without colour, are compared with `tests/ui/*.stderr`.
//!
//! Set `BLESS=1` to write the current output as the expected one (then review the diff).

use std::fs;
use std::path::Path;

#[test]
fn ui() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    for case in &cases {
        let src = fs::read_to_string(case).unwrap();
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let (_, analysis) = netc_compiler::analyze(&src);
        let actual: String = analysis
            .diagnostics
            .iter()
            .map(|d| netc_compiler::render::render_plain(d, &name, &src))
            .collect();
        let expected_path = case.with_extension("stderr");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if analysis.diagnostics.is_empty() {
            failures.push(format!(
                "{name}: no diagnostics; every UI case must show an error or warning"
            ));
        } else if actual != expected {
            failures.push(format!(
                "{name}: output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
                expected_path.display()
            ));
        }
    }
    assert!(
        cases.len() >= 40,
        "expected at least 40 UI cases, found {}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} UI case(s) failed (BLESS=1 to accept):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
