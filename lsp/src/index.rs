//! A syntactic index of a parsed file: every definition (items, inputs, hyper-parameters,
//! `let` bindings, data fields, symbolic dimensions, steps) and every use of a name, each use
//! linked to the definition it refers to.
//!
//! Go to definition, find references, document symbols, names in scope for completion and
//! semantic tokens read it. It follows the language's scoping rules (a `let` is visible after
//! its statement; a run sees its data set's fields) but checks nothing: the checker's
//! diagnostics are the only judgement of whether a name is right. Unresolved names (built-ins,
//! misspellings) are kept with no definition so hover can look them up in the built-in table.

use std::collections::HashMap;

use netc_grammar::ast::*;

/// What a definition defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DefKind {
    Const,
    Model,
    Block,
    Data,
    Train,
    Step,
    Field,
    Input,
    HParam,
    Let,
    /// A symbolic dimension such as `B`, defined where it first appears in a signature.
    Dim,
}

/// One definition.
#[derive(Clone, Debug)]
pub(crate) struct Def {
    pub name: String,
    pub kind: DefKind,
    /// The name as written.
    pub span: Span,
    /// The whole declaration (the `let` statement, the model item).
    pub full: Span,
    /// Where the name can be used.
    pub visible: Span,
    /// The enclosing definition (an item, or a step), for the outline.
    pub parent: Option<usize>,
}

/// How a name is used at an occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The definition itself.
    Def,
    /// A name in an expression or a type.
    Name,
    /// A call's callee or a bare pipeline stage.
    Callee,
    /// An argument name: `kernel` in `kernel: 5`.
    ArgName,
    /// A field after a dot: `field` in `digits.field`.
    Member,
}

/// One place a name is written.
#[derive(Clone, Debug)]
pub(crate) struct Occurrence {
    pub span: Span,
    pub name: String,
    pub def: Option<usize>,
    pub role: Role,
    /// For an argument name, the callee (or setting) it belongs to.
    pub callee: Option<String>,
    /// Index of the item in the file the occurrence is in.
    pub item: usize,
    /// For a callee written as the whole value of `let name = callee(...)`, the bound name: a
    /// layer value's parameters are named after it.
    pub bound_to: Option<String>,
}

/// A pipeline stage and where its input comes from, for hover's "input → output".
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub span: Span,
    /// The span whose shape entry is the stage's input: the previous stage, or the definition
    /// of the name at the head of the pipeline.
    pub input: Option<Span>,
}

/// Definitions and uses of a file.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub defs: Vec<Def>,
    /// Sorted by start.
    pub occurrences: Vec<Occurrence>,
    /// Item-level names: consts, models, blocks, data sets (first definition wins).
    pub globals: HashMap<String, usize>,
    pub stages: Vec<Stage>,
    /// `(item index, def)` for each item that has a definition.
    pub items: Vec<(usize, Option<usize>)>,
    /// Each run's span and the data set it reads, whose fields are in scope inside it.
    pub runs: Vec<(Span, usize)>,
    /// Children of each definition, in order (the outline's tree).
    children: Vec<Vec<usize>>,
}

impl Index {
    /// Index a parsed file (any file the parser returns, broken items included).
    pub fn build(file: &File) -> Index {
        let mut b = Builder {
            index: Index::default(),
            scope: Vec::new(),
            item: 0,
            fields: HashMap::new(),
        };
        b.globals(file);
        for (i, item) in file.items.iter().enumerate() {
            b.item = i;
            b.scope.clear();
            b.walk_item(i, item);
        }
        b.index
            .occurrences
            .sort_by_key(|o| (o.span.start, o.span.end));
        let mut children = vec![Vec::new(); b.index.defs.len()];
        for (i, d) in b.index.defs.iter().enumerate() {
            if let Some(p) = d.parent {
                children[p].push(i);
            }
        }
        b.index.children = children;
        b.index
    }

