//! Completion: built-ins with signature and documentation, named arguments inside a call,
//! names in scope, data fields after a dot, keywords at a statement start.

mod common;

use common::*;
use serde_json::Value;

/// Completion items at `$0` in `text` as `(label, item)`, after opening the text without the
/// marker.
fn complete(text: &str) -> Vec<(String, Value)> {
    let (line, col) = pos(text, "$0", 0);
    let text = text.replace("$0", "");
    let mut c = Client::start();
    c.open(&text);
    let v = c.at("textDocument/completion", line, col);
    c.shutdown();
    v.as_array()
        .expect("a list of items")
        .iter()
        .map(|i| (i["label"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn labels(items: &[(String, Value)]) -> Vec<&str> {
    items.iter().map(|(l, _)| l.as_str()).collect()
}

const HEAD: &str = "const width = 64

data digits {
  source csv(\"data/digits.csv\", label: 64)
  pixels: f32[64]
  label:  class(10)
}

block Res(d: int, p: float = 0.1)(x: f32[B, d]) -> f32[B, d] {
  x + (x |> linear(d) |> dropout(p))
}

model Mlp(x: f32[B, 64]) -> f32[B, 10] {
  let h = x |> linear(width) |> relu
";

#[test]
fn builtins_with_signature_and_documentation() {
    let items = complete(&format!("{HEAD}  let g = h |> $0\n}}\n"));
    let (_, conv) = items
        .iter()
        .find(|(l, _)| l == "conv2d")
        .expect("conv2d offered");
    let b = netc_compiler::builtins::lookup("conv2d").unwrap();
    assert_eq!(conv["detail"], Value::from(b.signature()));
    let doc = conv["documentation"]["value"].as_str().unwrap();
    assert!(doc.contains(b.summary), "{doc}");
    assert!(doc.contains(b.shape_rule), "{doc}");
    assert_eq!(conv["labelDetails"]["description"], Value::from("layer"));
    // Every built-in is there.
    for b in netc_compiler::builtins::all() {
        assert!(items.iter().any(|(l, _)| l == b.name), "{} missing", b.name);
    }
}

#[test]
fn named_arguments_inside_a_call() {
    let items = complete(&format!("{HEAD}  let g = h |> conv2d(8, $0)\n}}\n"));
    let labels = labels(&items);
    for name in ["kernel:", "stride:", "padding:", "bias:"] {
        assert!(labels.contains(&name), "{name} missing from {labels:?}");
    }
    let (_, kernel) = items.iter().find(|(l, _)| l == "kernel:").unwrap();
    assert_eq!(kernel["insertText"], Value::from("kernel: "));
    assert!(kernel["detail"].as_str().unwrap().contains("required"));
    // Named arguments sort before everything else.
    assert!(labels[..5].contains(&"kernel:"), "{labels:?}");

    // Arguments already given are not offered again; across lines too.
    let items = complete(&format!(
        "{HEAD}  let g = h |> conv2d(8, kernel: 3,\n      $0)\n}}\n"
    ));
    let labels = crate::labels(&items);
    assert!(!labels.contains(&"kernel:"), "{labels:?}");
    assert!(labels.contains(&"stride:"), "{labels:?}");

    // A block's hyper-parameters.
    let items = complete(&format!("{HEAD}  let g = h |> Res(64, $0)\n}}\n"));
    let labels = crate::labels(&items);
    assert!(
        labels.contains(&"p:") && labels.contains(&"d:"),
        "{labels:?}"
    );

    // Inside a nested list the named arguments of the enclosing call are not offered.
    let items = complete(&format!(
        "{HEAD}  let g = h |> conv2d(8, kernel: ($0))\n}}\n"
    ));
    assert!(!crate::labels(&items).contains(&"stride:"));
}

#[test]
fn names_in_scope() {
    let text = format!("{HEAD}  let later_use = $0\n}}\n");
    let items = complete(&text);
    let labels = labels(&items);
    for name in ["h", "x", "width", "digits", "Mlp", "Res"] {
        assert!(labels.contains(&name), "{name} missing from {labels:?}");
    }
    // The binding being written is not in scope yet; another model's locals never are.
    assert!(!labels.contains(&"later_use"), "{labels:?}");
    assert!(!labels.contains(&"p"), "{labels:?}");
    let (_, h) = items.iter().find(|(l, _)| l == "h").unwrap();
    assert_eq!(h["detail"], Value::from("f32[B, 64]"));

    // A `let` below the cursor is not offered above it.
    let text = format!("{HEAD}  let a = x\n  let b = a\n}}\n");
    let mut c = Client::start();
    c.open(&text);
    let (line, col) = pos(&text, "let a = x", 8);
    let v = c.at("textDocument/completion", line, col);
    let labels: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"h") && !labels.contains(&"b"),
        "{labels:?}"
    );
    c.shutdown();

    // In a run, the fields of its data set.
    let text = format!(
        "{HEAD}  h |> linear(10)\n}}\n\ntrain t {{\n  data digits\n  loss cross_entropy(Mlp($0))\n}}\n"
    );
    let labels: Vec<String> = complete(&text).into_iter().map(|(l, _)| l).collect();
    assert!(labels.contains(&"pixels".to_string()), "{labels:?}");
    assert!(labels.contains(&"label".to_string()), "{labels:?}");
}

#[test]
fn fields_after_a_dot() {
    let text = format!(
        "{HEAD}  h |> linear(10)\n}}\n\ntrain t {{\n  data digits\n  loss mse(digits.$0)\n}}\n"
    );
    let items = complete(&text);
    assert_eq!(labels(&items), ["pixels", "label"]);
    assert_eq!(items[0].1["detail"], Value::from("f32[64]"));
}

#[test]
fn keywords_at_a_statement_start() {
    let items = complete(&format!("{HEAD}  h |> linear(10)\n}}\n\n$0"));
    let labels = labels(&items);
    assert!(
        labels.contains(&"model") && labels.contains(&"train"),
        "{labels:?}"
    );
    assert!(!labels.contains(&"conv2d"), "no built-ins between items");

    let items = complete(&format!(
        "{HEAD}  h |> linear(10)\n}}\n\ntrain t {{\n  data digits\n  $0\n}}\n"
    ));
    let labels = crate::labels(&items);
    for k in ["loss", "update", "epochs", "batch", "step", "let"] {
        assert!(labels.contains(&k), "{k} missing from {labels:?}");
    }
    let items = complete(&format!("{HEAD}  $0\n}}\n"));
    assert!(crate::labels(&items).contains(&"let"));
}

#[test]
fn names_in_an_item_that_does_not_parse_yet() {
    // The model's header is still being typed: the parser gives up on the item, but the names
    // written so far are offered.
    let text =
        "model Half(inp: f32[B, 4], other: f32[B, 4] {\n  let first = inp\n  let second = $0";
    let labels: Vec<String> = complete(text).into_iter().map(|(l, _)| l).collect();
    for name in ["inp", "other", "first"] {
        assert!(
            labels.contains(&name.to_string()),
            "{name} missing from {labels:?}"
        );
    }
    assert!(!labels.contains(&"second".to_string()));
}
