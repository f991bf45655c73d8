//! Typing example files character by character: every request gets an answer, none is an
//! error, nothing panics anywhere in the server (a panic hook counts even caught ones), and the
//! text the server ends with is the file.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::{Value, json};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Line and UTF-16 column of the end of `text`.
fn end_position(text: &str) -> (u32, u32) {
    let line = text.matches('\n').count();
    let last = text.rsplit('\n').next().unwrap_or("");
    (line as u32, last.encode_utf16().count() as u32)
}

/// Type `text` into an empty document in chunks (one character at a time for the first
/// `fine` characters, then `step` at a time), sending hover, completion and inlay-hint requests
/// at the cursor after each chunk and the other requests now and then. Returns how many
/// requests were answered.
fn type_file(c: &mut Client, uri: &str, text: &str, fine: usize, step: usize) -> usize {
    c.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "netdsl", "version": 0, "text": "" } }),
    );
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut typed = 0; // bytes typed so far
    let mut i = 0; // chars typed so far
    let mut version = 0;
    let mut answered = 0;
    while i < chars.len() {
        let n = if i < fine { 1 } else { step };
        let end = chars.get(i + n).map_or(text.len(), |&(b, _)| b);
        let (line, col) = end_position(&text[..typed]);
        version += 1;
        c.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{
                    "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col } },
                    "text": &text[typed..end],
                }],
            }),
        );
        typed = end;
        i += n;
        let (line, col) = end_position(&text[..typed]);
        let position = json!({ "line": line, "character": col });
        let doc = json!({ "uri": uri });
        let mut requests = vec![
            (
                "textDocument/hover",
                json!({ "textDocument": doc, "position": position }),
            ),
            (
                "textDocument/completion",
                json!({ "textDocument": doc, "position": position }),
            ),
            (
                "textDocument/inlayHint",
                json!({ "textDocument": doc, "range": { "start": { "line": 0, "character": 0 }, "end": position } }),
            ),
        ];
        if version % 10 == 0 {
            let at_start = json!({ "line": line.saturating_sub(1), "character": 2 });
            requests.extend([
                ("textDocument/definition", json!({ "textDocument": doc, "position": at_start })),
                (
                    "textDocument/references",
                    json!({ "textDocument": doc, "position": at_start, "context": { "includeDeclaration": true } }),
                ),
                ("textDocument/hover", json!({ "textDocument": doc, "position": at_start })),
                ("textDocument/documentSymbol", json!({ "textDocument": doc })),
                ("textDocument/semanticTokens/full", json!({ "textDocument": doc })),
                (
                    "textDocument/formatting",
                    json!({ "textDocument": doc, "options": { "tabSize": 2, "insertSpaces": true } }),
                ),
            ]);
        }
        for (method, params) in requests {
            let id = c.send_request(method, params);
            let response = c.response(id);
            if let Err(e) = response.response_result {
                panic!(
                    "{method} failed after typing {typed} bytes: {e:?}\n{}",
                    &text[..typed]
                );
            }
            answered += 1;
        }
    }
    answered
}

/// The diagnostics of the typed text equal those of the file opened at once.
fn final_diagnostics_match(c: &mut Client, uri: &str, text: &str) {
    // Drain whatever was published while typing; then ask for a fresh publication of the
    // typed document with an empty change.
    let hover = c.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 0 } }),
    );
    let _ = hover;
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 100000 }, "contentChanges": [] }),
    );
    let typed = loop {
        let p = c.notification("textDocument/publishDiagnostics");
        if p["uri"] == json!(uri) && p["version"] == json!(100000) {
            break p["diagnostics"].clone();
        }
    };
    let fresh = format!("{uri}.fresh");
    let opened = c.open_uri(&fresh, text);
    assert_eq!(typed, Value::from(opened), "{uri}");
}

#[test]
fn typing_the_transformer_example() {
    count_panics();
    let text = example("transformer.net");
    let mut c = Client::start();
    let answered = type_file(&mut c, URI, &text, 400, 5);
    assert!(answered > 1000, "{answered}");
    final_diagnostics_match(&mut c, URI, &text);
    assert_eq!(c.shutdown(), 0);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
}

#[test]
fn typing_every_example_and_the_ui_cases_quickly() {
    count_panics();
    let mut c = Client::start();
    let mut texts: Vec<(String, String)> =
        ["mlp.net", "lenet.net", "sentiment_lstm.net", "dcgan.net"]
            .iter()
            .map(|n| (format!("file:///ex/{n}"), example(n)))
            .collect();
    // The UI cases are all broken on purpose: a wide sample of mistakes.
    let ui = format!("{}/../tests/ui", env!("CARGO_MANIFEST_DIR"));
    let mut cases: Vec<_> = std::fs::read_dir(ui)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    cases.sort();
    for p in cases {
        let text = std::fs::read_to_string(&p).unwrap();
        texts.push((
            format!("file:///ui/{}", p.file_name().unwrap().to_string_lossy()),
            text,
        ));
    }
    for (uri, text) in &texts {
        let step = if uri.starts_with("file:///ex") { 7 } else { 23 };
        type_file(&mut c, uri, text, 0, step);
    }
    assert_eq!(c.shutdown(), 0);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
}

#[test]
fn deleting_from_the_middle_and_odd_positions() {
    count_panics();
    let text = example("dcgan.net");
    let mut c = Client::start();
    c.open(&text);
    let mut current = text.clone();
    let mut version = 1;
    // Delete a line in the middle, one at a time, asking for everything at positions past the
    // end of lines and of the file.
    while current.lines().count() > 1 {
        let lines: Vec<&str> = current.lines().collect();
        let mid = lines.len() / 2;
        version += 1;
        c.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": URI, "version": version },
                "contentChanges": [{
                    "range": { "start": { "line": mid, "character": 0 }, "end": { "line": mid + 1, "character": 0 } },
                    "text": "",
                }],
            }),
        );
        let mut rest: Vec<&str> = lines.clone();
        rest.remove(mid);
        current = rest.join("\n") + "\n";
        for (line, col) in [(mid as u32, 500u32), (9999, 0), (0, 0)] {
            for method in [
                "textDocument/hover",
                "textDocument/completion",
                "textDocument/definition",
            ] {
                let id = c.send_request(
                    method,
                    json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col } }),
                );
                assert!(c.response(id).response_result.is_ok(), "{method}");
            }
        }
    }
    assert_eq!(c.shutdown(), 0);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
}
