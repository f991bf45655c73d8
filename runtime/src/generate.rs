//! Generation from a trained model (`netc sample`): text from a character-level language model,
//! one character at a time, and image grids from a GAN's `sample` tensor.
//!
//! A language model is compiled at batch 1 and run on a window of the run's sequence length:
//! the context fills the window from position 0, and the next character is drawn from the
//! logits at the context's last position. Positions after it hold filler, which only a causal
//! model ignores, so [`TextGenerator::new`] first checks that the model is causal (the logits
//! at the last real position must not change with the filler) rather than print garbage from
//! a bidirectional one.

use std::collections::HashMap;
use std::path::Path;

use netc_compiler::ir::interp::Value;
use netc_compiler::ir::{Graph, Op};

use crate::data::rng::SplitMix64;
use crate::train::{Backend, Executor};

/// How to draw characters, as nanoGPT's `sample.py` does.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Text the generated characters continue (printed first). Empty: start after a newline.
    pub prompt: String,
    /// Characters to generate.
    pub length: usize,
    /// Softmax temperature: below 1 sharper, above 1 flatter; 0 always takes the arg-max.
    pub temperature: f64,
    /// Draw only among the `k` most likely characters (0: among all).
    pub top_k: usize,
    /// Seed of the draws: the same checkpoint, prompt and seed give the same text.
    pub seed: u64,
}

/// A language model ready to continue text: its batch-1 graph, weights and vocabulary.
pub struct TextGenerator<'a> {
    graph: &'a Graph,
    /// The graph input that takes the window of character ids.
    field: String,
    /// The window length the model was compiled for.
    window: usize,
    inputs: HashMap<String, Value>,
    vocab: &'a [String],
    exec: Executor,
}

