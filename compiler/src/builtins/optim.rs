//! TODO family optim.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
