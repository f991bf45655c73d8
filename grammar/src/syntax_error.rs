//! Turning pest's errors into diagnostics a person can act on.
//!
//! pest reports rule names and the furthest position it reached. With error detail enabled it
//! also reports the literal tokens it tried there; we translate both into English ("expected
//! `)` or `,`"), say what was found instead, and special-case the mistakes people make most
//! (unclosed brackets, a dangling `|>`).

use pest::error::{ErrorVariant, InputLocation};

use crate::ast::Span;
use crate::diagnostic::Diagnostic;
use crate::parser::Rule;
use crate::split::Slice;

/// A failed item parse.
pub(crate) fn from_pest(src: &str, slice: &Slice, err: &pest::error::Error<Rule>) -> Diagnostic {
    if let Some((c, at)) = slice.unopened {
        return Diagnostic::error(
            "N1003",
            format!("unexpected `{c}`"),
            Span::new(at, at + 1),
            "nothing is open here",
        )
        .with_help("remove it, or add the opening bracket it closes");
    }
    if let Some(&(c, at)) = slice.unclosed.first() {
        let close = closer(c);
        let diag = Diagnostic::error(
            "N1002",
            format!("unclosed `{c}`"),
            Span::new(at, at + 1),
            "opened here",
        )
        .with_help(format!("add the missing `{close}`"));
        // A different closing bracket while this one is open (`f(x }`) is where it was due.
        return match mismatched_closer(&src[at..slice.span.end]) {
            Some((other, i)) => diag.with_label(
                Span::new(at + i, at + i + 1),
                format!("expected `{close}` before this `{other}`"),
            ),
            None => {
                let end = slice.span.end;
                diag.with_label(Span::new(end, end), format!("expected `{close}` by here"))
            }
        };
    }
    let text = &src[slice.span.start..slice.span.end];
    if let Some(at) = junk_after_item(text, err) {
        return junk_between_items(src, Span::new(slice.span.start + at, slice.span.end));
    }
    describe(slice.span.start, text, err)
}

/// Where a complete item is followed, on a later line, by text that is not an item: the
/// position of that text. The scanner glues such text to the item before it.
pub(crate) fn junk_after_item(text: &str, err: &pest::error::Error<Rule>) -> Option<usize> {
    let pos = error_position(err).min(text.len());
    let before = &text[..pos];
    let at_line_start = before.trim_end_matches([' ', '\t']).ends_with('\n');
    (at_line_start
        && !text[pos..].trim().is_empty()
        && crate::parser::parse_detailed(Rule::item_only, before).is_ok())
    .then_some(pos)
}

fn error_position(err: &pest::error::Error<Rule>) -> usize {
    match err.parse_attempts() {
        Some(attempts) => attempts.max_position,
        None => location(&err.location),
    }
}

/// A statement, entry or setting that matched only the recovery rule: parse it again on its own
/// to find the exact place it goes wrong.
pub(crate) fn bad_statement(src: &str, span: Span, strict: Rule) -> Diagnostic {
    let text = &src[span.start..span.end];
    let brackets = scan_brackets(text);
    if let Some(quote) = brackets.open_string {
        return unterminated_string(span.start + quote);
    }
    if let Some((c, at)) = brackets.unopened {
        return Diagnostic::error(
            "N1003",
            format!("unexpected `{c}`"),
            Span::new(span.start + at, span.start + at + 1),
            "nothing is open here",
        )
        .with_help("remove it, or add the opening bracket it closes");
    }
    match crate::parser::parse_detailed(strict, text) {
        Err(err) => {
            let pos = error_position(&err).min(text.len());
            if let Some(&(c, at)) = brackets.unclosed.first()
                && text[pos..].trim().is_empty()
            {
                let close = closer(c);
                let end = span.start + text.trim_end().len();
                return Diagnostic::error(
                    "N1002",
                    format!("unclosed `{c}`"),
                    Span::new(span.start + at, span.start + at + 1),
                    "opened here",
                )
                .with_label(Span::new(end, end), format!("expected `{close}` by here"))
                .with_help(format!("add the missing `{close}`"));
            }
            describe(span.start, text, &err)
        }
        Ok(_) => Diagnostic::error(
            "N1001",
            "this statement cannot be parsed here",
            span,
            "unexpected statement",
        ),
    }
}

