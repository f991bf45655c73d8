//! The canonical formatter: one layout for every `.net` program, so diffs show meaning, not
//! whitespace.
//!
//! The formatter prints the syntax tree back as text. What the tree does not hold is taken from
//! the source through the spans: number literals keep their written text (so `1e-3` stays
//! `1e-3` and re-parses to the same value), the user's line breaks inside pipelines, argument
//! lists and operator chains are kept as groups, and every `# comment` is put back.
//!
//! Layout rules:
//! - items are separated by exactly one blank line; a file ends with one newline;
//! - bodies are indented by two spaces, one statement, entry or setting per line; a single
//!   blank line is kept where the user had one or more between two lines of a body, none after
//!   `{` or before `}`; an empty body with no comment is `{}`;
//! - one space around binary operators, `|>`, `=` and `->`; `name: value`; `a, b`;
//!   no space before `(` or `[`; settings are `key arg, name: value`;
//! - a pipeline written on one line stays on one line when it fits in 100 columns, and is
//!   otherwise broken before every stage (the first stage stays with the head if that fits);
//!   a pipeline written over several lines keeps its groups (stages on one source line stay on
//!   one output line; a group wider than 100 columns is broken before each stage);
//!   continuation lines start with `|>` and are indented two columns past the head;
//! - a list in brackets (call arguments, shapes, lists, tuples, parameters) or a setting's
//!   arguments keep the user's line breaks between elements, the break moved after the comma
//!   and the next element aligned after the opening bracket; an operator chain keeps the
//!   user's breaks before operators, indented two columns past the chain's start;
//! - comments keep their order and their place: an own-line comment stays on its own line at
//!   the indentation of what follows, a trailing comment stays at the end of the line of the
//!   code it followed, two spaces after it; trailing blanks of a comment are dropped.
//!
//! Two things are written differently from a naive printer because the grammar needs them: an
//! expression statement that starts with `-` would continue the previous line (a line starting
//! with an operator continues the expression), so the statement before it ends with `;`; and a
//! one-element tuple keeps its trailing comma, `(x,)`.
//!
//! The result is checked before it is returned: it must parse without diagnostics, give the same
//! tree (spans aside) and hold the same comments. A formatter that silently changed a program
//! would be worse than one that declines, so a failed check returns `None`.

use crate::ast::*;
use crate::parser::parse;

/// Widest line the formatter aims for, in characters.
const MAX_WIDTH: usize = 100;
/// Indentation step of bodies and continuation lines.
const INDENT: usize = 2;

/// Format a `.net` source file canonically.
///
/// Returns `None` when the file has a syntax error (the parser reported a diagnostic), because a
/// tree with holes cannot be printed back faithfully, and, defensively, when the formatted text
/// would not parse back to the same program with the same comments. Otherwise returns the
/// canonical text, which uses `\n` line endings whatever the input used. Formatting is
/// idempotent: formatting the result again returns it unchanged.
pub fn format(src: &str) -> Option<String> {
    let (file, diags) = parse(src);
    if !diags.is_empty() {
        return None;
    }
    let shape = structure(&file)?;
    let mut printer = Printer::new(src, &file.comments);
    printer.file(&file);
    let out = printer.finish();
    verify(src, &file, &shape, &out).then_some(out)
}

