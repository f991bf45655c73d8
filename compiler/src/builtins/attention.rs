//! TODO family attention.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
