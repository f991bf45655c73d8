//! Lowering checked programs to the graph IR.
//!
//! The checker's evaluator does the walking: run with an [`Emitter`], every tensor value it
//! computes also gets an IR node, built by the per-built-in expansions in [`layers`]. So names,
//! pipelines, blocks, `repeat`, shared layers and model calls mean exactly what the checker
//! says they mean; this module only decides which nodes each built-in becomes, how parameters
//! are named and initialised, and how a training step is assembled ([`program`]).

pub mod attention;
pub mod conv;
pub mod init;
pub mod layers;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod program;
pub mod recurrent;

use std::collections::BTreeMap;

use netc_grammar::Span;

use crate::dim::Dim;
use crate::ir::{self, DType, Graph, IrError, NodeId, Op, Role};
use crate::types::TensorType;

pub use init::Init;

/// Train mode runs dropout and batch statistics; eval mode uses running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A parameter or buffer of the program, as the runtime must allocate and initialise it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Stable, readable name: `Mlp.fc1.weight`.
    pub name: String,
    pub ty: ir::Type,
    pub init: Init,
    /// Buffers (batch-norm statistics) are state, not trained.
    pub trainable: bool,
}

/// Builds one graph while the checker evaluates an expression.
pub struct Emitter {
    pub graph: Graph,
    pub mode: Mode,
    /// The concrete batch size bound to `B`.
    pub batch: i64,
    params: BTreeMap<String, NodeId>,
    pub specs: Vec<ParamSpec>,
    /// The latest value of each buffer updated in this graph (batch-norm running statistics),
    /// so a layer run twice in one step updates from the first run's result.
    state: BTreeMap<String, NodeId>,
    /// Whether buffer updates are recorded (off while recomputing values an earlier step of the
    /// same batch already computed).
    pub record_state: bool,
    seed: Option<NodeId>,
    next_stream: u64,
    /// Data inputs already created, by field name.
    data: BTreeMap<String, NodeId>,
    /// The first internal error; lowering stops reporting after it.
    pub error: Option<IrError>,
}

impl Emitter {
    pub fn new(mode: Mode, batch: i64) -> Self {
        Emitter {
            graph: Graph::new(),
            mode,
            batch,
            params: BTreeMap::new(),
            specs: Vec::new(),
            state: BTreeMap::new(),
            record_state: true,
            seed: None,
            next_stream: 0,
            data: BTreeMap::new(),
            error: None,
        }
    }

    /// Record an internal error (the first one wins) and return a placeholder-free `None`.
    pub fn fail<T>(&mut self, e: IrError) -> Option<T> {
        if self.error.is_none() {
            self.error = Some(e);
        }
        None
    }

    /// The IR type of a checked tensor type, with `B` bound to the batch size.
    pub fn ir_type(&self, ty: &TensorType, span: Span) -> Result<ir::Type, IrError> {
        let bindings = BTreeMap::from([("B".to_string(), Dim::known(self.batch))]);
        let mut shape = Vec::with_capacity(ty.dims.len());
        for d in &ty.dims {
            let d = d.substitute(&bindings).ok().and_then(|d| d.as_known());
            match d {
                Some(n) if n >= 0 => shape.push(n as usize),
                _ => {
                    return Err(IrError {
                        message: format!(
                            "cannot compile {ty}: every dimension must be known (only `B` is bound)"
                        ),
                        span,
                    });
                }
            }
        }
        let dtype = if ty.dtype.is_float() {
            DType::F32
        } else {
            DType::I64
        };
        Ok(ir::Type { dtype, shape })
    }

    /// The parameter or buffer with this name, created (with its initialiser) on first use.
    /// Two layer calls that resolve to the same name share the node: that is weight sharing.
    pub fn param(
        &mut self,
        name: &str,
        ty: ir::Type,
        init: Init,
        trainable: bool,
        span: Span,
    ) -> NodeId {
        if let Some(&n) = self.params.get(name) {
            return n;
        }
        let role = if trainable { Role::Param } else { Role::State };
        let node = self.graph.input(name, role, ty.clone(), span);
        self.params.insert(name.to_string(), node);
        self.specs.push(ParamSpec {
            name: name.to_string(),
            ty,
            init,
            trainable,
        });
        node
    }

    /// Trainable parameters created so far, by name.
    pub fn params(&self) -> impl Iterator<Item = (&String, NodeId)> {
        self.params
            .iter()
            .filter(|(n, _)| self.specs.iter().any(|s| &s.name == *n && s.trainable))
            .map(|(n, &id)| (n, id))
    }

    /// A batch field from the data loader.
    pub fn data(&mut self, name: &str, ty: ir::Type, span: Span) -> NodeId {
        if let Some(&n) = self.data.get(name) {
            return n;
        }
        let node = self.graph.input(name, Role::Data, ty, span);
        self.data.insert(name.to_string(), node);
        node
    }

    /// The current value of a buffer (its input, or its latest update in this graph).
    pub fn state(&mut self, name: &str, input: NodeId) -> NodeId {
        *self.state.get(name).unwrap_or(&input)
    }

    /// Set a buffer's new value; it becomes an `update` output of the graph.
    pub fn set_state(&mut self, name: &str, value: NodeId) {
        if self.record_state {
            self.state.insert(name.to_string(), value);
        }
    }

    /// Buffers updated in this graph, with their final values.
    pub fn state_updates(&self) -> impl Iterator<Item = (&String, &NodeId)> {
        self.state.iter()
    }

    /// The per-step seed input and a fresh stream number for one random op.
    pub fn random_stream(&mut self, span: Span) -> (NodeId, u64) {
        let seed = *self.seed.get_or_insert_with(|| {
            self.graph
                .input("rng_seed", Role::Scalar, ir::Type::i64(vec![]), span)
        });
        let stream = self.next_stream;
        self.next_stream += 1;
        (seed, stream)
    }

    /// Shorthand: add a node.
    pub fn add(
        &mut self,
        op: Op,
        operands: &[NodeId],
        ty: Option<ir::Type>,
        span: Span,
    ) -> Result<NodeId, IrError> {
        self.graph.add(op, operands, ty, span)
    }
}
