//! TODO family loss.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
