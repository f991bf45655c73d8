//! PyTorch's default initialisation of each layer's parameters, so a fresh `.net` model starts
//! where the same PyTorch model would (same distributions; the random streams differ).

/// How a parameter's initial values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform on `[-bound, bound]`.
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// Every element this value.
    Constant(f64),
}

/// The default initialiser of weight `weight` of built-in `layer` with dims `dims`.
///
/// - `linear`, `conv2d`, `conv_transpose2d`: Kaiming-uniform with `a = √5`, which is
///   `U(-1/√fan_in, 1/√fan_in)`, and the bias with the same bound. PyTorch's fan-in is
///   `dims[1] * receptive field` for every weight, which for a transposed convolution's
///   `[in, out, kh, kw]` weight is `out * kh * kw`.
/// - `embedding`, `position_embedding`: `N(0, 1)`.
/// - `batch_norm`, `layer_norm`: weight 1, bias 0; running mean 0, running variance 1, count 0.
/// - `lstm`, `gru`: every tensor `U(-1/√hidden, 1/√hidden)`.
/// - `self_attention`, `attention` (`nn.MultiheadAttention`): `in_proj_weight` Xavier-uniform,
///   biases 0, `out_proj.weight` Kaiming-uniform as a linear layer.
pub fn default_init(
    layer: &str,
    weight: &str,
    dims: &[usize],
    weight_fan_in: Option<usize>,
) -> Init {
    let fan_in = |dims: &[usize]| -> f64 {
        (dims.get(1).copied().unwrap_or(1) * dims.iter().skip(2).product::<usize>()) as f64
    };
    let kaiming = |fan: f64| Init::Uniform(if fan > 0.0 { 1.0 / fan.sqrt() } else { 0.0 });
    match (layer, weight) {
        ("embedding" | "position_embedding", _) => Init::Normal(1.0),
        ("batch_norm" | "layer_norm", "weight") | (_, "running_var") => Init::Constant(1.0),
        ("batch_norm" | "layer_norm", _) => Init::Constant(0.0),
        ("lstm" | "gru", _) => {
            // Every tensor's first dim is gates * H (4 gates for LSTM, 3 for GRU).
            let gates = if layer == "lstm" { 4 } else { 3 };
            let hidden = (dims.first().copied().unwrap_or(gates) / gates).max(1);
            Init::Uniform(1.0 / (hidden as f64).sqrt())
        }
        ("self_attention" | "attention", "in_proj_weight") => {
            let (fan_out, fan_in) = (dims[0] as f64, dims[1] as f64);
            Init::Uniform((6.0 / (fan_in + fan_out)).sqrt())
        }
        ("self_attention" | "attention", "out_proj.weight") => kaiming(fan_in(dims)),
        ("self_attention" | "attention", _) => Init::Constant(0.0),
        (_, "bias") => kaiming(weight_fan_in.map_or(0.0, |f| f as f64)),
        (_, _) => kaiming(fan_in(dims)),
    }
}

/// The initialiser `param(shape, init: word)` asks for: `zeros`, `ones`, `normal` (N(0, 1)),
/// `uniform` (U(-1, 1)) or `kaiming` (U(±1/√fan_in), where fan_in is the product of every dim
/// but the last, as for a weight used as `matmul(x, w)`).
pub fn param_init(word: &str, dims: &[usize]) -> Init {
    match word {
        "zeros" => Init::Constant(0.0),
        "ones" => Init::Constant(1.0),
        "uniform" => Init::Uniform(1.0),
        "kaiming" => {
            let fan_in: usize = dims[..dims.len().saturating_sub(1)].iter().product();
            Init::Uniform(1.0 / (fan_in.max(1) as f64).sqrt())
        }
        _ => Init::Normal(1.0),
    }
}

/// Fan-in PyTorch uses for a layer's bias bound: that of its weight.
pub fn weight_fan_in(weight_dims: &[usize]) -> usize {
    weight_dims.get(1).copied().unwrap_or(1) * weight_dims.iter().skip(2).product::<usize>()
}
