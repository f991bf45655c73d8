//! TODO family tensor_ops.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
