//! Data loaders: the files a `data` item names, read into memory as dense per-field arrays, with
//! the declared transforms, the seeded train/validation split, and batching.
//!
//! The flow for one `data` item ([`load`]) is:
//! 1. read the source file(s) in the declared format (`csv`, `idx`, `cifar10`, `sentences`,
//!    `text`, `npy`; one private module each, documented with the format's layout) into raw
//!    columns: one of features, one of labels;
//! 2. check the columns against the declared fields, in file order: the file's sample shape
//!    against the declaration, every class label against its class count;
//! 3. split off the validation set with a seeded permutation (`split val: F, seed: S`);
//! 4. apply each field's transforms (`scale`, `shift`, `normalize`, `one_hot`) and, for
//!    `sentences`, map words to ids with the vocabulary of the training split;
//! 5. load the `test` source, if any, the same way.
//!
//! **Fields.** A `data` item's label field (declared `class(C)` or named `label`/`target`)
//! receives the source's labels; its one other field the features. A `class(C)` field is `I64`
//! with every value checked to lie in `0..C`; a float label field (`label: f32[1]`) holds the
//! label as a float (0.0/1.0 for the binary sentiment files); an integer feature field
//! (`tokens: i32[T]`) is `I64`; every float field is `F32`.
//!
//! **Memory.** Files are read whole into memory: the full MNIST training images are 47 MB
//! decompressed, 188 MB as float32 after `scale`, and every data set in `../shared/data` fits
//! comfortably. A dense array is what a training step copies batches from, and raw rows are
//! selected before transforms so a split copies bytes, not floats.
//!
//! **Errors.** A missing, malformed, truncated or mismatched file is a [`DataError`] naming the
//! file as resolved, the line or byte offset, and what was expected; never a panic.

mod batch;
mod cifar;
mod csv;
mod files;
mod idx;
mod image_files;
mod npy;
pub mod rng;
mod sentences;
mod text;
mod transform;

use std::fmt;
use std::path::{Path, PathBuf};

use netc_compiler::check::{DataInfo, FieldInfo};
use netc_compiler::types::Spec;
use netc_grammar::ast::File;

pub use batch::{Batch, Batches, PaddedBatches, epoch_order};
pub(crate) use files::{read_file, read_text};
pub use transform::{Transform, field_transforms};

/// One data set loaded in memory, each field as a dense array over samples, so a batch is a
/// handful of row copies.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The declared fields, in declaration order.
    pub fields: Vec<Field>,
    /// Number of samples.
    pub len: usize,
}

/// One field of every sample: `len × product(dims)` values, sample after sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The name declared in the `data` item (`image`, `label`).
    pub name: String,
    /// The shape of one sample (no batch axis), after transforms: `[3, 32, 32]`; `[]` for a
    /// class label.
    pub dims: Vec<usize>,
    /// `len × row_len()` values, sample after sample, each row-major.
    pub values: FieldValues,
}

/// A field's values. Floating fields (images, one-hot vectors, `f32` labels) are `F32`; class
/// labels and token ids are `I64`, the index type losses and embeddings take.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValues {
    /// Float32 values: images, features, one-hot vectors, float labels.
    F32(Vec<f32>),
    /// Int64 values: class labels and token or character ids.
    I64(Vec<i64>),
}

impl FieldValues {
    /// Number of values (samples × values per sample).
    pub fn len(&self) -> usize {
        match self {
            FieldValues::F32(v) => v.len(),
            FieldValues::I64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The float values, or `None` for an integer field.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            FieldValues::F32(v) => Some(v),
            FieldValues::I64(_) => None,
        }
    }

    /// The integer values, or `None` for a float field.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            FieldValues::I64(v) => Some(v),
            FieldValues::F32(_) => None,
        }
    }
}

impl Field {
    /// Values per sample: the product of `dims` (1 for a scalar label).
    pub fn row_len(&self) -> usize {
        self.dims.iter().product()
    }

