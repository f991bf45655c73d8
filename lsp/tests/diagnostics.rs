//! Diagnostics: published on open and on every (incremental) change, all of a file's errors,
//! with codes, help, related locations and ranges in the negotiated position encoding.

mod common;

use common::*;
use serde_json::{Value, json};

/// Two errors, each after non-ASCII text on its line (so UTF-16, UTF-8 and character columns
/// all differ).
const TWO_ERRORS: &str = "# Für die Ziffern 😀
data digits {
  source csv(\"données/😀.csv\", labell: 64)
  pixels: f32[64]
  label:  class(10)
}

model Mlp(x: f32[B, 64]) -> f32[B, 10] {
  let h = x |> linear(64) |> reluu  # é
  h |> linear(10)
}
";

fn codes(diags: &[Value]) -> Vec<&str> {
    diags.iter().map(|d| d["code"].as_str().unwrap()).collect()
}

#[test]
fn all_errors_with_codes_messages_and_utf16_ranges() {
    let mut c = Client::start();
    assert_eq!(
        c.init_result["capabilities"]["positionEncoding"],
        json!("utf-16")
    );
    let diags = c.open(TWO_ERRORS);
    assert_eq!(codes(&diags), ["N2004", "N2002"]);

    let (line, col) = pos(TWO_ERRORS, "labell", 0);
    // `  source csv("données/😀.csv", ` is 31 UTF-16 units (the emoji is two).
    assert_eq!((line, col), (2, 31));
    assert_eq!(range(&diags[0]["range"]), (2, 31, 2, 37), "{:#}", diags[0]);
    assert_eq!(range(&diags[1]["range"]), (8, 29, 8, 34));

    let first = &diags[0];
    assert_eq!(first["severity"], json!(1));
    assert_eq!(first["source"], json!("netc"));
    let message = first["message"].as_str().unwrap();
    assert!(
        message.starts_with("`csv` has no argument `labell`"),
        "{message}"
    );
    assert!(message.contains("unknown argument"), "{message}");
    assert!(message.contains("help: did you mean `label`?"), "{message}");
    c.shutdown();
}

#[test]
fn utf8_positions_when_the_client_offers_them() {
    let mut c = Client::start_with(json!({}), Some(&["utf-8", "utf-16"]));
    assert_eq!(
        c.init_result["capabilities"]["positionEncoding"],
        json!("utf-8")
    );
    let diags = c.open(TWO_ERRORS);
    let line = TWO_ERRORS.lines().nth(2).unwrap();
    let byte_col = line.find("labell").unwrap() as u64;
    assert_eq!(byte_col, 34);
    assert_eq!(range(&diags[0]["range"]), (2, byte_col, 2, byte_col + 6));
    // Edits are in UTF-8 columns too: delete the last `l` of `labell`.
    let diags = c.change(
        2,
        json!([{ "range": { "start": { "line": 2, "character": byte_col + 5 }, "end": { "line": 2, "character": byte_col + 6 } }, "text": "" }]),
    );
    assert_eq!(codes(&diags), ["N2002"]);
    let line = TWO_ERRORS.lines().nth(8).unwrap();
    let byte_col = line.find("reluu").unwrap() as u64;
    assert_eq!(range(&diags[0]["range"]), (8, byte_col, 8, byte_col + 5));
    c.shutdown();
}

#[test]
fn secondary_labels_and_notes_are_related_information() {
    let text = "model M(x: f32[B, 4]) -> f32[B, 4] {
  let h = x |> relu
  let h = x |> tanh
  h
}
";
    let mut c = Client::start();
    let diags = c.open(text);
    let dup = diags
        .iter()
        .find(|d| d["code"] == json!("N2003"))
        .expect("duplicate binding reported");
    assert_eq!(range(&dup["range"]), (2, 6, 2, 7));
    let related = dup["relatedInformation"].as_array().expect("related");
    assert_eq!(related[0]["message"], json!("first bound here"));
    assert_eq!(related[0]["location"]["uri"], json!(URI));
    assert_eq!(range(&related[0]["location"]["range"]), (1, 6, 1, 7));

    // A mistake inside a block points at the use that triggered it with a note.
    let text = "block B(n: int)(x: f32[N, 4]) -> f32[N, 4] {
  x |> linear(n)
}

model M(x: f32[N, 4]) -> f32[N, 4] {
  x |> B(8)
}
";
    let diags = c.open_uri("file:///work/block.net", text);
    let notes: Vec<&Value> = diags
        .iter()
        .flat_map(|d| d["relatedInformation"].as_array().into_iter().flatten())
        .filter(|r| r["message"].as_str().unwrap().starts_with("note:"))
        .collect();
    assert!(!notes.is_empty(), "{diags:#?}");
    assert_eq!(range(&notes[0]["location"]["range"]).0, 5);
    c.shutdown();
}

