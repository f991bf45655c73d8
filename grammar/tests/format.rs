//! The canonical formatter: idempotent, faithful (same tree, same comments), and the layout
//! rules on focused cases.

use std::fs;
use std::path::PathBuf;

use netc_grammar::{File, format, parse, split};

/// The items' `Debug` text without spans: equal for trees that differ only in layout.
fn shape(file: &File) -> String {
    let text = format!("{:?}", file.items);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Span { start: ") {
        out.push_str(&rest[..at]);
        let close = rest[at..].find('}').expect("a span's Debug text closes");
        rest = &rest[at + close + 1..];
    }
    out.push_str(rest);
    out
}

fn comment_texts(src: &str) -> Vec<String> {
    split::comments(src)
        .iter()
        .map(|c| src[c.start..c.end].trim_end().to_string())
        .collect()
}

/// Every property the formatter promises, for a source that parses cleanly.
fn check(name: &str, src: &str) -> String {
    let out = format(src).unwrap_or_else(|| panic!("{name}: format returned None"));
    let (before, _) = parse(src);
    let (after, diags) = parse(&out);
    assert!(
        diags.is_empty(),
        "{name}: output does not parse: {diags:#?}\n{out}"
    );
    assert_eq!(shape(&before), shape(&after), "{name}: tree changed\n{out}");
    assert_eq!(
        comment_texts(src),
        comment_texts(&out),
        "{name}: comments changed\n{out}"
    );
    assert_eq!(
        format(&out).as_deref(),
        Some(out.as_str()),
        "{name}: not idempotent\n{out}"
    );
    // A lone carriage return inside a comment or string is content and is kept as it is.
    if !src.replace("\r\n", "\n").contains('\r') {
        assert!(!out.contains('\r'), "{name}: output has a carriage return");
    }
    assert!(
        !out.contains("\r\n"),
        "{name}: output has a CRLF line ending"
    );
    assert!(
        out.is_empty() || (out.ends_with('\n') && !out.ends_with("\n\n")),
        "{name}: output must end with exactly one newline"
    );
    for line in out.lines() {
        assert_eq!(line, line.trim_end(), "{name}: trailing blanks in {line:?}");
    }
    out
}

fn net_files(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    files.sort();
    files
}

fn clean(src: &str) -> bool {
    parse(src).1.is_empty()
}

#[test]
fn examples_are_idempotent_faithful_and_keep_comments() {
    let files = net_files("../examples");
    assert!(files.len() >= 5, "expected the examples, found {files:?}");
    for path in files {
        let src = fs::read_to_string(&path).unwrap();
        check(&path.display().to_string(), &src);
    }
}

#[test]
fn ui_tests_that_parse_are_idempotent_and_faithful() {
    for path in net_files("../tests/ui") {
        let src = fs::read_to_string(&path).unwrap();
        if clean(&src) {
            check(&path.display().to_string(), &src);
        } else {
            assert_eq!(format(&src), None, "{}", path.display());
        }
    }
}

#[test]
fn examples_with_crlf_line_endings_format_the_same() {
    for path in net_files("../examples") {
        let src = fs::read_to_string(&path).unwrap();
        let crlf = src.replace('\n', "\r\n");
        assert_eq!(format(&crlf), format(&src), "{}", path.display());
    }
}

// ---------------------------------------------------------------- focused cases

fn assert_formats(src: &str, expected: &str) {
    let out = check("case", src);
    assert_eq!(
        out, expected,
        "\n--- got ---\n{out}--- expected ---\n{expected}"
    );
}

#[test]
fn syntax_errors_give_none() {
    assert_eq!(format("model A(x: f32[B]) {\n  x |>\n}\n"), None);
    assert_eq!(format("model A(x: f32[B] {\n  x\n}\n"), None);
    assert_eq!(format("junk\n"), None);
    assert_eq!(format("const big = 99999999999999999999\n"), None);
}

