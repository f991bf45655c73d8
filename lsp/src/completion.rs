//! Completion: built-in names with their signatures and documentation, named arguments inside a
//! call's parentheses, names in scope, data fields after a dot, and the keywords that may start
//! the statement being typed.
//!
//! The context comes from the lexer over the text before the cursor, not from the parse: the
//! line being typed usually does not parse yet.

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionItemLabelDetails, Documentation,
    InsertTextFormat, MarkupContent, MarkupKind,
};
use netc_compiler::builtins::{self, Kind};
use netc_grammar::ast::Item;

use crate::document::Snap;
use crate::hover::builtin_doc;
use crate::index::DefKind;
use crate::lexer::{Tok, Token, lex};

/// Words that start an item at the start of a line.
const ITEM_KEYWORDS: [&str; 5] = ["model", "block", "data", "train", "const"];
/// Statements of a `train` item (the checker's list of settings, plus `let`, `update`, `step`).
const TRAIN_KEYWORDS: [&str; 13] = [
    "data",
    "loss",
    "update",
    "epochs",
    "batch",
    "metrics",
    "schedule",
    "checkpoint",
    "sample",
    "seed",
    "clip_grad_norm",
    "let",
    "step",
];
/// Settings of a `data` item.
const DATA_KEYWORDS: [&str; 4] = ["source", "test", "split", "shuffle"];

/// What the cursor is in.
struct Context {
    /// `digits.` : complete the fields of this data set.
    member_of: Option<String>,
    /// Innermost call whose parentheses hold the cursor, and whether an argument name may be
    /// typed here (right after `(` or `,`), and the argument names already given.
    call: Option<(String, bool, Vec<String>)>,
    /// At the start of a statement (keywords allowed).
    statement_start: bool,
    /// Inside some `{`.
    in_braces: bool,
}

