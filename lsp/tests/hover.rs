//! Hover: inferred shapes of bindings, inputs, fields and pipeline stages; built-in signatures,
//! summaries and shape rules; model and layer parameter counts; answers on broken files.

mod common;

use common::*;
use serde_json::Value;

const MLP: &str = "# é😀 before everything
const width = 64

data digits {
  source csv(\"data/digits.csv\", label: 64)
  pixels: f32[64] |> scale(1 / 16)
  label:  class(10)
}

model Mlp(x: f32[B, 64]) -> f32[B, 10] {
  let h = x |> linear(width) |> relu
  h |> linear(10)
}

train mlp {
  data     digits
  loss     cross_entropy(Mlp(pixels), label)
  update   Mlp with adam(lr: 1e-3)
  epochs   30
  batch    32
}
";

fn hover_at(c: &mut Client, text: &str, needle: &str, skip: usize) -> String {
    let (line, col) = pos(text, needle, skip);
    c.hover_text(line, col)
}

#[test]
fn bindings_and_inputs_show_their_shape() {
    let mut c = Client::start();
    assert!(c.open(MLP).is_empty());
    // The binding where it is defined, and where it is used.
    assert!(hover_at(&mut c, MLP, "h = x", 0).contains("let h: f32[B, 64]"));
    assert!(hover_at(&mut c, MLP, "h |> linear(10)", 0).contains("let h: f32[B, 64]"));
    // An input, at its use.
    assert!(hover_at(&mut c, MLP, "x |> linear", 0).contains("input x: f32[B, 64]"));
    // The cursor just after a name still hovers it.
    assert!(hover_at(&mut c, MLP, "h |> linear(10)", 1).contains("let h"));
    c.shutdown();
}

#[test]
fn hover_range_is_the_word_in_utf16() {
    let text = "model M(x: f32[B, 4]) -> f32[B, 4] { let h = x |> relu # 😀\n  h }\n";
    let text = text.replace("{ let", "{\n  let");
    let mut c = Client::start();
    c.open(&text);
    let (line, col) = pos(&text, "h }", 0);
    let h = c.at("textDocument/hover", line, col);
    assert_eq!(range(&h["range"]), (2, 2, 2, 3));
    c.shutdown();
}

#[test]
fn pipeline_stages_show_input_and_output() {
    let mut c = Client::start();
    c.open(MLP);
    // On the stage's argument list (not on a name): the stage's types.
    let text = hover_at(&mut c, MLP, "linear(width)", 6);
    assert!(
        text.contains("`linear(width)`: `f32[B, 64]` → `f32[B, 64]`"),
        "{text}"
    );
    let text = hover_at(&mut c, MLP, "linear(10)", 6);
    assert!(
        text.contains("`linear(10)`: `f32[B, 64]` → `f32[B, 10]`"),
        "{text}"
    );
    // A bare stage name: the built-in's documentation plus the stage's types.
    let text = hover_at(&mut c, MLP, "relu\n", 1);
    assert!(text.contains("relu(x)"), "{text}");
    assert!(
        text.contains("here: `relu`: `f32[B, 64]` → `f32[B, 64]`"),
        "{text}"
    );
    c.shutdown();
}

#[test]
fn builtins_show_signature_summary_shape_rule_and_parameters() {
    let mut c = Client::start();
    c.open(MLP);
    let text = hover_at(&mut c, MLP, "linear(10)", 2);
    let linear = netc_compiler::builtins::lookup("linear").unwrap();
    assert!(text.contains(&linear.signature()), "{text}");
    assert!(text.contains(linear.summary), "{text}");
    assert!(text.contains(linear.shape_rule), "{text}");
    assert!(text.contains("*layer*"), "{text}");
    // 64 * 10 weights + 10 biases, read from the model's weights.
    assert!(text.contains("**650** trainable parameters here"), "{text}");
    let text = hover_at(&mut c, MLP, "linear(width)", 2);
    assert!(
        text.contains("**4,160** trainable parameters here"),
        "{text}"
    );

    // Functions, losses and optimizers too.
    let text = hover_at(&mut c, MLP, "cross_entropy", 3);
    assert!(text.contains("*loss*"), "{text}");
    let text = hover_at(&mut c, MLP, "adam", 1);
    assert!(text.contains("*optimizer*"), "{text}");
    // An argument name: its type, default and documentation.
    let text = hover_at(&mut c, MLP, "lr: 1e-3", 0);
    assert!(text.contains("lr"), "{text}");
    assert!(
        text.contains("required") || text.contains("default"),
        "{text}"
    );
    c.shutdown();
}

#[test]
fn models_show_signature_and_parameter_count() {
    let mut c = Client::start();
    c.open(MLP);
    for (needle, skip) in [("Mlp(x", 1), ("Mlp(pixels", 0), ("Mlp with", 2)] {
        let text = hover_at(&mut c, MLP, needle, skip);
        assert!(
            text.contains("model Mlp(x: f32[B, 64]) -> f32[B, 10]"),
            "{needle}: {text}"
        );
        // (64*64 + 64) + (64*10 + 10)
        assert!(text.contains("**4,810** trainable parameters"), "{text}");
    }
    c.shutdown();
}

#[test]
fn fields_consts_data_and_blocks() {
    let mut c = Client::start();
    c.open(MLP);
    let text = hover_at(&mut c, MLP, "pixels), label", 0);
    assert!(text.contains("field pixels: f32[64]"), "{text}");
    assert!(text.contains("`f32[B, 64]`"), "{text}");
    let text = hover_at(&mut c, MLP, "label)", 0);
    assert!(text.contains("(10 classes)"), "{text}");
    let text = hover_at(&mut c, MLP, "width) |>", 0);
    assert!(text.contains("const width = 64"), "{text}");
    let text = hover_at(&mut c, MLP, "digits\n  loss", 0);
    assert!(text.contains("data digits"), "{text}");
    assert!(text.contains("`pixels`: `f32[64]`"), "{text}");

    let transformer = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/transformer.net"
    ))
    .unwrap();
    c.open_uri(URI, &transformer);
    let text = hover_at(&mut c, &transformer, "Encoder(128", 0);
    assert!(
        text.contains("block Encoder(d: int, heads: int, ff: int, p: float = 0.1)(x: f32[B, T, d]) -> f32[B, T, d]"),
        "{text}"
    );
    // Inside the block, shapes are those of its instantiation.
    let text = hover_at(&mut c, &transformer, "h = x", 0);
    assert!(text.contains("let h: f32[B, 32, 128]"), "{text}");
    let text = hover_at(&mut c, &transformer, "TextClassifier(tokens", 0);
    assert!(
        text.contains("**1,041,154** trainable parameters"),
        "{text}"
    );
    c.shutdown();
}