#[test]
fn empty_and_comment_only_files() {
    assert_formats("", "");
    assert_formats("\n\n  \n", "");
    assert_formats("  # one\n\n\n# two\n# three", "# one\n\n# two\n# three\n");
}

#[test]
fn pipeline_on_one_line_stays_when_it_fits() {
    assert_formats(
        "model Mlp(x:f32[B,64])->f32[B,10]{x|>linear(64)|>relu|>linear(10)}",
        "model Mlp(x: f32[B, 64]) -> f32[B, 10] {\n  x |> linear(64) |> relu |> linear(10)\n}\n",
    );
}

#[test]
fn pipeline_too_long_for_one_line_breaks_before_each_stage() {
    let src = "model D(img: f32[B, 3, 32, 32]) -> f32[B, 1] {\n  img |> conv2d(64, kernel: 4, stride: 2, padding: 1, bias: false) |> leaky_relu(0.2) |> flatten |> sigmoid\n}\n";
    assert_formats(
        src,
        "model D(img: f32[B, 3, 32, 32]) -> f32[B, 1] {
  img |> conv2d(64, kernel: 4, stride: 2, padding: 1, bias: false)
    |> leaky_relu(0.2)
    |> flatten
    |> sigmoid
}
",
    );
}

#[test]
fn multi_line_pipeline_keeps_groups_and_aligns_under_head() {
    let src = "model LeNet(x: f32[B, 3, 32, 32]) -> f32[B, 10] {
    x |> conv2d(6, kernel: 5) |> relu |> max_pool(2)
              |> flatten
              |> linear(120)|>relu
}
";
    assert_formats(
        src,
        "model LeNet(x: f32[B, 3, 32, 32]) -> f32[B, 10] {
  x |> conv2d(6, kernel: 5) |> relu |> max_pool(2)
    |> flatten
    |> linear(120) |> relu
}
",
    );
}

#[test]
fn pipeline_in_let_aligns_under_its_head() {
    assert_formats(
        "model A(x: f32[B]) {\n  let y = x |> f\n |> g\n  y\n}\n",
        "model A(x: f32[B]) {\n  let y = x |> f\n            |> g\n  y\n}\n",
    );
}

#[test]
fn trailing_comments_get_two_spaces_and_stay_on_their_line() {
    let src = "model S(t: i32[B, T]) -> f32[B, 1] {   # the model
  t |> embedding(5000, 64)
    |> lstm(128)      # [B, 128]
    # an own-line note
    |> linear(1)# logits
}
";
    assert_formats(
        src,
        "model S(t: i32[B, T]) -> f32[B, 1] {  # the model
  t |> embedding(5000, 64)
    |> lstm(128)  # [B, 128]
    # an own-line note
    |> linear(1)  # logits
}
",
    );
}

#[test]
fn blank_lines_collapse_and_items_get_one() {
    let src = "# intro


const a = 1
const b = 2
model A(x: f32[B]) {

  let y = x


  # about z
  let z = y



  z

}



# tail
";
    assert_formats(
        src,
        "# intro

const a = 1

const b = 2

model A(x: f32[B]) {
  let y = x

  # about z
  let z = y

  z
}

# tail
",
    );
}

#[test]
fn comments_at_the_end_of_a_body_stay_there() {
    assert_formats(
        "data d {\n  label: class(2)\n\n   # end note\n}\n",
        "data d {\n  label: class(2)\n\n  # end note\n}\n",
    );
}

#[test]
fn block_header() {
    assert_formats(
        "block Encoder( d:int,p : float=0.1 ) ( x :f32[ B,T,d ] )->f32[B,T,d]{ x }",
        "block Encoder(d: int, p: float = 0.1)(x: f32[B, T, d]) -> f32[B, T, d] {\n  x\n}\n",
    );
}

