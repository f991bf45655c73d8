//! Inlay hints: shapes at the end of `let`, data field and pipeline lines; the client's toggle.

mod common;

use common::*;
use serde_json::{Value, json};

const TEXT: &str = "data digits {
  source csv(\"data/digits.csv\", label: 64)
  pixels: f32[64] |> scale(1 / 16)
  label:  class(10)
}

model Net(x: f32[B, 1, 28, 28]) -> f32[B, 10] {
  let h = x |> conv2d(8, kernel: 3) |> relu   # é😀
  h |> flatten
    |> linear(10)
}
";

fn hints(c: &mut Client) -> Vec<(u64, u64, String)> {
    let v = c.request(
        "textDocument/inlayHint",
        json!({
            "textDocument": { "uri": URI },
            "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 20, "character": 0 } },
        }),
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["position"]["line"].as_u64().unwrap(),
                h["position"]["character"].as_u64().unwrap(),
                h["label"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn shapes_at_the_end_of_let_field_and_pipeline_lines() {
    let mut c = Client::start();
    assert!(c.open(TEXT).is_empty());
    let line_end = |needle: &str| {
        let (line, _) = pos(TEXT, needle, 0);
        let text = TEXT.lines().nth(line as usize).unwrap();
        let code = text.split('#').next().unwrap().trim_end();
        (line as u64, code.encode_utf16().count() as u64)
    };
    let pixels = line_end("pixels");
    let label = line_end("label:  class");
    let h = line_end("let h");
    let flatten = line_end("h |> flatten");
    let linear = line_end("|> linear(10)");
    assert_eq!(
        hints(&mut c),
        vec![
            (pixels.0, pixels.1, "f32[64]".to_string()),
            (label.0, label.1, "i64[] (10 classes)".to_string()),
            (h.0, h.1, "f32[B, 8, 26, 26]".to_string()),
            (flatten.0, flatten.1, "f32[B, 5408]".to_string()),
            (linear.0, linear.1, "f32[B, 10]".to_string()),
        ]
    );
    c.shutdown();
}

#[test]
fn only_hints_in_the_requested_range() {
    let mut c = Client::start();
    c.open(TEXT);
    let v = c.request(
        "textDocument/inlayHint",
        json!({
            "textDocument": { "uri": URI },
            "range": { "start": { "line": 7, "character": 0 }, "end": { "line": 7, "character": 3 } },
        }),
    );
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["label"], json!("f32[B, 8, 26, 26]"));
    assert_eq!(v[0]["kind"], json!(1), "a type hint");
    assert_eq!(v[0]["paddingLeft"], json!(true));
    c.shutdown();
}

#[test]
fn the_client_can_turn_hints_off() {
    let mut c = Client::start_with(json!({ "inlayHints": false }), None);
    c.open(TEXT);
    assert!(hints(&mut c).is_empty());
    c.shutdown();

    // And back on (and off) through the `netc.inlayHints` setting.
    let mut c = Client::start();
    c.open(TEXT);
    assert_eq!(hints(&mut c).len(), 5);
    c.notify(
        "workspace/didChangeConfiguration",
        json!({ "settings": { "netc": { "inlayHints": false } } }),
    );
    assert!(hints(&mut c).is_empty());
    c.notify(
        "workspace/didChangeConfiguration",
        json!({ "settings": { "netc": { "inlayHints": true } } }),
    );
    assert_eq!(hints(&mut c).len(), 5);
    c.shutdown();
}

#[test]
fn a_broken_line_loses_its_hint_not_the_others() {
    let broken = TEXT.replace("|> relu", "|> reluu");
    let mut c = Client::start();
    c.open(&broken);
    let labels: Vec<String> = hints(&mut c).into_iter().map(|h| h.2).collect();
    assert!(labels.contains(&"f32[64]".to_string()), "{labels:?}");
    assert!(!labels.contains(&"f32[B, 10]".to_string()), "{labels:?}");
    assert_eq!(
        c.request(
            "textDocument/inlayHint",
            json!({ "textDocument": { "uri": "file:///not/open.net" }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 1, "character": 0 } } })
        ),
        Value::Null
    );
    c.shutdown();
}
