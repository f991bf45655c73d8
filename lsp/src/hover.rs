//! Hover: the inferred shape of a binding, input, field or pipeline stage (from the checker's
//! `Analysis.shapes`), a built-in's signature, summary and shape rule (from the built-in table),
//! a model's signature and parameter count (from `Analysis.models`).

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};
use netc_compiler::builtins::{self, Builtin, Default, Kind};
use netc_compiler::types::TensorType;
use netc_grammar::ast::{Item, Span};

use crate::document::Snap;
use crate::index::{DefKind, Occurrence, Role};

/// Hover at a byte offset; `None` when there is nothing to say.
pub(crate) fn hover(snap: &Snap, offset: usize) -> Option<Hover> {
    let occ = snap.a.index.occurrence_at(offset);
    let stage = stage_at(snap, offset);
    let (text, span) = match occ {
        Some(o) => {
            let text = match o.def {
                Some(d) => definition(snap, d)?,
                None => unresolved(snap, o, stage)?,
            };
            (text, o.span)
        }
        None => {
            let stage = stage?;
            (stage_line(snap, stage)?, stage)
        }
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: text,
        }),
        range: Some(snap.lines.range(span)),
    })
}

fn code(text: &str) -> String {
    format!("```netdsl\n{text}\n```")
}

fn types_text(types: &[&TensorType]) -> String {
    types
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The innermost pipeline stage containing the offset that has an inferred type.
fn stage_at(snap: &Snap, offset: usize) -> Option<Span> {
    snap.a
        .index
        .stages
        .iter()
        .filter(|s| s.span.start <= offset && offset <= s.span.end)
        .filter(|s| !snap.types_at(s.span).is_empty())
        .min_by_key(|s| s.span.len())
        .map(|s| s.span)
}

/// `` `linear(ff)`: f32[B, 32, 128] → f32[B, 32, 512] ``
fn stage_line(snap: &Snap, span: Span) -> Option<String> {
    let out = snap.types_at(span);
    if out.is_empty() {
        return None;
    }
    let input = snap
        .a
        .index
        .stages
        .iter()
        .find(|s| s.span == span)
        .and_then(|s| s.input)
        .map(|i| snap.types_at(i))
        .unwrap_or_default();
    let what = snap.one_line(span);
    Some(if input.is_empty() {
        format!("`{what}` → `{}`", types_text(&out))
    } else {
        format!(
            "`{what}`: `{}` → `{}`",
            types_text(&input),
            types_text(&out)
        )
    })
}

/// Hover for a name linked to its definition.
fn definition(snap: &Snap, d: usize) -> Option<String> {
    let def = &snap.a.index.defs[d];
    let types = snap.types_at(def.span);
    Some(match def.kind {
        DefKind::Let | DefKind::Input => {
            let keyword = if def.kind == DefKind::Let {
                "let"
            } else {
                "input"
            };
            if types.is_empty() {
                // A layer value, a number, or something that did not check.
                code(&snap.one_line(def.full))
            } else {
                let mut text = code(&format!("{keyword} {}: {}", def.name, types_text(&types)));
                if types.len() > 1 {
                    text.push_str("\n\none type per use of the block");
                }
                text
            }
        }
        DefKind::Field => {
            let mut text = code(&format!("field {}: {}", def.name, types_text(&types)));
            if let [ty] = types.as_slice() {
                text.push_str(&format!(
                    "\n\none sample; in a training batch: `{}`",
                    batched(ty)
                ));
            }
            text
        }
        DefKind::HParam => code(&snap.one_line(def.full)),
        DefKind::Dim => format!(
            "symbolic dimension `{}`, bound by whoever calls this item",
            def.name
        ),
        DefKind::Const => code(&snap.one_line(def.full)),
        DefKind::Model => model(snap, &def.name, def.full),
        DefKind::Block => {
            let header = block_header(snap, def.full)?;
            code(&header)
        }
        DefKind::Data => {
            let info = snap.a.analysis.data.get(&def.name);
            let mut text = code(&format!("data {}", def.name));
            if let Some(info) = info {
                for f in &info.fields {
                    text.push_str(&format!("\n- `{}`: `{}`", f.name, f.ty));
                }
            }
            text
        }
        DefKind::Train => code(&format!("train {}", def.name)),
        DefKind::Step => code(&format!("step {}", def.name)),
    })
}

/// `f32[3, 32, 32]` → `f32[B, 3, 32, 32]` (class labels keep their marker).
fn batched(ty: &TensorType) -> String {
    let dims: Vec<String> = std::iter::once("B".to_string())
        .chain(ty.dims.iter().map(|d| d.to_string()))
        .collect();
    let mut text = format!("{}[{}]", ty.dtype, dims.join(", "));
    if let Some(c) = ty.classes {
        text.push_str(&format!(" ({c} classes)"));
    }
    text
}

fn block_header(snap: &Snap, full: Span) -> Option<String> {
    snap.a.file.items.iter().find_map(|item| match item {
        Item::Block(b) if b.span == full => {
            Some(snap.one_line(Span::new(b.span.start, b.body.span.start)))
        }
        _ => None,
    })
}

/// A model's signature and parameter count.
fn model(snap: &Snap, name: &str, full: Span) -> String {
    let Some(info) = snap.a.analysis.models.get(name) else {
        // Not checked (an error in its signature): show what was written.
        let header = snap.a.file.items.iter().find_map(|item| match item {
            Item::Model(m) if m.span == full => {
                Some(snap.one_line(Span::new(m.span.start, m.body.span.start)))
            }
            _ => None,
        });
        return code(&header.unwrap_or_else(|| format!("model {name}")));
    };
    let inputs: Vec<String> = info
        .inputs
        .iter()
        .map(|(n, t)| format!("{n}: {t}"))
        .collect();
    let mut sig = format!("model {name}({})", inputs.join(", "));
    if let Some(out) = &info.output {
        sig.push_str(&format!(" -> {out}"));
    }
    let mut text = code(&sig);
    text.push_str("\n\n");
    text.push_str(&match info.parameter_count() {
        _ if info.weights.iter().all(|(_, w)| !w.trainable) => "no parameters".to_string(),
        Some(n) => format!("**{}** trainable parameters", thousands(n)),
        None => "parameter count depends on symbolic dimensions".to_string(),
    });
    text
}

/// `1041154` → `1,041,154`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Hover for a name with no definition in the file: a built-in, or an argument name.
fn unresolved(snap: &Snap, o: &Occurrence, stage: Option<Span>) -> Option<String> {
    if o.role == Role::ArgName {
        let callee = o.callee.as_deref()?;
        let b = builtins::lookup(callee).or_else(|| builtins::setting(callee))?;
        let p = b.params.iter().find(|p| p.name == o.name)?;
        let default = match p.default {
            Default::Required => "required".to_string(),
            d => format!("default {d}"),
        };
        return Some(format!(
            "{}\n\n{}: {} ({default})",
            code(&format!("{}: {}", p.name, p.ty.expected())),
            p.name,
            p.doc
        ));
    }
    let b = builtins::lookup(&o.name)?;
    let mut text = builtin_doc(b);
    if o.role == Role::Callee
        && let Some(stage) = stage
        && let Some(line) = stage_line(snap, stage)
    {
        text.push_str(&format!("\n\nhere: {line}"));
    }
    if let Some(n) = layer_parameters(snap, o) {
        text.push_str(&format!(
            "\n\n**{}** trainable parameters here",
            thousands(n)
        ));
    }
    Some(text)
}

/// A built-in's documentation, as hover and completion show it.
pub(crate) fn builtin_doc(b: &Builtin) -> String {
    let mut text = format!(
        "{}\n\n*{}* — {}",
        code(&b.signature()),
        b.kind.noun(),
        b.summary
    );
    if !b.shape_rule.is_empty() {
        text.push_str(&format!("\n\nshape: `{}`", b.shape_rule));
    }
    if !b.params.is_empty() {
        text.push('\n');
        for p in b.params {
            let default = match p.default {
                Default::Required => String::new(),
                d => format!(" = {d}"),
            };
            text.push_str(&format!("\n- `{}`{default}: {}", p.name, p.doc));
        }
    }
    text
}

/// The trainable parameters one built-in layer call creates in a model, read from the model's
/// weights (named `<let name>.weight` for a bound layer, `<layer>_<n>.weight` for the n-th inline
/// one). Only for models that checked without errors, where the numbering is reliable.
fn layer_parameters(snap: &Snap, o: &Occurrence) -> Option<i64> {
    let b = builtins::lookup(&o.name)?;
    if b.kind != Kind::Layer || o.role != Role::Callee {
        return None;
    }
    let Some(Item::Model(m)) = snap.a.file.items.get(o.item) else {
        return None;
    };
    let broken = snap.a.analysis.diagnostics.iter().any(|d| {
        d.is_error() && d.primary.span.start >= m.span.start && d.primary.span.end <= m.span.end
    });
    if broken {
        return None;
    }
    let info = snap.a.analysis.models.get(&m.name.name)?;
    let index = &snap.a.index;
    // A builtin bound by `let` to a layer value (not a tensor) is named after the binding.
    let bound_layer = |o: &Occurrence| -> Option<String> {
        let name = o.bound_to.as_ref()?;
        let def = index.defs.iter().find(|d| {
            d.kind == DefKind::Let
                && &d.name == name
                && d.full.start <= o.span.start
                && o.span.end <= d.full.end
        })?;
        snap.types_at(def.span).is_empty().then(|| name.clone())
    };
    let instance = match bound_layer(o) {
        Some(name) => name,
        None => {
            let n = index
                .occurrences
                .iter()
                .filter(|p| {
                    p.item == o.item
                        && p.role == Role::Callee
                        && p.def.is_none()
                        && p.name == o.name
                        && p.span.start < o.span.start
                        && bound_layer(p).is_none()
                })
                .count();
            format!("{}_{n}", o.name)
        }
    };
    let prefix = format!("{instance}.");
    let mut total: i64 = 0;
    let mut found = false;
    for (name, w) in &info.weights {
        if w.trainable && name.starts_with(&prefix) {
            found = true;
            let mut n: i64 = 1;
            for d in &w.dims {
                n = n.checked_mul(d.as_known()?)?;
            }
            total = total.checked_add(n)?;
        }
    }
    found.then_some(total)
}