impl<'a> TextGenerator<'a> {
    /// `graph` maps the window `field` (`[1, window]` ids) to `prediction` (`[1, window, V]`
    /// logits); `values` are the trained parameters; `vocab[id]` is the text of id `id`.
    pub fn new(
        graph: &'a Graph,
        field: &str,
        values: &HashMap<String, Value>,
        vocab: &'a [String],
        backend: Backend,
    ) -> Result<TextGenerator<'a>, String> {
        let window = graph
            .inputs()
            .into_iter()
            .find_map(|n| match &graph.node(n).op {
                Op::Input { name, .. } if name == field => graph.ty(n).shape.get(1).copied(),
                _ => None,
            })
            .ok_or_else(|| format!("the model has no input `{field}` of shape [1, T]"))?;
        let mut inputs: HashMap<String, Value> = HashMap::new();
        for n in graph.inputs() {
            if let Op::Input { name, .. } = &graph.node(n).op
                && let Some(v) = values.get(name)
            {
                inputs.insert(name.clone(), v.clone());
            }
        }
        inputs.insert("rng_seed".into(), Value::scalar_i64(0));
        let mut generator = TextGenerator {
            graph,
            field: field.to_string(),
            window,
            inputs,
            vocab,
            exec: Executor::new(backend),
        };
        generator.check_causal()?;
        Ok(generator)
    }

    /// Character ids of `text`; a character the corpus never had is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, String> {
        text.chars()
            .map(|c| {
                let s = c.to_string();
                self.vocab
                    .iter()
                    .position(|v| *v == s)
                    .map(|i| i as i64)
                    .ok_or_else(|| {
                        format!("the prompt's character {c:?} does not occur in the training text")
                    })
            })
            .collect()
    }

    /// Continue `options.prompt` by `options.length` characters, passing each piece of text
    /// (the prompt, then every character) to `emit` as soon as it exists.
    pub fn generate(
        &mut self,
        options: &SampleOptions,
        mut emit: impl FnMut(&str),
    ) -> Result<String, String> {
        let mut ids = self.encode(&options.prompt)?;
        let mut out = options.prompt.clone();
        emit(&out);
        if ids.is_empty() {
            // Start as if after a line break (or at the first character of the vocabulary).
            ids.push(self.encode("\n").map_or(0, |v| v[0]));
        }
        let mut rng = SplitMix64::new(options.seed);
        for _ in 0..options.length {
            let context = &ids[ids.len().saturating_sub(self.window)..];
            let logits = self.next_logits(context, 0)?;
            let id = draw(&logits, options, &mut rng);
            let text = &self.vocab[id];
            out.push_str(text);
            emit(text);
            ids.push(id as i64);
        }
        Ok(out)
    }

    /// Logits for the character after `context` (at most `window` ids), the window's unused
    /// positions filled with id `filler`.
    fn next_logits(&mut self, context: &[i64], filler: i64) -> Result<Vec<f32>, String> {
        let mut window = vec![filler; self.window];
        window[..context.len()].copy_from_slice(context);
        self.inputs
            .insert(self.field.clone(), Value::i64(vec![1, self.window], window));
        let out = self.exec.run(self.graph, &self.inputs)?;
        let prediction = out
            .get("prediction")
            .and_then(Value::to_f32_vec)
            .ok_or("the model produced no prediction")?;
        let classes = prediction.len() / self.window;
        if classes < self.vocab.len() || prediction.len() != classes * self.window {
            return Err(format!(
                "the model predicts {} values per window of {}, not a logit for each of the {} \
                 characters of the vocabulary at each position",
                prediction.len(),
                self.window,
                self.vocab.len()
            ));
        }
        // A model may have more outputs than characters (a rounded-up vocabulary size); the
        // extra classes never occur in the data and are not drawn.
        let at = (context.len() - 1) * classes;
        Ok(prediction[at..at + self.vocab.len()].to_vec())
    }

    /// A model whose output at a position depends on later positions cannot generate text
    /// this way: compare the logits at the first position under two different fillers.
    fn check_causal(&mut self) -> Result<(), String> {
        if self.window < 2 {
            return Ok(());
        }
        let last = self.vocab.len().saturating_sub(1) as i64;
        let a = self.next_logits(&[0], 0)?;
        let b = self.next_logits(&[0], last)?;
        let diff: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
        let scale: f32 = a.iter().map(|x| x.abs()).sum::<f32>().max(1e-12);
        if diff / scale > 1e-5 {
            return Err(
                "the model is not causal: its output at a position depends on later positions \
                 (use `self_attention(..., causal: true)` or a one-directional `lstm`/`gru`), so \
                 it cannot generate text one character at a time"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// Draw an id from `logits` with temperature and top-k, or take the arg-max at temperature 0.
fn draw(logits: &[f32], options: &SampleOptions, rng: &mut SplitMix64) -> usize {
    let argmax = logits
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0;
    if options.temperature <= 0.0 {
        return argmax;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if options.top_k > 0 {
        order.truncate(options.top_k);
    }
    let top = f64::from(logits[argmax]);
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((f64::from(logits[i]) - top) / options.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    // A uniform draw in [0, total) with 53 random bits.
    let mut u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (&i, w) in order.iter().zip(&weights) {
        if u < *w {
            return i;
        }
        u -= w;
    }
    order[0]
}

/// Run a GAN's `sample` graph with `values` and `seed` and save its output as an image grid
/// (`netc train` after each epoch, `netc sample` from a checkpoint).
pub fn save_sample_grid(
    graph: &Graph,
    values: &HashMap<String, Value>,
    seed: u64,
    exec: &mut Executor,
    path: &Path,
) -> Result<(), String> {
    let mut inputs: HashMap<String, Value> = HashMap::new();
    for input in graph.inputs() {
        if let Op::Input { name, .. } = &graph.node(input).op
            && let Some(v) = values.get(name)
        {
            inputs.insert(name.clone(), v.clone());
        }
    }
    inputs.insert("rng_seed".into(), Value::scalar_i64(seed as i64));
    let out = exec
        .run(graph, &inputs)
        .map_err(|e| format!("sample: {e}"))?;
    let sample = out.get("sample").ok_or("sample: the graph has no output")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::images::save_grid(
        path,
        &sample.to_f32_vec().unwrap_or_default(),
        &sample.ty.shape,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(temperature: f64, top_k: usize) -> SampleOptions {
        SampleOptions {
            prompt: String::new(),
            length: 0,
            temperature,
            top_k,
            seed: 0,
        }
    }

    #[test]
    fn temperature_zero_is_argmax() {
        let mut rng = SplitMix64::new(1);
        assert_eq!(draw(&[0.1, 3.0, -2.0], &options(0.0, 0), &mut rng), 1);
    }

    #[test]
    fn top_one_is_argmax_at_any_temperature() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(draw(&[0.1, 3.0, 2.9], &options(5.0, 1), &mut rng), 1);
        }
    }

    #[test]
    fn draws_follow_the_softmax() {
        // Probabilities 0.2, 0.8 (log-odds ln 4).
        let logits = [0.0, 4f32.ln()];
        let mut rng = SplitMix64::new(3);
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| draw(&logits, &options(1.0, 0), &mut rng) == 1)
            .count();
        let share = ones as f64 / n as f64;
        assert!((share - 0.8).abs() < 0.01, "{share}");
    }
}