fn context(text: &str, offset: usize) -> Context {
    let before = text.get(..offset).unwrap_or(text);
    let mut toks: Vec<Token> = lex(before)
        .into_iter()
        .filter(|t| t.kind != Tok::Comment)
        .collect();
    if toks
        .last()
        .is_some_and(|t| t.kind == Tok::Ident && t.span.end == offset)
    {
        toks.pop();
    }
    let word = |t: &Token| &before[t.span.start..t.span.end];
    let mut stack: Vec<usize> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Tok::Punct('(' | '[' | '{') => stack.push(i),
            Tok::Punct(')' | ']' | '}') => {
                stack.pop();
            }
            _ => {}
        }
    }
    let last = toks.last();
    let member_of = match toks.as_slice() {
        [.., base, dot] if dot.kind == Tok::Punct('.') && base.kind == Tok::Ident => {
            Some(word(base).to_string())
        }
        _ => None,
    };
    let in_braces = stack.iter().any(|&i| toks[i].kind == Tok::Punct('{'));
    let innermost = stack.last().copied();
    let call = innermost.and_then(|open| {
        if toks[open].kind != Tok::Punct('(') || open == 0 || toks[open - 1].kind != Tok::Ident {
            return None;
        }
        let callee = word(&toks[open - 1]).to_string();
        let last_sig = toks[open..].iter().rev().find(|t| t.kind != Tok::Newline)?;
        let named_position = matches!(last_sig.kind, Tok::Punct('(' | ','));
        let mut given = Vec::new();
        let mut depth = 0usize;
        for w in toks[open + 1..].windows(2) {
            match w[0].kind {
                Tok::Punct('(' | '[') => depth += 1,
                Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
                Tok::Ident if depth == 0 && w[1].kind == Tok::Punct(':') => {
                    given.push(word(&w[0]).to_string())
                }
                _ => {}
            }
        }
        Some((callee, named_position, given))
    });
    let in_parens = stack.iter().any(|&i| toks[i].kind != Tok::Punct('{'));
    let statement_start = !in_parens
        && match last {
            None => true,
            Some(t) => matches!(t.kind, Tok::Newline | Tok::Punct('{' | ';' | '}')),
        };
    Context {
        member_of,
        call,
        statement_start,
        in_braces,
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

fn keyword(word: &str) -> CompletionItem {
    CompletionItem {
        label: word.to_string(),
        kind: Some(CompletionItemKind::KEYWORD),
        sort_text: Some(format!("1{word}")),
        ..CompletionItem::default()
    }
}

/// Completions at a byte offset.
pub(crate) fn complete(snap: &Snap, offset: usize) -> Vec<CompletionItem> {
    let ctx = context(snap.text, offset);
    let index = &snap.a.index;

    if let Some(base) = &ctx.member_of {
        return index
            .defs
            .iter()
            .filter(|d| {
                d.kind == DefKind::Field && d.parent.is_some_and(|p| index.defs[p].name == *base)
            })
            .map(|d| CompletionItem {
                label: d.name.clone(),
                kind: Some(CompletionItemKind::FIELD),
                detail: snap.types_at(d.span).first().map(|t| t.to_string()),
                ..CompletionItem::default()
            })
            .collect();
    }

    let mut items = Vec::new();
    if let Some((callee, true, given)) = &ctx.call {
        items.extend(argument_names(snap, callee, given));
    }

    let item = item_at(snap, offset);
    if ctx.statement_start {
        let words: &[&str] = if !ctx.in_braces {
            &ITEM_KEYWORDS
        } else {
            match item.map(|i| item_keyword(snap, i)) {
                Some("train") => &TRAIN_KEYWORDS,
                Some("data") => &DATA_KEYWORDS,
                _ => &["let"],
            }
        };
        items.extend(words.iter().map(|w| keyword(w)));
        if !ctx.in_braces {
            return items;
        }
    }

    for d in index.in_scope(offset) {
        let def = &index.defs[d];
        let (kind, detail) = match def.kind {
            DefKind::Model => (CompletionItemKind::CLASS, Some("model".to_string())),
            DefKind::Block => (CompletionItemKind::CLASS, Some("block".to_string())),
            DefKind::Data => (CompletionItemKind::MODULE, Some("data set".to_string())),
            DefKind::Const => (CompletionItemKind::CONSTANT, Some(snap.one_line(def.full))),
            DefKind::HParam => (
                CompletionItemKind::TYPE_PARAMETER,
                Some(snap.one_line(def.full)),
            ),
            DefKind::Dim => (CompletionItemKind::TYPE_PARAMETER, None),
            DefKind::Field => (CompletionItemKind::FIELD, None),
            _ => (CompletionItemKind::VARIABLE, None),
        };
        let detail = detail.or_else(|| {
            let types = snap.types_at(def.span);
            (!types.is_empty()).then(|| {
                types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
        });
        items.push(CompletionItem {
            label: def.name.clone(),
            kind: Some(kind),
            detail,
            sort_text: Some(format!("2{}", def.name)),
            ..CompletionItem::default()
        });
    }
    items.extend(lexical_locals(snap, offset));

    for b in builtins::all() {
        items.push(CompletionItem {
            label: b.name.to_string(),
            kind: Some(match b.kind {
                Kind::Layer => CompletionItemKind::CLASS,
                _ => CompletionItemKind::FUNCTION,
            }),
            label_details: Some(CompletionItemLabelDetails {
                detail: None,
                description: Some(b.kind.noun().to_string()),
            }),
            detail: Some(b.signature()),
            documentation: Some(markdown(builtin_doc(b))),
            sort_text: Some(format!("3{}", b.name)),
            ..CompletionItem::default()
        });
    }
    items
}

/// The item the cursor is in: the last one starting before it (an item being typed may end,
/// as far as the parser knows, before the cursor).
fn item_at<'a>(snap: &Snap<'a>, offset: usize) -> Option<&'a Item> {
    snap.a
        .file
        .items
        .iter()
        .rev()
        .find(|i| i.span().start <= offset)
}

/// The keyword an item starts with (`train`), also for an item that did not parse.
fn item_keyword<'a>(snap: &Snap<'a>, item: &Item) -> &'a str {
    let rest = snap.text.get(item.span().start..).unwrap_or("");
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// `kernel: ` for each argument of the callee not given yet: a built-in's parameters, or a
/// block's hyper-parameters.
fn argument_names(snap: &Snap, callee: &str, given: &[String]) -> Vec<CompletionItem> {
    let mut out = Vec::new();
    if let Some(b) = builtins::lookup(callee) {
        for p in b
            .params
            .iter()
            .filter(|p| !given.iter().any(|g| g == p.name))
        {
            let default = match p.default {
                builtins::Default::Required => "required".to_string(),
                d => format!("= {d}"),
            };
            out.push(CompletionItem {
                label: format!("{}:", p.name),
                kind: Some(CompletionItemKind::PROPERTY),
                detail: Some(format!("{} ({default})", p.ty.expected())),
                documentation: Some(markdown(p.doc.to_string())),
                insert_text: Some(format!("{}: ", p.name)),
                insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
                filter_text: Some(p.name.to_string()),
                sort_text: Some(format!("0{}", p.name)),
                ..CompletionItem::default()
            });
        }
        return out;
    }
    let index = &snap.a.index;
    let Some(&block) = index.globals.get(callee) else {
        return out;
    };
    if index.defs[block].kind != DefKind::Block {
        return out;
    }
    for h in index.children(block) {
        let def = &index.defs[h];
        if def.kind != DefKind::HParam || given.contains(&def.name) {
            continue;
        }
        out.push(CompletionItem {
            label: format!("{}:", def.name),
            kind: Some(CompletionItemKind::PROPERTY),
            detail: Some(snap.one_line(def.full)),
            insert_text: Some(format!("{}: ", def.name)),
            filter_text: Some(def.name.clone()),
            sort_text: Some(format!("0{}", def.name)),
            ..CompletionItem::default()
        });
    }
    out
}