    /// The occurrence at a byte offset (the cursor touching either end of a name counts).
    pub fn occurrence_at(&self, offset: usize) -> Option<&Occurrence> {
        let i = self.occurrences.partition_point(|o| o.span.end < offset);
        let mut found = None;
        for o in &self.occurrences[i..] {
            if o.span.start > offset {
                break;
            }
            if o.span.start <= offset && offset <= o.span.end {
                // Prefer a name that starts at the offset over one that ends there.
                if found.is_none() || o.span.start == offset {
                    found = Some(o);
                }
            }
        }
        found
    }

    /// Every occurrence linked to a definition, the definition itself included.
    pub fn uses_of(&self, def: usize) -> impl Iterator<Item = &Occurrence> {
        self.occurrences.iter().filter(move |o| o.def == Some(def))
    }

    /// Names usable at an offset: item-level names, plus the locals whose scope covers it.
    pub fn in_scope(&self, offset: usize) -> Vec<usize> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out: Vec<usize> = Vec::new();
        for (i, d) in self.defs.iter().enumerate() {
            let visible = match d.kind {
                DefKind::Const | DefKind::Model | DefKind::Block | DefKind::Data => true,
                DefKind::Train | DefKind::Step => false,
                DefKind::Field => self.runs.iter().any(|&(run, data)| {
                    d.parent == Some(data) && run.start <= offset && offset <= run.end
                }),
                _ => d.visible.start <= offset && offset <= d.visible.end,
            };
            if !visible {
                continue;
            }
            // Locals come after globals in `defs` and shadow them.
            if let Some(&at) = seen.get(d.name.as_str()) {
                out[at] = i;
            } else {
                seen.insert(&d.name, out.len());
                out.push(i);
            }
        }
        out
    }

    /// Child definitions of a definition, for the outline.
    pub fn children(&self, parent: usize) -> impl Iterator<Item = usize> + '_ {
        self.children.get(parent).into_iter().flatten().copied()
    }
}

struct Builder {
    index: Index,
    /// Locals: `(name, def)`, innermost last.
    scope: Vec<(String, usize)>,
    item: usize,
    /// Data set name → field name → def.
    fields: HashMap<String, HashMap<String, usize>>,
}

impl Builder {
    fn define(
        &mut self,
        name: &Ident,
        kind: DefKind,
        full: Span,
        visible: Span,
        parent: Option<usize>,
    ) -> usize {
        let id = self.index.defs.len();
        self.index.defs.push(Def {
            name: name.name.clone(),
            kind,
            span: name.span,
            full,
            visible,
            parent,
        });
        self.occur(name, Some(id), Role::Def);
        id
    }

    fn occur(&mut self, name: &Ident, def: Option<usize>, role: Role) -> usize {
        self.index.occurrences.push(Occurrence {
            span: name.span,
            name: name.name.clone(),
            def,
            role,
            callee: None,
            item: self.item,
            bound_to: None,
        });
        self.index.occurrences.len() - 1
    }

