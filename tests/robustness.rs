//! No input may panic, hang or exhaust the stack: mutated examples, truncations, and the
//! adversarial shapes of input named in the language issue.

use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Checking runs on a thread with the stack size the CLI uses.
fn analyze_on_big_stack(src: String) -> usize {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || netc_compiler::analyze(&src).1.diagnostics.len())
        .unwrap()
        .join()
        .expect("analysis panicked")
}

fn examples() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, String),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        Just("(".to_string()),
        Just(")".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("|>".to_string()),
        Just("\n".to_string()),
        Just("\"".to_string()),
        Just("#".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("let ".to_string()),
        Just("model ".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("é".to_string()),
        "[a-z_]{1,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop_oneof![
        (any::<usize>(), snippet.clone()).prop_map(|(i, s)| Edit::Insert(i, s)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), snippet).prop_map(|(i, s)| Edit::Replace(i, s)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut src: String, e: &Edit) -> String {
    match e {
        Edit::Insert(i, s) => {
            let i = boundary(&src, *i);
            src.insert_str(i, s);
        }
        Edit::Delete(i, n) => {
            let i = boundary(&src, *i);
            let j = boundary(&src, (i + n).min(src.len()));
            src.replace_range(i..j.max(i), "");
        }
        Edit::Replace(i, s) => {
            let i = boundary(&src, *i);
            let j = boundary(&src, (i + s.len()).min(src.len()));
            src.replace_range(i..j.max(i), s);
        }
        Edit::Truncate(i) => {
            let i = boundary(&src, *i);
            src.truncate(i);
        }
    }
    src
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_examples_never_panic(which in 0usize..5, edits in proptest::collection::vec(edit(), 1..6)) {
        let examples = examples();
        let mut src = examples[which % examples.len()].clone();
        for e in &edits {
            src = apply(src, e);
        }
        analyze_on_big_stack(src);
    }
}

#[test]
fn every_prefix_of_every_example_is_handled_quickly() {
    for example in examples() {
        let mut i = 0;
        while i <= example.len() {
            if example.is_char_boundary(i) {
                let start = Instant::now();
                netc_compiler::analyze(&example[..i]);
                // A generous bound that only a pathological (exponential) parse would exceed.
                assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "prefix of {i} bytes took {:?}",
                    start.elapsed()
                );
            }
            i += 7;
        }
    }
}

fn expect_errors(src: String) {
    assert!(analyze_on_big_stack(src) > 0);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    expect_errors(format!(
        "const x = {}1{}\n",
        "(".repeat(20_000),
        ")".repeat(20_000)
    ));
    expect_errors(format!("const x = {}\n", "(".repeat(20_000)));
    expect_errors(format!(
        "model M(x: f32[B, 4]) -> f32[B, 4] {{\n  x |> {}relu\n}}\n",
        "f(".repeat(20_000)
    ));
}

#[test]
fn long_chains_are_handled() {
    let stages = "|> relu ".repeat(20_000);
    let src = format!("model M(x: f32[B, 4]) -> f32[B, 4] {{\n  x {stages}\n}}\n");
    assert_eq!(analyze_on_big_stack(src), 0);
    expect_errors(format!("const x = 1{}\n", " + 1".repeat(20_000)));
    expect_errors(format!("const x = {}1\n", "-".repeat(20_000)));
}

#[test]
fn huge_tokens_and_numbers() {
    expect_errors(format!(
        "model {}(x: f32[B, 4]) {{ y }}\n",
        "a".repeat(200_000)
    ));
    expect_errors("const n = 99999999999999999999999\n".to_string());
    expect_errors("const n = 1e999\n".to_string());
    expect_errors(
        "model M(x: f32[B, 4294967296, 4294967296, 4294967296]) -> f32[B, 1] {\n  x |> flatten |> linear(1)\n}\n"
            .to_string(),
    );
}

#[test]
fn crlf_and_random_bytes() {
    for example in examples() {
        assert_eq!(
            analyze_on_big_stack(example.replace('\n', "\r\n")),
            analyze_on_big_stack(example.clone())
        );
    }
    let mut state: u64 = 0x2545F4914F6CDD1D;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..300)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 128) as u8
            })
            .collect();
        analyze_on_big_stack(String::from_utf8_lossy(&bytes).into_owned());
    }
}
