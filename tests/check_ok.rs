//! Programs that must check cleanly: every `tests/check_ok/*.net` is parsed and checked, and
//! any diagnostic at all (error or warning) fails the test and is printed as `netc check` would.
//!
//! These are the counterpart of the UI tests: constructs that are easy to reject by mistake
//! (contextual keywords, CRLF line endings, multi-line arguments, weight sharing, custom layers).

use std::fs;
use std::path::Path;

#[test]
fn check_ok() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_ok");
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
        if name.contains("crlf") && !src.contains("\r\n") {
            failures.push(format!(
                "{name}: must be written with CRLF line endings, but has none"
            ));
        }
        let (_, analysis) = netc_compiler::analyze(&src);
        if !analysis.diagnostics.is_empty() {
            let rendered: String = analysis
                .diagnostics
                .iter()
                .map(|d| netc_compiler::render::render_plain(d, &name, &src))
                .collect();
            failures.push(format!(
                "{name}: expected no diagnostics, found {}:\n{rendered}",
                analysis.diagnostics.len()
            ));
        }
    }
    assert!(
        cases.len() >= 8,
        "expected at least 8 check_ok cases, found {}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} program(s) that must check cleanly did not:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
