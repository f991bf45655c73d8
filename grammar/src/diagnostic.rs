//! The one diagnostic type every stage reports with.
//!
//! It is plain data (code, message, labelled spans, help, notes) so the command line can render
//! it with miette, `--message-format json` can print it, and the language server can convert it
//! to LSP without going through rendered text.

use crate::ast::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A labelled place in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One problem found in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Stable code such as `N2001`; the catalogue is in `docs/diagnostics.md`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The primary label: the exact place that is wrong.
    pub primary: Label,
    /// Other places involved (the other operand of a mismatch, where a name was defined).
    pub secondary: Vec<Label>,
    pub help: Option<String>,
    /// Related notes with their own place, such as "block instantiated here".
    pub notes: Vec<(String, Label)>,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label {
                span,
                message: label.into(),
            },
            secondary: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, span, label)
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(
        mut self,
        note: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        self.notes.push((
            note.into(),
            Label {
                span,
                message: label.into(),
            },
        ));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
