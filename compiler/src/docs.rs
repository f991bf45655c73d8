//! The built-in reference (`docs/builtins.md`), generated from the built-in table so the
//! documentation cannot drift from what the checker accepts.

use std::fmt::Write;

use crate::builtins::{self, Builtin, Default, Kind};

/// The whole reference as Markdown.
pub fn builtins_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Built-in reference\n\n");
    out.push_str("Generated from `compiler/src/builtins/` by `cargo test -p netc-compiler --test builtin_docs` ");
    out.push_str(
        "(`BLESS=1` to regenerate). Shapes use `B` for the batch and `*` for any leading dims.\n",
    );
    let sections = [
        (Kind::Layer, "Layers (have parameters)"),
        (Kind::Function, "Functions"),
        (Kind::Loss, "Losses"),
        (Kind::Optimizer, "Optimizers"),
        (Kind::Schedule, "Schedules"),
        (Kind::Metric, "Metrics"),
        (Kind::Source, "Data sources"),
        (Kind::Transform, "Data transforms"),
        (Kind::Constructor, "Constructors"),
    ];
    for (kind, title) in sections {
        let _ = write!(out, "\n## {title}\n");
        for b in builtins::all().iter().filter(|b| b.kind == kind) {
            entry(&mut out, b);
        }
    }
    out.push_str("\n## Settings\n\nLines of `data` and `train` items that take arguments.\n");
    for b in builtins::settings() {
        entry(&mut out, b);
    }
    out
}

fn entry(out: &mut String, b: &Builtin) {
    let _ = write!(out, "\n### `{}`\n\n{}\n\n", b.signature(), b.summary);
    if !b.shape_rule.is_empty() {
        let _ = writeln!(out, "Shape: `{}`\n", b.shape_rule);
    }
    if !b.inputs.is_empty() {
        let inputs: Vec<String> = b.inputs.iter().map(|i| format!("`{i}`")).collect();
        let _ = writeln!(out, "Inputs: {}\n", inputs.join(", "));
    }
    if !b.params.is_empty() {
        out.push_str("| argument | type | default | meaning |\n|---|---|---|---|\n");
        for p in b.params {
            let default = match p.default {
                Default::Required => "required".to_string(),
                d => format!("`{d}`"),
            };
            let ty = match p.ty {
                builtins::ParamType::Word(words) => {
                    let w: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                    format!("one of {}", w.join(", "))
                }
                other => other.expected().to_string(),
            };
            let _ = writeln!(out, "| `{}` | {ty} | {default} | {} |", p.name, p.doc);
        }
    }
}