#[test]
fn data_and_train_settings() {
    let src = "data digits {
  source   csv(\"data/digits.csv\",label:64)
  pixels:f32[64]|>scale(1/16)
  split    val:0.1,seed:7
  shuffle
}
train   mlp{
  data     digits
  update   Mlp,Other   with adam(lr:1e-3)
  metrics  accuracy,f1
  step s { loss l; update Mlp with sgd(lr: 0.10) }
}
";
    assert_formats(
        src,
        "data digits {
  source csv(\"data/digits.csv\", label: 64)
  pixels: f32[64] |> scale(1 / 16)
  split val: 0.1, seed: 7
  shuffle
}

train mlp {
  data digits
  update Mlp, Other with adam(lr: 1e-3)
  metrics accuracy, f1
  step s {
    loss l
    update Mlp with sgd(lr: 0.10)
  }
}
",
    );
}

#[test]
fn multi_line_arguments_stay_broken_and_align_after_the_paren() {
    let src = "data r {
  source sentences(\"a.txt\",
      \"b.txt\"
      , vocab: 10, length: 4,
  )
}
";
    assert_formats(
        src,
        "data r {
  source sentences(\"a.txt\",
                   \"b.txt\",
                   vocab: 10, length: 4)
}
",
    );
}

#[test]
fn literals_keep_their_text_and_strings_are_re_escaped() {
    assert_formats(
        "const a = 1.50e3\nconst b = - -2\nconst c = \"tab\\there \\q \\\"x\\\"\"\nconst d = (1,)\nconst e = ((2))\n",
        "const a = 1.50e3\n\nconst b = --2\n\nconst c = \"tab\\there q \\\"x\\\"\"\n\nconst d = (1,)\n\nconst e = ((2))\n",
    );
}

#[test]
fn a_statement_starting_with_minus_is_kept_apart_with_a_semicolon() {
    // On its own line `-y` would continue the line before it: `x - y`.
    assert_formats(
        "model A(x: f32[B]) { let y = x; -y }",
        "model A(x: f32[B]) {\n  let y = x;\n  -y\n}\n",
    );
}

#[test]
fn comments_inside_brackets_and_before_operators_are_kept() {
    let src = "model A(x: f32[B, # batch
                64]) {
  f(a,   # first
    # own
    b,
  )  # done
  let s = a
    # why
    + b
}
";
    assert_formats(
        src,
        "model A(x: f32[B,  # batch
               64]) {
  f(a,  # first
    # own
    b)  # done
  let s = a
            # why
            + b
}
",
    );
}

#[test]
fn crlf_input_gives_lf_output() {
    assert_formats(
        "const a = 1\r\n\r\n# c\r\nmodel A(x: f32[B]) {\r\n  x  # t\r\n}\r\n",
        "const a = 1\n\n# c\nmodel A(x: f32[B]) {\n  x  # t\n}\n",
    );
}

#[test]
fn a_line_break_the_printer_drops_does_not_change_later_decisions() {
    // The head `-b\n.w` spans two source lines but prints as `-b.w`; the pipeline must be laid
    // out as the one-line pipeline it becomes, or formatting twice would differ.
    let src = format!("const k = f({}, -b\n  .w |> x)\n", "a".repeat(85));
    check("dropped break", &src);
}

#[test]
fn odd_carriage_returns_do_not_panic() {
    for src in [
        "# a\rb\nconst a = 1\n",
        "model A(x: f32[B]) {\n  x # a\r|> f\n}\n",
        "const a = \"x\\\ry\"\n",
        "const a = 1\r",
    ] {
        if let Some(out) = format(src) {
            assert_eq!(format(&out).as_deref(), Some(out.as_str()), "{src:?}");
        }
    }
}