    fn resolve(&self, name: &str) -> Option<usize> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, d)| *d)
            .or_else(|| self.index.globals.get(name).copied())
    }

    /// Item-level names and data fields first: items may use each other in any order.
    fn globals(&mut self, file: &File) {
        for (i, item) in file.items.iter().enumerate() {
            self.item = i;
            let (name, kind) = match item {
                Item::Const(c) => (&c.name, DefKind::Const),
                Item::Model(m) => (&m.name, DefKind::Model),
                Item::Block(b) => (&b.name, DefKind::Block),
                Item::Data(d) => (&d.name, DefKind::Data),
                Item::Train(t) => {
                    let def = match &t.name {
                        Some(name) => self.define(name, DefKind::Train, t.span, t.span, None),
                        None => {
                            let name = Ident {
                                name: "train".to_string(),
                                span: t.keyword_span,
                            };
                            let id = self.define(&name, DefKind::Train, t.span, t.span, None);
                            // The keyword is not a use of anything.
                            self.index.occurrences.pop();
                            id
                        }
                    };
                    self.index.items.push((i, Some(def)));
                    continue;
                }
                Item::Error(_) => {
                    self.index.items.push((i, None));
                    continue;
                }
            };
            let def = self.define(name, kind, item.span(), item.span(), None);
            self.index.items.push((i, Some(def)));
            self.index.globals.entry(name.name.clone()).or_insert(def);
            if let Item::Data(d) = item {
                let mut fields = HashMap::new();
                for entry in &d.entries {
                    if let DataEntry::Field(f) = entry {
                        let id = self.define(&f.name, DefKind::Field, f.span, d.span, Some(def));
                        fields.entry(f.name.name.clone()).or_insert(id);
                    }
                }
                self.fields.entry(d.name.name.clone()).or_insert(fields);
            }
        }
    }

    fn item_def(&self, i: usize) -> Option<usize> {
        self.index
            .items
            .iter()
            .find(|(item, _)| *item == i)
            .and_then(|(_, d)| *d)
    }

    fn walk_item(&mut self, i: usize, item: &Item) {
        let parent = self.item_def(i);
        match item {
            Item::Const(c) => self.expr(&c.value),
            Item::Model(m) => {
                self.signature(&[], &m.inputs, m.output.as_ref(), m.span, parent);
                self.body(&m.body, parent);
            }
            Item::Block(b) => {
                self.signature(&b.hparams, &b.inputs, b.output.as_ref(), b.span, parent);
                self.body(&b.body, parent);
            }
            Item::Data(d) => {
                for entry in &d.entries {
                    match entry {
                        DataEntry::Field(f) => self.expr(&f.value),
                        DataEntry::Setting(s) => self.setting(s),
                        DataEntry::Error(_) => {}
                    }
                }
            }
            Item::Train(t) => {
                // The run's data set puts its fields in scope for the whole run.
                let data = t.stmts.iter().find_map(|s| match s {
                    TrainStmt::Setting(s) if s.key.name == "data" => {
                        s.args.first().and_then(|a| match &a.value.kind {
                            ExprKind::Name(id) => Some(id.name.clone()),
                            _ => None,
                        })
                    }
                    _ => None,
                });
                if let Some(data) = data.as_ref().and_then(|d| self.index.globals.get(d))
                    && self.index.defs[*data].kind == DefKind::Data
                {
                    self.index.runs.push((t.span, *data));
                }
                if let Some(fields) = data.and_then(|d| self.fields.get(&d)) {
                    let mut fields: Vec<(String, usize)> =
                        fields.iter().map(|(n, d)| (n.clone(), *d)).collect();
                    fields.sort_by_key(|(_, d)| *d);
                    self.scope.extend(fields);
                }
                self.train_stmts(&t.stmts, t.span, parent);
            }
            Item::Error(_) => {}
        }
    }

    fn signature(
        &mut self,
        hparams: &[HParam],
        inputs: &[Input],
        output: Option<&netc_grammar::ast::TensorType>,
        span: Span,
        parent: Option<usize>,
    ) {
        for h in hparams {
            if let Some(default) = &h.default {
                self.expr(default);
            }
            let id = self.define(&h.name, DefKind::HParam, h.span, span, parent);
            self.scope.push((h.name.name.clone(), id));
        }
        for input in inputs {
            self.ty(&input.ty, true, span, parent);
            let id = self.define(&input.name, DefKind::Input, input.span, span, parent);
            self.scope.push((input.name.name.clone(), id));
        }
        if let Some(out) = output {
            self.ty(out, true, span, parent);
        }
    }

    /// A written tensor type; in a signature, unknown names in it define symbolic dimensions.
    fn ty(
        &mut self,
        ty: &netc_grammar::ast::TensorType,
        signature: bool,
        item_span: Span,
        parent: Option<usize>,
    ) {
        for dim in &ty.dims {
            match &dim.kind {
                ExprKind::Name(id) if signature && self.resolve(&id.name).is_none() => {
                    let def = self.define(id, DefKind::Dim, id.span, item_span, parent);
                    self.scope.push((id.name.clone(), def));
                }
                _ => self.expr(dim),
            }
        }
    }

    fn body(&mut self, body: &Body, parent: Option<usize>) {
        for stmt in &body.stmts {
            match stmt {
                Stmt::Let(l) => self.let_stmt(l, body.span, parent),
                Stmt::Expr(e) => self.expr(e),
                Stmt::Error(_) => {}
            }
        }
    }

    fn let_stmt(&mut self, l: &LetStmt, enclosing: Span, parent: Option<usize>) {
        let first = self.index.occurrences.len();
        self.expr(&l.value);
        // `let enc = linear(64)`: the callee written as the whole value is bound to the name.
        let callee_span = match &l.value.kind {
            ExprKind::Call(c) => Some(c.callee.span),
            ExprKind::Name(id) => Some(id.span),
            _ => None,
        };
        if let Some(span) = callee_span
            && let Some(o) = self.index.occurrences[first..]
                .iter_mut()
                .find(|o| o.span == span)
        {
            o.bound_to = Some(l.name.name.clone());
        }
        let visible = Span::new(l.span.end, enclosing.end);
        let id = self.define(&l.name, DefKind::Let, l.span, visible, parent);
        self.scope.push((l.name.name.clone(), id));
    }

    fn train_stmts(&mut self, stmts: &[TrainStmt], enclosing: Span, parent: Option<usize>) {
        for stmt in stmts {
            match stmt {
                TrainStmt::Let(l) => self.let_stmt(l, enclosing, parent),
                TrainStmt::Update(u) => {
                    for m in &u.models {
                        let def = self.resolve(&m.name);
                        self.occur(m, def, Role::Name);
                    }
                    self.expr(&u.optimizer);
                }
                TrainStmt::Setting(s) => self.setting(s),
                TrainStmt::Step(step) => {
                    let id = self.define(&step.name, DefKind::Step, step.span, step.span, parent);
                    let mark = self.scope.len();
                    self.train_stmts(&step.stmts, step.span, Some(id));
                    self.scope.truncate(mark);
                }
                TrainStmt::Error(_) => {}
            }
        }
    }

    fn setting(&mut self, s: &Setting) {
        self.args(&s.args, &s.key.name, None);
    }

    fn args(&mut self, args: &[Arg], callee: &str, callee_def: Option<usize>) {
        for arg in args {
            if let Some(name) = &arg.name {
                // A block's hyper-parameter given by name links to its declaration.
                let def = callee_def
                    .filter(|&d| self.index.defs[d].kind == DefKind::Block)
                    .and_then(|block| {
                        self.index.defs.iter().position(|h| {
                            h.kind == DefKind::HParam
                                && h.parent == Some(block)
                                && h.name == name.name
                        })
                    });
                let o = self.occur(name, def, Role::ArgName);
                self.index.occurrences[o].callee = Some(callee.to_string());
            }
            self.expr(&arg.value);
        }
    }

    fn call(&mut self, call: &Call) {
        let def = self.resolve(&call.callee.name);
        self.occur(&call.callee, def, Role::Callee);
        self.args(&call.args, &call.callee.name, def);
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
            ExprKind::Name(id) => {
                let def = self.resolve(&id.name);
                self.occur(id, def, Role::Name);
            }
            ExprKind::Field(base, field) => {
                self.expr(base);
                let def = match &base.kind {
                    ExprKind::Name(id) => self
                        .resolve(&id.name)
                        .filter(|&d| self.index.defs[d].kind == DefKind::Data)
                        .and_then(|_| self.fields.get(&id.name))
                        .and_then(|f| f.get(&field.name).copied()),
                    _ => None,
                };
                self.occur(field, def, Role::Member);
            }
            ExprKind::Call(call) => self.call(call),
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Neg(a) | ExprKind::Paren(a) => self.expr(a),
            ExprKind::Pipe(head, stages) => {
                self.expr(head);
                let mut input = match &head.kind {
                    ExprKind::Name(id) => self.resolve(&id.name).map(|d| self.index.defs[d].span),
                    _ => Some(head.span),
                };
                for stage in stages {
                    match &stage.kind {
                        ExprKind::Name(id) => {
                            let def = self.resolve(&id.name);
                            self.occur(id, def, Role::Callee);
                        }
                        _ => self.expr(stage),
                    }
                    self.index.stages.push(Stage {
                        span: stage.span,
                        input,
                    });
                    input = Some(stage.span);
                }
            }
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                for item in items {
                    self.expr(item);
                }
            }
            ExprKind::Type(ty) => self.ty(ty, false, e.span, None),
        }
    }
}
