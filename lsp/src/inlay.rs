//! Inlay hints: the inferred shape at the end of each `let`, data field and pipeline line, so
//! the shape of every tensor is on screen without hovering.

use std::collections::BTreeMap;

use lsp_types::{InlayHint, InlayHintKind, InlayHintLabel, InlayHintTooltip};
use netc_grammar::Span;

use crate::document::Snap;
use crate::index::DefKind;
use crate::lexer::{Tok, lex};

struct Candidate {
    /// Byte offset the hint sits at (the end of the construct).
    at: usize,
    label: String,
    tooltip: String,
    /// A binding's hint wins over a stage's at the same place.
    binding: bool,
}

/// Hints for the lines in `[from, to]` (byte offsets).
pub(crate) fn hints(snap: &Snap, from: usize, to: usize) -> Vec<InlayHint> {
    let mut best: BTreeMap<usize, Candidate> = BTreeMap::new();
    let mut consider = |c: Candidate| {
        if c.at < from || c.at > to {
            return;
        }
        let line = snap.lines.position(c.at).line as usize;
        let better = match best.get(&line) {
            None => true,
            Some(old) => c.at > old.at || (c.at == old.at && c.binding && !old.binding),
        };
        if better {
            best.insert(line, c);
        }
    };
    let index = &snap.a.index;
    for def in &index.defs {
        let keyword = match def.kind {
            DefKind::Let => "let",
            DefKind::Field => "field",
            _ => continue,
        };
        let types = snap.types_at(def.span);
        if types.is_empty() {
            continue;
        }
        consider(Candidate {
            at: trim_end(snap.text, def.full),
            label: label(&types),
            tooltip: format!("shape of `{keyword} {}`", def.name),
            binding: true,
        });
    }
    for stage in &index.stages {
        let types = snap.types_at(stage.span);
        if types.is_empty() || !ends_line(snap.text, stage.span.end) {
            continue;
        }
        consider(Candidate {
            at: stage.span.end,
            label: label(&types),
            tooltip: format!("shape after `{}`", snap.one_line(stage.span)),
            binding: false,
        });
    }
    best.into_values()
        .map(|c| InlayHint {
            position: snap.lines.position(c.at),
            label: InlayHintLabel::String(c.label),
            kind: Some(InlayHintKind::TYPE),
            text_edits: None,
            tooltip: Some(InlayHintTooltip::String(c.tooltip)),
            padding_left: Some(true),
            padding_right: None,
            data: None,
        })
        .collect()
}

fn label(types: &[&netc_compiler::types::TensorType]) -> String {
    let texts: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    texts.join(" | ")
}

/// A span's end without trailing whitespace and comments (statement spans may include them).
fn trim_end(text: &str, span: Span) -> usize {
    let slice = text.get(span.start..span.end).unwrap_or("");
    lex(slice)
        .iter()
        .rev()
        .find(|t| !matches!(t.kind, Tok::Comment | Tok::Newline))
        .map_or(span.start, |t| span.start + t.span.end)
}

/// Is only whitespace or a comment left on the line after `offset`?
fn ends_line(text: &str, offset: usize) -> bool {
    let rest = text.get(offset..).unwrap_or("");
    let line = rest.split('\n').next().unwrap_or("");
    let line = line.trim_start();
    line.is_empty() || line.starts_with('#')
}
