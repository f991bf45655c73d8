//! TODO family recurrent.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
