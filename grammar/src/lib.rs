//! The `.net` language's syntax: grammar, syntax tree, parser with error recovery, formatter.
//!
//! Architecture invariant: this crate knows nothing about tensors, shapes or layers; it turns
//! text into a tree with spans (and back into canonical text), and reports only syntax errors.

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
