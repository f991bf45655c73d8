mod common;
use common::*;
use serde_json::json;

#[test]
fn scratch() {
    let text = std::fs::read_to_string("../examples/transformer.net").unwrap();
    let mut c = Client::start();
    let d = c.open(&text);
    println!("diags {d:?}");
    for needle in ["let h", "self_attention", "linear(ff)", "TextClassifier(tokens", "embedding(", "linear(2)", "layer_norm\n", "tokens), label", "heads: 4", "Encoder(128", "mean(axis"] {
        let (l, ch) = pos(&text, needle, 1);
        println!("--- {needle}:\n{}", c.hover_text(l, ch));
    }
    let hints = c.request("textDocument/inlayHint", json!({"textDocument": {"uri": URI}, "range": {"start": {"line":0,"character":0}, "end": {"line": 100, "character": 0}}}));
    for h in hints.as_array().unwrap() { println!("hint {} {}", h["position"], h["label"]); }
    let syms = c.request("textDocument/documentSymbol", json!({"textDocument": {"uri": URI}}));
    println!("{}", serde_json::to_string(&syms).unwrap().len());
    for s in syms.as_array().unwrap() { println!("sym {} {:?}", s["name"], s["children"].as_array().map(|c| c.iter().map(|x| x["name"].to_string()).collect::<Vec<_>>())); }
    let (l, ch) = pos(&text, "self_attention(heads)", 15);
    let comp = c.at("textDocument/completion", l, ch);
    println!("completion count {}", comp.as_array().unwrap().len());
    for i in comp.as_array().unwrap().iter().take(8) { println!("  {} {}", i["label"], i["detail"]); }
    let toks = c.request("textDocument/semanticTokens/full", json!({"textDocument": {"uri": URI}}));
    println!("tokens {}", toks["data"].as_array().unwrap().len() / 5);
    let f = c.request("textDocument/formatting", json!({"textDocument": {"uri": URI}, "options": {"tabSize": 2, "insertSpaces": true}}));
    println!("fmt {f}");
    assert_eq!(c.shutdown(), 0);
}
