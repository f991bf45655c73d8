//! Round-trip latency of the language server on a 1 000-line file (the issue asks for
//! responses under 50 ms). Run with `cargo bench -p netc-lsp --bench latency`; prints one JSON
//! line per operation with the mean and the worst time in milliseconds. No pass/fail: timing
//! depends on the machine.
//!
//! The file is the five examples repeated with every item renamed (`Mlp_3`, `digits_3`), so it
//! checks without errors and every item is analysed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use netc_grammar::Item;
use serde_json::json;

/// The examples, repeated with renamed items until the text has at least `lines` lines.
fn big_file(lines: usize) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let sources: Vec<String> = [
        "mlp.net",
        "lenet.net",
        "sentiment_lstm.net",
        "transformer.net",
        "dcgan.net",
    ]
    .iter()
    .map(|n| std::fs::read_to_string(format!("{dir}/{n}")).unwrap())
    .collect();
    let mut out = String::new();
    let mut copy = 0;
    while out.lines().count() < lines {
        for src in &sources {
            let (file, _) = netc_grammar::parse(src);
            let names: Vec<String> = file
                .items
                .iter()
                .filter_map(|i| match i {
                    Item::Const(c) => Some(c.name.name.clone()),
                    Item::Model(m) => Some(m.name.name.clone()),
                    Item::Block(b) => Some(b.name.name.clone()),
                    Item::Data(d) => Some(d.name.name.clone()),
                    Item::Train(t) => t.name.as_ref().map(|n| n.name.clone()),
                    Item::Error(_) => None,
                })
                .collect();
            out.push_str(&rename(src, &names, copy));
            out.push('\n');
            copy += 1;
            if out.lines().count() >= lines {
                break;
            }
        }
    }
    out
}

/// Append `_{copy}` to every whole-word occurrence of `names` outside strings and comments.
fn rename(src: &str, names: &[String], copy: usize) -> String {
    let mut out = String::new();
    for line in src.split_inclusive('\n') {
        let (code, comment) = match line.find('#') {
            Some(i) => line.split_at(i),
            None => (line, ""),
        };
        let mut in_string = false;
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String, in_string: bool| {
            if !in_string && names.contains(word) {
                out.push_str(&format!("{word}_{copy}"));
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for (i, c) in code.char_indices() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            // An argument name (`vocab: vocab`) is not the item it is named like.
            let argument = code[i..].trim_start().starts_with(':');
            flush(&mut word, &mut out, in_string || argument);
            if c == '"' {
                in_string = !in_string;
            }
            out.push(c);
        }
        flush(&mut word, &mut out, in_string);
        out.push_str(comment);
    }
    out
}

fn report(what: &str, times: &[f64], lines: usize) {
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let worst = times.iter().cloned().fold(0.0, f64::max);
    println!(
        "{{\"operation\": \"{what}\", \"lines\": {lines}, \"runs\": {}, \"mean_ms\": {mean:.2}, \"max_ms\": {worst:.2}}}",
        times.len()
    );
}

fn main() {
    let text = big_file(1000);
    let lines = text.lines().count();
    let mut c = Client::start();
    let diags = c.open(&text);
    assert!(diags.is_empty(), "the generated file checks: {diags:#?}");
    // For comparison: the compiler's own time on this text, without the server.
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(netc_compiler::analyze(std::hint::black_box(&text)));
    }
    let analyze = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
    println!(
        "{{\"operation\": \"netc_compiler::analyze alone\", \"lines\": {lines}, \"bytes\": {}, \"mean_ms\": {analyze:.2}}}",
        text.len()
    );

    // A binding in the middle of the file to hover.
    let target = text
        .match_indices("let h = ")
        .nth(3)
        .map(|(i, _)| i + 4)
        .unwrap();
    let line = text[..target].matches('\n').count() as u32;
    let col = (target - text[..target].rfind('\n').map_or(0, |i| i + 1)) as u32;
    let position = json!({ "line": line, "character": col });
    let doc = json!({ "uri": URI });
    let runs = 40;

    // Edit → diagnostics: insert then remove a space at the start of the last line.
    let mut edit_times = Vec::new();
    let mut hover_after_edit = Vec::new();
    let last = lines as u32;
    for v in 0..runs {
        let text = if v % 2 == 0 { " " } else { "" };
        let end = if v % 2 == 0 { 0 } else { 1 };
        let start = Instant::now();
        c.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": URI, "version": v + 2 },
                "contentChanges": [{ "range": { "start": { "line": last, "character": 0 }, "end": { "line": last, "character": end } }, "text": text }],
            }),
        );
        c.diagnostics();
        edit_times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    report("edit -> publishDiagnostics", &edit_times, lines);

    // Edit, then hover at once (the hover pays for the analysis).
    for v in 0..runs {
        let text = if v % 2 == 0 { " " } else { "" };
        let end = if v % 2 == 0 { 0 } else { 1 };
        c.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": URI, "version": v + 1000 },
                "contentChanges": [{ "range": { "start": { "line": last, "character": 0 }, "end": { "line": last, "character": end } }, "text": text }],
            }),
        );
        let start = Instant::now();
        let h = c.request(
            "textDocument/hover",
            json!({ "textDocument": doc, "position": position }),
        );
        hover_after_edit.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(
            h["contents"]["value"].as_str().unwrap().contains("let h"),
            "{h}"
        );
        c.diagnostics();
    }
    report("edit + hover (analysis included)", &hover_after_edit, lines);

    let mut measure = |name: &str, method: &str, params: serde_json::Value| {
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let _ = c.request(method, params.clone());
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        report(name, &times, lines);
    };
    measure(
        "hover",
        "textDocument/hover",
        json!({ "textDocument": doc, "position": position }),
    );
    measure(
        "completion",
        "textDocument/completion",
        json!({ "textDocument": doc, "position": position }),
    );
    measure(
        "inlayHint (whole file)",
        "textDocument/inlayHint",
        json!({ "textDocument": doc, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": last, "character": 0 } } }),
    );
    measure(
        "definition",
        "textDocument/definition",
        json!({ "textDocument": doc, "position": position }),
    );
    measure(
        "references",
        "textDocument/references",
        json!({ "textDocument": doc, "position": position, "context": { "includeDeclaration": true } }),
    );
    measure(
        "documentSymbol",
        "textDocument/documentSymbol",
        json!({ "textDocument": doc }),
    );
    measure(
        "semanticTokens/full",
        "textDocument/semanticTokens/full",
        json!({ "textDocument": doc }),
    );
    measure(
        "formatting",
        "textDocument/formatting",
        json!({ "textDocument": doc, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    c.shutdown();
}
