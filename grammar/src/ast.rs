//! The syntax tree of a `.net` file.
//!
//! Every node carries the byte [`Span`] it was parsed from, so every later stage (the checker,
//! the IR, a NaN found while training) can point at the user's text. The tree is plain data:
//! it knows nothing about tensors or shapes beyond what was written.

use std::fmt;

/// A half-open byte range `start..end` into the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    pub fn len(self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// Shift by `offset` bytes: items are parsed as slices of the file.
    pub fn shifted(self, offset: usize) -> Span {
        Span::new(self.start + offset, self.end + offset)
    }
}

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A parsed file: its items, in order, and the comments the formatter must keep.
#[derive(Clone, Debug, Default)]
pub struct File {
    pub items: Vec<Item>,
    /// Spans of `# ...` comments (without the newline), in source order.
    pub comments: Vec<Span>,
}

#[derive(Clone, Debug)]
pub enum Item {
    Const(ConstItem),
    Model(ModelItem),
    Block(BlockItem),
    Data(DataItem),
    Train(TrainItem),
    /// An item that did not parse; its syntax error has been reported.
    Error(Span),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Const(c) => c.span,
            Item::Model(m) => m.span,
            Item::Block(b) => b.span,
            Item::Data(d) => d.span,
            Item::Train(t) => t.span,
            Item::Error(s) => *s,
        }
    }
}

/// `const name = expr`: a compile-time number, string or boolean.
#[derive(Clone, Debug)]
pub struct ConstItem {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `model Name(x: f32[B, 64]) -> f32[B, 10] { ... }`
#[derive(Clone, Debug)]
pub struct ModelItem {
    pub name: Ident,
    pub inputs: Vec<Input>,
    pub output: Option<TensorType>,
    pub body: Body,
    pub span: Span,
}

/// `block Name(d: int, heads: int = 4)(x: f32[B, T, d]) -> f32[B, T, d] { ... }`
#[derive(Clone, Debug)]
pub struct BlockItem {
    pub name: Ident,
    pub hparams: Vec<HParam>,
    pub inputs: Vec<Input>,
    pub output: Option<TensorType>,
    pub body: Body,
    pub span: Span,
}

/// A block's hyper-parameter: `heads: int = 4`.
#[derive(Clone, Debug)]
pub struct HParam {
    pub name: Ident,
    pub ty: Ident,
    pub default: Option<Expr>,
    pub span: Span,
}

/// A tensor input of a model or block: `x: f32[B, 64]`.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: Ident,
    pub ty: TensorType,
    pub span: Span,
}

/// Element types a tensor can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I32,
    I64,
    U8,
    Bool,
}

impl DType {
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s {
            "f32" => DType::F32,
            "f64" => DType::F64,
            "i32" => DType::I32,
            "i64" => DType::I64,
            "u8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn is_integer(self) -> bool {
        matches!(self, DType::I32 | DType::I64 | DType::U8)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A written tensor type: `f32[B, 3, 32, 32]`. Dimensions are expressions (`d * 4`, `B`).
#[derive(Clone, Debug)]
pub struct TensorType {
    pub dtype: DType,
    pub dtype_span: Span,
    pub dims: Vec<Expr>,
    pub span: Span,
}

/// `{ stmt* }`: `let` bindings, then the expression whose value the model returns.
#[derive(Clone, Debug)]
pub struct Body {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    Let(LetStmt),
    Expr(Expr),
    /// A statement that did not parse; its syntax error has been reported.
    Error(Span),
}

impl Stmt {
    pub fn span(&self) -> Span {
        match self {
            Stmt::Let(l) => l.span,
            Stmt::Expr(e) => e.span,
            Stmt::Error(s) => *s,
        }
    }
}

/// `let name = expr`
#[derive(Clone, Debug)]
pub struct LetStmt {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `data name { source ...; image: f32[1, 28, 28] |> scale(1/255); split val: 0.1 }`
#[derive(Clone, Debug)]
pub struct DataItem {
    pub name: Ident,
    pub entries: Vec<DataEntry>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum DataEntry {
    /// `name: type |> transform...`: a field of every sample.
    Field(FieldEntry),
    /// `key args`: a setting such as `source csv(...)` or `split val: 0.1, seed: 7`.
    Setting(Setting),
    Error(Span),
}

impl DataEntry {
    pub fn span(&self) -> Span {
        match self {
            DataEntry::Field(f) => f.span,
            DataEntry::Setting(s) => s.span,
            DataEntry::Error(s) => *s,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FieldEntry {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `key arg, name: arg, ...`: the same argument syntax as a call, without parentheses.
#[derive(Clone, Debug)]
pub struct Setting {
    pub key: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

/// `train name { ... }`: a training run.
#[derive(Clone, Debug)]
pub struct TrainItem {
    pub name: Option<Ident>,
    pub keyword_span: Span,
    pub stmts: Vec<TrainStmt>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum TrainStmt {
    Let(LetStmt),
    Update(UpdateStmt),
    Setting(Setting),
    Step(StepBlock),
    Error(Span),
}

impl TrainStmt {
    pub fn span(&self) -> Span {
        match self {
            TrainStmt::Let(l) => l.span,
            TrainStmt::Update(u) => u.span,
            TrainStmt::Setting(s) => s.span,
            TrainStmt::Step(s) => s.span,
            TrainStmt::Error(s) => *s,
        }
    }
}

/// `step name { loss ...; update Model with optimizer }`: one optimisation step of a run.
#[derive(Clone, Debug)]
pub struct StepBlock {
    pub name: Ident,
    pub stmts: Vec<TrainStmt>,
    pub span: Span,
}

/// `update Model, Other with adam(lr: 1e-3)`
#[derive(Clone, Debug)]
pub struct UpdateStmt {
    pub models: Vec<Ident>,
    pub optimizer: Expr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Name(Ident),
    /// `value.field`
    Field(Box<Expr>, Ident),
    Call(Call),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    /// `head |> stage |> stage`: each stage receives the previous value as its first input.
    Pipe(Box<Expr>, Vec<Expr>),
    /// `(a, b)`
    Tuple(Vec<Expr>),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `f32[64]` used as a value (data field types).
    Type(TensorType),
    /// `(expr)`: kept so the formatter can print what was written.
    Paren(Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }

    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 2,
        }
    }
}

/// `name(args)`
#[derive(Clone, Debug)]
pub struct Call {
    pub callee: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

/// A positional (`64`) or named (`kernel: 5`) argument.
#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}