/// Does `out` hold the same program and the same comments as `src`?
fn verify(src: &str, file: &File, shape: &[Sym<'_>], out: &str) -> bool {
    let (again, diags) = parse(out);
    if !diags.is_empty() {
        return false;
    }
    let same_tree = structure(&again).is_some_and(|s| s == shape);
    let texts = |text: &str, f: &File| -> Vec<String> {
        f.comments
            .iter()
            .map(|c| slice(text, c.start, c.end).trim_end().to_string())
            .collect()
    };
    same_tree && texts(src, file) == texts(out, &again)
}

fn slice(src: &str, start: usize, end: usize) -> &str {
    src.get(start..end).unwrap_or("")
}

// ------------------------------------------------------------------ positions

/// Where an expression's last token ends. Spans of some nodes (pipelines, statements) run over
/// the blanks and comments after them, so the end is found through the last token instead.
fn expr_end(e: &Expr) -> usize {
    let mut e = e;
    loop {
        match &e.kind {
            ExprKind::Pipe(_, stages) => match stages.last() {
                Some(last) => e = last,
                None => return e.span.end,
            },
            ExprKind::Binary(_, _, rhs) => e = rhs,
            ExprKind::Neg(inner) => e = inner,
            ExprKind::Field(_, name) => return name.span.end,
            _ => return e.span.end,
        }
    }
}

/// Does the printed expression start with `-`? Such a statement needs a `;` before it.
fn starts_with_minus(src: &str, e: &Expr) -> bool {
    let mut e = e;
    loop {
        match &e.kind {
            ExprKind::Neg(_) => return true,
            ExprKind::Int(_) | ExprKind::Float(_) => {
                return src.as_bytes().get(e.span.start) == Some(&b'-');
            }
            ExprKind::Binary(_, lhs, _) => e = lhs,
            ExprKind::Pipe(head, _) => e = head,
            ExprKind::Field(base, _) => e = base,
            _ => return false,
        }
    }
}

fn setting_end(s: &Setting) -> usize {
    s.args.last().map_or(s.key.span.end, |a| expr_end(&a.value))
}

/// One line of a body: a statement, a data entry or a training statement.
#[derive(Clone, Copy)]
enum Line<'a> {
    Stmt(&'a Stmt),
    Entry(&'a DataEntry),
    Train(&'a TrainStmt),
}

impl Line<'_> {
    fn start(self) -> usize {
        match self {
            Line::Stmt(s) => s.span().start,
            Line::Entry(e) => e.span().start,
            Line::Train(t) => t.span().start,
        }
    }

    fn end(self) -> usize {
        match self {
            Line::Stmt(Stmt::Let(l)) | Line::Train(TrainStmt::Let(l)) => expr_end(&l.value),
            Line::Stmt(Stmt::Expr(e)) => expr_end(e),
            Line::Stmt(Stmt::Error(s))
            | Line::Entry(DataEntry::Error(s))
            | Line::Train(TrainStmt::Error(s)) => s.end,
            Line::Entry(DataEntry::Field(f)) => expr_end(&f.value),
            Line::Entry(DataEntry::Setting(s)) | Line::Train(TrainStmt::Setting(s)) => {
                setting_end(s)
            }
            Line::Train(TrainStmt::Update(u)) => expr_end(&u.optimizer),
            Line::Train(TrainStmt::Step(s)) => s.span.end,
        }
    }

    fn starts_with_minus(self, src: &str) -> bool {
        matches!(self, Line::Stmt(Stmt::Expr(e)) if starts_with_minus(src, e))
    }
}

/// Where the previous top-level line came from, for the blank-line rules between items.
#[derive(Clone, Copy, PartialEq)]
enum Prev {
    Start,
    Item,
    Comment,
}

// ------------------------------------------------------------------ printer

struct Printer<'a> {
    src: &'a str,
    /// Every comment of the file, in order; `next` is the first one not printed yet.
    comments: &'a [Span],
    next: usize,
    out: String,
    /// Byte offset in `out` where the current line starts.
    line_start: usize,
    /// Indentation of a line broken inside an expression (by a comment or a kept break).
    cont: usize,
    /// Source offset where the last printed line element (statement, item, comment) ended; the
    /// text between it and the next one tells whether the user left a blank line.
    last: usize,
    /// Measuring mode: print everything on one line (pipelines never break).
    flat: bool,
}

impl<'a> Printer<'a> {
    fn new(src: &'a str, comments: &'a [Span]) -> Self {
        Printer {
            src,
            comments,
            next: 0,
            out: String::new(),
            line_start: 0,
            cont: INDENT,
            last: 0,
            flat: false,
        }
    }

    fn finish(mut self) -> String {
        self.trim();
        while self.out.ends_with('\n') {
            self.out.pop();
        }
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out
    }

    // -------------------------------------------------------------- text primitives

    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn line_blank(&self) -> bool {
        self.out[self.line_start..].bytes().all(|b| b == b' ')
    }

    fn col(&self) -> usize {
        self.out[self.line_start..].chars().count()
    }

    /// Drop trailing spaces of the current line.
    fn trim(&mut self) {
        while self.out.len() > self.line_start && self.out.ends_with(' ') {
            self.out.pop();
        }
    }

    fn indent(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    fn newline(&mut self, indent: usize) {
        self.trim();
        self.out.push('\n');
        self.line_start = self.out.len();
        self.indent(indent);
    }

    /// Start a fresh line at `indent`, reusing the current one if nothing is on it yet.
    fn line(&mut self, indent: usize) {
        if self.line_blank() {
            self.trim();
            self.indent(indent);
        } else {
            self.newline(indent);
        }
    }

    /// Make the output end with one empty line (none at the very start of the file).
    fn blank_line(&mut self) {
        self.trim();
        if self.out.is_empty() {
            return;
        }
        if !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        if !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
        self.line_start = self.out.len();
    }

    // -------------------------------------------------------------- source queries

    fn text(&self, span: Span) -> &'a str {
        slice(self.src, span.start, span.end)
    }

    /// Skip blanks, newlines and comments from `i`: the offset of the next token.
    fn skip_trivia(&self, mut i: usize) -> usize {
        let b = self.src.as_bytes();
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => break,
            }
        }
        i
    }

    /// The closing bracket after a list's last element (or after its opening bracket).
    fn find_close(&self, mut i: usize) -> usize {
        loop {
            i = self.skip_trivia(i);
            if self.src.as_bytes().get(i) == Some(&b',') {
                i += 1;
            } else {
                return i;
            }
        }
    }

    fn has_newline(&self, start: usize, end: usize) -> bool {
        start < end && slice(self.src, start, end).contains('\n')
    }

    fn blank_between(&self, start: usize, end: usize) -> bool {
        start < end && slice(self.src, start, end).matches('\n').count() >= 2
    }

    /// Is the comment alone on its source line (not after code)?
    fn own_line(&self, c: Span) -> bool {
        let before = slice(self.src, 0, c.start);
        let line = before.rfind('\n').map_or(before, |i| &before[i + 1..]);
        line.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
    }

    // -------------------------------------------------------------- comments

    fn pending(&self, pos: usize) -> Option<Span> {
        self.comments
            .get(self.next)
            .filter(|c| c.start < pos)
            .copied()
    }

    fn comment_text(&self, c: Span) -> &'a str {
        self.text(c).trim_end()
    }

    /// Append a comment to the end of the current line.
    fn trailing_comment(&mut self, c: Span) {
        self.trim();
        self.push("  ");
        self.push(self.comment_text(c));
        self.last = c.end;
    }

    /// Print the comments before `pos` inside an expression. Each ends its line, so the next
    /// token starts a continuation line at `cont`; callers flush only where the grammar allows
    /// a newline before the next token (as it did in the source, where the comment was).
    fn flush_inline(&mut self, pos: usize) {
        while let Some(c) = self.pending(pos) {
            self.next += 1;
            if !self.line_blank() {
                if self.own_line(c) {
                    self.newline(self.cont);
                } else {
                    self.trim();
                    self.push("  ");
                }
            }
            self.push(self.comment_text(c));
            self.last = c.end;
            self.newline(self.cont);
        }
    }

    /// Print the comments before `pos` between the lines of a body indented by `indent`.
    fn flush_lines(&mut self, pos: usize, indent: usize, at_start: &mut bool) {
        while let Some(c) = self.pending(pos) {
            self.next += 1;
            if !self.own_line(c) && !self.line_blank() {
                self.trailing_comment(c);
                continue;
            }
            if !*at_start && self.blank_between(self.last, c.start) {
                self.blank_line();
            }
            self.line(indent);
            self.push(self.comment_text(c));
            self.last = c.end;
            *at_start = false;
        }
    }

    /// Print a token that starts at source offset `pos`, after the comments before it.
    fn tok(&mut self, pos: usize, text: &str) {
        self.flush_inline(pos);
        self.push(text);
    }

    // -------------------------------------------------------------- file and items

    fn file(&mut self, file: &File) {
        let mut prev = Prev::Start;
        for item in &file.items {
            let start = item.span().start;
            self.top_comments(start, &mut prev, true);
            match prev {
                Prev::Start => {}
                Prev::Item => self.blank_line(),
                Prev::Comment => {
                    if self.blank_between(self.last, start) {
                        self.blank_line();
                    }
                }
            }
            self.line(0);
            self.cont = INDENT;
            self.item(item);
            self.last = match item {
                Item::Const(c) => expr_end(&c.value),
                other => other.span().end,
            };
            prev = Prev::Item;
        }
        self.top_comments(usize::MAX, &mut prev, false);
    }

    /// Comments between items: an own-line comment after an item is separated from it by a
    /// blank line when another item follows (it introduces that item).
    fn top_comments(&mut self, pos: usize, prev: &mut Prev, item_follows: bool) {
        while let Some(c) = self.pending(pos) {
            self.next += 1;
            if !self.own_line(c) && !self.line_blank() {
                self.trailing_comment(c);
                continue;
            }
            let blank = match *prev {
                Prev::Start => false,
                Prev::Item => item_follows || self.blank_between(self.last, c.start),
                Prev::Comment => self.blank_between(self.last, c.start),
            };
            if blank {
                self.blank_line();
            }
            self.line(0);
            self.push(self.comment_text(c));
            self.last = c.end;
            *prev = Prev::Comment;
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Const(c) => {
                self.push("const ");
                self.push(&c.name.name);
                self.push(" = ");
                self.expr(&c.value);
            }
            Item::Model(m) => {
                self.push("model ");
                self.push(&m.name.name);
                let open = self.skip_trivia(m.name.span.end);
                let close = self.inputs(open, &m.inputs);
                self.returns(close, m.output.as_ref());
                self.push(" ");
                self.body(&m.body, 0);
            }
            Item::Block(b) => {
                self.push("block ");
                self.push(&b.name.name);
                let open = self.skip_trivia(b.name.span.end);
                let close = self.hparams(open, &b.hparams);
                let open = self.skip_trivia(close + 1);
                let close = self.inputs(open, &b.inputs);
                self.returns(close, b.output.as_ref());
                self.push(" ");
                self.body(&b.body, 0);
            }
            Item::Data(d) => {
                self.push("data ");
                self.push(&d.name.name);
                self.push(" ");
                let lines: Vec<Line> = d.entries.iter().map(Line::Entry).collect();
                let open = self.skip_trivia(d.name.span.end);
                self.lines(open, &lines, d.span.end.saturating_sub(1), 0);
            }
            Item::Train(t) => {
                self.push("train ");
                let after = match &t.name {
                    Some(name) => {
                        self.push(&name.name);
                        self.push(" ");
                        name.span.end
                    }
                    None => t.keyword_span.end,
                };
                let lines: Vec<Line> = t.stmts.iter().map(Line::Train).collect();
                let open = self.skip_trivia(after);
                self.lines(open, &lines, t.span.end.saturating_sub(1), 0);
            }
            Item::Error(span) => self.push(self.text(*span)),
        }
    }

    /// `(x: f32[B, 64], ...)`; returns the source offset of the closing `)`.
    fn inputs(&mut self, open: usize, inputs: &[Input]) -> usize {
        let ranges: Vec<(usize, usize)> = inputs
            .iter()
            .map(|i| (i.span.start, i.ty.span.end))
            .collect();
        let close = self.find_close(ranges.last().map_or(open + 1, |r| r.1));
        self.seq(("(", open), &ranges, false, (")", close), |p, i| {
            let input = &inputs[i];
            p.tok(input.name.span.start, &input.name.name);
            p.push(": ");
            p.tensor_type(&input.ty);
        });
        close
    }

    /// `(d: int, p: float = 0.1)`; returns the source offset of the closing `)`.
    fn hparams(&mut self, open: usize, hparams: &[HParam]) -> usize {
        let ranges: Vec<(usize, usize)> = hparams
            .iter()
            .map(|h| {
                let end = h.default.as_ref().map_or(h.ty.span.end, expr_end);
                (h.span.start, end)
            })
            .collect();
        let close = self.find_close(ranges.last().map_or(open + 1, |r| r.1));
        self.seq(("(", open), &ranges, false, (")", close), |p, i| {
            let h = &hparams[i];
            p.tok(h.name.span.start, &h.name.name);
            p.push(": ");
            p.tok(h.ty.span.start, &h.ty.name);
            if let Some(default) = &h.default {
                p.push(" = ");
                p.expr(default);
            }
        });
        close
    }

    /// ` -> f32[B, 10]`, after the inputs' closing `)` at `close`.
    fn returns(&mut self, close: usize, output: Option<&TensorType>) {
        let Some(ty) = output else { return };
        let arrow = self.skip_trivia(close + 1);
        self.push(" ");
        self.tok(arrow, "->");
        self.push(" ");
        self.tensor_type(ty);
    }

    fn body(&mut self, body: &Body, indent: usize) {
        let lines: Vec<Line> = body.stmts.iter().map(Line::Stmt).collect();
        self.lines(
            body.span.start,
            &lines,
            body.span.end.saturating_sub(1),
            indent,
        );
    }

    /// `{`, one line per element at `indent + 2` with the comments between them, `}`.
    fn lines(&mut self, open: usize, lines: &[Line], close: usize, indent: usize) {
        self.push("{");
        self.last = open + 1;
        if lines.is_empty() && self.pending(close).is_none() {
            self.push("}");
            self.last = close + 1;
            return;
        }
        let inner = indent + INDENT;
        let mut at_start = true;
        for (i, &line) in lines.iter().enumerate() {
            let start = line.start();
            self.flush_lines(start, inner, &mut at_start);
            if !at_start && self.blank_between(self.last, start) {
                self.blank_line();
            }
            self.line(inner);
            self.cont = inner + INDENT;
            self.print_line(line, inner);
            if lines
                .get(i + 1)
                .is_some_and(|next| next.starts_with_minus(self.src))
            {
                self.push(";");
            }
            self.last = line.end();
            at_start = false;
        }
        self.flush_lines(close, inner, &mut at_start);
        self.line(indent);
        self.push("}");
        self.last = close + 1;
    }

    fn print_line(&mut self, line: Line, indent: usize) {
        match line {
            Line::Stmt(Stmt::Let(l)) | Line::Train(TrainStmt::Let(l)) => {
                self.push("let ");
                self.push(&l.name.name);
                self.push(" = ");
                self.expr(&l.value);
            }
            Line::Stmt(Stmt::Expr(e)) => self.expr(e),
            Line::Stmt(Stmt::Error(s))
            | Line::Entry(DataEntry::Error(s))
            | Line::Train(TrainStmt::Error(s)) => self.push(self.text(*s)),
            Line::Entry(DataEntry::Field(f)) => {
                self.push(&f.name.name);
                self.push(": ");
                self.expr(&f.value);
            }
            Line::Entry(DataEntry::Setting(s)) | Line::Train(TrainStmt::Setting(s)) => {
                self.setting(s)
            }
            Line::Train(TrainStmt::Update(u)) => {
                self.push("update ");
                for (i, model) in u.models.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.push(&model.name);
                }
                self.push(" with ");
                self.expr(&u.optimizer);
            }
            Line::Train(TrainStmt::Step(s)) => {
                self.push("step ");
                self.push(&s.name.name);
                self.push(" ");
                let lines: Vec<Line> = s.stmts.iter().map(Line::Train).collect();
                let open = self.skip_trivia(s.name.span.end);
                self.lines(open, &lines, s.span.end.saturating_sub(1), indent);
            }
        }
    }

    /// `key arg, name: arg`, keeping the user's line breaks between arguments.
    fn setting(&mut self, s: &Setting) {
        self.push(&s.key.name);
        if s.args.is_empty() {
            return;
        }
        self.push(" ");
        let saved = self.cont;
        self.cont = self.col();
        let mut prev_end = 0;
        for (i, arg) in s.args.iter().enumerate() {
            if i > 0 {
                self.push(",");
                self.separate(prev_end, arg.span.start);
            }
            self.arg(arg);
            prev_end = expr_end(&arg.value);
        }
        self.cont = saved;
    }

    /// Between two elements of a list, after the comma: comments, then a kept line break
    /// (aligned at `cont`) or a space.
    fn separate(&mut self, prev_end: usize, next_start: usize) {
        let broke = self.has_newline(prev_end, next_start);
        self.flush_inline(next_start);
        if !self.line_blank() {
            if broke {
                self.newline(self.cont);
            } else {
                self.push(" ");
            }
        }
    }

    /// A bracketed, comma-separated list: `open`, elements, `close`. `ranges` are the source
    /// start and end of each element; `each` prints element `i`.
    fn seq(
        &mut self,
        open: (&str, usize),
        ranges: &[(usize, usize)],
        trailing_comma: bool,
        close: (&str, usize),
        mut each: impl FnMut(&mut Self, usize),
    ) {
        self.tok(open.1, open.0);
        let saved = self.cont;
        let inner = self.col();
        self.cont = inner;
        for (i, &(start, _)) in ranges.iter().enumerate() {
            if i > 0 {
                self.push(",");
                self.separate(ranges[i - 1].1, start);
            }
            each(self, i);
        }
        if trailing_comma {
            self.push(",");
        }
        self.flush_inline(close.1);
        if self.line_blank() {
            self.trim();
            self.indent(inner.saturating_sub(1));
        }
        self.cont = saved;
        self.push(close.0);
    }

    // -------------------------------------------------------------- expressions

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Float(_) => self.number(e.span),
            ExprKind::Str(s) => self.tok(e.span.start, &quote(s)),
            ExprKind::Bool(b) => self.tok(e.span.start, if *b { "true" } else { "false" }),
            ExprKind::Name(id) => self.tok(id.span.start, &id.name),
            ExprKind::Field(..) => self.field(e),
            ExprKind::Call(c) => self.call(c),
            ExprKind::Binary(..) => self.binary(e),
            ExprKind::Neg(_) => {
                let mut e = e;
                while let ExprKind::Neg(inner) = &e.kind {
                    self.tok(e.span.start, "-");
                    e = inner;
                }
                self.expr(e);
            }
            ExprKind::Pipe(head, stages) => self.pipe(e, head, stages),
            ExprKind::Tuple(items) => {
                let ranges: Vec<(usize, usize)> =
                    items.iter().map(|x| (x.span.start, expr_end(x))).collect();
                let close = e.span.end.saturating_sub(1);
                self.seq(
                    ("(", e.span.start),
                    &ranges,
                    items.len() == 1,
                    (")", close),
                    |p, i| p.expr(&items[i]),
                );
            }
            ExprKind::List(items) => {
                let ranges: Vec<(usize, usize)> =
                    items.iter().map(|x| (x.span.start, expr_end(x))).collect();
                let close = e.span.end.saturating_sub(1);
                self.seq(("[", e.span.start), &ranges, false, ("]", close), |p, i| {
                    p.expr(&items[i])
                });
            }
            ExprKind::Type(t) => self.tensor_type(t),
            ExprKind::Paren(inner) => {
                let close = e.span.end.saturating_sub(1);
                self.seq(
                    ("(", e.span.start),
                    &[(inner.span.start, expr_end(inner))],
                    false,
                    (")", close),
                    |p, _| p.expr(inner),
                );
            }
        }
    }

    /// A number keeps its written text; the signs folded into it are printed one by one so a
    /// comment between them (`- # why\n -1`) stays where it was.
    fn number(&mut self, span: Span) {
        let text = self.text(span);
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'-' => {
                    self.tok(span.start + i, "-");
                    i += 1;
                }
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => break,
            }
        }
        self.tok(span.start + i, text.get(i..).unwrap_or(""));
    }

    fn field(&mut self, e: &Expr) {
        let mut names = Vec::new();
        let mut base = e;
        while let ExprKind::Field(inner, name) = &base.kind {
            names.push(name);
            base = inner;
        }
        self.expr(base);
        let bytes = self.src.as_bytes();
        for name in names.into_iter().rev() {
            // Only blanks can stand between `.` and the name.
            let mut dot = name.span.start;
            while dot > 0 && matches!(bytes.get(dot - 1), Some(b' ' | b'\t' | b'\r')) {
                dot -= 1;
            }
            self.tok(dot.saturating_sub(1), ".");
            self.push(&name.name);
        }
    }

    fn call(&mut self, c: &Call) {
        self.tok(c.callee.span.start, &c.callee.name);
        let open = self.skip_trivia(c.callee.span.end);
        let ranges: Vec<(usize, usize)> = c
            .args
            .iter()
            .map(|a| (a.span.start, expr_end(&a.value)))
            .collect();
        let close = c.span.end.saturating_sub(1);
        self.seq(("(", open), &ranges, false, (")", close), |p, i| {
            p.arg(&c.args[i])
        });
    }

    fn arg(&mut self, a: &Arg) {
        if let Some(name) = &a.name {
            self.tok(name.span.start, &name.name);
            self.push(": ");
        }
        self.expr(&a.value);
    }

    fn tensor_type(&mut self, t: &TensorType) {
        self.tok(t.dtype_span.start, t.dtype.name());
        let open = self.skip_trivia(t.dtype_span.end);
        let ranges: Vec<(usize, usize)> =
            t.dims.iter().map(|d| (d.span.start, expr_end(d))).collect();
        let close = t.span.end.saturating_sub(1);
        self.seq(("[", open), &ranges, false, ("]", close), |p, i| {
            p.expr(&t.dims[i])
        });
    }

    /// An operator chain, printed left to right without recursion on its left spine. A break
    /// the user made before an operator is kept.
    fn binary(&mut self, e: &Expr) {
        let mut rights = Vec::new();
        let mut left = e;
        while let ExprKind::Binary(op, lhs, rhs) = &left.kind {
            rights.push((*op, &**rhs));
            left = lhs;
        }
        self.flush_inline(left.span.start);
        let saved = self.cont;
        let cont = self.col() + INDENT;
        self.expr(left);
        let mut prev_end = expr_end(left);
        for (op, rhs) in rights.into_iter().rev() {
            let at = self.skip_trivia(prev_end);
            let broke = self.has_newline(prev_end, at);
            self.cont = cont;
            self.flush_inline(at);
            if !self.line_blank() {
                if broke {
                    self.newline(cont);
                } else {
                    self.push(" ");
                }
            }
            self.push(op.symbol());
            self.push(" ");
            self.expr(rhs);
            prev_end = expr_end(rhs);
        }
        self.cont = saved;
    }

    /// A pipeline: see the module documentation for when and where it breaks.
    fn pipe(&mut self, e: &Expr, head: &Expr, stages: &[Expr]) {
        self.flush_inline(head.span.start);
        let head_col = self.col();
        let cont = head_col + INDENT;
        let breaks = self.pipe_breaks(e, head, stages, head_col);
        let saved = self.cont;
        self.expr(head);
        let mut prev_end = expr_end(head);
        for (stage, &brk) in stages.iter().zip(&breaks) {
            let at = self.skip_trivia(prev_end);
            self.cont = cont;
            self.flush_inline(at);
            if !self.line_blank() {
                if brk {
                    self.newline(cont);
                } else {
                    self.push(" ");
                }
            }
            self.push("|> ");
            self.expr(stage);
            prev_end = expr_end(stage);
        }
        self.cont = saved;
    }

    /// For each stage, whether a line break goes before it.
    fn pipe_breaks(&self, e: &Expr, head: &Expr, stages: &[Expr], head_col: usize) -> Vec<bool> {
        if self.flat {
            return vec![false; stages.len()];
        }
        if !self.breaks_inside(e) {
            if self
                .flat_width(e)
                .is_some_and(|w| head_col + w <= MAX_WIDTH)
            {
                return vec![false; stages.len()];
            }
            return self.split_group(head, stages, head_col);
        }
        // Keep the user's groups: a break where the source had one.
        let mut breaks: Vec<bool> = Vec::with_capacity(stages.len());
        let mut prev_end = expr_end(head);
        for stage in stages {
            breaks.push(self.has_newline(prev_end, stage.span.start));
            prev_end = expr_end(stage);
        }
        // Break up a group that is too wide. Groups after the first start where `breaks` is set.
        let cont = head_col + INDENT;
        let starts: Vec<usize> = (0..stages.len()).filter(|&i| breaks[i]).collect();
        let first_end = starts.first().copied().unwrap_or(stages.len());
        let first = &stages[..first_end];
        if self
            .group_width(Some(head), first)
            .is_some_and(|w| head_col + w > MAX_WIDTH)
        {
            let split = self.split_group(head, first, head_col);
            breaks[..first_end].copy_from_slice(&split);
        }
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(stages.len());
            if self
                .group_width(None, &stages[start..end])
                .is_some_and(|w| cont + w > MAX_WIDTH)
            {
                breaks[start..end].fill(true);
            }
        }
        breaks
    }

    /// Breaks for a head and stages that do not fit on one line: the first stage stays with the
    /// head if that fits, every other stage gets its own line.
    fn split_group(&self, head: &Expr, stages: &[Expr], head_col: usize) -> Vec<bool> {
        let mut breaks = vec![true; stages.len()];
        if let Some(first) = stages.first() {
            let pair = self.group_width(Some(head), std::slice::from_ref(first));
            if pair.is_some_and(|w| head_col + w <= MAX_WIDTH) {
                breaks[0] = false;
            }
        }
        breaks
    }

    /// Width of a pipeline group printed on one line (with `|> ` before a group without head);
    /// `None` when a part of it spans lines.
    fn group_width(&self, head: Option<&Expr>, stages: &[Expr]) -> Option<usize> {
        let mut width = match head {
            Some(h) => self.flat_width(h)?,
            None => 0,
        };
        for (i, stage) in stages.iter().enumerate() {
            let sep = if head.is_none() && i == 0 { 3 } else { 4 };
            width += sep + self.flat_width(stage)?;
        }
        Some(width)
    }

    /// Width of an expression printed on one line, or `None` if it cannot be (it holds a
    /// comment or a kept line break).
    fn flat_width(&self, e: &Expr) -> Option<usize> {
        if self.breaks_inside(e) {
            return None;
        }
        let mut p = Printer::new(self.src, &[]);
        p.flat = true;
        p.expr(e);
        (!p.out.contains('\n')).then(|| p.out.chars().count())
    }

    /// Will the printed expression hold a line break whatever the width: a comment, or a line
    /// break the printer keeps (between pipeline stages, before an operator, between the elements
    /// of a bracketed list)? Line breaks the printer drops do not count, so the answer is the same
    /// for the source and for its formatted text; layout decisions built on it are idempotent.
    fn breaks_inside(&self, e: &Expr) -> bool {
        let end = expr_end(e);
        let first = self.comments.partition_point(|c| c.start < e.span.start);
        if self.comments.get(first).is_some_and(|c| c.start < end) {
            return true;
        }
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match &e.kind {
                ExprKind::Pipe(head, stages) => {
                    let mut prev_end = expr_end(head);
                    for stage in stages {
                        if self.has_newline(prev_end, stage.span.start) {
                            return true;
                        }
                        prev_end = expr_end(stage);
                    }
                    stack.push(head);
                    stack.extend(stages);
                }
                ExprKind::Binary(_, lhs, rhs) => {
                    let lhs_end = expr_end(lhs);
                    if self.has_newline(lhs_end, self.skip_trivia(lhs_end)) {
                        return true;
                    }
                    stack.push(lhs);
                    stack.push(rhs);
                }
                ExprKind::Call(c) => {
                    let starts = c.args.iter().map(|a| a.span.start);
                    let ends = c.args.iter().map(|a| expr_end(&a.value));
                    if self.list_breaks(starts, ends) {
                        return true;
                    }
                    stack.extend(c.args.iter().map(|a| &a.value));
                }
                ExprKind::Tuple(items) | ExprKind::List(items) => {
                    if self.list_breaks(
                        items.iter().map(|x| x.span.start),
                        items.iter().map(expr_end),
                    ) {
                        return true;
                    }
                    stack.extend(items);
                }
                ExprKind::Type(t) => {
                    let dims = &t.dims;
                    if self
                        .list_breaks(dims.iter().map(|x| x.span.start), dims.iter().map(expr_end))
                    {
                        return true;
                    }
                    stack.extend(dims);
                }
                ExprKind::Paren(inner) | ExprKind::Neg(inner) | ExprKind::Field(inner, _) => {
                    stack.push(inner)
                }
                ExprKind::Int(_)
                | ExprKind::Float(_)
                | ExprKind::Str(_)
                | ExprKind::Bool(_)
                | ExprKind::Name(_) => {}
            }
        }
        false
    }

    /// Is there a kept line break between two elements of a list, given the elements' starts
    /// and ends (as `seq` and `separate` see them)?
    fn list_breaks(
        &self,
        starts: impl Iterator<Item = usize>,
        ends: impl Iterator<Item = usize>,
    ) -> bool {
        starts
            .skip(1)
            .zip(ends)
            .any(|(next_start, prev_end)| self.has_newline(prev_end, next_start))
    }
}

