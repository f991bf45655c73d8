//! Open documents: their text, kept in sync with the editor's edits, and the analysis of that
//! text, computed on demand and cached until the next edit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use lsp_types::TextDocumentContentChangeEvent;
use netc_compiler::Analysis;
use netc_grammar::line_index::{ColumnUnit, LineIndex};
use netc_grammar::{Diagnostic, File, Span};

use crate::index::Index;
use crate::position::Lines;

/// Everything the features read about one version of a text.
pub(crate) struct Analyzed {
    pub file: File,
    pub analysis: Analysis,
    pub index: Index,
    pub lines: LineIndex,
}

impl Analyzed {
    /// Parse, check and index a text. A panic anywhere in the compiler is caught: the file is
    /// then indexed from the parse alone (if the parser survived) and one diagnostic says the
    /// checker crashed, so the editor keeps working and the user learns it is a bug.
    pub fn new(text: &str) -> Analyzed {
        let lines = LineIndex::new(text);
        let (file, analysis) = match catch_unwind(|| netc_compiler::analyze(text)) {
            Ok(result) => result,
            Err(_) => {
                let (file, mut diagnostics) =
                    catch_unwind(|| netc_grammar::parse(text)).unwrap_or_default();
                diagnostics.insert(
                    0,
                    Diagnostic::error(
                        "",
                        "internal error: netc crashed while checking this file; this is a bug, \
                         please report it with the file",
                        Span::new(0, 0),
                        "",
                    ),
                );
                let analysis = Analysis {
                    diagnostics,
                    ..Analysis::default()
                };
                (file, analysis)
            }
        };
        let index = catch_unwind(AssertUnwindSafe(|| Index::build(&file))).unwrap_or_default();
        Analyzed {
            file,
            analysis,
            index,
            lines,
        }
    }
}

/// An open document.
pub(crate) struct Document {
    pub text: String,
    pub version: i32,
    analyzed: Option<Rc<Analyzed>>,
}

impl Document {
    /// A document as `didOpen` gives it; analysed on first use.
    pub fn new(text: String, version: i32) -> Self {
        Document {
            text,
            version,
            analyzed: None,
        }
    }

    /// Apply the editor's changes in order: a change with a range replaces that range (positions
    /// in the negotiated encoding, against the text as the previous change left it); one without
    /// replaces the whole text.
    pub fn apply(&mut self, changes: Vec<TextDocumentContentChangeEvent>, unit: ColumnUnit) {
        for change in changes {
            match change.range {
                Some(range) => {
                    let index = LineIndex::new(&self.text);
                    let lines = Lines {
                        text: &self.text,
                        index: &index,
                        unit,
                    };
                    let start = lines.offset(range.start);
                    let end = lines.offset(range.end).max(start);
                    self.text.replace_range(start..end, &change.text);
                }
                None => self.text = change.text,
            }
        }
        self.analyzed = None;
    }

    /// The analysis of the current text, computed now if an edit invalidated it.
    pub fn analyzed(&mut self) -> Rc<Analyzed> {
        self.analyzed
            .get_or_insert_with(|| Rc::new(Analyzed::new(&self.text)))
            .clone()
    }
}

/// One analysed version of a document, as the features see it.
pub(crate) struct Snap<'a> {
    pub text: &'a str,
    pub a: &'a Analyzed,
    pub lines: Lines<'a>,
}

impl<'a> Snap<'a> {
    /// The view of a document the features read: its text, its analysis, conversions in `unit`.
    pub fn new(text: &'a str, a: &'a Analyzed, unit: ColumnUnit) -> Self {
        Snap {
            text,
            a,
            lines: Lines {
                text,
                index: &a.lines,
                unit,
            },
        }
    }

    /// The distinct inferred types recorded at exactly this span (a block used with two input
    /// shapes has two).
    pub fn types_at(&self, span: Span) -> Vec<&'a netc_compiler::types::TensorType> {
        let shapes = &self.a.analysis.shapes;
        let from = shapes.partition_point(|s| s.span.start < span.start);
        let mut out: Vec<&netc_compiler::types::TensorType> = Vec::new();
        for s in &shapes[from..] {
            if s.span.start != span.start {
                break;
            }
            if s.span == span && !out.contains(&&s.ty) {
                out.push(&s.ty);
            }
        }
        out
    }

    /// The source text of a span, whitespace runs collapsed to one space.
    pub fn one_line(&self, span: Span) -> String {
        let text = self.text.get(span.start..span.end).unwrap_or("");
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}
