//! TODO family activation.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
