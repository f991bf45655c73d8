//! A forgiving lexer for highlighting and completion contexts.
//!
//! The parser works per item and gives up on broken items; an editor needs tokens for every
//! character, half-typed or not. This lexer never fails: anything it does not know becomes an
//! `Other` token. It decides nothing about meaning (that is the checker's and the index's job).

use netc_grammar::Span;

/// The kind of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Ident,
    Number,
    Str,
    Comment,
    Newline,
    /// `|>`
    Pipe,
    /// `+ - * / %` and `->`
    Op,
    /// One of `( ) [ ] { } , : ; . =`, given by the character.
    Punct(char),
    Other,
}

/// A token and the bytes it covers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    pub kind: Tok,
    pub span: Span,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every token of `text`, in order (spaces are skipped; newlines are tokens because they end
/// statements).
pub(crate) fn lex(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = text[i..].chars().next().unwrap_or(' ');
        let kind = match c {
            ' ' | '\t' | '\r' => {
                i += 1;
                continue;
            }
            '\n' => {
                i += 1;
                Tok::Newline
            }
            '#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Tok::Comment
            }
            '"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                        i += 1;
                    }
                    i += 1;
                }
                if i < bytes.len() && bytes[i] == b'"' {
                    i += 1;
                }
                Tok::Str
            }
            c if c.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                    i += 1;
                }
                if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                    let mut j = i + 1;
                    if j < bytes.len() && (bytes[j] == b'-' || bytes[j] == b'+') {
                        j += 1;
                    }
                    if j < bytes.len() && bytes[j].is_ascii_digit() {
                        i = j;
                        while i < bytes.len() && bytes[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                Tok::Number
            }
            c if is_ident_start(c) => {
                while i < bytes.len() && is_ident_char(bytes[i] as char) {
                    i += 1;
                }
                Tok::Ident
            }
            '|' if bytes.get(i + 1) == Some(&b'>') => {
                i += 2;
                Tok::Pipe
            }
            '-' if bytes.get(i + 1) == Some(&b'>') => {
                i += 2;
                Tok::Op
            }
            '+' | '-' | '*' | '/' | '%' => {
                i += 1;
                Tok::Op
            }
            '(' | ')' | '[' | ']' | '{' | '}' | ',' | ':' | ';' | '.' | '=' => {
                i += 1;
                Tok::Punct(c)
            }
            other => {
                i += other.len_utf8();
                Tok::Other
            }
        };
        out.push(Token {
            kind,
            span: Span::new(start, i),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_a_line() {
        let text = "let h = x |> linear(64, bias: false) # é\n1e-3 \"a\\\"b\"";
        let kinds: Vec<Tok> = lex(text).iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Ident,
                Tok::Ident,
                Tok::Punct('='),
                Tok::Ident,
                Tok::Pipe,
                Tok::Ident,
                Tok::Punct('('),
                Tok::Number,
                Tok::Punct(','),
                Tok::Ident,
                Tok::Punct(':'),
                Tok::Ident,
                Tok::Punct(')'),
                Tok::Comment,
                Tok::Newline,
                Tok::Number,
                Tok::Str,
            ]
        );
    }

    #[test]
    fn never_fails_on_odd_text() {
        for text in ["\"unterminated", "é😀|", "1e", "1.", "-> |", "\\"] {
            let toks = lex(text);
            assert_eq!(toks.last().map_or(0, |t| t.span.end), text.len());
        }
    }
}
