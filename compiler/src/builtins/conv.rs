//! TODO family conv.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