    /// The rows `indices`, in that order, as a new field.
    fn gather(&self, indices: &[usize]) -> Field {
        let r = self.row_len();
        fn rows<T: Copy>(v: &[T], r: usize, indices: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(indices.len() * r);
            for &i in indices {
                out.extend_from_slice(&v[i * r..(i + 1) * r]);
            }
            out
        }
        let values = match &self.values {
            FieldValues::F32(v) => FieldValues::F32(rows(v, r, indices)),
            FieldValues::I64(v) => FieldValues::I64(rows(v, r, indices)),
        };
        Field {
            name: self.name.clone(),
            dims: self.dims.clone(),
            values,
        }
    }
}

impl Dataset {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The samples `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            fields: self.fields.iter().map(|f| f.gather(indices)).collect(),
            len: indices.len(),
        }
    }
}

/// What [`load`] returns: the training set, the validation set held out by `split`, and the
/// separate `test` set.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    /// The samples to train on: the whole source, less the validation samples of `split`.
    pub train: Dataset,
    /// Present when the item has `split val: F, seed: S`.
    pub val: Option<Dataset>,
    /// Present when the item has a `test` source.
    pub test: Option<Dataset>,
    /// For `sentences` and `text`: the token of each id (`vocab[id]`), so a trained model's
    /// output can be turned back into words or characters. `sentences` reserves id 0 for
    /// padding (`<pad>`) and 1 for unknown words (`<unk>`).
    pub vocab: Option<Vec<String>>,
}

/// A data file that cannot be used as declared. The message is shown to users as is: it names
/// the file (as resolved), the line or byte offset, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataError {
    /// The whole message, path and position included, ready to print.
    pub message: String,
    /// The file at fault, when there is one.
    pub path: Option<PathBuf>,
}

impl DataError {
    /// An error not tied to one file (a declaration the loader cannot honour).
    pub fn new(message: impl Into<String>) -> Self {
        DataError {
            message: message.into(),
            path: None,
        }
    }

    /// An error in `path`: the message is prefixed with the path.
    pub fn at(path: &Path, message: impl fmt::Display) -> Self {
        DataError {
            message: format!("{}: {message}", path.display()),
            path: Some(path.to_path_buf()),
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DataError {}

/// Load the data set `info` (checked by the compiler) from the files it names. `file` is the
/// parsed `.net` file, read again for the fields' transform pipelines (the checker keeps only
/// their result types); `base_dir` is the `.net` file's directory, which paths are relative to.
///
/// Samples keep the file order, except that `split` draws the validation samples with a
/// permutation seeded by its `seed`: the training set is the first `N - round(F·N)` samples of
/// that permutation and the validation set the rest, both in permuted order.
pub fn load(file: &File, info: &DataInfo, base_dir: &Path) -> Result<Splits, DataError> {
    let transforms = field_transforms(file, &info.name)?;
    let decls = info
        .fields
        .iter()
        .map(|f| {
            let t = transforms
                .iter()
                .find(|(n, _)| *n == f.name)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            FieldDecl::new(&info.name, f, t)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let source = info
        .source
        .as_ref()
        .ok_or_else(|| DataError::new(format!("data `{}` has no `source`", info.name)))?;
    let roles = Roles::assign(&info.name, source.name, &decls)?;
    if source.name == "text" {
        return text::load(info, &decls, &roles, base_dir);
    }

    let loaded = read_source(source, base_dir)?;
    let staged = Staged::new(loaded, &decls, &roles, source)?;
    let (train, val) = match info.split {
        Some((fraction, seed)) => {
            let n = staged.len;
            let n_val = (fraction * n as f64).round() as usize;
            if n_val == 0 || n_val >= n {
                return Err(DataError::new(format!(
                    "data `{}`: `split val: {fraction}` of {n} samples leaves {} for validation and {} for training; both need at least one",
                    info.name,
                    n_val.min(n),
                    n - n_val.min(n)
                )));
            }
            let order = rng::permutation(n, rng::key(&[rng::SPLIT_TAG, seed as u64]));
            let (train_idx, val_idx) = order.split_at(n - n_val);
            (staged.select(train_idx), Some(staged.select(val_idx)))
        }
        None => (staged, None),
    };

    let vocab = match train.words() {
        Some(words) => {
            let size = source.args.dim("vocab").as_known().unwrap_or(0);
            Some(sentences::Vocab::build(words, size, &info.name)?)
        }
        None => None,
    };
    let test = match &info.test {
        Some(spec) => {
            let loaded = read_source(spec, base_dir)?;
            Some(Staged::new(loaded, &decls, &roles, spec)?.finish(vocab.as_ref())?)
        }
        None => None,
    };
    Ok(Splits {
        train: train.finish(vocab.as_ref())?,
        val: val.map(|v| v.finish(vocab.as_ref())).transpose()?,
        test,
        vocab: vocab.map(|v| v.tokens),
    })
}

/// Read one `source`/`test` spec (any format but `text`, whose split is by position).
fn read_source(spec: &Spec, base_dir: &Path) -> Result<Loaded, DataError> {
    let args = &spec.args;
    let path = |name: &str| -> PathBuf {
        base_dir.join(args.paths(name).into_iter().next().unwrap_or_default())
    };
    match spec.name {
        "csv" => csv::load(&path("path"), args.int("label"), args.bool("header")),
        "idx" => idx::load(&path("images"), &path("labels")),
        "cifar10" => {
            let paths: Vec<PathBuf> = args
                .paths("path")
                .iter()
                .map(|p| base_dir.join(p))
                .collect();
            cifar::load(&paths)
        }
        "sentences" => {
            let paths: Vec<PathBuf> = args
                .paths("path")
                .iter()
                .map(|p| base_dir.join(p))
                .collect();
            let length = args.dim("length").as_known().unwrap_or(0).max(0) as usize;
            sentences::load(&paths, length)
        }
        "npy" => {
            let labels = args.has("labels").then(|| path("labels"));
            npy::load(&path("features"), labels.as_deref())
        }
        "image_files" => {
            let paths: Vec<PathBuf> = args
                .paths("path")
                .iter()
                .map(|p| base_dir.join(p))
                .collect();
            image_files::load(&paths)
        }
        other => Err(DataError::new(format!("`{other}` is not a data format"))),
    }
}

/// Values of one column as read from a file, in the file's own element type (MNIST stays one
/// byte per pixel until its transforms run).
#[derive(Clone, Debug)]
pub(crate) enum Raw {
    U8(Vec<u8>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Raw {
    fn len(&self) -> usize {
        match self {
            Raw::U8(v) => v.len(),
            Raw::I64(v) => v.len(),
            Raw::F32(v) => v.len(),
            Raw::F64(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> f64 {
        match self {
            Raw::U8(v) => f64::from(v[i]),
            Raw::I64(v) => v[i] as f64,
            Raw::F32(v) => f64::from(v[i]),
            Raw::F64(v) => v[i],
        }
    }

    /// Rows `indices` (of `per` values each), in that order.
    fn select(&self, per: usize, indices: &[usize]) -> Raw {
        fn rows<T: Copy>(v: &[T], per: usize, indices: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(indices.len() * per);
            for &i in indices {
                out.extend_from_slice(&v[i * per..(i + 1) * per]);
            }
            out
        }
        match self {
            Raw::U8(v) => Raw::U8(rows(v, per, indices)),
            Raw::I64(v) => Raw::I64(rows(v, per, indices)),
            Raw::F32(v) => Raw::F32(rows(v, per, indices)),
            Raw::F64(v) => Raw::F64(rows(v, per, indices)),
        }
    }

    /// The value as an integer, when it is one.
    fn get_int(&self, i: usize) -> Option<i64> {
        match self {
            Raw::U8(v) => Some(i64::from(v[i])),
            Raw::I64(v) => Some(v[i]),
            _ => {
                let x = self.get(i);
                (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64)
            }
        }
    }
}

/// How a file's per-sample shape may differ from a declared one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Reshape {
    /// The same dims (CIFAR-10 images, text windows, sentence tokens).
    Exact,
    /// The same dims, a leading channel of 1 (`[1, 28, 28]` for 28x28 IDX images), or one
    /// flat axis with the same number of values (`[784]`, for an MLP).
    Image,
    /// Any dims holding the same number of values (a CSV row is flat; `[8, 8]` and `[64]`
    /// both read 64 columns).
    Count,
    /// One value per sample: the declaration holds exactly one value (`class(C)`, `f32[1]`).
    Scalar,
}

/// Where a sample came from, for messages about one sample.
#[derive(Clone, Debug)]
pub(crate) enum Locator {
    /// Sample `i` is line `at[i].1` of `files[at[i].0]`.
    Lines {
        files: Vec<PathBuf>,
        at: Vec<(u32, u32)>,
    },
    /// Fixed-size records: in each part `(path, first sample)`, sample `i` starts at byte
    /// `offset + (i - first) * stride`. `note` qualifies offsets ("of the decompressed data").
    Records {
        parts: Vec<(PathBuf, usize)>,
        offset: usize,
        stride: usize,
        note: &'static str,
    },
    /// Sample `i` is sample `indices[i]` of `inner` (after a split).
    Selected {
        inner: Box<Locator>,
        indices: Vec<usize>,
    },
    /// One file per sample (image files given to `netc predict`).
    Files(Vec<PathBuf>),
    /// `text` windows: sample `i` covers characters `start + i * length ..` of the corpus.
    Windows {
        path: PathBuf,
        start: usize,
        length: usize,
    },
}

impl Locator {
    /// Where sample `i` is, as `path: line 12` or `path: byte 1008 (sample 1000)`.
    fn describe(&self, i: usize) -> (PathBuf, String) {
        match self {
            Locator::Lines { files, at } => {
                let (f, line) = at[i];
                (files[f as usize].clone(), format!("line {line}"))
            }
            Locator::Records {
                parts,
                offset,
                stride,
                note,
            } => {
                let (path, first) = parts
                    .iter()
                    .rev()
                    .find(|(_, first)| *first <= i)
                    .cloned()
                    .unwrap_or_else(|| (PathBuf::new(), 0));
                let k = i - first;
                (
                    path,
                    format!("byte {}{note} (sample {k})", offset + k * stride),
                )
            }
            Locator::Selected { inner, indices } => inner.describe(indices[i]),
            Locator::Files(files) => (files[i].clone(), format!("sample {i}")),
            Locator::Windows {
                path,
                start,
                length,
            } => (
                path.clone(),
                format!("character {} (sample {i})", start + i * length),
            ),
        }
    }

    fn error(&self, i: usize, message: impl fmt::Display) -> DataError {
        let (path, at) = self.describe(i);
        DataError::at(&path, format!("{at}: {message}"))
    }
}

/// One column of a file (features or labels) with what is needed to check it against a field.
#[derive(Clone, Debug)]
pub(crate) struct Column {
    pub values: Raw,
    /// Shape of one sample in the file.
    pub dims: Vec<usize>,
    /// The file, for shape messages.
    pub path: PathBuf,
    /// The file's sample shape in words, for messages: "the images are 28x28".
    pub what: String,
    pub reshape: Reshape,
    pub locate: Locator,
}

/// A source's samples as read: features (dense, or words awaiting a vocabulary) and labels.
pub(crate) struct Loaded {
    pub len: usize,
    pub features: Features,
    pub labels: Option<Column>,
}

pub(crate) enum Features {
    Dense(Column),
    /// Tokenised sentences, and the declared `length`; ids are assigned once the training
    /// split's vocabulary is known.
    Words(Vec<Vec<String>>, usize),
}

/// A field as declared, with its transform pipeline and the dims it reads from the file.
#[derive(Clone, Debug)]
pub(crate) struct FieldDecl {
    pub name: String,
    /// The declared type, for messages: `f32[3, 32, 32]`, `class(10)`.
    pub ty_text: String,
    /// Per-sample dims after transforms.
    pub dims: Vec<usize>,
    /// Per-sample dims read from the file (before a `one_hot` adds its axis).
    pub base_dims: Vec<usize>,
    /// Whether the field ends up float32 (else int64).
    pub float: bool,
    /// Valid labels are `0..classes`: from `class(C)`, or from `one_hot(C)`.
    pub classes: Option<usize>,
    pub one_hot: Option<usize>,
    /// `scale`, `shift`, `normalize`, in order, after any `one_hot`.
    pub affine: Vec<Transform>,
    pub is_label: bool,
}

impl FieldDecl {
    fn new(data: &str, f: &FieldInfo, transforms: Vec<Transform>) -> Result<Self, DataError> {
        let dims = f
            .ty
            .dims
            .iter()
            .map(|d| d.as_known().filter(|&n| n >= 0).map(|n| n as usize))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                DataError::new(format!(
                    "data `{data}`, field `{}`: the shape {} is not a list of numbers; a data field's shape must be known when loading",
                    f.name,
                    f.ty.shape_text()
                ))
            })?;
        let mut one_hot = None;
        let mut affine = Vec::new();
        for (i, t) in transforms.into_iter().enumerate() {
            match t {
                Transform::OneHot(n) if i == 0 => one_hot = Some(n),
                Transform::OneHot(_) => {
                    return Err(DataError::new(format!(
                        "data `{data}`, field `{}`: `one_hot` must come first, on the integer labels",
                        f.name
                    )));
                }
                other => affine.push(other),
            }
        }
        let mut base_dims = dims.clone();
        if one_hot.is_some() {
            base_dims.pop();
        }
        Ok(FieldDecl {
            name: f.name.clone(),
            ty_text: match f.ty.classes {
                Some(c) if f.ty.dims.is_empty() => format!("class({c})"),
                _ => f.ty.to_string(),
            },
            dims,
            base_dims,
            float: f.ty.dtype.is_float(),
            classes: one_hot.or(f.ty.classes.map(|c| c.max(0) as usize)),
            one_hot,
            affine,
            is_label: f.is_label,
        })
    }

    fn base_text(&self) -> String {
        let dims: Vec<String> = self.base_dims.iter().map(usize::to_string).collect();
        format!("[{}]", dims.join(", "))
    }

    /// Check a file column's per-sample shape against the declaration.
    fn check_shape(&self, col: &Column) -> Result<(), DataError> {
        let want: usize = self.base_dims.iter().product();
        let have: usize = col.dims.iter().product();
        let ok = match col.reshape {
            Reshape::Exact => col.dims == self.base_dims,
            Reshape::Count => want == have,
            Reshape::Scalar => want == 1,
            Reshape::Image => {
                col.dims == self.base_dims
                    || (self.base_dims.len() == col.dims.len() + 1
                        && self.base_dims[0] == 1
                        && self.base_dims[1..] == col.dims[..])
                    || (self.base_dims.len() == 1 && want == have)
            }
        };
        if ok {
            return Ok(());
        }
        let declared = if self.one_hot.is_some() {
            format!("{} before `one_hot`", self.base_text())
        } else {
            self.base_text()
        };
        let hint = match col.reshape {
            Reshape::Exact => String::new(),
            Reshape::Count => format!(", which holds {want} values"),
            Reshape::Scalar => " (a label field holds one value per sample)".to_string(),
            Reshape::Image => {
                let file: Vec<String> = col.dims.iter().map(usize::to_string).collect();
                format!(
                    " (expected [{}], [1, {}] or [{have}])",
                    file.join(", "),
                    file.join(", ")
                )
            }
        };
        Err(DataError::at(
            &col.path,
            format!(
                "{}, but field `{}` is declared {declared}{hint}",
                col.what, self.name
            ),
        ))
    }

    /// Element `e` of a column as a class index: a whole number, inside `0..classes` when the
    /// field has classes. The error names the sample's line or byte offset.
    fn class_of(&self, col: &Column, e: usize) -> Result<i64, DataError> {
        let per = self.base_dims.iter().product::<usize>().max(1);
        let raw = &col.values;
        let what = if self.is_label { "label" } else { "value" };
        let v = raw.get_int(e).ok_or_else(|| {
            col.locate.error(
                e / per,
                format!(
                    "{what} {} is not a whole number, but field `{}` is declared {}",
                    raw.get(e),
                    self.name,
                    self.ty_text
                ),
            )
        })?;
        if let Some(c) = self.classes
            && !(0..c as i64).contains(&v)
        {
            return Err(col.locate.error(
                e / per,
                format!(
                    "{what} {v} is out of range for field `{}`, declared {} (expected 0 to {})",
                    self.name,
                    self.ty_text,
                    c as i64 - 1
                ),
            ));
        }
        Ok(v)
    }

    /// Check a whole file column against the declaration (shape, whole numbers, class range),
    /// in file order, so the first offending sample is the one reported.
    fn validate(&self, col: &Column) -> Result<(), DataError> {
        self.check_shape(col)?;
        let unchecked = matches!(col.values, Raw::U8(_) | Raw::I64(_)) && self.classes.is_none();
        if (self.one_hot.is_some() || !self.float) && !unchecked {
            for e in 0..col.values.len() {
                self.class_of(col, e)?;
            }
        }
        Ok(())
    }

    /// Build the field from a (validated) file column: label checks again, transforms.
    fn dense(&self, col: &Column) -> Result<Field, DataError> {
        self.check_shape(col)?;
        let raw = &col.values;
        let values = if let Some(c) = self.one_hot {
            let off = self.pipeline(0.0);
            let on = self.pipeline(1.0);
            let mut out = vec![off; raw.len() * c];
            for e in 0..raw.len() {
                let v = self.class_of(col, e)? as usize;
                out[e * c + v] = on;
            }
            FieldValues::F32(out)
        } else if self.float {
            FieldValues::F32(match raw {
                // A byte has 256 values: run the pipeline once for each.
                Raw::U8(v) => {
                    let lut: Vec<f32> = (0..256).map(|b| self.pipeline(f64::from(b))).collect();
                    v.iter().map(|&b| lut[b as usize]).collect()
                }
                Raw::F32(v) if self.affine.is_empty() => v.clone(),
                _ => (0..raw.len()).map(|e| self.pipeline(raw.get(e))).collect(),
            })
        } else {
            match raw {
                Raw::I64(v) if self.classes.is_none() => FieldValues::I64(v.clone()),
                _ => FieldValues::I64(
                    (0..raw.len())
                        .map(|e| self.class_of(col, e))
                        .collect::<Result<_, _>>()?,
                ),
            }
        };
        Ok(Field {
            name: self.name.clone(),
            dims: self.dims.clone(),
            values,
        })
    }

    /// The arithmetic transforms on one value, rounded to f32 once.
    fn pipeline(&self, x: f64) -> f32 {
        self.affine.iter().fold(x, |v, t| t.apply(v)) as f32
    }
}

/// Which declared field receives what a source yields.
pub(crate) struct Roles {
    /// The field receiving the features (for `text`, the input ids).
    pub features: Option<usize>,
    /// The field receiving the labels (for `text`, the next-character targets).
    pub labels: Option<usize>,
}

impl Roles {
    /// The first non-label field gets the features, the first label field the labels. For
    /// `text`, the targets go to the label field, or else to a second non-label field.
    fn assign(data: &str, source: &str, decls: &[FieldDecl]) -> Result<Roles, DataError> {
        let features: Vec<usize> = (0..decls.len()).filter(|&i| !decls[i].is_label).collect();
        let labels: Vec<usize> = (0..decls.len()).filter(|&i| decls[i].is_label).collect();
        let mut roles = Roles {
            features: features.first().copied(),
            labels: labels.first().copied(),
        };
        let mut extra: Vec<usize> = features
            .iter()
            .skip(1)
            .chain(labels.iter().skip(1))
            .copied()
            .collect();
        if source == "text" && roles.labels.is_none() && features.len() > 1 {
            roles.labels = Some(features[1]);
            extra.retain(|&i| i != features[1]);
        }
        if let Some(&i) = extra.iter().min() {
            return Err(DataError::new(format!(
                "data `{data}`: `{source}` yields one feature field and one label field, so field `{}` would receive nothing",
                decls[i].name
            )));
        }
        Ok(roles)
    }
}

/// A source's samples, checked against the declared fields but not yet transformed: the split
/// selects raw rows (one byte per MNIST pixel rather than four), and sentence tokens wait for the
/// training split's vocabulary.
struct Staged<'d> {
    len: usize,
    decls: &'d [FieldDecl],
    features: Option<(usize, Features)>,
    labels: Option<(usize, Column)>,
}

impl<'d> Staged<'d> {
    fn new(
        loaded: Loaded,
        decls: &'d [FieldDecl],
        roles: &Roles,
        spec: &Spec,
    ) -> Result<Staged<'d>, DataError> {
        let labels = match roles.labels {
            Some(i) => {
                let Some(col) = loaded.labels else {
                    return Err(DataError::new(format!(
                        "field `{}` receives labels, but `{}(...)` has none (give it a `labels` file)",
                        decls[i].name, spec.name
                    )));
                };
                decls[i].validate(&col)?;
                Some((i, col))
            }
            None => None,
        };
        let features = match roles.features {
            Some(i) => {
                let decl = &decls[i];
                match &loaded.features {
                    Features::Dense(col) => decl.validate(col)?,
                    Features::Words(_, length) => {
                        if decl.base_dims != [*length] {
                            return Err(DataError::new(format!(
                                "`sentences` yields {length} token ids per sample, but field `{}` is declared {}",
                                decl.name,
                                decl.base_text()
                            )));
                        }
                    }
                }
                Some((i, loaded.features))
            }
            None => None,
        };
        Ok(Staged {
            len: loaded.len,
            decls,
            features,
            labels,
        })
    }

    fn select(&self, indices: &[usize]) -> Staged<'d> {
        let column = |c: &Column| Column {
            values: c.values.select(c.dims.iter().product(), indices),
            dims: c.dims.clone(),
            path: c.path.clone(),
            what: c.what.clone(),
            reshape: c.reshape,
            locate: Locator::Selected {
                inner: Box::new(c.locate.clone()),
                indices: indices.to_vec(),
            },
        };
        Staged {
            len: indices.len(),
            decls: self.decls,
            features: self.features.as_ref().map(|(i, f)| {
                let f = match f {
                    Features::Dense(c) => Features::Dense(column(c)),
                    Features::Words(w, length) => {
                        Features::Words(indices.iter().map(|&k| w[k].clone()).collect(), *length)
                    }
                };
                (*i, f)
            }),
            labels: self.labels.as_ref().map(|(i, c)| (*i, column(c))),
        }
    }

    fn words(&self) -> Option<&[Vec<String>]> {
        match &self.features {
            Some((_, Features::Words(w, _))) => Some(w.as_slice()),
            _ => None,
        }
    }

    /// Transform the columns into fields (word ids with the training split's vocabulary).
    fn finish(self, vocab: Option<&sentences::Vocab>) -> Result<Dataset, DataError> {
        let mut fields: Vec<(usize, Field)> = Vec::new();
        if let Some((i, col)) = &self.labels {
            fields.push((*i, self.decls[*i].dense(col)?));
        }
        match &self.features {
            Some((i, Features::Dense(col))) => fields.push((*i, self.decls[*i].dense(col)?)),
            Some((i, Features::Words(words, _))) => {
                let vocab = vocab.ok_or_else(|| {
                    DataError::new(format!(
                        "field `{}`: no vocabulary was built for its words",
                        self.decls[*i].name
                    ))
                })?;
                fields.push((*i, vocab.encode(&self.decls[*i], words)?));
            }
            None => {}
        }
        fields.sort_by_key(|(i, _)| *i);
        Ok(Dataset {
            fields: fields.into_iter().map(|(_, f)| f).collect(),
            len: self.len,
        })
    }
}
