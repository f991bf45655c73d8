//! From text to [`File`]: split into items, parse each with pest, build the AST.
//!
//! Parsing never fails as a whole: items and statements that do not parse become `Error` nodes
//! and a [`Diagnostic`] each, so later stages see everything that did parse.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::split::{self, MAX_NESTING, Slice};
use crate::syntax_error;

#[derive(pest_derive::Parser)]
#[grammar = "netc.pest"]
pub(crate) struct NetParser;

/// Longest operator chain, negation run or field chain in one expression. Trees are built
/// recursively by later stages; this bound keeps them shallow on adversarial input.
pub const MAX_CHAIN: usize = 256;

/// Parse a whole file. Always returns a tree; problems are in the diagnostics.
pub fn parse(src: &str) -> (File, Vec<Diagnostic>) {
    let mut file = File {
        items: Vec::new(),
        comments: split::comments(src),
    };
    let mut diags = Vec::new();
    for slice in split::split_items(src) {
        let item = parse_slice(src, &slice, &mut diags);
        file.items.push(item);
    }
    (file, diags)
}

fn parse_slice(src: &str, slice: &Slice, diags: &mut Vec<Diagnostic>) -> Item {
    let text = &src[slice.span.start..slice.span.end];
    if !slice.starts_with_keyword {
        diags.push(syntax_error::junk_between_items(src, slice.span));
        return Item::Error(slice.span);
    }
    if let Some(at) = slice.too_deep {
        diags.push(
            Diagnostic::error(
                "N1005",
                "brackets nested too deeply",
                Span::new(at, at + 1),
                "this bracket",
            )
            .with_help(format!(
                "at most {MAX_NESTING} levels of brackets are allowed"
            )),
        );
        return Item::Error(slice.span);
    }
    match NetParser::parse(Rule::item_only, text) {
        Ok(mut pairs) => {
            let top = pairs.next().expect("item_only always produces one pair");
            let mut builder = Builder {
                offset: slice.span.start,
                src,
                diags,
            };
            let item = top.into_inner().find(|p| p.as_rule() != Rule::EOI);
            match item {
                Some(item) => builder.item(item),
                None => Item::Error(slice.span),
            }
        }
        Err(err) => {
            // The fast parse failed: parse again with error detail to explain why.
            let err = parse_detailed(Rule::item_only, text).err().unwrap_or(err);
            diags.push(syntax_error::from_pest(src, slice, &err));
            // A complete item followed by stray text keeps its tree, so its body is still checked.
            match syntax_error::junk_after_item(text, &err) {
                Some(end) => {
                    let item = Slice {
                        span: Span::new(
                            slice.span.start,
                            slice.span.start + text[..end].trim_end().len(),
                        ),
                        ..slice.clone()
                    };
                    let mut ignored = Vec::new();
                    let parsed = parse_slice(src, &item, &mut ignored);
                    diags.extend(ignored);
                    parsed
                }
                None => Item::Error(slice.span),
            }
        }
    }
}

/// Parse with pest's error detail (the tokens it tried at the failure point) switched on.
/// Detail is a process-wide pest switch and costs time, so only failed parses use it; the
/// mutex keeps it on for the whole of each detailed parse, whatever other threads do, so a
/// message never depends on what else was being parsed.
pub(crate) fn parse_detailed(
    rule: Rule,
    text: &str,
) -> std::result::Result<pest::iterators::Pairs<'_, Rule>, pest::error::Error<Rule>> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = DETAIL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    pest::set_error_detail(true);
    let result = NetParser::parse(rule, text);
    pest::set_error_detail(false);
    result
}

struct Builder<'a> {
    offset: usize,
    src: &'a str,
    diags: &'a mut Vec<Diagnostic>,
}

type Result<T> = std::result::Result<T, Diagnostic>;