/// Text between items that is not an item.
pub(crate) fn junk_between_items(src: &str, span: Span) -> Diagnostic {
    let first = first_token(&src[span.start..span.end]);
    Diagnostic::error(
        "N1001",
        format!("expected an item, found {}", found_text(first)),
        Span::new(span.start, span.start + first.len().max(1)),
        "expected `model`, `block`, `data`, `train` or `const`",
    )
    .with_help("every top-level declaration starts with one of those words at the start of a line")
}

fn describe(offset: usize, text: &str, err: &pest::error::Error<Rule>) -> Diagnostic {
    let (pos, mut expected) = match (&err.variant, err.parse_attempts()) {
        (ErrorVariant::CustomError { message }, _) => {
            let pos = location(&err.location);
            let span = Span::new(offset + pos, offset + pos);
            return Diagnostic::error("N1005", "input too complex to parse", span, message.clone())
                .with_help("split the expression with `let` bindings");
        }
        (_, Some(attempts)) => {
            let mut expected = Vec::new();
            for token in attempts.expected_tokens() {
                // Literal tokens only: ranges (`a..z`) and built-ins are covered by rule names.
                let token = token.to_string();
                if !token.contains("..") && token != "BUILTIN_RULE" {
                    push_unique(&mut expected, format!("`{}`", token.escape_debug()));
                }
            }
            for stack in &attempts.call_stacks {
                for rule in stack
                    .deepest
                    .get_rule()
                    .into_iter()
                    .chain(stack.parent.as_ref())
                {
                    if let Some(name) = rule_name(*rule) {
                        push_unique(&mut expected, name.to_string());
                    }
                }
            }
            (attempts.max_position, expected)
        }
        (ErrorVariant::ParsingError { positives, .. }, None) => {
            let names = positives
                .iter()
                .filter_map(|r| rule_name(*r))
                .map(str::to_string)
                .collect();
            (location(&err.location), names)
        }
    };
    let pos = pos.min(text.len());
    if let Some(quote) = open_string_at(text, pos) {
        return unterminated_string(offset + quote);
    }
    let rest = &text[pos..];
    let found = first_token(rest);
    let at = offset + pos;
    let span = Span::new(at, at + found.len());
    if let Some(start) = malformed_number_start(text, pos, found) {
        let number = &text[start..pos + found.len()];
        return Diagnostic::error(
            "N1001",
            format!("malformed number `{number}`"),
            Span::new(offset + start, at + found.len()),
            "not a valid number",
        )
        .with_help(
            "numbers are written like `64`, `0.5` or `1e-3`, and names cannot start with a digit",
        );
    }
    // Right after a name or number, pest also tries to extend that token: those expectations
    // ("a name", `_`) are not what is missing.
    let after_word = text[..pos]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if after_word {
        expected.retain(|e| e != "a name" && e != "`_`");
    }
    let before = text[..pos].trim_end();

    if before.ends_with("|>") {
        let arrow = offset + before.len() - 2;
        if found.is_empty() {
            return Diagnostic::error(
                "N1001",
                "dangling `|>`",
                Span::new(arrow, arrow + 2),
                "nothing follows this `|>`",
            )
            .with_help("write a layer or function after `|>`, or remove it");
        }
        return Diagnostic::error(
            "N1001",
            format!(
                "expected a layer or function after `|>`, found {}",
                found_text(found)
            ),
            span,
            "expected a layer or function",
        )
        .with_label(
            Span::new(arrow, arrow + 2),
            "this `|>` needs a stage after it",
        );
    }
    let expected = tidy(expected);
    let wanted = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].clone(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let diag = Diagnostic::error(
        "N1001",
        format!("expected {wanted}, found {}", found_text(found)),
        span,
        format!("expected {wanted}"),
    );
    let wants = |e: &str| expected.iter().any(|x| x == e);
    if wants(TENSOR_TYPE)
        && found.starts_with(|c: char| c.is_ascii_alphabetic())
        && rest[found.len()..].trim_start().starts_with('[')
    {
        return Diagnostic::error(
            "N1001",
            format!("unknown element type `{found}`"),
            span,
            "not an element type",
        )
        .with_help("element types are `f32`, `f64`, `i32`, `i64`, `u8` and `bool`");
    }
    if wants(TENSOR_TYPE) && found == "[" {
        diag.with_help("a tensor type starts with its element type: `f32[B, 10]`, `i32[B, T]`")
    } else if wants("`with`") {
        diag.with_help("an update is written `update Model with adam(lr: 1e-3)`")
    } else if wants("`:`") && expected.len() == 1 {
        diag.with_help(
            "inputs, fields and hyper-parameters are written `name: type`, such as `x: f32[B, 64]`",
        )
    } else {
        diag
    }
}

