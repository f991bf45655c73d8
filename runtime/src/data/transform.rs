//! Per-field transforms (`scale`, `shift`, `normalize`, `one_hot`), read back from the syntax
//! tree.
//!
//! The checker keeps only a field's final type in [`netc_compiler::check::DataInfo`]; the
//! loader also needs the pipeline itself. Rather than widen the compiler's data model, this
//! module re-walks the `data` item's field expressions (`f32[64] |> scale(1 / 16)`) and evaluates
//! the numeric arguments. Only what a data declaration needs is supported: number literals,
//! arithmetic on them, and `const` names; anything else is a [`DataError`], never a guess.

use netc_grammar::ast::{Arg, BinOp, Call, DataEntry, Expr, ExprKind, File, Item};

use super::DataError;

/// One per-sample transform, with its arguments evaluated.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// `scale(factor)`: `x * factor`, as float32.
    Scale(f64),
    /// `shift(offset)`: `x + offset`, as float32.
    Shift(f64),
    /// `normalize(mean:, std:)`: `(x - mean) / std`, as float32.
    Normalize { mean: f64, std: f64 },
    /// `one_hot(count)`: an integer class becomes a float32 vector of `count` with a 1 at the
    /// class index.
    OneHot(usize),
}

impl Transform {
    /// Apply an arithmetic transform to one value (in f64, rounded to f32 once by the caller,
    /// so a pipeline does not accumulate float32 rounding). `one_hot` is not elementwise and
    /// leaves the value unchanged here.
    pub fn apply(&self, x: f64) -> f64 {
        match *self {
            Transform::Scale(f) => x * f,
            Transform::Shift(o) => x + o,
            Transform::Normalize { mean, std } => (x - mean) / std,
            Transform::OneHot(_) => x,
        }
    }
}

/// The transforms of every field of the data item `data`, in declaration order, as
/// `(field name, transforms in pipeline order)`.
pub fn field_transforms(
    file: &File,
    data: &str,
) -> Result<Vec<(String, Vec<Transform>)>, DataError> {
    let item = file
        .items
        .iter()
        .find_map(|i| match i {
            Item::Data(d) if d.name.name == data => Some(d),
            _ => None,
        })
        .ok_or_else(|| DataError::new(format!("the file has no `data {data}` item")))?;
    let consts = Consts { file };
    let mut out = Vec::new();
    for entry in &item.entries {
        if let DataEntry::Field(f) = entry {
            let ctx = Ctx {
                data,
                field: &f.name.name,
                consts: &consts,
            };
            let mut transforms = Vec::new();
            ctx.collect(&f.value, &mut transforms)?;
            out.push((f.name.name.clone(), transforms));
        }
    }
    Ok(out)
}

const TRANSFORMS: [&str; 4] = ["scale", "shift", "normalize", "one_hot"];

/// `const` items of the file, evaluated on demand.
struct Consts<'a> {
    file: &'a File,
}

struct Ctx<'a> {
    data: &'a str,
    field: &'a str,
    consts: &'a Consts<'a>,
}

