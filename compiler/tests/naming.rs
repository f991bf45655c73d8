//! Parameter names: stable, readable, and what checkpoints and PyTorch name maps rely on.

fn weight_names(src: &str, model: &str) -> Vec<String> {
    let (_, analysis) = netc_compiler::analyze(src);
    assert!(
        analysis.diagnostics.iter().all(|d| !d.is_error()),
        "{:#?}",
        analysis.diagnostics
    );
    analysis.models[model]
        .weights
        .iter()
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn let_bound_inline_repeat_and_block_layers() {
    let src = "\
block Ff(d: int)(x: f32[B, d]) -> f32[B, d] {
  x |> linear(d) |> relu
}

model M(x: f32[B, 8]) -> f32[B, 2] {
  let fc = linear(8)
  let pos = position_embedding(4, 8)
  let h = x |> fc |> fc |> repeat(2, Ff(8)) |> Ff(8) |> linear(2, bias: false)
  h + mean(pos, axis: 0) |> linear(2)
}
";
    let names = weight_names(
        &src.replace(
            "h + mean(pos, axis: 0) |> linear(2)",
            "h + (mean(pos, axis: 0) |> linear(2))",
        ),
        "M",
    );
    assert_eq!(
        names,
        [
            "pos.weight",
            "fc.weight",
            "fc.bias",
            "repeat_0.0.linear_0.weight",
            "repeat_0.0.linear_0.bias",
            "repeat_0.1.linear_0.weight",
            "repeat_0.1.linear_0.bias",
            "Ff_0.linear_0.weight",
            "Ff_0.linear_0.bias",
            "linear_0.weight",
            "linear_1.weight",
            "linear_1.bias",
        ]
    );
}
