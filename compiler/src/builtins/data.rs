//! TODO family data.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
