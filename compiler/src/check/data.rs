//! Checking `data` items: the source format, the declared fields and their transforms, and the
//! split and shuffle settings.

use netc_grammar::Diagnostic;
use netc_grammar::ast::*;

use super::{Checker, Def, Env};
use crate::builtins::{self, Kind};
use crate::dim::Dim;
use crate::suggest;
use crate::types::{Spec, TensorType, Value};

/// A checked data set: where samples come from and the type of each field of one sample.
#[derive(Clone, Debug)]
pub struct DataInfo {
    pub name: String,
    pub span: Span,
    pub source: Option<Spec>,
    pub test: Option<Spec>,
    pub fields: Vec<FieldInfo>,
    /// Fraction held out for validation, and the seed of the split.
    pub split: Option<(f64, i64)>,
    pub shuffle_seed: Option<i64>,
}

/// One field of a sample, as declared: `image: f32[3, 32, 32] |> scale(1 / 255)`.
#[derive(Clone, Debug)]
pub struct FieldInfo {
    pub name: String,
    pub span: Span,
    /// The per-sample type after transforms (no batch dimension).
    pub ty: TensorType,
    /// Whether this field receives the source's labels (declared with `class(C)`, or named
    /// `label`); other fields receive the features.
    pub is_label: bool,
}

const DATA_KEYS: [&str; 4] = ["source", "test", "split", "shuffle"];

