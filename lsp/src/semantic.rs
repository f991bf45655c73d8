//! Semantic tokens: the lexer's tokens classified with what the index knows (a name that is a
//! model, a binding, a built-in layer, an argument name) and the language's contextual
//! keywords, which a TextMate grammar can only approximate.

use lsp_types::{SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend};
use netc_compiler::builtins;
use netc_grammar::DType;

use crate::document::Snap;
use crate::index::{DefKind, Role};
use crate::lexer::{Tok, Token, lex};

const TYPES: [SemanticTokenType; 13] = [
    SemanticTokenType::KEYWORD,
    SemanticTokenType::TYPE,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::CLASS,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::NUMBER,
    SemanticTokenType::STRING,
    SemanticTokenType::COMMENT,
    SemanticTokenType::OPERATOR,
    SemanticTokenType::NAMESPACE,
    SemanticTokenType::TYPE_PARAMETER,
];
const KEYWORD: u32 = 0;
const TYPE: u32 = 1;
const FUNCTION: u32 = 2;
const CLASS: u32 = 3;
const VARIABLE: u32 = 4;
const PARAMETER: u32 = 5;
const PROPERTY: u32 = 6;
const NUMBER: u32 = 7;
const STRING: u32 = 8;
const COMMENT: u32 = 9;
const OPERATOR: u32 = 10;
const NAMESPACE: u32 = 11;
const TYPE_PARAMETER: u32 = 12;

const MODIFIERS: [SemanticTokenModifier; 3] = [
    SemanticTokenModifier::DECLARATION,
    SemanticTokenModifier::READONLY,
    SemanticTokenModifier::DEFAULT_LIBRARY,
];
const DECLARATION: u32 = 1;
const READONLY: u32 = 2;
const DEFAULT_LIBRARY: u32 = 4;

/// The legend announced in the server's capabilities; token types and modifiers are indices
/// into it.
pub(crate) fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: MODIFIERS.to_vec(),
    }
}

const ITEM_KEYWORDS: [&str; 5] = ["model", "block", "data", "train", "const"];
const STATEMENT_KEYWORDS: [&str; 4] = ["let", "step", "update", "with"];
/// Keys of `train` and `data` settings (the checker's lists).
const SETTING_KEYWORDS: [&str; 14] = [
    "data",
    "loss",
    "epochs",
    "batch",
    "metrics",
    "schedule",
    "checkpoint",
    "sample",
    "seed",
    "clip_grad_norm",
    "source",
    "test",
    "split",
    "shuffle",
];
const HPARAM_TYPES: [&str; 4] = ["int", "float", "bool", "string"];

/// All tokens of the document, delta-encoded as the protocol wants.
pub(crate) fn tokens(snap: &Snap) -> Vec<SemanticToken> {
    let toks = lex(snap.text);
    let index = &snap.a.index;
    let mut classified: Vec<(usize, usize, u32, u32)> = Vec::new();
    let mut depth = 0usize;
    // The last significant token before the current one, for "statement start".
    let mut prev: Option<Token> = None;
    let mut occ = 0usize;
    for (i, t) in toks.iter().enumerate() {
        let text = &snap.text[t.span.start..t.span.end];
        let next = toks[i + 1..].iter().find(|n| n.kind != Tok::Comment);
        let class = match t.kind {
            Tok::Comment => Some((COMMENT, 0)),
            Tok::Number => Some((NUMBER, 0)),
            Tok::Str => Some((STRING, 0)),
            Tok::Pipe | Tok::Op => Some((OPERATOR, 0)),
            Tok::Ident => {
                while occ < index.occurrences.len()
                    && index.occurrences[occ].span.start < t.span.start
                {
                    occ += 1;
                }
                let found = index.occurrences[occ..]
                    .iter()
                    .take_while(|o| o.span.start == t.span.start)
                    .find(|o| o.span == t.span);
                let line_start = prev.is_none_or(|p| p.kind == Tok::Newline);
                let statement_start =
                    prev.is_none_or(|p| matches!(p.kind, Tok::Newline | Tok::Punct('{' | ';')));
                match found {
                    Some(o) => Some(match (o.def.map(|d| index.defs[d].kind), o.role) {
                        (_, Role::ArgName) => (PARAMETER, 0),
                        (Some(kind), role) => {
                            let decl = if role == Role::Def { DECLARATION } else { 0 };
                            match kind {
                                DefKind::Model | DefKind::Block => (CLASS, decl),
                                DefKind::Const => (VARIABLE, decl | READONLY),
                                DefKind::Let | DefKind::Input => (VARIABLE, decl),
                                DefKind::HParam => (PARAMETER, decl),
                                DefKind::Field => (PROPERTY, decl),
                                DefKind::Data | DefKind::Train | DefKind::Step => (NAMESPACE, decl),
                                DefKind::Dim => (TYPE_PARAMETER, decl),
                            }
                        }
                        (None, _) if builtins::lookup(text).is_some() => {
                            (FUNCTION, DEFAULT_LIBRARY)
                        }
                        (None, _) if text == "true" || text == "false" => (KEYWORD, 0),
                        (None, _) => (VARIABLE, 0),
                    }),
                    None => {
                        let before_bracket = next.is_some_and(|n| n.kind == Tok::Punct('['));
                        let after_colon = prev.is_some_and(|p| p.kind == Tok::Punct(':'));
                        let is_type = (DType::parse(text).is_some() && before_bracket)
                            || (HPARAM_TYPES.contains(&text) && after_colon);
                        let is_keyword = text == "true"
                            || text == "false"
                            || (ITEM_KEYWORDS.contains(&text) && line_start && depth == 0)
                            || STATEMENT_KEYWORDS.contains(&text)
                            || (statement_start && depth > 0 && SETTING_KEYWORDS.contains(&text));
                        if is_type {
                            Some((TYPE, 0))
                        } else if is_keyword {
                            Some((KEYWORD, 0))
                        } else if builtins::lookup(text).is_some()
                            && (next.is_some_and(|n| n.kind == Tok::Punct('('))
                                || prev.is_some_and(|p| p.kind == Tok::Pipe))
                        {
                            Some((FUNCTION, DEFAULT_LIBRARY))
                        } else {
                            None
                        }
                    }
                }
            }
            _ => None,
        };
        match t.kind {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if t.kind != Tok::Comment {
            prev = Some(*t);
        }
        if let Some((ty, mods)) = class {
            classified.push((t.span.start, t.span.end, ty, mods));
        }
    }
    encode(snap, &classified)
}

fn encode(snap: &Snap, tokens: &[(usize, usize, u32, u32)]) -> Vec<SemanticToken> {
    let mut out = Vec::with_capacity(tokens.len());
    let (mut last_line, mut last_col) = (0u32, 0u32);
    for &(start, end, ty, mods) in tokens {
        let from = snap.lines.position(start);
        let to = snap.lines.position(end);
        // Tokens never span lines (comments and strings stop at a newline).
        if to.line != from.line || to.character <= from.character {
            continue;
        }
        let delta_line = from.line - last_line;
        let delta_start = if delta_line == 0 {
            from.character - last_col
        } else {
            from.character
        };
        out.push(SemanticToken {
            delta_line,
            delta_start,
            length: to.character - from.character,
            token_type: ty,
            token_modifiers_bitset: mods,
        });
        last_line = from.line;
        last_col = from.character;
    }
    out
}
