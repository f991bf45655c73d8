//! Splitting a file into item slices before parsing.
//!
//! pest has no error recovery, so a file is first cut into items (`model`, `block`, `data`,
//! `train`, `const`) by a scanner that never fails; each slice is parsed on its own and a broken
//! item cannot hide the others. The scanner also finds what would make the parser misbehave:
//! nesting deeper than [`MAX_NESTING`] (pest recurses per bracket) and unclosed brackets.

use crate::ast::Span;

/// Deepest bracket nesting accepted. Deeper input is reported instead of parsed, so no input can
/// exhaust the stack.
pub const MAX_NESTING: usize = 128;

/// Words that start an item when they open a line.
pub const ITEM_KEYWORDS: [&str; 5] = ["const", "model", "block", "data", "train"];

/// One item's text, and what the scanner noticed about it.
#[derive(Debug, Clone)]
pub struct Slice {
    pub span: Span,
    /// Does the slice start with an item keyword? If not it is text between items.
    pub starts_with_keyword: bool,
    /// Brackets still open when the slice ended: `(char, position)`.
    pub unclosed: Vec<(char, usize)>,
    /// A closing bracket with nothing open: `(char, position)`.
    pub unopened: Option<(char, usize)>,
    /// Where nesting first went past [`MAX_NESTING`].
    pub too_deep: Option<usize>,
}

/// Cut `src` into slices. Text that is only blank lines and comments belongs to no slice.
pub fn split_items(src: &str) -> Vec<Slice> {
    let bytes = src.as_bytes();
    let mut slices: Vec<Slice> = Vec::new();
    let mut current: Option<Slice> = None;
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut i = 0;
    let mut at_line_start = true;

    while i < bytes.len() {
        let b = bytes[i];
        if at_line_start {
            let indent_end = skip_blanks(bytes, i);
            let column_zero = indent_end == i;
            if let Some(word) = item_keyword_at(src, indent_end)
                && (stack.is_empty() || column_zero)
            {
                if let Some(mut done) = current.take() {
                    done.unclosed.append(&mut stack);
                    done.span.end = trim_end(src, done.span.start, indent_end);
                    slices.push(done);
                }
                let _ = word;
                current = Some(Slice {
                    span: Span::new(indent_end, src.len()),
                    starts_with_keyword: true,
                    unclosed: Vec::new(),
                    unopened: None,
                    too_deep: None,
                });
            }
            at_line_start = false;
        }
        match b {
            b'\n' => {
                at_line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let slice = current.get_or_insert_with(|| Slice {
            span: Span::new(i, src.len()),
            starts_with_keyword: false,
            unclosed: Vec::new(),
            unopened: None,
            too_deep: None,
        });
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i < bytes.len() && bytes[i] == b'"' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                stack.push((b as char, i));
                if stack.len() > MAX_NESTING && slice.too_deep.is_none() {
                    slice.too_deep = Some(i);
                }
            }
            b')' | b']' | b'}' => {
                let open = match b {
                    b')' => '(',
                    b']' => '[',
                    _ => '{',
                };
                match stack.last() {
                    Some(&(c, _)) if c == open => {
                        stack.pop();
                    }
                    _ => {
                        if slice.unopened.is_none() && !stack.iter().any(|&(c, _)| c == open) {
                            slice.unopened = Some((b as char, i));
                        }
                        // Pop through a mismatched opener so one typo does not unbalance the rest.
                        if let Some(pos) = stack.iter().rposition(|&(c, _)| c == open) {
                            slice.unclosed.extend(stack.drain(pos + 1..));
                            stack.truncate(pos);
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(mut done) = current.take() {
        done.unclosed.append(&mut stack);
        done.span.end = trim_end(src, done.span.start, src.len());
        slices.push(done);
    }
    slices
}

fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r') {
        i += 1;
    }
    i
}

fn item_keyword_at(src: &str, at: usize) -> Option<&'static str> {
    let rest = &src.as_bytes()[at..];
    ITEM_KEYWORDS.into_iter().find(|kw| {
        rest.starts_with(kw.as_bytes())
            && rest
                .get(kw.len())
                .is_none_or(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
    })
}

/// The end of `src[start..end]` without trailing blank lines and comment-only lines, so a slice
/// does not own the comments that introduce the next item.
fn trim_end(src: &str, start: usize, end: usize) -> usize {
    let text = &src[start..end];
    let mut keep = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = strip_comment(line);
        if !code.trim().is_empty() {
            keep = offset + line.trim_end().len();
        }
        offset += line.len();
    }
    start + keep
}

/// The line without a trailing `# comment` (outside strings).
fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if in_string && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

/// Spans of every comment in `src`, in order (strings are skipped).
pub fn comments(src: &str) -> Vec<Span> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                let mut end = i;
                if end > start && bytes[end - 1] == b'\r' {
                    end -= 1;
                }
                out.push(Span::new(start, end));
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<&str> {
        split_items(src)
            .iter()
            .map(|s| &src[s.span.start..s.span.end])
            .collect()
    }

    #[test]
    fn splits_at_item_keywords() {
        let src = "# intro\nconst n = 3\n\nmodel A(x: f32[B]) {\n  x\n}\n# next\nmodel B(x: f32[B]) { x }\n";
        assert_eq!(
            texts(src),
            [
                "const n = 3",
                "model A(x: f32[B]) {\n  x\n}",
                "model B(x: f32[B]) { x }"
            ]
        );
    }

    #[test]
    fn keywords_inside_bodies_do_not_split() {
        let src = "train {\n  model Mlp\n  data digits\n}\n";
        assert_eq!(texts(src).len(), 1);
    }

    #[test]
    fn unclosed_brace_is_recorded_and_next_item_still_splits() {
        let src = "model A(x: f32[B]) {\n  x |> relu(\n}\nmodel B(x: f32[B]) { x }";
        let slices = split_items(src);
        assert_eq!(slices.len(), 2);
        assert_eq!(slices[0].unclosed.len(), 1);
        assert_eq!(slices[0].unclosed[0].0, '(');
        assert!(slices[1].unclosed.is_empty());
    }

    #[test]
    fn deep_nesting_is_flagged() {
        let src = format!("const x = {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(split_items(&src)[0].too_deep.is_some());
    }

    #[test]
    fn comments_skip_strings() {
        let src = "a \"#no\" # yes\n# two";
        let c = comments(src);
        assert_eq!(c.len(), 2);
        assert_eq!(&src[c[0].start..c[0].end], "# yes");
    }
}