impl Checker<'_> {
    pub(crate) fn data_info(&mut self, name: &str) -> Option<DataInfo> {
        if let Some(info) = self.analysis.data.get(name) {
            return Some(info.clone());
        }
        let Some(Def::Data(d)) = self.defs.get(name) else {
            return None;
        };
        let d: &DataItem = d;
        let mut env = Env::new(format!("data {name}"), None);
        let mut info = DataInfo {
            name: name.to_string(),
            span: d.name.span,
            source: None,
            test: None,
            fields: Vec::new(),
            split: None,
            shuffle_seed: None,
        };
        let mut seen: Vec<(String, Span)> = Vec::new();
        for entry in &d.entries {
            match entry {
                DataEntry::Field(f) => self.data_field_entry(f, &mut env, &mut info, &mut seen),
                DataEntry::Setting(s) => self.data_setting(s, &mut env, &mut info, &mut seen),
                DataEntry::Error(_) => {}
            }
        }
        let source_written = d
            .entries
            .iter()
            .any(|e| matches!(e, DataEntry::Setting(s) if s.key.name == "source"));
        if !source_written && !d.entries.iter().any(|e| matches!(e, DataEntry::Error(_))) {
            self.report(
                Diagnostic::error(
                    "N2012",
                    format!("data `{name}` has no `source`"),
                    d.name.span,
                    "where do samples come from?",
                )
                .with_help("add a line such as `source csv(\"data/train.csv\", label: 64)`"),
            );
        }
        if info.fields.is_empty() && !d.entries.iter().any(|e| matches!(e, DataEntry::Error(_))) {
            self.report(
                Diagnostic::error("N2012", format!("data `{name}` declares no fields"), d.name.span, "no fields")
                    .with_help("declare each field of a sample with its type, such as `image: f32[1, 28, 28]` and `label: class(10)`"),
            );
        }
        if let Some(source) = info.source.clone() {
            self.check_fields_against_source(&source, &info);
        }
        self.analysis.data.insert(name.to_string(), info.clone());
        Some(info)
    }

    /// A field or setting written twice: fields are definitions (N2003), settings N2011.
    fn duplicate(&mut self, key: &Ident, seen: &mut Vec<(String, Span)>, field: bool) -> bool {
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key.name) {
            let first = *first;
            let (code, what) = if field {
                ("N2003", "defined")
            } else {
                ("N2011", "given")
            };
            self.report(
                Diagnostic::error(
                    code,
                    format!("`{}` is {what} twice", key.name),
                    key.span,
                    format!("{what} again here"),
                )
                .with_label(first, format!("first {what} here")),
            );
            return true;
        }
        seen.push((key.name.clone(), key.span));
        false
    }

    fn data_field_entry(
        &mut self,
        f: &FieldEntry,
        env: &mut Env,
        info: &mut DataInfo,
        seen: &mut Vec<(String, Span)>,
    ) {
        if self.duplicate(&f.name, seen, true) {
            return;
        }
        let ty = match self.eval(&f.value, env) {
            Value::Type(t) => t,
            Value::Error => return,
            other => {
                self.report(
                    Diagnostic::error(
                        "N2008",
                        format!("field `{}` must be declared with a type, found {}", f.name.name, other.describe()),
                        f.value.span,
                        "not a type",
                    )
                    .with_help("write a per-sample type such as `f32[64]` or `class(10)`, then any transforms"),
                );
                return;
            }
        };
        let is_label =
            ty.classes.is_some() || matches!(f.name.name.as_str(), "label" | "labels" | "target");
        self.record_shape(
            f.name.span,
            &env.item.clone(),
            format!("field {}", f.name.name),
            &ty,
        );
        info.fields.push(FieldInfo {
            name: f.name.name.clone(),
            span: f.name.span,
            ty,
            is_label,
        });
    }

    fn data_setting(
        &mut self,
        s: &Setting,
        env: &mut Env,
        info: &mut DataInfo,
        seen: &mut Vec<(String, Span)>,
    ) {
        if !DATA_KEYS.contains(&s.key.name.as_str()) {
            let mut d = Diagnostic::error(
                "N2010",
                format!("unknown data setting `{}`", s.key.name),
                s.key.span,
                "not a data setting",
            );
            d = match suggest::closest(&s.key.name, DATA_KEYS) {
                Some(h) => d.with_help(format!("did you mean `{h}`? (a field is written `name: type`)")),
                None => d.with_help("data settings are `source`, `test`, `split` and `shuffle`; a field is written `name: type`"),
            };
            self.report(d);
            return;
        }
        if self.duplicate(&s.key, seen, false) {
            return;
        }
        if matches!(s.key.name.as_str(), "source" | "test") {
            self.expected_kind = Some(Kind::Source);
        }
        let args: Vec<super::call::ArgValue> = s
            .args
            .iter()
            .map(|a| super::call::ArgValue {
                name: a.name.clone(),
                value: self.eval_arg(&a.value, env),
                span: a.value.span,
            })
            .collect();
        self.expected_kind = None;
        match s.key.name.as_str() {
            "source" | "test" => {
                let spec = match args.as_slice() {
                    [a] if a.name.is_none() => match &a.value {
                        Value::Spec(spec)
                            if builtins::lookup(spec.name)
                                .is_some_and(|b| b.kind == Kind::Source) =>
                        {
                            Some(spec.clone())
                        }
                        Value::Error => None,
                        other => {
                            self.report(
                                Diagnostic::error(
                                    "N2008",
                                    format!(
                                        "`{}` must be a data format, found {}",
                                        s.key.name,
                                        other.describe()
                                    ),
                                    a.span,
                                    "not a data format",
                                )
                                .with_help(source_help()),
                            );
                            None
                        }
                    },
                    _ => {
                        self.report(
                            Diagnostic::error(
                                "N2008",
                                format!("`{}` takes one data format", s.key.name),
                                s.span,
                                "expected one value",
                            )
                            .with_help(source_help()),
                        );
                        None
                    }
                };
                if s.key.name == "source" {
                    info.source = spec;
                } else {
                    info.test = spec;
                }
            }
            "split" => {
                let b = split_signature();
                if let Some(bound) = self.bind_args(b, &args, s.span) {
                    info.split = Some((bound.float("val"), bound.int("seed")));
                }
            }
            _ => {
                let b = shuffle_signature();
                if let Some(bound) = self.bind_args(b, &args, s.span) {
                    info.shuffle_seed = Some(bound.int("seed"));
                }
            }
        }
    }

    /// Sources that fix a sample's shape (CIFAR-10 images are `[3, 32, 32]`) are checked against
    /// the declared fields now; file-dependent shapes (CSV width, IDX dims) when data is loaded.
    fn check_fields_against_source(&mut self, source: &Spec, info: &DataInfo) {
        let features: Vec<&FieldInfo> = info.fields.iter().filter(|f| !f.is_label).collect();
        let labels: Vec<&FieldInfo> = info.fields.iter().filter(|f| f.is_label).collect();
        let source_span = source.span;
        let too_many = |what: &str, fields: &[&FieldInfo]| -> Option<Diagnostic> {
            (fields.len() > 1).then(|| {
                Diagnostic::error(
                    "N4005",
                    format!(
                        "`{}` provides one {what} field, but {} are declared",
                        source.name,
                        fields.len()
                    ),
                    fields[1].span,
                    format!("a second {what} field"),
                )
                .with_label(fields[0].span, format!("the {what} field"))
                .with_label(source_span, "the source")
                .with_help(if what == "feature" {
                    "a label field is one named `label` or `target`, or declared `class(C)`"
                } else {
                    "declare one label field"
                })
            })
        };
        if let Some(d) = too_many("feature", &features) {
            self.report(d);
        }
        if let Some(d) = too_many("label", &labels) {
            self.report(d);
        }
        let expected: Option<Vec<Dim>> = match source.name {
            "cifar10" => Some(vec![Dim::known(3), Dim::known(32), Dim::known(32)]),
            "sentences" | "text" => Some(vec![source.args.dim("length")]),
            _ => None,
        };
        if let (Some(want), Some(field)) = (expected, features.first())
            && field.ty.dims != want
        {
            let want = TensorType::new(field.ty.dtype, want);
            self.report(
                Diagnostic::error(
                    "N4005",
                    format!(
                        "`{}` yields samples of shape {}, but field `{}` is {}",
                        source.name,
                        want.shape_text(),
                        field.name,
                        field.ty.shape_text()
                    ),
                    field.span,
                    format!("declared {}", field.ty),
                )
                .with_label(source_span, format!("this yields {}", want.shape_text())),
            );
        }
        if source.name == "cifar10"
            && let Some(label) = labels.first()
            && label.ty.classes.is_some_and(|c| c != 10)
        {
            self.report(Diagnostic::error(
                "N4005",
                "CIFAR-10 has 10 classes".to_string(),
                label.span,
                format!("declared {}", label.ty),
            ));
        }
    }

    /// `data.field` or a field name in a `train` run: the field batched, `[B, ...]`.
    pub(crate) fn data_field(&mut self, data: &str, field: &Ident) -> Value {
        let Some(info) = self.data_info(data) else {
            return Value::Error;
        };
        match info.fields.iter().find(|f| f.name == field.name) {
            Some(f) => Value::Tensor(self.data_tensor(&f.name, batched(&f.ty), field.span)),
            None => {
                let hint =
                    suggest::closest(&field.name, info.fields.iter().map(|f| f.name.as_str()));
                let mut d = Diagnostic::error(
                    "N2013",
                    format!("data `{data}` has no field `{}`", field.name),
                    field.span,
                    "unknown field",
                )
                .with_label(info.span, format!("`{data}` is declared here"));
                if let Some(h) = hint {
                    d = d.with_help(format!("did you mean `{h}`?"));
                }
                self.report(d);
                Value::Error
            }
        }
    }
}

/// A per-sample type with the batch dimension `B` in front.
pub(crate) fn batched(ty: &TensorType) -> TensorType {
    let mut dims = vec![Dim::symbol("B")];
    dims.extend(ty.dims.iter().cloned());
    TensorType {
        dtype: ty.dtype,
        dims,
        classes: ty.classes,
    }
}

fn source_help() -> String {
    let names: Vec<String> = builtins::all()
        .iter()
        .filter(|b| b.kind == Kind::Source)
        .map(|b| format!("`{}`", b.name))
        .collect();
    format!("data formats: {}", names.join(", "))
}

fn split_signature() -> &'static builtins::Builtin {
    builtins::setting("split").expect("split is a data setting")
}

fn shuffle_signature() -> &'static builtins::Builtin {
    builtins::setting("shuffle").expect("shuffle is a data setting")
}