/// Names bound in an item that does not parse yet (so the index has nothing for it): `let`
/// names and the `name:` declarations of its signature, read from the tokens before the cursor.
fn lexical_locals(snap: &Snap, offset: usize) -> Vec<CompletionItem> {
    let Some(Item::Error(span)) = item_at(snap, offset) else {
        return Vec::new();
    };
    let text = snap.text.get(span.start..offset).unwrap_or("");
    let toks: Vec<Token> = lex(text)
        .into_iter()
        .filter(|t| t.kind != Tok::Comment)
        .collect();
    let last_newline = toks
        .iter()
        .rposition(|t| t.kind == Tok::Newline)
        .map_or(0, |i| toks[i].span.start);
    let word = |t: &Token| &text[t.span.start..t.span.end];
    let mut names: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut in_body = false;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Tok::Punct('{') => in_body = true,
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth = depth.saturating_sub(1),
            _ => {}
        }
        let next = toks[i + 1..].iter().find(|n| n.kind != Tok::Newline);
        let candidate = if in_body {
            // A `let` on the cursor's line is still being written.
            (t.kind == Tok::Ident && word(t) == "let" && t.span.end < last_newline)
                .then(|| next.filter(|n| n.kind == Tok::Ident))
                .flatten()
        } else if depth == 1
            && t.kind == Tok::Ident
            && next.is_some_and(|n| n.kind == Tok::Punct(':'))
        {
            Some(t)
        } else {
            None
        };
        if let Some(c) = candidate
            && c.span.end < text.len()
            && c.kind == Tok::Ident
        {
            let name = word(c).to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
        .into_iter()
        .map(|name| CompletionItem {
            sort_text: Some(format!("2{name}")),
            label: name,
            kind: Some(CompletionItemKind::VARIABLE),
            ..CompletionItem::default()
        })
        .collect()
}