#[test]
fn unused_bindings_are_warnings_tagged_unnecessary() {
    let text = "model M(x: f32[B, 4]) -> f32[B, 4] {
  let unused = x |> relu
  x
}
";
    let mut c = Client::start();
    let diags = c.open(text);
    assert_eq!(codes(&diags), ["N2014"]);
    assert_eq!(diags[0]["severity"], json!(2));
    assert_eq!(diags[0]["tags"], json!([1]));
    c.shutdown();
}

#[test]
fn incremental_changes_in_utf16_positions() {
    let mut c = Client::start();
    assert_eq!(
        c.init_result["capabilities"]["textDocumentSync"]["change"],
        json!(2),
        "incremental sync"
    );
    c.open(TWO_ERRORS);

    // `labell` → `label`: delete one `l`, after the emoji (UTF-16 column 36..37).
    let diags = c.change(
        2,
        json!([{ "range": { "start": { "line": 2, "character": 36 }, "end": { "line": 2, "character": 37 } }, "text": "" }]),
    );
    assert_eq!(codes(&diags), ["N2002"]);
    assert_eq!(range(&diags[0]["range"]), (8, 29, 8, 34));

    // Two changes in one notification, the second against the text the first left: fix
    // `reluu`, then insert a new broken line above it.
    let diags = c.change(
        3,
        json!([
            { "range": { "start": { "line": 8, "character": 33 }, "end": { "line": 8, "character": 34 } }, "text": "" },
            { "range": { "start": { "line": 8, "character": 0 }, "end": { "line": 8, "character": 0 } }, "text": "  let g = x |> sigmoid |> linear(\"é\")\n" },
        ]),
    );
    assert_eq!(codes(&diags), ["N2014", "N2008"], "{diags:#?}");
    assert_eq!(range(&diags[0]["range"]).0, 8);

    // The server's text now equals the edited text: open that text as another document and
    // compare diagnostics.
    let expected = TWO_ERRORS
        .replace("labell", "label")
        .replace("reluu", "relu")
        .replace(
            "  let h",
            "  let g = x |> sigmoid |> linear(\"é\")\n  let h",
        );
    let again = c.open_uri("file:///work/expected.net", &expected);
    assert_eq!(again, diags);

    // A change without a range replaces everything.
    let diags = c.change(
        4,
        json!([{ "text": "model M(x: f32[B, 4]) -> f32[B, 4] {\n  x\n}\n" }]),
    );
    assert!(diags.is_empty(), "{diags:#?}");
    c.shutdown();
}

#[test]
fn diagnostics_carry_the_document_version() {
    let mut c = Client::start();
    c.open(TWO_ERRORS);
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 7 }, "contentChanges": [{ "text": "const a = 1\n" }] }),
    );
    let params = c.notification("textDocument/publishDiagnostics");
    assert_eq!(params["version"], json!(7));
    assert_eq!(params["uri"], json!(URI));
    c.shutdown();
}

#[test]
fn closing_a_document_clears_its_diagnostics() {
    let mut c = Client::start();
    assert_eq!(c.open(TWO_ERRORS).len(), 2);
    c.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": URI } }),
    );
    assert!(c.diagnostics().is_empty());
    // Requests on a closed document answer `null`, not an error.
    assert_eq!(c.at("textDocument/hover", 0, 0), Value::Null);
    c.shutdown();
}

#[test]
fn syntax_errors_and_check_errors_together() {
    let text = "model A(x: f32[B, 4]) -> f32[B, 4] {
  let h = x |>
  x |> linear(4)
}

model C(x: f32[B, 4]) -> f32[B, 8] {
  x |> linear(4)
}
";
    let mut c = Client::start();
    let diags = c.open(text);
    let codes = codes(&diags);
    assert!(codes.contains(&"N1001"), "{codes:?}");
    assert!(codes.contains(&"N3005"), "{codes:?}");
    c.shutdown();
}

#[test]
fn exit_without_shutdown_is_exit_code_1() {
    let (server, client) = lsp_server::Connection::memory();
    let handle = netc_lsp::spawn(server);
    let init = lsp_server::Request::new(
        1.into(),
        "initialize".to_string(),
        json!({ "capabilities": {} }),
    );
    client.sender.send(init.into()).unwrap();
    let _ = client.receiver.recv_timeout(TIMEOUT).unwrap();
    client
        .sender
        .send(lsp_server::Notification::new("initialized".to_string(), json!({})).into())
        .unwrap();
    client
        .sender
        .send(lsp_server::Notification::new("exit".to_string(), Value::Null).into())
        .unwrap();
    assert_eq!(handle.join().unwrap(), Ok(1));
}
