//! The `.net` language's syntax: grammar, syntax tree, parser with error recovery, formatter.
//!
//! Architecture invariant: this crate knows nothing about tensors, shapes or layers; it turns
//! text into a tree with spans (and back into canonical text), and reports only syntax errors.

// Diagnostics are deliberately rich (labels, help, notes) and returned by value on error
// paths that are not hot; boxing them everywhere would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod ast;
pub mod diagnostic;
pub mod format;
pub mod line_index;
pub mod parser;
pub mod split;
mod syntax_error;

pub use ast::*;
pub use diagnostic::{Diagnostic, Label, Severity};
pub use format::format;
pub use parser::parse;
