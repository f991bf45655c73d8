//! Byte offsets (what the compiler speaks) to LSP positions (what the client speaks), in the
//! negotiated encoding: UTF-16 code units unless the client offered UTF-8.

use lsp_types::{Position, PositionEncodingKind, Range};
use netc_grammar::Span;
use netc_grammar::line_index::{ColumnUnit, LineCol, LineIndex};

/// Pick the encoding from what the client offers: UTF-8 when offered (no conversion cost and
/// what most non-VS Code clients prefer), otherwise the protocol's mandatory UTF-16.
pub(crate) fn negotiate(offered: Option<&[PositionEncodingKind]>) -> ColumnUnit {
    match offered {
        Some(kinds) if kinds.contains(&PositionEncodingKind::UTF8) => ColumnUnit::Utf8Bytes,
        _ => ColumnUnit::Utf16,
    }
}

/// The protocol's name for an encoding.
pub(crate) fn encoding_kind(unit: ColumnUnit) -> PositionEncodingKind {
    match unit {
        ColumnUnit::Utf8Bytes => PositionEncodingKind::UTF8,
        ColumnUnit::Chars => PositionEncodingKind::UTF32,
        ColumnUnit::Utf16 => PositionEncodingKind::UTF16,
    }
}

/// A text with its line index, converting in one encoding.
#[derive(Clone, Copy)]
pub(crate) struct Lines<'a> {
    pub text: &'a str,
    pub index: &'a LineIndex,
    pub unit: ColumnUnit,
}

impl Lines<'_> {
    /// The position of a byte offset (clamped to the text).
    pub fn position(&self, offset: usize) -> Position {
        let lc = self.index.line_col(self.text, offset, self.unit);
        Position::new(lc.line as u32, lc.col as u32)
    }

    /// The range of a byte span.
    pub fn range(&self, span: Span) -> Range {
        Range::new(self.position(span.start), self.position(span.end))
    }

    /// The byte offset of a position; positions past a line's end clamp to it, past the last
    /// line to the end of the text.
    pub fn offset(&self, pos: Position) -> usize {
        self.index.offset(
            self.text,
            LineCol {
                line: pos.line as usize,
                col: pos.character as usize,
            },
            self.unit,
        )
    }
}