// ---------------------------------------------------------------- generated inputs

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Insert comments, newlines and blanks at random places of the examples; whatever still parses
/// must format faithfully, and nothing may panic.
#[test]
fn mutated_examples_format_faithfully() {
    const INSERTS: [&str; 9] = [
        " # fz\n",
        "\n",
        "\n\n",
        "  ",
        "\n  # own\n",
        "\r\n",
        "# only\n",
        ";",
        "\n\n\n  # spaced\n\n",
    ];
    let sources: Vec<String> = net_files("../examples")
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for round in 0..200 {
        let mut src = sources[round % sources.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let mut at = rng.below(src.len() + 1);
            while !src.is_char_boundary(at) {
                at -= 1;
            }
            let insert = INSERTS[rng.below(INSERTS.len())];
            src.insert_str(at, insert);
        }
        if clean(&src) {
            check(&format!("mutation {round}:\n{src}"), &src);
            checked += 1;
        } else {
            assert_eq!(format(&src), None);
        }
    }
    assert!(
        checked > 25,
        "only {checked} mutations parsed; the test is too weak"
    );
}

/// Random token soup: must never panic; whatever parses must format faithfully.
#[test]
fn token_soup_never_panics() {
    const TOKENS: [&str; 43] = [
        "model ",
        "block ",
        "data ",
        "train ",
        "const ",
        "step ",
        "let ",
        "update ",
        " with ",
        "x",
        "y",
        "f",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "=",
        "->",
        "|>",
        "+",
        "-",
        "*",
        "/",
        ".",
        "1",
        "2.5e-3",
        "\"s\\\"t\"",
        "f32",
        "#c",
        "\n",
        "\r\n",
        " ",
        ";",
        "é",
        "\\",
        "\"",
        "\r",
        "\t",
        "\0",
    ];
    let mut rng = Rng(42);
    let mut parsed = 0;
    for round in 0..5000 {
        let n = 1 + rng.below(40);
        let src: String = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        if format(&src).is_some() {
            check(&format!("soup {round}: {src:?}"), &src);
            parsed += 1;
        }
    }
    // Most soup is not a program; a few are (empty items, comments, consts).
    assert!(parsed > 0);
}

/// Statement-shaped soup inside a model body: many of these parse.
#[test]
fn body_soup_formats_faithfully() {
    const PARTS: [&str; 30] = [
        "x",
        "y",
        "f(",
        ")",
        "(",
        ",",
        "a: ",
        "-",
        "--1",
        " + ",
        " * ",
        " |> ",
        ".w",
        "1.0",
        "\n",
        "\n\n",
        " # c\n",
        "\n  # own\n",
        ";",
        "let z = ",
        "[",
        "]",
        "f32[B",
        "(x,)",
        "\"q\"",
        " - ",
        "g",
        "\n  |> ",
        "\n  + ",
        "\n  .v",
    ];
    let mut rng = Rng(7);
    let mut parsed = 0;
    for round in 0..3000 {
        let n = 1 + rng.below(14);
        let body: String = (0..n).map(|_| PARTS[rng.below(PARTS.len())]).collect();
        let src = format!("model A(x: f32[B]) -> f32[B] {{\n  {body}\n}}\n");
        if clean(&src) {
            check(&format!("body soup {round}:\n{src}"), &src);
            parsed += 1;
        } else {
            assert_eq!(format(&src), None);
        }
    }
    assert!(
        parsed > 100,
        "only {parsed} bodies parsed; the test is too weak"
    );
}

/// Writes random but valid programs, with blanks, comments and line breaks at every place the
/// grammar allows one: before `|>`, an operator, `.` or `-`, and around commas in brackets.
struct Gen {
    rng: Rng,
    comment: usize,
}

impl Gen {
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.rng.below(options.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.rng.below(100) < percent
    }

    fn comment(&mut self) -> String {
        self.comment += 1;
        format!("# c{}", self.comment)
    }

    /// Trivia before a token that may start a continuation line (`|>`, an operator, `.`, `-`).
    fn before_continuation(&mut self) -> String {
        match self.rng.below(10) {
            0 => "\n      ".to_string(),
            1 => format!("  {}\n   ", self.comment()),
            2 => format!("\n  {}\n\n    ", self.comment()),
            3 => "\n".to_string(),
            _ => " ".to_string(),
        }
    }

