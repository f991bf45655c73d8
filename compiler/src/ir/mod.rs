//! The graph IR: a whole training step (forward, backward, optimizer update) as one typed
//! dataflow graph on petgraph's `StableGraph`, so rewrites keep node indices valid.
//!
//! Nodes hold an [`Op`], the result [`Type`] and the source span of the `.net` construct they
//! came from, so a failure anywhere later (a missing gradient, a NaN, a kernel error) points at
//! the user's layer. Edges carry the operand position.

pub mod autodiff;
pub mod dot;
pub mod flops;
pub mod interp;
pub mod op;
pub mod passes;
pub mod text;

use std::collections::HashMap;

use netc_grammar::Span;
use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;

pub use op::{BinaryOp, DType, Distribution, Op, ReduceOp, Role, Scan, Type, UnaryOp, Window};

/// A node's handle. Stays valid while other nodes are added or removed.
pub type NodeId = NodeIndex<u32>;

/// One operation with its result type and origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: Type,
    pub span: Span,
}

/// A named result of the graph. `updates` names the input it replaces after the step (a
/// parameter's new value, an optimizer moment, a running statistic).
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub node: NodeId,
    pub updates: Option<String>,
}

/// A dataflow graph with named inputs (the `Input` nodes) and named outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub graph: StableGraph<Node, usize>,
    pub outputs: Vec<Output>,
}

impl PartialEq for Graph {
    /// Structural equality through the canonical text (node indices may differ).
    fn eq(&self, other: &Self) -> bool {
        text::dump(self) == text::dump(other)
    }
}

/// An internal error: a stage built an ill-typed node. These are compiler bugs, reported with
/// the span of the construct being compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct IrError {
    pub message: String,
    pub span: Span,
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    /// Add a node after checking its operands with the op's type rule. `given` is the result
    /// type for ops that need one (inputs, fills, reshapes, broadcasts...).
    pub fn add(
        &mut self,
        op: Op,
        operands: &[NodeId],
        given: Option<Type>,
        span: Span,
    ) -> Result<NodeId, IrError> {
        let types: Vec<&Type> = operands.iter().map(|&n| &self.graph[n].ty).collect();
        let ty =
            op::infer(&op, &types, given.as_ref()).map_err(|message| IrError { message, span })?;
        let node = self.graph.add_node(Node { op, ty, span });
        for (i, &operand) in operands.iter().enumerate() {
            self.graph.add_edge(operand, node, i);
        }
        Ok(node)
    }

    pub fn input(&mut self, name: &str, role: Role, ty: Type, span: Span) -> NodeId {
        let node = Node {
            op: Op::Input {
                name: name.to_string(),
                role,
            },
            ty,
            span,
        };
        self.graph.add_node(node)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    pub fn ty(&self, id: NodeId) -> &Type {
        &self.graph[id].ty
    }

    /// Operands of a node, in order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// Nodes that use `id`, each once.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .graph
            .neighbors_directed(id, Direction::Outgoing)
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// The input node with this name.
    pub fn find_input(&self, name: &str) -> Option<NodeId> {
        self.graph
            .node_indices()
            .find(|&n| matches!(&self.graph[n].op, Op::Input { name: m, .. } if m == name))
    }

    /// Input nodes in creation order.
    pub fn inputs(&self) -> Vec<NodeId> {
        self.graph
            .node_indices()
            .filter(|&n| matches!(self.graph[n].op, Op::Input { .. }))
            .collect()
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs.iter().find(|o| o.name == name).map(|o| o.node)
    }

    /// Give node `n` a new op and operands in place: its id, type and span stay, so its users
    /// and outputs are untouched (rewriting passes check the type first).
    pub fn set_op(&mut self, n: NodeId, op: Op, operands: &[NodeId]) {
        let edges: Vec<_> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in edges {
            self.graph.remove_edge(e);
        }
        for (i, &o) in operands.iter().enumerate() {
            self.graph.add_edge(o, n, i);
        }
        self.graph[n].op = op;
    }

    pub fn set_output(&mut self, name: &str, node: NodeId) {
        self.outputs.push(Output {
            name: name.to_string(),
            node,
            updates: None,
        });
    }

    pub fn set_update(&mut self, name: &str, node: NodeId, input: &str) {
        self.outputs.push(Output {
            name: name.to_string(),
            node,
            updates: Some(input.to_string()),
        });
    }

    /// Nodes in a deterministic topological order: among ready nodes, the oldest first.
    pub fn topo_order(&self) -> Vec<NodeId> {
        let mut pending: HashMap<NodeId, usize> = HashMap::new();
        let mut ready = std::collections::BTreeSet::new();
        for n in self.graph.node_indices() {
            let k = self.graph.edges_directed(n, Direction::Incoming).count();
            if k == 0 {
                ready.insert(n);
            } else {
                pending.insert(n, k);
            }
        }
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some(&n) = ready.iter().next() {
            ready.remove(&n);
            order.push(n);
            for e in self.graph.edges_directed(n, Direction::Outgoing) {
                let k = pending
                    .get_mut(&e.target())
                    .expect("every target has pending operands");
                *k -= 1;
                if *k == 0 {
                    ready.insert(e.target());
                }
            }
        }
        order
    }

    /// Replace every use of `old` by `new` (operands and outputs), leaving `old` unused.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let uses: Vec<(NodeId, usize)> = self
            .graph
            .edges_directed(old, Direction::Outgoing)
            .map(|e| (e.target(), *e.weight()))
            .collect();
        for e in self
            .graph
            .edges_directed(old, Direction::Outgoing)
            .map(|e| e.id())
            .collect::<Vec<_>>()
        {
            self.graph.remove_edge(e);
        }
        for (user, slot) in uses {
            self.graph.add_edge(new, user, slot);
        }
        for o in &mut self.outputs {
            if o.node == old {
                o.node = new;
            }
        }
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }
}
