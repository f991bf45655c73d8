//! The values the interpreter computes on, and the precision it computes in.

use super::super::{DType, Type};

/// The elements of a tensor, row-major. Floats are `f64` whatever the precision of the run, so
/// one representation serves f32 runs (where every value is also an exact f32) and f64 runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Elements of an `F32` tensor.
    F(Vec<f64>),
    /// Elements of an `I64` tensor (class labels, token ids, seeds).
    I(Vec<i64>),
}

impl Data {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::F(v) => v.len(),
            Data::I(v) => v.len(),
        }
    }

    /// Whether there are no elements (a tensor with a zero dimension).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type this data belongs to.
    pub fn dtype(&self) -> DType {
        match self {
            Data::F(_) => DType::F32,
            Data::I(_) => DType::I64,
        }
    }

    /// Empty data of `dtype`, to be filled with [`Data::extend_range`].
    pub(super) fn empty(dtype: DType) -> Data {
        match dtype {
            DType::F32 => Data::F(Vec::new()),
            DType::I64 => Data::I(Vec::new()),
        }
    }

    /// The elements at the flat indices `src`, in that order: every data-movement op
    /// (broadcast, transpose, slice, gather) is "compute a source index per output element".
    pub(super) fn pick(&self, src: &[usize]) -> Data {
        match self {
            Data::F(v) => Data::F(src.iter().map(|&i| v[i]).collect()),
            Data::I(v) => Data::I(src.iter().map(|&i| v[i]).collect()),
        }
    }

    /// Append `other[range]`; both must hold the same element type.
    pub(super) fn extend_range(
        &mut self,
        other: &Data,
        range: std::ops::Range<usize>,
    ) -> Result<(), String> {
        match (self, other) {
            (Data::F(a), Data::F(b)) => a.extend_from_slice(&b[range]),
            (Data::I(a), Data::I(b)) => a.extend_from_slice(&b[range]),
            _ => return Err("operands mix f32 and i64 data".into()),
        }
        Ok(())
    }
}

/// A dense row-major tensor value: an input given to [`run`](super::run) or a result it returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// Element type and shape; must agree with `data` (checked when given to `run`).
    pub ty: Type,
    /// The `ty.numel()` elements, row-major.
    pub data: Data,
}

impl Value {
    /// An `F32` tensor from f32 elements, the usual way to feed data to an f32 run.
    ///
    /// Panics if `data` does not have `shape`'s number of elements (a bug in the caller).
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Value {
        Value::from_f64(shape, data.into_iter().map(f64::from).collect())
    }

    /// An `F32` tensor from f64 elements: for f64 runs (gradient checks), where inputs need not
    /// be representable in f32. An f32 run rounds them to f32 on entry.
    ///
    /// Panics if `data` does not have `shape`'s number of elements (a bug in the caller).
    pub fn from_f64(shape: Vec<usize>, data: Vec<f64>) -> Value {
        let ty = Type::f32(shape);
        assert_eq!(
            ty.numel(),
            data.len(),
            "{} elements for a value of type {ty}",
            data.len()
        );
        Value {
            ty,
            data: Data::F(data),
        }
    }

    /// An `I64` tensor (labels, token ids).
    ///
    /// Panics if `data` does not have `shape`'s number of elements (a bug in the caller).
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Value {
        let ty = Type::i64(shape);
        assert_eq!(
            ty.numel(),
            data.len(),
            "{} elements for a value of type {ty}",
            data.len()
        );
        Value {
            ty,
            data: Data::I(data),
        }
    }

    /// An `F32[]` scalar such as a learning rate.
    pub fn scalar(x: f64) -> Value {
        Value::from_f64(vec![], vec![x])
    }

    /// An `I64[]` scalar such as the seed of [`Op::Random`](crate::ir::Op::Random).
    pub fn scalar_i64(x: i64) -> Value {
        Value::i64(vec![], vec![x])
    }

    /// The float elements, or `None` for an `I64` value.
    pub fn as_f64_slice(&self) -> Option<&[f64]> {
        match &self.data {
            Data::F(v) => Some(v),
            Data::I(_) => None,
        }
    }

    /// The integer elements, or `None` for an `F32` value.
    pub fn as_i64_slice(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I(v) => Some(v),
            Data::F(_) => None,
        }
    }

    /// The float elements rounded to f32 (exact for results of an f32 run), or `None` for an
    /// `I64` value.
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        self.as_f64_slice()
            .map(|v| v.iter().map(|&x| x as f32).collect())
    }

    /// Why this value is malformed (data length or kind disagreeing with its type), if it is.
    /// The fields are public, so values handed to [`run`](super::run) are checked rather than trusted.
    pub(super) fn malformed(&self) -> Option<String> {
        if self.data.dtype() != self.ty.dtype {
            Some(format!(
                "value of type {} holds {} data",
                self.ty,
                self.data.dtype()
            ))
        } else if self.data.len() != self.ty.numel() {
            Some(format!(
                "value of type {} holds {} elements",
                self.ty,
                self.data.len()
            ))
        } else {
            None
        }
    }
}

/// How floats are computed: the interpreter must both mirror float32 backends bit for bit
/// (as nearly as a sequential order allows) and give precise values for gradient checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Every float result is rounded to f32 after each op, and sums inside reductions, matmuls,
    /// convolutions and pools accumulate in f32 in sequential order (each product rounded to
    /// f32, then added and rounded; no fused multiply-add). Inputs are rounded to f32 on entry.
    F32,
    /// Everything in f64, for finite-difference gradient checks.
    F64,
}

impl Precision {
    /// Round `x` to this precision: `(x as f32) as f64` for [`Precision::F32`], `x` otherwise.
    /// Rounding an exact f64 sum or product of two f32 values gives exactly the f32 operation.
    pub fn round(self, x: f64) -> f64 {
        match self {
            Precision::F32 => f64::from(x as f32),
            Precision::F64 => x,
        }
    }

    /// One step of a multiply-accumulate, `acc + a * b` with the product and the sum each
    /// rounded: the inner loop of matmuls and convolutions.
    pub(super) fn mac(self, acc: f64, a: f64, b: f64) -> f64 {
        self.round(acc + self.round(a * b))
    }
}
