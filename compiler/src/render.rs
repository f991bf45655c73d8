//! Rendering diagnostics with miette, the way `netc check` prints them.
//!
//! [`Diagnostic`] is plain data; this module adapts it to `miette::Diagnostic` so the graphical
//! handler draws the source snippet, the labels and the help line. Notes become miette's
//! "related" diagnostics, each with its own snippet.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use netc_grammar::{Diagnostic, Label, Severity};

/// A diagnostic together with the file it is about, ready for miette.
pub struct Report<'a> {
    diag: &'a Diagnostic,
    source: NamedSource<String>,
    notes: Vec<Note>,
}

/// A related note ("block instantiated here") rendered as its own advice.
struct Note {
    message: String,
    label: Label,
    source: NamedSource<String>,
}

impl<'a> Report<'a> {
    pub fn new(diag: &'a Diagnostic, file_name: &str, src: &str) -> Self {
        let source = NamedSource::new(file_name, src.to_string());
        let notes = diag
            .notes
            .iter()
            .map(|(message, label)| Note {
                message: message.clone(),
                label: label.clone(),
                source: NamedSource::new(file_name, src.to_string()),
            })
            .collect();
        Report {
            diag,
            source,
            notes,
        }
    }
}

fn span(label: &Label, primary: bool) -> LabeledSpan {
    let span = SourceSpan::new(label.span.start.into(), label.span.len());
    let text = (!label.message.is_empty()).then(|| label.message.clone());
    if primary {
        LabeledSpan::new_primary_with_span(text, span)
    } else {
        LabeledSpan::new_with_span(text, span)
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = std::iter::once(span(&self.diag.primary, true));
        let secondary = self.diag.secondary.iter().map(|l| span(l, false));
        Some(Box::new(primary.chain(secondary)))
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        if self.notes.is_empty() {
            return None;
        }
        Some(Box::new(
            self.notes.iter().map(|n| n as &dyn miette::Diagnostic),
        ))
    }
}

impl fmt::Debug for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Note {}

impl miette::Diagnostic for Note {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(span(&self.label, true))))
    }
}

/// Render without colour or hyperlinks at a fixed width: what UI tests compare and what a
/// terminal without colour shows.
pub fn render_plain(diag: &Diagnostic, file_name: &str, src: &str) -> String {
    render_with(
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()),
        diag,
        file_name,
        src,
    )
}

/// Render with the given miette handler.
pub fn render_with(
    handler: GraphicalReportHandler,
    diag: &Diagnostic,
    file_name: &str,
    src: &str,
) -> String {
    let handler = handler.with_width(100).with_links(false);
    let report = Report::new(diag, file_name, src);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!("{}: {}\n", diag.code, diag.message);
    }
    out
}
