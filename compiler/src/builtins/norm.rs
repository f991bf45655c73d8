//! TODO family norm.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
