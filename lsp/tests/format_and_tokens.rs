//! Formatting (through `netc fmt`'s formatter) and semantic tokens.

mod common;

use common::*;
use serde_json::{Value, json};

const MESSY: &str = "model   Mlp(x: f32[B,64]) -> f32[B,10] {   # é😀
  let h=x|>linear(64)|>relu
  h |> linear(10)
}
";

fn format(c: &mut Client) -> Value {
    c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 2, "insertSpaces": true } }),
    )
}

#[test]
fn formatting_replaces_the_text_with_the_canonical_layout() {
    let mut c = Client::start();
    c.open(MESSY);
    let edits = format(&mut c);
    let edits = edits.as_array().unwrap();
    assert_eq!(edits.len(), 1);
    let expected = netc_grammar::format(MESSY).unwrap();
    assert_eq!(edits[0]["newText"], json!(expected));
    assert_eq!(range(&edits[0]["range"]), (0, 0, 4, 0));

    // Applying the edit leaves nothing to format.
    c.change(2, json!([{ "range": edits[0]["range"], "text": expected }]));
    assert_eq!(format(&mut c), json!([]));

    // A file with syntax errors is left alone.
    c.change(3, json!([{ "text": "model M(x: f32[B, {\n" }]));
    assert_eq!(format(&mut c), Value::Null);
    c.shutdown();
}

/// Decoded tokens: `(line, start, length, type name, modifiers)`.
fn tokens(c: &mut Client, text: &str) -> Vec<(u32, u32, u32, String, u32)> {
    let legend = c.init_result["capabilities"]["semanticTokensProvider"]["legend"]["tokenTypes"]
        .as_array()
        .unwrap()
        .clone();
    c.open(text);
    let v = c.request(
        "textDocument/semanticTokens/full",
        json!({ "textDocument": { "uri": URI } }),
    );
    let data: Vec<u32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as u32)
        .collect();
    let (mut line, mut start) = (0, 0);
    data.chunks(5)
        .map(|t| {
            if t[0] > 0 {
                line += t[0];
                start = t[1];
            } else {
                start += t[1];
            }
            (
                line,
                start,
                t[2],
                legend[t[3] as usize].as_str().unwrap().to_string(),
                t[4],
            )
        })
        .collect()
}

#[test]
fn semantic_tokens_classify_keywords_types_layers_and_names() {
    let text = "# é😀 comment
const width = 64

data digits {
  source csv(\"data/é.csv\", label: 64)
  pixels: f32[64]
  label:  class(10)
}

model Mlp(x: f32[B, 64]) -> f32[B, 10] {
  let h = x |> linear(width) |> relu
  h |> linear(10)
}

train t {
  data digits
  loss cross_entropy(Mlp(pixels), label)
  update Mlp with adam(lr: 1e-3)
  epochs 3
  batch 8
}
";
    let mut c = Client::start();
    let toks = tokens(&mut c, text);
    let kind_at = |needle: &str| -> (String, u32, u32) {
        let (line, col) = pos(text, needle, 0);
        let t = toks
            .iter()
            .find(|t| t.0 == line && t.1 == col)
            .unwrap_or_else(|| panic!("no token at `{needle}`: {toks:?}"));
        (t.3.clone(), t.2, t.4)
    };
    // The comment's length is in UTF-16 units (the emoji is two).
    assert_eq!(kind_at("# é"), ("comment".to_string(), 13, 0));
    assert_eq!(kind_at("const").0, "keyword");
    assert_eq!(kind_at("width =").0, "variable");
    assert_eq!(kind_at("64\n").0, "number");
    assert_eq!(kind_at("data digits").0, "keyword");
    assert_eq!(kind_at("digits {").0, "namespace");
    assert_eq!(kind_at("source").0, "keyword");
    assert_eq!(kind_at("csv").0, "function");
    // Strings count UTF-16 units too.
    assert_eq!(kind_at("\"data/é.csv\"").0, "string");
    assert_eq!(kind_at("\"data/é.csv\"").1, 12);
    assert_eq!(kind_at("label: 64").0, "parameter");
    assert_eq!(kind_at("pixels:").0, "property");
    assert_eq!(kind_at("f32[64]").0, "type");
    assert_eq!(kind_at("model").0, "keyword");
    assert_eq!(kind_at("Mlp(x").0, "class");
    assert_eq!(kind_at("B, 64]").0, "typeParameter");
    assert_eq!(kind_at("let").0, "keyword");
    assert_eq!(kind_at("h = x").0, "variable");
    assert_eq!(kind_at("|> linear(width)").0, "operator");
    assert_eq!(kind_at("linear(width)").0, "function");
    assert_eq!(kind_at("relu").0, "function");
    assert_eq!(kind_at("epochs").0, "keyword");
    assert_eq!(kind_at("update").0, "keyword");
    assert_eq!(kind_at("with").0, "keyword");
    assert_eq!(kind_at("Mlp with").0, "class");
    assert_eq!(kind_at("pixels)").0, "property");
    // Declarations carry the modifier (bit 0), built-ins `defaultLibrary` (bit 2), consts
    // `readonly` (bit 1).
    assert_eq!(kind_at("h = x").2 & 1, 1);
    assert_eq!(kind_at("h |> linear(10)").2 & 1, 0);
    assert_eq!(kind_at("relu").2, 4);
    assert_eq!(kind_at("width)").2, 2);
    c.shutdown();
}

#[test]
fn semantic_tokens_on_a_broken_file() {
    let text =
        "model M(x: f32[B, 4]) -> f32[B, 4] {\n  let h = x |> linear(\n}\n\ntrain {\n  epochs\n";
    let mut c = Client::start();
    let toks = tokens(&mut c, text);
    let names: Vec<String> = toks.iter().map(|t| t.3.clone()).collect();
    assert!(names.contains(&"keyword".to_string()));
    assert!(names.contains(&"function".to_string()), "{toks:?}");
    c.shutdown();
}