#[test]
fn a_file_with_errors_answers_from_what_parsed() {
    let text = "model Broken(x: f32[B, 4]) -> f32[B, 4] {
  let a = x |> linear(8)
  let b = a |> reluu
  let c = a +
  b
}

model Other(y: f32[N, 3]) -> f32[N, 5] {
  let z = y |> linear(5)
  z
}

model Half(x: f32[B,
";
    let mut c = Client::start();
    let diags = c.open(text);
    assert!(diags.len() >= 2, "{diags:#?}");
    // Before the errors, in the same model.
    let h = hover_at(&mut c, text, "a = x", 0);
    assert!(h.contains("let a: f32[B, 8]"), "{h}");
    // A binding whose value did not check shows what was written.
    let h = hover_at(&mut c, text, "b = a", 0);
    assert!(h.contains("let b = a |> reluu"), "{h}");
    // Another model is unaffected.
    let h = hover_at(&mut c, text, "z = y", 0);
    assert!(h.contains("let z: f32[N, 5]"), "{h}");
    // Nothing to say: `null`, not an error.
    let (line, col) = pos(text, "Half", 0);
    let _ = c.at("textDocument/hover", line, col);
    assert_eq!(c.at("textDocument/hover", 6, 0), Value::Null);
    c.shutdown();
}

#[test]
fn a_block_used_with_two_shapes_shows_both() {
    let text = "block Twice(n: int)(x: f32[B, K]) -> f32[B, n] {
  let y = x |> relu
  y |> linear(n)
}

model M(a: f32[B, 3], b: f32[B, 5]) -> f32[B, 4] {
  (a |> Twice(4)) + (b |> Twice(4))
}
";
    let mut c = Client::start();
    assert!(c.open(text).is_empty());
    let h = hover_at(&mut c, text, "y = x", 0);
    assert!(h.contains("let y: f32[B, 3] | f32[B, 5]"), "{h}");
    assert!(h.contains("one type per use of the block"), "{h}");
    let h = hover_at(&mut c, text, "linear(n)", 6);
    assert!(h.contains("`f32[B, 3] | f32[B, 5]` → `f32[B, 4]`"), "{h}");
    c.shutdown();
}
