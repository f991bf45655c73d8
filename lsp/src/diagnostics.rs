//! The compiler's [`Diagnostic`] to LSP's, field by field: the code, the message `netc check`
//! prints with its primary label and help, secondary labels and notes as related locations.

use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag, Location, NumberOrString, Uri,
};
use netc_grammar::{Diagnostic, Severity};

use crate::position::Lines;

/// Unused bindings and inputs: editors grey these out.
const UNUSED: &str = "N2014";

/// One diagnostic for `uri`, ranges in the negotiated encoding. The message is what
/// `netc check` prints first (message, primary label, help); other places are related information
/// so the editor can jump to them.
pub(crate) fn to_lsp(d: &Diagnostic, lines: &Lines, uri: &Uri) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    let label = d.primary.message.trim();
    if !label.is_empty() && label != "here" && label != d.message {
        message.push('\n');
        message.push_str(label);
    }
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let location = |span| Location {
        uri: uri.clone(),
        range: lines.range(span),
    };
    let mut related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .map(|l| DiagnosticRelatedInformation {
            location: location(l.span),
            message: l.message.clone(),
        })
        .collect();
    related.extend(
        d.notes
            .iter()
            .map(|(note, l)| DiagnosticRelatedInformation {
                location: location(l.span),
                message: if l.message.is_empty() {
                    format!("note: {note}")
                } else {
                    format!("note: {note} ({})", l.message)
                },
            }),
    );
    lsp_types::Diagnostic {
        range: lines.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: (!d.code.is_empty()).then(|| NumberOrString::String(d.code.to_string())),
        code_description: None,
        source: Some("netc".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: (d.code == UNUSED).then(|| vec![DiagnosticTag::UNNECESSARY]),
        data: None,
    }
}