/// A string literal with the escapes the parser understands.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            // `\r` would read back as `r`; a backslash before a raw carriage return keeps it.
            '\r' => out.push_str("\\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ------------------------------------------------------------------ tree comparison

/// One symbol of a span-free serialisation of the tree; equal trees give equal sequences.
#[derive(Debug, PartialEq)]
enum Sym<'a> {
    Tag(&'static str),
    Text(&'a str),
    Int(i64),
    Float(u64),
    Len(usize),
}

enum Node<'a> {
    Expr(&'a Expr),
    Line(Line<'a>),
    Arg(&'a Arg),
    Type(&'a TensorType),
}

/// The tree without spans, built without recursion (trees can be deep); `None` if it holds an
/// error node.
fn structure(file: &File) -> Option<Vec<Sym<'_>>> {
    let mut out = vec![Sym::Len(file.items.len())];
    let mut stack: Vec<Node> = Vec::new();
    for item in &file.items {
        match item {
            Item::Const(c) => {
                out.extend([Sym::Tag("const"), Sym::Text(&c.name.name)]);
                stack.push(Node::Expr(&c.value));
            }
            Item::Model(m) => {
                out.extend([Sym::Tag("model"), Sym::Text(&m.name.name)]);
                inputs(&mut out, &mut stack, &m.inputs, m.output.as_ref());
                out.push(Sym::Len(m.body.stmts.len()));
                stack.extend(m.body.stmts.iter().map(|s| Node::Line(Line::Stmt(s))));
            }
            Item::Block(b) => {
                out.extend([
                    Sym::Tag("block"),
                    Sym::Text(&b.name.name),
                    Sym::Len(b.hparams.len()),
                ]);
                for h in &b.hparams {
                    out.extend([Sym::Text(&h.name.name), Sym::Text(&h.ty.name)]);
                    out.push(Sym::Len(h.default.is_some() as usize));
                    stack.extend(h.default.as_ref().map(Node::Expr));
                }
                inputs(&mut out, &mut stack, &b.inputs, b.output.as_ref());
                out.push(Sym::Len(b.body.stmts.len()));
                stack.extend(b.body.stmts.iter().map(|s| Node::Line(Line::Stmt(s))));
            }
            Item::Data(d) => {
                out.extend([
                    Sym::Tag("data"),
                    Sym::Text(&d.name.name),
                    Sym::Len(d.entries.len()),
                ]);
                stack.extend(d.entries.iter().map(|e| Node::Line(Line::Entry(e))));
            }
            Item::Train(t) => {
                out.extend([
                    Sym::Tag("train"),
                    Sym::Text(t.name.as_ref().map_or("", |n| &n.name)),
                    Sym::Len(t.name.is_some() as usize),
                    Sym::Len(t.stmts.len()),
                ]);
                stack.extend(t.stmts.iter().map(|s| Node::Line(Line::Train(s))));
            }
            Item::Error(_) => return None,
        }
        // Children in a stack come out in reverse; that is fine as both trees use one order.
        while let Some(node) = stack.pop() {
            node_syms(node, &mut out, &mut stack)?;
        }
    }
    Some(out)
}

fn inputs<'a>(
    out: &mut Vec<Sym<'a>>,
    stack: &mut Vec<Node<'a>>,
    inputs: &'a [Input],
    output: Option<&'a TensorType>,
) {
    out.push(Sym::Len(inputs.len()));
    for input in inputs {
        out.push(Sym::Text(&input.name.name));
        stack.push(Node::Type(&input.ty));
    }
    out.push(Sym::Len(output.is_some() as usize));
    stack.extend(output.map(Node::Type));
}

fn node_syms<'a>(node: Node<'a>, out: &mut Vec<Sym<'a>>, stack: &mut Vec<Node<'a>>) -> Option<()> {
    match node {
        Node::Type(t) => {
            out.extend([Sym::Tag(t.dtype.name()), Sym::Len(t.dims.len())]);
            stack.extend(t.dims.iter().map(Node::Expr));
        }
        Node::Arg(a) => {
            out.push(Sym::Len(a.name.is_some() as usize));
            out.extend(a.name.as_ref().map(|n| Sym::Text(&n.name)));
            stack.push(Node::Expr(&a.value));
        }
        Node::Line(line) => match line {
            Line::Stmt(Stmt::Let(l)) | Line::Train(TrainStmt::Let(l)) => {
                out.extend([Sym::Tag("let"), Sym::Text(&l.name.name)]);
                stack.push(Node::Expr(&l.value));
            }
            Line::Stmt(Stmt::Expr(e)) => {
                out.push(Sym::Tag("expr"));
                stack.push(Node::Expr(e));
            }
            Line::Stmt(Stmt::Error(_))
            | Line::Entry(DataEntry::Error(_))
            | Line::Train(TrainStmt::Error(_)) => return None,
            Line::Entry(DataEntry::Field(f)) => {
                out.extend([Sym::Tag("field"), Sym::Text(&f.name.name)]);
                stack.push(Node::Expr(&f.value));
            }
            Line::Entry(DataEntry::Setting(s)) | Line::Train(TrainStmt::Setting(s)) => {
                out.extend([
                    Sym::Tag("setting"),
                    Sym::Text(&s.key.name),
                    Sym::Len(s.args.len()),
                ]);
                stack.extend(s.args.iter().map(Node::Arg));
            }
            Line::Train(TrainStmt::Update(u)) => {
                out.extend([Sym::Tag("update"), Sym::Len(u.models.len())]);
                out.extend(u.models.iter().map(|m| Sym::Text(&m.name)));
                stack.push(Node::Expr(&u.optimizer));
            }
            Line::Train(TrainStmt::Step(s)) => {
                out.extend([
                    Sym::Tag("step"),
                    Sym::Text(&s.name.name),
                    Sym::Len(s.stmts.len()),
                ]);
                stack.extend(s.stmts.iter().map(|t| Node::Line(Line::Train(t))));
            }
        },
        Node::Expr(e) => match &e.kind {
            ExprKind::Int(v) => out.extend([Sym::Tag("int"), Sym::Int(*v)]),
            ExprKind::Float(v) => out.extend([Sym::Tag("float"), Sym::Float(v.to_bits())]),
            ExprKind::Str(s) => out.extend([Sym::Tag("str"), Sym::Text(s)]),
            ExprKind::Bool(b) => out.extend([Sym::Tag("bool"), Sym::Len(*b as usize)]),
            ExprKind::Name(n) => out.extend([Sym::Tag("name"), Sym::Text(&n.name)]),
            ExprKind::Field(base, name) => {
                out.extend([Sym::Tag("field"), Sym::Text(&name.name)]);
                stack.push(Node::Expr(base));
            }
            ExprKind::Call(c) => {
                out.extend([
                    Sym::Tag("call"),
                    Sym::Text(&c.callee.name),
                    Sym::Len(c.args.len()),
                ]);
                stack.extend(c.args.iter().map(Node::Arg));
            }
            ExprKind::Binary(op, lhs, rhs) => {
                out.extend([Sym::Tag("binary"), Sym::Tag(op.symbol())]);
                stack.extend([Node::Expr(lhs), Node::Expr(rhs)]);
            }
            ExprKind::Neg(inner) => {
                out.push(Sym::Tag("neg"));
                stack.push(Node::Expr(inner));
            }
            ExprKind::Pipe(head, stages) => {
                out.extend([Sym::Tag("pipe"), Sym::Len(stages.len())]);
                stack.push(Node::Expr(head));
                stack.extend(stages.iter().map(Node::Expr));
            }
            ExprKind::Tuple(items) => {
                out.extend([Sym::Tag("tuple"), Sym::Len(items.len())]);
                stack.extend(items.iter().map(Node::Expr));
            }
            ExprKind::List(items) => {
                out.extend([Sym::Tag("list"), Sym::Len(items.len())]);
                stack.extend(items.iter().map(Node::Expr));
            }
            ExprKind::Type(t) => {
                out.push(Sym::Tag("type"));
                stack.push(Node::Type(t));
            }
            ExprKind::Paren(inner) => {
                out.push(Sym::Tag("paren"));
                stack.push(Node::Expr(inner));
            }
        },
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_round_trips_escapes() {
        assert_eq!(quote("a\"b\\c\nd\te"), "\"a\\\"b\\\\c\\nd\\te\"");
    }

    #[test]
    fn expr_end_skips_trailing_comments() {
        let src = "const a = x |> f  # c\n";
        let (file, _) = parse(src);
        let Item::Const(c) = &file.items[0] else {
            panic!("const expected")
        };
        assert_eq!(&src[c.value.span.start..expr_end(&c.value)], "x |> f");
    }
}
