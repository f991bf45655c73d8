//! How long parsing and checking each example takes (the language issue asks for < 5 ms).
//! Run with `cargo bench --bench check`; prints one line per example, no pass/fail.

use std::time::Instant;

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    files.sort();
    for path in files {
        let src = std::fs::read_to_string(&path).unwrap();
        let iterations = 200;
        netc_compiler::analyze(&src);
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(netc_compiler::analyze(std::hint::black_box(&src)));
        }
        let per = start.elapsed().as_secs_f64() * 1e3 / iterations as f64;
        let parse_start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(netc_grammar::parse(std::hint::black_box(&src)));
        }
        let parse = parse_start.elapsed().as_secs_f64() * 1e3 / iterations as f64;
        println!(
            "{{\"example\": \"{}\", \"bytes\": {}, \"check_ms\": {per:.3}, \"parse_ms\": {parse:.3}}}",
            path.file_name().unwrap().to_string_lossy(),
            src.len()
        );
    }
}
