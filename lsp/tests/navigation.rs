//! Go to definition, find references and document symbols.

mod common;

use common::*;
use serde_json::{Value, json};

const GAN: &str = "const nz = 100

data cifar {
  source cifar10(\"data_batch_1.bin\")
  image: f32[3, 32, 32] |> scale(2 / 255)
}

block Up(out: int, stride: int = 2, pad: int = 1)(x: f32[B, C, H, W]) {
  x |> conv_transpose2d(out, kernel: 4, stride: stride, padding: pad) |> relu
}

model Generator(z: f32[B, nz, 1, 1]) -> f32[B, 3, 32, 32] {
  let h = z |> Up(256, stride: 1, pad: 0) |> Up(128) |> Up(64)
  h |> conv_transpose2d(3, kernel: 4, stride: 2, padding: 1) |> tanh
}

model Discriminator(img: f32[B, 3, 32, 32]) -> f32[B, 1] {
  img |> conv2d(1, kernel: 32) |> flatten |> sigmoid
}

train gan {
  data   cifar
  let z = normal([B, nz, 1, 1])
  let fake = Generator(z)

  step discriminator {
    loss   bce(Discriminator(image), 1) + bce(Discriminator(stop_gradient(fake)), 0)
    update Discriminator with adam(lr: 2e-4)
  }
  step generator {
    loss   bce(Discriminator(fake), 1)
    update Generator with adam(lr: 2e-4)
  }
  epochs 5
  batch  64
}
";

/// The definition's `(line, col)` for the cursor at `needle` (+ `skip`).
fn definition(c: &mut Client, needle: &str, skip: usize) -> Option<(u64, u64)> {
    let (line, col) = pos(GAN, needle, skip);
    let v = c.at("textDocument/definition", line, col);
    if v.is_null() {
        return None;
    }
    assert_eq!(v["uri"], json!(URI));
    let r = range(&v["range"]);
    Some((r.0, r.1))
}

fn at(needle: &str) -> (u64, u64) {
    let (l, c) = pos(GAN, needle, 0);
    (l as u64, c as u64)
}

#[test]
fn go_to_definition_of_every_kind_of_name() {
    let mut c = Client::start();
    assert!(c.open(GAN).is_empty(), "the test program checks");
    // Models (from a call in a run, from `update`), a block (from a pipeline stage), a data set,
    // a const (in a shape), `let` bindings (in a model and in a run), inputs, data fields,
    // hyper-parameters (used in the body and given by name).
    let cases: [(&str, usize, &str); 12] = [
        ("Generator(z)", 0, "Generator(z:"),
        ("Discriminator with", 0, "Discriminator(img"),
        ("Up(128)", 0, "Up(out"),
        ("cifar\n  let", 0, "cifar {"),
        ("nz, 1, 1])", 0, "nz = 100"),
        ("h |> conv_transpose2d(3", 0, "h = z"),
        ("z |> Up", 0, "z: f32"),
        ("fake)), 0)", 0, "fake = "),
        ("z)\n", 0, "z = normal"),
        ("image), 1)", 0, "image:"),
        ("stride: 1,", 0, "stride: int"),
        ("stride, padding", 0, "stride: int"),
    ];
    for (from, skip, to) in cases {
        assert_eq!(
            definition(&mut c, from, skip),
            Some(at(to)),
            "from `{from}`"
        );
    }
    // A symbolic dimension goes to its first appearance in the signature.
    assert_eq!(
        definition(&mut c, "B, 3, 32, 32]) -> f32[B, 1]", 0),
        Some(at("B, 3, 32, 32]) -> f32[B, 1]"))
    );
    // Built-ins have no definition in the file.
    assert_eq!(definition(&mut c, "relu", 0), None);
    c.shutdown();
}

#[test]
fn find_references() {
    let mut c = Client::start();
    c.open(GAN);
    let refs = |c: &mut Client, needle: &str, declaration: bool| -> Vec<(u64, u64)> {
        let (line, col) = pos(GAN, needle, 0);
        let v = c.request(
            "textDocument/references",
            json!({
                "textDocument": { "uri": URI },
                "position": { "line": line, "character": col },
                "context": { "includeDeclaration": declaration },
            }),
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let r = range(&l["range"]);
                (r.0, r.1)
            })
            .collect()
    };
    // `Discriminator`: declared once, used three times in calls and once in `update`.
    let all = refs(&mut c, "Discriminator(img", true);
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(all[0], at("Discriminator(img"));
    let uses = refs(&mut c, "Discriminator(image", false);
    assert_eq!(uses.len(), 4);
    assert!(!uses.contains(&at("Discriminator(img")));
    // `fake` is used in both steps.
    assert_eq!(refs(&mut c, "fake = ", false).len(), 2);
    // `nz`: the const, in a model's shape and in the run.
    assert_eq!(refs(&mut c, "nz = 100", true).len(), 3);
    // Nothing to find on a keyword.
    let (line, col) = pos(GAN, "epochs", 0);
    let v = c.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col }, "context": { "includeDeclaration": true } }),
    );
    assert_eq!(v, Value::Null);
    c.shutdown();
}

#[test]
fn document_symbols_outline_items_and_steps() {
    let mut c = Client::start();
    c.open(GAN);
    let v = c.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": URI } }),
    );
    let top: Vec<(&str, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["kind"].as_u64().unwrap()))
        .collect();
    // const 14, struct 23, function 12, class 5, module 2
    assert_eq!(
        top,
        [
            ("nz", 14),
            ("cifar", 23),
            ("Up", 12),
            ("Generator", 5),
            ("Discriminator", 5),
            ("gan", 2)
        ]
    );
    let find = |name: &str| -> Value {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == json!(name))
            .unwrap()
            .clone()
    };
    let names = |s: &Value| -> Vec<String> {
        s["children"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|x| x["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        names(&find("gan")),
        ["z", "fake", "discriminator", "generator"]
    );
    assert_eq!(names(&find("Generator")), ["z", "h"]);
    assert_eq!(names(&find("Up")), ["out", "stride", "pad", "x"]);
    assert_eq!(names(&find("cifar")), ["image"]);
    let generator = find("Generator");
    assert_eq!(
        generator["detail"],
        json!("(f32[B, 100, 1, 1]) -> f32[B, 3, 32, 32]")
    );
    let h = &generator["children"][1];
    assert_eq!(h["detail"], json!("f32[B, 64, 16, 16]"));
    assert_eq!(range(&h["selectionRange"]).0, at("h = z").0);
    let gan = find("gan");
    assert_eq!(gan["children"][2]["kind"], json!(6), "steps are methods");
    c.shutdown();
}

#[test]
fn navigation_works_in_a_file_with_errors() {
    let text = GAN.replace("|> tanh", "|> tanhh").replace(
        "model Discriminator(img",
        "model Discriminator(img: f32[B,\n}\nmodel D2(img",
    );
    let mut c = Client::start();
    assert!(!c.open_uri(URI, &text).is_empty());
    let (line, col) = pos(&text, "h |> conv_transpose2d(3", 0);
    let v = c.at("textDocument/definition", line, col);
    let (l, _) = pos(&text, "h = z", 0);
    assert_eq!(range(&v["range"]).0, l as u64);
    let v = c.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": URI } }),
    );
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Generator") && names.contains(&"gan"),
        "{names:?}"
    );
    c.shutdown();
}
