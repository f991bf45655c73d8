//! Name resolution, shape checking and diagnostics for `.net` programs; later stages (IR,
//! autodiff, passes, backends) join this crate.
//!
//! Architecture invariant: the checker reads the syntax tree and the built-in table and nothing
//! else; it never runs a model or touches data files.

// Diagnostics are deliberately rich (labels, help, notes) and returned by value on error
// paths that are not hot; boxing them everywhere would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod builtins;
pub mod check;
pub mod dim;
pub mod docs;
pub mod ir;
pub mod lower;
pub mod render;
pub mod suggest;
pub mod types;
pub mod weights;

pub use check::{Analysis, check};
pub use netc_grammar::{Diagnostic, Severity};

/// Parse and check a source text: the one entry point the CLI and the editor server use.
pub fn analyze(src: &str) -> (netc_grammar::File, Analysis) {
    let (file, syntax) = netc_grammar::parse(src);
    let mut analysis = check(&file, src);
    analysis.diagnostics.extend(syntax);
    analysis
        .diagnostics
        .sort_by_key(|d| (d.primary.span.start, d.code));
    (file, analysis)
}
