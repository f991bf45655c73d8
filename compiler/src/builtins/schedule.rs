//! TODO family schedule.

use super::Builtin;

pub const BUILTINS: &[Builtin] = &[];
