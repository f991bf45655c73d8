//! `netc sample`: new text from a character-level language model's checkpoint, or an image grid
//! from a GAN's.

use std::io::Write;
use std::path::{Path, PathBuf};

use netc_compiler::lower::program::{CompileOptions, Stage, compile_run_with};
use netc_runtime::generate::{SampleOptions, TextGenerator, save_sample_grid};
use netc_runtime::train::{Executor, load_values};

use super::{BackendArg, Select, compile, load_data};

/// What `netc sample` was asked for, beyond the file and run.
pub(super) struct SampleArgs {
    pub checkpoint: PathBuf,
    pub text: SampleOptions,
    /// Where a GAN's grid goes.
    pub out: PathBuf,
    pub backend: BackendArg,
}

/// Generate from the checkpoint: a grid for runs with a `sample` line, text otherwise.
pub(super) fn sample(path: &Path, select: &Select, args: SampleArgs) -> i32 {
    match run(path, select, &args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn run(path: &Path, select: &Select, args: &SampleArgs) -> Result<(), String> {
    let program = compile(path, select, Stage::Optimized).ok_or("the program does not compile")?;
    let values = load_values(&program, &args.checkpoint).map_err(|e| e.to_string())?;
    let backend = args.backend.backend();
    if let Some(graph) = &program.sample {
        let mut exec = Executor::new(backend);
        save_sample_grid(graph, &values, args.text.seed, &mut exec, &args.out)?;
        println!("wrote {}", args.out.display());
        return Ok(());
    }
    let info = program.data.as_ref().ok_or("the run has no data set")?;
    if info.source.as_ref().map(|s| s.name) != Some("text") {
        return Err(
            "`netc sample` writes text from a model trained on a `text` source, or images from \
             a run with a `sample` line; this run has neither"
                .to_string(),
        );
    }
    let field = info
        .fields
        .iter()
        .find(|f| !f.is_label)
        .map(|f| f.name.clone())
        .ok_or("the data set has no feature field")?;
    // The vocabulary is the corpus's sorted characters, as during training.
    let data = load_data(path, &program)?;
    let vocab = data.vocab.ok_or("the data set has no vocabulary")?;
    let src = super::read_source(path).ok_or("cannot read the program")?;
    let one = compile_run_with(
        &src,
        select.run.as_deref(),
        CompileOptions {
            batch: Some(1),
            stage: Stage::Optimized,
        },
    )
    .map_err(|_| "the program does not compile at batch size 1".to_string())?;
    let mut graph = one
        .eval
        .ok_or("this run has no single loss whose prediction to sample from")?;
    graph.outputs.retain(|o| o.name == "prediction");
    netc_compiler::ir::passes::optimize(&mut graph);
    let mut generator = TextGenerator::new(&graph, &field, &values, &vocab, backend)?;
    let mut stdout = std::io::stdout().lock();
    generator.generate(&args.text, |piece| {
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
    })?;
    let _ = writeln!(stdout);
    Ok(())
}
