//! TODO family metric.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
