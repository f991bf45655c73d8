//! Byte offsets to line and column, built once per file.
//!
//! Diagnostics carry byte spans; people and editors want lines and columns. The command line
//! reports 1-based lines and character columns; LSP wants 0-based UTF-16 (or UTF-8) columns.

/// Start offsets of every line of a text.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

/// A 0-based line and a 0-based column counted in the requested unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

/// How columns are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnUnit {
    /// Unicode scalar values: what a person counts.
    Chars,
    Utf8Bytes,
    Utf16,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// Line and column of a byte offset (clamped to the text, and to a char boundary).
    pub fn line_col(&self, text: &str, offset: usize, unit: ColumnUnit) -> LineCol {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let prefix = &text[self.starts[line]..offset];
        let col = match unit {
            ColumnUnit::Chars => prefix.chars().count(),
            ColumnUnit::Utf8Bytes => prefix.len(),
            ColumnUnit::Utf16 => prefix.encode_utf16().count(),
        };
        LineCol { line, col }
    }

    /// Byte offset of a line and column; out-of-range positions clamp to the line's end.
    pub fn offset(&self, text: &str, pos: LineCol, unit: ColumnUnit) -> usize {
        let Some(&start) = self.starts.get(pos.line) else {
            return text.len();
        };
        let end = self
            .starts
            .get(pos.line + 1)
            .map_or(text.len(), |&e| e.saturating_sub(1))
            .max(start);
        let line = &text[start..end];
        let mut counted = 0;
        for (i, c) in line.char_indices() {
            if counted >= pos.col {
                return start + i;
            }
            counted += match unit {
                ColumnUnit::Chars => 1,
                ColumnUnit::Utf8Bytes => c.len_utf8(),
                ColumnUnit::Utf16 => c.len_utf16(),
            };
        }
        end
    }

    pub fn line_count(&self) -> usize {
        self.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_in_each_unit() {
        let text = "ab\n# é😀x\n";
        let idx = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(
            idx.line_col(text, x, ColumnUnit::Chars),
            LineCol { line: 1, col: 4 }
        );
        assert_eq!(
            idx.line_col(text, x, ColumnUnit::Utf16),
            LineCol { line: 1, col: 5 }
        );
        assert_eq!(
            idx.line_col(text, x, ColumnUnit::Utf8Bytes),
            LineCol { line: 1, col: 8 }
        );
        assert_eq!(
            idx.offset(text, LineCol { line: 1, col: 5 }, ColumnUnit::Utf16),
            x
        );
    }
}