    /// Trivia where brackets allow newlines (after `(`, around `,`, before `)`).
    fn in_brackets(&mut self) -> String {
        match self.rng.below(12) {
            0 => "\n    ".to_string(),
            1 => format!(" {}\n      ", self.comment()),
            2 => format!("\n{}\n", self.comment()),
            3 | 4 => " ".to_string(),
            _ => String::new(),
        }
    }

    fn list(&mut self, open: &str, close: &str, depth: usize, min: usize, named: bool) -> String {
        let n = min + self.rng.below(3);
        let mut s = String::from(open);
        for i in 0..n {
            s += &self.in_brackets();
            if i > 0 {
                s += ",";
                s += &self.in_brackets();
            }
            if named && self.chance(30) {
                s += self.pick(&["k: ", "kernel:", "lr :  "]);
                s += &self.expr_after_space(depth + 1);
            } else {
                s += &self.expr(depth + 1);
            }
        }
        if n > 0 && self.chance(20) {
            s += ",";
        }
        s += &self.in_brackets();
        s + close
    }

    fn primary(&mut self, depth: usize) -> String {
        let deep = depth > 2;
        match self.rng.below(if deep { 5 } else { 11 }) {
            0 => self
                .pick(&["1", "2.50", "1e-3", "0.1", "7E+2", "64"])
                .to_string(),
            1 => self
                .pick(&["x", "relu", "B", "layer_norm", "true"])
                .to_string(),
            2 => self
                .pick(&["\"a\"", "\"t\\tab\\\\ \\\"q\\\"\"", "\"\""])
                .to_string(),
            3 | 4 => self.pick(&["flatten", "y", "false", "d"]).to_string(),
            5 | 6 => {
                let name = self.pick(&["f", "linear", "conv2d"]).to_string();
                name + &self.list("(", ")", depth, 0, true)
            }
            7 => format!("({})", self.expr(depth + 1)),
            8 => self.list("(", ")", depth, 2, false),
            9 => self.list("[", "]", depth, 0, false),
            _ => {
                self.pick(&["f32", "i32", "bool"]).to_string()
                    + &self.list("[", "]", depth, 1, false)
            }
        }
    }

    fn postfix(&mut self, depth: usize) -> String {
        let mut s = self.primary(depth);
        while self.chance(10) {
            s += &self.before_continuation();
            s += ".";
            s += self.pick(&["w", "shape"]);
        }
        s
    }

    fn unary(&mut self, depth: usize) -> String {
        let mut s = String::new();
        while self.chance(15) {
            // A line break may follow a `-` only when another `-` comes next.
            if !s.is_empty() && self.chance(30) {
                s += &self.before_continuation();
            }
            s += "-";
        }
        s + &self.postfix(depth)
    }

    fn expr(&mut self, depth: usize) -> String {
        let mut s = self.unary(depth);
        while self.chance(if depth > 1 { 5 } else { 25 }) {
            s += &self.before_continuation();
            s += self.pick(&["+", "-", "*", "/", "%"]);
            s += self.pick(&[" ", "", "  "]);
            s += &self.unary(depth + 1);
        }
        while self.chance(if depth > 1 { 10 } else { 45 }) {
            s += &self.before_continuation();
            s += "|>";
            s += self.pick(&[" ", "", "  "]);
            s += &self.postfix(depth + 1);
        }
        s
    }

    /// An expression after `=`, `:` or a setting key: a line break may come before it only
    /// when it starts with `-`.
    fn expr_after_space(&mut self, depth: usize) -> String {
        let e = self.expr(depth);
        if e.starts_with('-') && self.chance(30) {
            format!(" {}\n  {e}", self.comment())
        } else {
            format!(" {e}")
        }
    }

    fn sep(&mut self) -> String {
        match self.rng.below(8) {
            0 => ";".to_string(),
            1 => "; ".to_string(),
            2 => "\n\n\n  ".to_string(),
            3 => format!("   {}\n  ", self.comment()),
            4 => format!("\n    {}\n\n  ", self.comment()),
            _ => "\n  ".to_string(),
        }
    }

