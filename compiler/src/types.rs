//! The values the checker computes for expressions: tensor types with symbolic shapes, numbers,
//! layers awaiting their input, optimizer and schedule specs.

use std::collections::BTreeSet;
use std::fmt;
use std::rc::Rc;

use netc_grammar::{DType, Span};

use crate::dim::Dim;

/// A tensor's type: element type and shape. `classes` marks integer class labels declared with
/// `class(C)`, so losses and metrics can check `C` against the logits.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    pub dtype: DType,
    pub dims: Vec<Dim>,
    pub classes: Option<i64>,
}

impl TensorType {
    pub fn new(dtype: DType, dims: Vec<Dim>) -> Self {
        TensorType {
            dtype,
            dims,
            classes: None,
        }
    }

    pub fn f32(dims: Vec<Dim>) -> Self {
        TensorType::new(DType::F32, dims)
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    pub fn is_scalar(&self) -> bool {
        self.dims.is_empty()
    }

    /// The same type with other dims (dtype kept, class marker dropped).
    pub fn with_dims(&self, dims: Vec<Dim>) -> Self {
        TensorType::new(self.dtype, dims)
    }

    /// The shape alone, `[B, 64]`.
    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(Dim::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape_text())?;
        if let Some(c) = self.classes {
            write!(f, " ({c} classes)")?;
        }
        Ok(())
    }
}

/// A tensor value during checking: its type, and which models' parameters it depends on through
/// a differentiable path (cleared by `stop_gradient`). Training checks use this to tell whether a
/// loss can update a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub ty: TensorType,
    pub depends_on: BTreeSet<String>,
    /// The IR node computing it, when the checker runs with an emitter (lowering).
    pub node: Option<crate::ir::NodeId>,
}

impl Tensor {
    pub fn new(ty: TensorType) -> Self {
        Tensor {
            ty,
            depends_on: BTreeSet::new(),
            node: None,
        }
    }
}

/// Something that can be applied to tensors: a built-in layer with its arguments bound, a block
/// instantiated with its hyper-parameters, or a model.
#[derive(Clone, Debug)]
pub enum Callable {
    Builtin {
        name: &'static str,
        args: crate::builtins::BoundArgs,
    },
    Block {
        name: String,
        hparams: Vec<(String, Value)>,
    },
    Model(String),
    /// `repeat(n, layer)`: `n` copies applied in sequence, each with its own parameters.
    Repeat(usize, Rc<LayerValue>),
}

/// A layer waiting for its tensor input, such as `linear(64)` in `let enc = linear(64)`.
/// Binding it once and applying it twice shares its parameters.
#[derive(Clone, Debug)]
pub struct LayerValue {
    pub callable: Callable,
    /// Where the layer was written (for labels and parameter names).
    pub span: Span,
    /// The `let` name it was bound to; its parameters are named after it (`fc1.weight`).
    pub name: Option<String>,
}

/// A checked optimizer, schedule, metric, data source or transform: the built-in it names and
/// its bound arguments.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub args: crate::builtins::BoundArgs,
    pub span: Span,
}

/// What an expression evaluates to while checking.
#[derive(Clone, Debug)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A symbolic integer such as the batch size `B`.
    Dim(Dim),
    /// A bare word used as an option value: `output: final`.
    Word(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Tensor(Tensor),
    /// A written tensor type (`f32[64]`, `class(10)`), as data fields declare.
    Type(TensorType),
    Layer(Rc<LayerValue>),
    Model(String),
    Data(String),
    Spec(Spec),
    /// An error was already reported for this value; checks on it stay silent.
    Error,
}

impl Value {
    /// A short description for messages: "a tensor f32[B, 64]", "an integer".
    pub fn describe(&self) -> String {
        match self {
            Value::Int(v) => format!("the integer {v}"),
            Value::Float(v) => format!("the number {v}"),
            Value::Bool(v) => format!("`{v}`"),
            Value::Str(_) => "a string".to_string(),
            Value::Dim(d) => format!("the dimension {d}"),
            Value::Word(w) => format!("`{w}`"),
            Value::Tuple(_) => "a tuple".to_string(),
            Value::List(_) => "a list".to_string(),
            Value::Tensor(t) => format!("a tensor {}", t.ty),
            Value::Type(t) => format!("the type {t}"),
            Value::Layer(_) => "a layer".to_string(),
            Value::Model(m) => format!("the model `{m}`"),
            Value::Data(d) => format!("the data set `{d}`"),
            Value::Spec(s) => format!("`{}(...)`", s.name),
            Value::Error => "an invalid value".to_string(),
        }
    }

    /// An integer-valued dimension, known or symbolic.
    pub fn as_dim(&self) -> Option<Dim> {
        match self {
            Value::Int(v) => Some(Dim::known(*v)),
            Value::Dim(d) => Some(d.clone()),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }
}
