// Highlighting test: tokenizes .net text with the TextMate grammar (the same engine VS Code
// uses) and checks the scopes of the constructs the grammar promises to cover. Run with
// `npm test`; no editor needed.

const assert = require("node:assert");
const fs = require("node:fs");
const path = require("node:path");
const test = require("node:test");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const root = path.join(__dirname, "..");

async function grammar() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () =>
      vsctm.parseRawGrammar(
        fs.readFileSync(path.join(root, "syntaxes/net.tmLanguage.json"), "utf8"),
        "net.tmLanguage.json",
      ),
  });
  return registry.loadGrammar("source.netdsl");
}

/** `[text, innermost scope]` for every non-blank token of every line. */
async function tokens(text) {
  const g = await grammar();
  let state = vsctm.INITIAL;
  const out = [];
  for (const line of text.split("\n")) {
    const r = g.tokenizeLine(line, state);
    for (const t of r.tokens) {
      const s = line.substring(t.startIndex, t.endIndex).trim();
      if (s) out.push([s, t.scopes[t.scopes.length - 1]]);
    }
    state = r.ruleStack;
  }
  return out;
}

function scopeOf(toks, text, nth = 0) {
  const found = toks.filter(([s]) => s === text);
  assert.ok(found.length > nth, `no token ${text}`);
  return found[nth][1];
}

test("keywords, types, numbers, strings, comments, pipes", async () => {
  const toks = await tokens(`# a comment
const width = 64
data digits {
  source csv("data/digits.csv", label: 64)
  pixels: f32[64] |> scale(1 / 16)
  split   val: 0.1, seed: 7
}
block Res(d: int, p: float = 0.1)(x: f32[B, d]) -> f32[B, d] {
  x + (x |> linear(d) |> dropout(p))
}
model Mlp(x: f32[B, 64]) -> f32[B, 10] {
  let h = x |> linear(width) |> relu
  h |> Res(64, p: 0.2) |> linear(10)
}
train mlp {
  data digits
  loss cross_entropy(Mlp(pixels), label)
  update Mlp with adam(lr: 1e-3)
  epochs 30
}
`);
  assert.strictEqual(scopeOf(toks, "# a comment"), "comment.line.number-sign.netdsl");
  for (const k of ["const", "data", "block", "model", "train"]) {
    assert.strictEqual(scopeOf(toks, k), "keyword.other.item.netdsl", k);
  }
  assert.strictEqual(scopeOf(toks, "let"), "keyword.other.let.netdsl");
  assert.strictEqual(scopeOf(toks, "update"), "keyword.other.update.netdsl");
  assert.strictEqual(scopeOf(toks, "with"), "keyword.other.with.netdsl");
  for (const k of ["source", "split", "loss", "epochs"]) {
    assert.strictEqual(scopeOf(toks, k), "keyword.control.setting.netdsl", k);
  }
  // `data` inside a run is a setting, not an item.
  assert.strictEqual(scopeOf(toks, "data", 1), "keyword.control.setting.netdsl");
  assert.strictEqual(scopeOf(toks, "f32"), "storage.type.tensor.netdsl");
  assert.strictEqual(scopeOf(toks, "int"), "storage.type.primitive.netdsl");
  assert.strictEqual(scopeOf(toks, "64"), "constant.numeric.netdsl");
  assert.strictEqual(scopeOf(toks, "1e-3"), "constant.numeric.netdsl");
  assert.strictEqual(scopeOf(toks, "data/digits.csv"), "string.quoted.double.netdsl");
  assert.strictEqual(scopeOf(toks, "|>"), "keyword.operator.pipe.netdsl");
  assert.strictEqual(scopeOf(toks, "->"), "keyword.operator.arrow.netdsl");
  assert.strictEqual(scopeOf(toks, "linear"), "entity.name.function.netdsl");
  assert.strictEqual(scopeOf(toks, "relu"), "entity.name.function.netdsl");
  assert.strictEqual(scopeOf(toks, "Mlp"), "entity.name.type.netdsl");
  assert.strictEqual(scopeOf(toks, "Res", 1), "entity.name.type.netdsl");
  assert.strictEqual(scopeOf(toks, "label"), "variable.parameter.netdsl");
  assert.strictEqual(scopeOf(toks, "h"), "variable.other.definition.netdsl");
});

test("contextual keywords are names elsewhere", async () => {
  const toks = await tokens(`model M(x: f32[B, 4]) -> f32[B, 4] {
  let model = x |> relu
  model
}
`);
  // `model` at the start of an indented line inside braces is a binding, not an item.
  assert.strictEqual(scopeOf(toks, "model", 1), "variable.other.definition.netdsl");
});

test("every example tokenizes without invalid scopes", async () => {
  const dir = path.join(root, "../../examples");
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".net"))) {
    const toks = await tokens(fs.readFileSync(path.join(dir, name), "utf8"));
    const invalid = toks.filter(([, scope]) => scope.startsWith("invalid"));
    assert.deepStrictEqual(invalid, [], name);
  }
});