    fn stmts(&mut self, make: fn(&mut Gen) -> String) -> String {
        let n = self.rng.below(5);
        let mut s = String::from("{");
        s += self.pick(&["\n  ", " ", "  # open\n  "]);
        for i in 0..n {
            let stmt = make(self);
            if i > 0 {
                // On a new line, a leading `-` would continue the statement before it.
                s += &if stmt.starts_with('-') {
                    ";".to_string()
                } else {
                    self.sep()
                };
            }
            s += &stmt;
        }
        s += self.pick(&["\n", " ", "\n  # close\n", "\n\n"]);
        s + "}"
    }

    fn body_stmt(&mut self) -> String {
        if self.chance(40) {
            let e = self.expr_after_space(0);
            format!("let v{} ={e}", self.rng.below(3))
        } else {
            self.expr(0)
        }
    }

    fn setting(&mut self) -> String {
        let key = self
            .pick(&["source", "split", "metrics", "epochs", "shuffle"])
            .to_string();
        let n = self.rng.below(4);
        let mut s = key;
        for i in 0..n {
            if i > 0 {
                s += &self.in_brackets();
                s += ",";
                s += &self.in_brackets();
                if self.chance(40) {
                    s += "seed:";
                }
            }
            s += &self.expr_after_space(1);
        }
        s
    }

    fn entry(&mut self) -> String {
        if self.chance(50) {
            let e = self.expr_after_space(0);
            format!("{}:{e}", self.pick(&["image", "label"]))
        } else {
            self.setting()
        }
    }

    fn train_stmt(&mut self) -> String {
        match self.rng.below(5) {
            0 => {
                let e = self.expr_after_space(0);
                format!("update M, N with{e}")
            }
            1 => format!("step s {}", self.stmts(Gen::train_stmt_flat)),
            2 => {
                let e = self.expr_after_space(0);
                format!("let t ={e}")
            }
            _ => self.setting(),
        }
    }

    fn train_stmt_flat(&mut self) -> String {
        if self.chance(50) {
            let e = self.expr_after_space(0);
            format!("update M with{e}")
        } else {
            self.setting()
        }
    }

    fn item(&mut self) -> String {
        match self.rng.below(5) {
            0 => {
                let e = self.expr_after_space(0);
                format!("const k ={e}")
            }
            1 => {
                let inputs = self.list("(", ")", 3, 0, false);
                // Inputs are `name: type`; replace the generated list by a fixed one when it is
                // not a valid input list, keeping the generated trivia test for shapes below.
                let _ = inputs;
                let shape = self.list("[", "]", 3, 1, false);
                format!(
                    "model M(x: f32{shape}, y: f32[B]) -> f32[B] {}",
                    self.stmts(Gen::body_stmt)
                )
            }
            2 => {
                let default = self.expr_after_space(3);
                format!(
                    "block Blk(d: int, p: float ={default})(x: f32[B, d]) {}",
                    self.stmts(Gen::body_stmt)
                )
            }
            3 => format!("data dd {}", self.stmts(Gen::entry)),
            _ => format!("train tt {}", self.stmts(Gen::train_stmt)),
        }
    }

    fn file(&mut self) -> String {
        let n = 1 + self.rng.below(3);
        let mut s = String::new();
        for _ in 0..n {
            s += self.pick(&["", "\n", "# lead\n", "\n\n# lead\n\n"]);
            s += &self.item();
            s += self.pick(&["\n", "  # after\n", "\n\n"]);
        }
        s
    }
}

#[test]
fn generated_programs_format_faithfully() {
    let mut generator = Gen {
        rng: Rng(0x2545_f491_4f6c_dd1d),
        comment: 0,
    };
    let mut parsed = 0;
    let rounds = 600;
    for round in 0..rounds {
        let src = generator.file();
        if clean(&src) {
            check(&format!("generated {round}:\n{src}"), &src);
            parsed += 1;
        }
    }
    assert!(
        parsed * 10 > rounds * 8,
        "only {parsed} of {rounds} generated programs parsed; the generator is off"
    );
}