impl Builder<'_> {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(s.start() + self.offset, s.end() + self.offset)
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn item(&mut self, pair: Pair<Rule>) -> Item {
        let span = self.span(&pair);
        let result = match pair.as_rule() {
            Rule::const_item => self.const_item(pair).map(Item::Const),
            Rule::model_item => self.model_item(pair).map(Item::Model),
            Rule::block_item => self.block_item(pair).map(Item::Block),
            Rule::data_item => Ok(Item::Data(self.data_item(pair))),
            Rule::train_item => Ok(Item::Train(self.train_item(pair))),
            _ => unreachable!("item is one of five rules"),
        };
        result.unwrap_or_else(|d| {
            self.diags.push(d);
            Item::Error(span)
        })
    }

    fn const_item(&mut self, pair: Pair<Rule>) -> Result<ConstItem> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().skip(1);
        let name = self.ident(inner.next().unwrap());
        let value = self.expr(inner.next().unwrap())?;
        Ok(ConstItem { name, value, span })
    }

    fn model_item(&mut self, pair: Pair<Rule>) -> Result<ModelItem> {
        let span = self.span(&pair);
        let mut name = None;
        let mut inputs = Vec::new();
        let mut output = None;
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::inputs => inputs = self.inputs(p)?,
                Rule::returns => output = Some(self.tensor_type(p.into_inner().next().unwrap())?),
                Rule::body => body = Some(self.body(p)),
                _ => {}
            }
        }
        Ok(ModelItem {
            name: name.unwrap(),
            inputs,
            output,
            body: body.unwrap(),
            span,
        })
    }

    fn block_item(&mut self, pair: Pair<Rule>) -> Result<BlockItem> {
        let span = self.span(&pair);
        let mut name = None;
        let mut hparams = Vec::new();
        let mut inputs = Vec::new();
        let mut output = None;
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::hparams => {
                    for h in p.into_inner() {
                        hparams.push(self.hparam(h)?);
                    }
                }
                Rule::inputs => inputs = self.inputs(p)?,
                Rule::returns => output = Some(self.tensor_type(p.into_inner().next().unwrap())?),
                Rule::body => body = Some(self.body(p)),
                _ => {}
            }
        }
        Ok(BlockItem {
            name: name.unwrap(),
            hparams,
            inputs,
            output,
            body: body.unwrap(),
            span,
        })
    }

    fn hparam(&mut self, pair: Pair<Rule>) -> Result<HParam> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().unwrap());
        let ty = self.ident(inner.next().unwrap());
        let default = inner.next().map(|e| self.expr(e)).transpose()?;
        Ok(HParam {
            name,
            ty,
            default,
            span,
        })
    }

    fn inputs(&mut self, pair: Pair<Rule>) -> Result<Vec<Input>> {
        pair.into_inner()
            .map(|p| {
                let span = self.span(&p);
                let mut inner = p.into_inner();
                let name = self.ident(inner.next().unwrap());
                let ty = self.tensor_type(inner.next().unwrap())?;
                Ok(Input { name, ty, span })
            })
            .collect()
    }

    fn tensor_type(&mut self, pair: Pair<Rule>) -> Result<TensorType> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let dtype_pair = inner.next().unwrap();
        let dtype = DType::parse(dtype_pair.as_str()).expect("grammar only accepts known dtypes");
        let dtype_span = self.span(&dtype_pair);
        let dims = inner
            .next()
            .unwrap()
            .into_inner()
            .map(|d| self.expr(d))
            .collect::<Result<_>>()?;
        Ok(TensorType {
            dtype,
            dtype_span,
            dims,
            span,
        })
    }

    fn body(&mut self, pair: Pair<Rule>) -> Body {
        let span = self.span(&pair);
        let stmts = pair.into_inner().map(|p| self.stmt(p)).collect();
        Body { stmts, span }
    }

    fn stmt(&mut self, pair: Pair<Rule>) -> Stmt {
        let span = self.span(&pair);
        let result = match pair.as_rule() {
            Rule::let_stmt => self.let_stmt(pair).map(Stmt::Let),
            Rule::expr_stmt => self.expr(pair.into_inner().next().unwrap()).map(Stmt::Expr),
            Rule::bad_stmt => Err(syntax_error::bad_statement(
                self.src,
                span,
                Rule::strict_body_stmt,
            )),
            other => unreachable!("unexpected statement rule {other:?}"),
        };
        result.unwrap_or_else(|d| {
            self.diags.push(d);
            Stmt::Error(span)
        })
    }

    fn let_stmt(&mut self, pair: Pair<Rule>) -> Result<LetStmt> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().skip(1);
        let name = self.ident(inner.next().unwrap());
        let value = self.expr(inner.next().unwrap())?;
        Ok(LetStmt { name, value, span })
    }

    fn data_item(&mut self, pair: Pair<Rule>) -> DataItem {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().skip(1);
        let name = self.ident(inner.next().unwrap());
        let entries = inner
            .map(|p| {
                let span = self.span(&p);
                let result = match p.as_rule() {
                    Rule::field_entry => self.field_entry(p).map(DataEntry::Field),
                    Rule::setting => self.setting(p).map(DataEntry::Setting),
                    _ => Err(syntax_error::bad_statement(
                        self.src,
                        span,
                        Rule::strict_data_entry,
                    )),
                };
                result.unwrap_or_else(|d| {
                    self.diags.push(d);
                    DataEntry::Error(span)
                })
            })
            .collect();
        DataItem {
            name,
            entries,
            span,
        }
    }

    fn field_entry(&mut self, pair: Pair<Rule>) -> Result<FieldEntry> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().unwrap());
        let value = self.expr(inner.next().unwrap())?;
        Ok(FieldEntry { name, value, span })
    }

    fn setting(&mut self, pair: Pair<Rule>) -> Result<Setting> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let key = self.ident(inner.next().unwrap());
        let args = inner.map(|a| self.arg(a)).collect::<Result<_>>()?;
        Ok(Setting { key, args, span })
    }

    fn train_item(&mut self, pair: Pair<Rule>) -> TrainItem {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().peekable();
        let keyword_span = self.span(inner.peek().unwrap());
        inner.next();
        let name = match inner.peek() {
            Some(p) if p.as_rule() == Rule::ident => Some(self.ident(inner.next().unwrap())),
            _ => None,
        };
        let stmts = inner.map(|p| self.train_stmt(p)).collect();
        TrainItem {
            name,
            keyword_span,
            stmts,
            span,
        }
    }

    fn train_stmt(&mut self, pair: Pair<Rule>) -> TrainStmt {
        let span = self.span(&pair);
        let result = match pair.as_rule() {
            Rule::step_block => {
                let mut inner = pair.into_inner().skip(1);
                let name = self.ident(inner.next().unwrap());
                let stmts = inner.map(|p| self.train_stmt(p)).collect();
                Ok(TrainStmt::Step(StepBlock { name, stmts, span }))
            }
            Rule::update_stmt => self.update_stmt(pair).map(TrainStmt::Update),
            Rule::let_stmt => self.let_stmt(pair).map(TrainStmt::Let),
            Rule::setting => self.setting(pair).map(TrainStmt::Setting),
            _ => Err(syntax_error::bad_statement(
                self.src,
                span,
                Rule::strict_train_stmt,
            )),
        };
        result.unwrap_or_else(|d| {
            self.diags.push(d);
            TrainStmt::Error(span)
        })
    }

    fn update_stmt(&mut self, pair: Pair<Rule>) -> Result<UpdateStmt> {
        let span = self.span(&pair);
        let mut models = Vec::new();
        let mut optimizer = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => models.push(self.ident(p)),
                Rule::expr => optimizer = Some(self.expr(p)?),
                _ => {}
            }
        }
        Ok(UpdateStmt {
            models,
            optimizer: optimizer.unwrap(),
            span,
        })
    }

    fn arg(&mut self, pair: Pair<Rule>) -> Result<Arg> {
        let span = self.span(&pair);
        let mut name = None;
        let mut value = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::arg_name => name = Some(self.ident(p.into_inner().next().unwrap())),
                Rule::expr => value = Some(self.expr(p)?),
                _ => {}
            }
        }
        Ok(Arg {
            name,
            value: value.unwrap(),
            span,
        })
    }

    // ------------------------------------------------------------ expressions

    fn expr(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let head = self.arith(inner.next().unwrap())?;
        let mut stages = Vec::new();
        for p in inner {
            if p.as_rule() == Rule::stage {
                stages.push(self.postfix(p.into_inner().next().unwrap())?);
            }
        }
        if stages.is_empty() {
            Ok(head)
        } else {
            Ok(Expr {
                kind: ExprKind::Pipe(Box::new(head), stages),
                span,
            })
        }
    }

    /// Operator precedence by shunting-yard: iterative, so long chains cannot overflow here.
    fn arith(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = self.span(&pair);
        let mut operands: Vec<Expr> = Vec::new();
        let mut operators: Vec<BinOp> = Vec::new();
        let mut count = 0;
        fn reduce(operands: &mut Vec<Expr>, op: BinOp) {
            let rhs = operands.pop().unwrap();
            let lhs = operands.pop().unwrap();
            let span = lhs.span.to(rhs.span);
            operands.push(Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            });
        }
        for p in pair.into_inner() {
            let op = match p.as_rule() {
                Rule::add => BinOp::Add,
                Rule::sub => BinOp::Sub,
                Rule::mul => BinOp::Mul,
                Rule::div => BinOp::Div,
                Rule::rem => BinOp::Rem,
                _ => {
                    operands.push(self.unary(p)?);
                    continue;
                }
            };
            count += 1;
            if count > MAX_CHAIN {
                return Err(too_complex(span));
            }
            while let Some(&top) = operators.last() {
                if top.precedence() >= op.precedence() {
                    operators.pop();
                    reduce(&mut operands, top);
                } else {
                    break;
                }
            }
            operators.push(op);
        }
        while let Some(op) = operators.pop() {
            reduce(&mut operands, op);
        }
        Ok(operands.pop().unwrap())
    }

    fn unary(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let mut negs = Vec::new();
        let mut operand = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::neg => negs.push(self.span(&p)),
                _ => operand = Some(self.postfix(p)?),
            }
        }
        if negs.len() > MAX_CHAIN {
            return Err(too_complex(negs[0]));
        }
        let mut e = operand.unwrap();
        for neg in negs.into_iter().rev() {
            let span = neg.to(e.span);
            e = match e.kind {
                ExprKind::Int(v) => Expr {
                    kind: ExprKind::Int(-v),
                    span,
                },
                ExprKind::Float(v) => Expr {
                    kind: ExprKind::Float(-v),
                    span,
                },
                _ => Expr {
                    kind: ExprKind::Neg(Box::new(e)),
                    span,
                },
            };
        }
        Ok(e)
    }

    fn postfix(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let mut inner = pair.into_inner();
        let mut e = self.primary(inner.next().unwrap())?;
        for (n, field) in inner.enumerate() {
            if n >= MAX_CHAIN {
                return Err(too_complex(e.span));
            }
            let field = self.ident(field);
            let span = e.span.to(field.span);
            e = Expr {
                kind: ExprKind::Field(Box::new(e), field),
                span,
            };
        }
        Ok(e)
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::number => return self.number(pair),
            Rule::string => ExprKind::Str(unescape(pair.into_inner().next().unwrap().as_str())),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::tensor_type => ExprKind::Type(self.tensor_type(pair)?),
            Rule::ident => ExprKind::Name(self.ident(pair)),
            Rule::call => {
                let mut inner = pair.into_inner();
                let callee = self.ident(inner.next().unwrap());
                let args = inner.map(|a| self.arg(a)).collect::<Result<_>>()?;
                ExprKind::Call(Call { callee, args, span })
            }
            Rule::paren => {
                let mut trailing = false;
                let mut items = Vec::new();
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::trailing_comma => trailing = true,
                        _ => items.push(self.expr(p)?),
                    }
                }
                if items.len() == 1 && !trailing {
                    ExprKind::Paren(Box::new(items.pop().unwrap()))
                } else {
                    ExprKind::Tuple(items)
                }
            }
            Rule::list => ExprKind::List(
                pair.into_inner()
                    .map(|p| self.expr(p))
                    .collect::<Result<_>>()?,
            ),
            other => unreachable!("unexpected primary {other:?}"),
        };
        Ok(Expr { kind, span })
    }

    fn number(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = self.span(&pair);
        let text = pair.as_str();
        let is_float = text.contains(['.', 'e', 'E']);
        let kind = if is_float {
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => ExprKind::Float(v),
                _ => return Err(number_out_of_range(span, "a finite 64-bit float")),
            }
        } else {
            match text.parse::<i64>() {
                Ok(v) => ExprKind::Int(v),
                Err(_) => return Err(number_out_of_range(span, "a 64-bit integer")),
            }
        };
        Ok(Expr { kind, span })
    }
}

fn too_complex(span: Span) -> Diagnostic {
    Diagnostic::error("N1006", "expression too long", span, "this expression").with_help(format!(
        "split it with `let`; at most {MAX_CHAIN} operators, signs or fields are allowed in a row"
    ))
}

fn number_out_of_range(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        "N1004",
        "number out of range",
        span,
        format!("this does not fit in {what}"),
    )
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