const TENSOR_TYPE: &str = "a tensor type such as `f32[B, 10]`";

fn closer(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

fn unterminated_string(quote: usize) -> Diagnostic {
    Diagnostic::error(
        "N1001",
        "unterminated string",
        Span::new(quote, quote + 1),
        "this string is never closed",
    )
    .with_help("a string ends with `\"` on the same line")
}

/// Brackets and strings in one statement, skipping comments.
#[derive(Default)]
struct Brackets {
    /// The first closing bracket with nothing open: `(char, offset)`.
    unopened: Option<(char, usize)>,
    /// Brackets still open at the end, outermost first.
    unclosed: Vec<(char, usize)>,
    /// The opening quote of a string that the line ends inside.
    open_string: Option<usize>,
}

fn scan_brackets(text: &str) -> Brackets {
    let mut out = Brackets::default();
    let mut chars = text.char_indices();
    let mut string_start: Option<usize> = None;
    while let Some((i, c)) = chars.next() {
        if string_start.is_some() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => string_start = None,
                '\n' => {
                    out.open_string = string_start;
                    return out;
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => string_start = Some(i),
            '#' => {
                // A comment runs to the end of the line.
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => out.unclosed.push((c, i)),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match out.unclosed.iter().rposition(|&(o, _)| o == open) {
                    Some(p) => out.unclosed.truncate(p),
                    None => {
                        if out.unopened.is_none() {
                            out.unopened = Some((c, i));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.open_string = string_start;
    out
}

/// In `text`, which starts with an opening bracket, the first closing bracket of another kind
/// met while that bracket is still open: `(char, offset)`.
fn mismatched_closer(text: &str) -> Option<(char, usize)> {
    let mut open: Vec<char> = Vec::new();
    let mut chars = text.char_indices();
    let mut in_string = false;
    while let Some((i, c)) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' | '\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => match open.last() {
                Some(&o) if closer(o) == c => {
                    open.pop();
                    if open.is_empty() {
                        return None;
                    }
                }
                _ => return Some((c, i)),
            },
            _ => {}
        }
    }
    None
}

/// The opening quote of the string that `pos` stands in, if the line ends inside it.
fn open_string_at(text: &str, pos: usize) -> Option<usize> {
    let line_start = text[..pos].rfind('\n').map_or(0, |n| n + 1);
    let line_end = text[pos..].find('\n').map_or(text.len(), |n| pos + n);
    let line = scan_brackets(&text[line_start..line_end]);
    line.open_string
        .map(|q| line_start + q)
        .filter(|&q| q < pos)
}

/// A number run into more digits, dots or letters (`0.5.1`, `2e`, `3x`): where it starts.
fn malformed_number_start(text: &str, pos: usize, found: &str) -> Option<usize> {
    if found.is_empty()
        || !found.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    let before = &text[..pos];
    let start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        .last()
        .map(|(i, _)| i)?;
    text[start..]
        .starts_with(|c: char| c.is_ascii_digit())
        .then_some(start)
}

fn location(loc: &InputLocation) -> usize {
    match *loc {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// Turn raw expectations into a short list a person can read: tokens that only start an
/// expression become "an expression", whitespace and identifier characters disappear, and
/// operators that could always continue an expression are dropped when anything else remains.
fn tidy(expected: Vec<String>) -> Vec<String> {
    const NOISE: [&str; 8] = [
        "` `", "`\\t`", "`\\r`", "`\\n`", "`\\r\\n`", "`#`", "`;`", "`E`",
    ];
    const STARTS_EXPRESSION: [&str; 15] = [
        "`(`", "`[`", "`-`", "`\\\"`", "`_`", "`true`", "`false`", "`f32`", "`f64`", "`i32`",
        "`i64`", "`u8`", "`bool`", "a name", "a number",
    ];
    const CONTINUES: [&str; 7] = ["`+`", "`-`", "`*`", "`/`", "`%`", "`.`", "`|>`"];
    const DTYPES: [&str; 6] = ["`f32`", "`f64`", "`i32`", "`i64`", "`u8`", "`bool`"];
    // Element types alone (no other way to start an expression) mean a tensor type is wanted.
    let only_types = expected.iter().any(|e| DTYPES.contains(&e.as_str()))
        && !expected.iter().any(|e| {
            e == "an expression"
                || (STARTS_EXPRESSION.contains(&e.as_str()) && !DTYPES.contains(&e.as_str()))
        });
    let wants_with = expected.iter().any(|e| e == "`with`");
    let mut out: Vec<String> = Vec::new();
    for e in expected {
        if NOISE.contains(&e.as_str()) || (wants_with && e == "`:`") {
            continue;
        }
        let e = if only_types && DTYPES.contains(&e.as_str()) {
            TENSOR_TYPE.to_string()
        } else if STARTS_EXPRESSION.contains(&e.as_str()) || e == "a string" {
            "an expression".to_string()
        } else {
            e
        };
        if !out.contains(&e) {
            out.push(e);
        }
    }
    // After a complete argument, a closing bracket or comma is what is missing, not more
    // expression (the tokens that "start an expression" there are identifier characters).
    if out
        .iter()
        .any(|e| matches!(e.as_str(), "`)`" | "`]`" | "`,`"))
    {
        out.retain(|e| e != "an expression");
    }
    if out.iter().any(|e| !CONTINUES.contains(&e.as_str())) {
        out.retain(|e| !CONTINUES.contains(&e.as_str()));
    }
    // "an item" is the top-level rule: inside an item it is never what is missing.
    if out.len() > 1 {
        out.retain(|e| e != "an item");
    }
    out.sort_by_key(|e| (!e.starts_with('`'), e.clone()));
    out.truncate(8);
    out
}

/// English for the rules that can appear in "expected ...". `None` hides a rule.
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::ident | Rule::arg_name => "a name",
        Rule::number => "a number",
        Rule::string | Rule::str_inner => "a string",
        Rule::expr
        | Rule::arith
        | Rule::unary
        | Rule::postfix
        | Rule::stage
        | Rule::call
        | Rule::paren
        | Rule::list => "an expression",
        Rule::tensor_type | Rule::dtype => TENSOR_TYPE,
        Rule::shape => "a shape such as `[B, 10]`",
        Rule::body => "`{`",
        Rule::inputs | Rule::hparams => "`(`",
        Rule::input => "an input such as `x: f32[B, 64]`",
        Rule::hparam => "a hyper-parameter such as `heads: int`",
        Rule::returns => "`->`",
        Rule::pipe_op => "`|>`",
        Rule::kw_with => "`with`",
        Rule::kw_let => "`let`",
        Rule::item | Rule::item_only => "an item",
        Rule::end | Rule::sep => "end of line",
        _ => return None,
    })
}

fn first_token(rest: &str) -> &str {
    let mut chars = rest.char_indices();
    match chars.next() {
        None => "",
        Some((_, c)) if c == '\n' || c == '\r' => "",
        Some((_, c)) if c.is_alphanumeric() || c == '_' => {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            &rest[..end]
        }
        Some((_, '|')) if rest.starts_with("|>") => "|>",
        Some((_, '-')) if rest.starts_with("->") => "->",
        Some((_, c)) => &rest[..c.len_utf8()],
    }
}

fn found_text(token: &str) -> String {
    if token.is_empty() {
        "end of line".to_string()
    } else {
        format!("`{token}`")
    }
}