impl Ctx<'_> {
    fn error(&self, what: impl std::fmt::Display) -> DataError {
        DataError::new(format!(
            "data `{}`, field `{}`: {what}",
            self.data, self.field
        ))
    }

    /// Walk a field expression: the declared type at the head, then transform stages.
    fn collect(&self, e: &Expr, out: &mut Vec<Transform>) -> Result<(), DataError> {
        match &e.kind {
            ExprKind::Paren(inner) => self.collect(inner, out),
            ExprKind::Pipe(head, stages) => {
                self.collect(head, out)?;
                for stage in stages {
                    let call = stage_call(stage).ok_or_else(|| {
                        self.error("a transform stage must be a call such as `scale(1 / 255)`")
                    })?;
                    out.push(self.transform(call, &call.args)?);
                }
                Ok(())
            }
            // Call form: `scale(f32[64], 1 / 16)`; the first positional argument is the input.
            ExprKind::Call(c) if TRANSFORMS.contains(&c.callee.name.as_str()) => {
                let Some(first) = c.args.iter().position(|a| a.name.is_none()) else {
                    return Err(self.error(format!(
                        "`{}` needs the field as its first argument",
                        c.callee.name
                    )));
                };
                self.collect(&c.args[first].value, out)?;
                let rest: Vec<Arg> = c
                    .args
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != first)
                    .map(|(_, a)| a.clone())
                    .collect();
                out.push(self.transform(c, &rest)?);
                Ok(())
            }
            // The declared type itself: `f32[64]`, `class(10)`, or a const naming one.
            _ => Ok(()),
        }
    }

    fn transform(&self, call: &Call, args: &[Arg]) -> Result<Transform, DataError> {
        let name = call.callee.name.as_str();
        let params: &[&str] = match name {
            "scale" => &["factor"],
            "shift" => &["offset"],
            "normalize" => &["mean", "std"],
            "one_hot" => &["count"],
            other => {
                return Err(self.error(format!(
                    "`{other}` is not a data transform (transforms are `scale`, `shift`, `normalize` and `one_hot`)"
                )));
            }
        };
        let mut values: Vec<Option<f64>> = vec![None; params.len()];
        let mut next = 0;
        for a in args {
            let slot = match &a.name {
                Some(n) => params
                    .iter()
                    .position(|p| *p == n.name)
                    .ok_or_else(|| self.error(format!("`{name}` has no argument `{}`", n.name)))?,
                None => {
                    while next < params.len() && values[next].is_some() {
                        next += 1;
                    }
                    if next == params.len() {
                        return Err(
                            self.error(format!("`{name}` takes {} arguments", params.len()))
                        );
                    }
                    next
                }
            };
            values[slot] = Some(self.number(&a.value, name, 0)?);
        }
        let get = |i: usize| {
            values[i].ok_or_else(|| self.error(format!("`{name}` needs `{}`", params[i])))
        };
        Ok(match name {
            "scale" => Transform::Scale(get(0)?),
            "shift" => Transform::Shift(get(0)?),
            "normalize" => {
                let std = get(1)?;
                if std <= 0.0 || !std.is_finite() {
                    return Err(
                        self.error(format!("`normalize` needs a positive `std`, found {std}"))
                    );
                }
                Transform::Normalize { mean: get(0)?, std }
            }
            _ => {
                let n = get(0)?;
                if n < 1.0 || n.fract() != 0.0 || n > u32::MAX as f64 {
                    return Err(
                        self.error(format!("`one_hot` needs a positive whole count, found {n}"))
                    );
                }
                Transform::OneHot(n as usize)
            }
        })
    }

    /// Evaluate a numeric argument: literals, `+ - * / %`, negation, parentheses and consts.
    fn number(&self, e: &Expr, callee: &str, depth: usize) -> Result<f64, DataError> {
        if depth > 64 {
            return Err(self.error("a `const` refers to itself"));
        }
        let v = match &e.kind {
            ExprKind::Int(i) => *i as f64,
            ExprKind::Float(f) => *f,
            ExprKind::Paren(inner) => self.number(inner, callee, depth + 1)?,
            ExprKind::Neg(inner) => -self.number(inner, callee, depth + 1)?,
            ExprKind::Binary(op, a, b) => {
                let (x, y) = (
                    self.number(a, callee, depth + 1)?,
                    self.number(b, callee, depth + 1)?,
                );
                match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div | BinOp::Rem if y == 0.0 => {
                        return Err(self.error(format!("division by zero in `{callee}`")));
                    }
                    BinOp::Div => x / y,
                    BinOp::Rem => x % y,
                }
            }
            ExprKind::Name(id) => {
                let value = self.consts.file.items.iter().find_map(|i| match i {
                    Item::Const(c) if c.name.name == id.name => Some(&c.value),
                    _ => None,
                });
                match value {
                    Some(v) => self.number(v, callee, depth + 1)?,
                    None => {
                        return Err(self.error(format!(
                            "`{}` in `{callee}(...)` is not a `const`; a transform's arguments must be numbers, arithmetic on numbers, or consts",
                            id.name
                        )));
                    }
                }
            }
            _ => {
                return Err(self.error(format!(
                    "the arguments of `{callee}` must be numbers, arithmetic on numbers, or consts"
                )));
            }
        };
        Ok(v)
    }
}

/// A pipeline stage as a call: `scale(1 / 255)`, possibly parenthesised.
fn stage_call(e: &Expr) -> Option<&Call> {
    match &e.kind {
        ExprKind::Call(c) => Some(c),
        ExprKind::Paren(inner) => stage_call(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transforms(src: &str) -> Result<Vec<(String, Vec<Transform>)>, DataError> {
        let (file, errors) = netc_grammar::parse(src);
        assert!(errors.is_empty(), "{errors:?}");
        field_transforms(&file, "d")
    }

    #[test]
    fn pipelines_are_read_in_order() {
        let src = "const k = 2\ndata d {\n  source csv(\"x.csv\")\n  x: f32[3, 32, 32] |> scale(1 / 255) |> normalize(mean: 0.5, std: 0.5) |> shift(-k * 0.5)\n  label: class(10) |> one_hot(10)\n}\n";
        let t = transforms(src).unwrap();
        assert_eq!(t[0].0, "x");
        assert_eq!(
            t[0].1,
            vec![
                Transform::Scale(1.0 / 255.0),
                Transform::Normalize {
                    mean: 0.5,
                    std: 0.5
                },
                Transform::Shift(-1.0)
            ]
        );
        assert_eq!(t[1], ("label".to_string(), vec![Transform::OneHot(10)]));
    }

    #[test]
    fn call_form_and_positional_arguments() {
        let src = "data d {\n  source csv(\"x.csv\")\n  x: normalize(scale(f32[4], 2), 1, 4)\n}\n";
        let t = transforms(src).unwrap();
        assert_eq!(
            t[0].1,
            vec![
                Transform::Scale(2.0),
                Transform::Normalize {
                    mean: 1.0,
                    std: 4.0
                }
            ]
        );
    }

    #[test]
    fn unsupported_arguments_are_errors() {
        let src = "data d {\n  source csv(\"x.csv\")\n  x: f32[4] |> scale(unknown)\n}\n";
        assert_eq!(
            transforms(src).unwrap_err().to_string(),
            "data `d`, field `x`: `unknown` in `scale(...)` is not a `const`; a transform's arguments must be numbers, arithmetic on numbers, or consts"
        );
        let src = "data d {\n  source csv(\"x.csv\")\n  x: f32[4] |> scale(1 / 0)\n}\n";
        assert_eq!(
            transforms(src).unwrap_err().to_string(),
            "data `d`, field `x`: division by zero in `scale`"
        );
    }
}
