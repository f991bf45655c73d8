//! Command-line interface: argument parsing and the subcommands.

mod sample;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use netc_compiler::lower::program::{CompileOptions, Program, Stage, compile_run_with};
use netc_compiler::{Diagnostic, Severity, render};
use netc_grammar::line_index::{ColumnUnit, LineIndex};

#[derive(Parser)]
#[command(
    name = "netc",
    version,
    about = "Compiler and trainer for the .net neural-network language"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads the native backend splits large kernels over (convolutions by image, big GEMMs
    /// and elementwise kernels in chunks), for the commands that run steps (train, eval, bench,
    /// predict, sample). 1 by default. Runs are deterministic for a given N and equal to one
    /// thread's except convolution weight gradients and single large GEMMs (split sums).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Check files for syntax, name and shape errors.
    Check {
        /// The `.net` files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the inferred shape of every binding, input and pipeline stage.
        #[arg(long)]
        shapes: bool,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
    },
    /// Rewrite files in the canonical layout (comments are kept).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Print the IR of a training run's step graphs.
    Graph {
        file: PathBuf,
        #[command(flatten)]
        select: Select,
        /// How far to compile: the forward pass, plus autodiff and optimizer, or optimized.
        #[arg(long, value_enum, default_value_t = StageArg::Optimized)]
        stage: StageArg,
        /// Print Graphviz DOT instead of text.
        #[arg(long)]
        dot: bool,
    },
    /// Train a run on its data: progress, metrics, checkpoints in `runs/<run>/`.
    Train {
        file: PathBuf,
        #[command(flatten)]
        select: Select,
        /// Override the run's `epochs`.
        #[arg(long)]
        epochs: Option<u64>,
        /// Stop after this many steps.
        #[arg(long)]
        max_steps: Option<u64>,
        /// Seed of initialisation, dropout and noise (the run's `seed`, else 0).
        #[arg(long)]
        seed: Option<u64>,
        /// Folder for the run's logs and checkpoints (default `runs/<run>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue exactly from a checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Start from these weights (safetensors with the program's parameter names).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Print only the final summary, as one JSON object.
        #[arg(long)]
        json: bool,
        /// When the loss becomes NaN or infinite, name the first op (and layer) that produced it.
        #[arg(long)]
        check_numerics: bool,
        /// Where steps run: native code, or the reference interpreter.
        #[arg(long, value_enum, default_value_t = BackendArg::Cranelift)]
        backend: BackendArg,
        /// `cuda`: run on an NVIDIA GPU (the same as `--backend cuda`).
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
    },
    /// Time a run's training step on synthetic data; prints one JSON object.
    Bench {
        file: PathBuf,
        #[command(flatten)]
        select: Select,
        #[arg(long, value_enum, default_value_t = BackendArg::Cranelift)]
        backend: BackendArg,
        /// `cuda`: run on an NVIDIA GPU (the same as `--backend cuda`).
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
        /// Untimed iterations before timing.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Time iterations for at least this long.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Then time every kernel (native backend) and print the N slowest (default 25) on
        /// stderr.
        #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true, default_missing_value = "25")]
        profile: Option<usize>,
    },
    /// Predict with a trained checkpoint: one line per sample of an `.npy` (features only) or a
    /// `.csv` laid out like the training data.
    Predict {
        file: PathBuf,
        #[command(flatten)]
        select: Select,
        #[arg(long)]
        checkpoint: PathBuf,
        /// The samples: `.npy` of features, `.csv` in the training source's layout, or image
        /// files (`.png`, one sample each; repeat `--input` for several).
        #[arg(long, required = true)]
        input: Vec<PathBuf>,
        /// Print one JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a checkpoint on a data split: the loss and the run's metrics.
    Eval {
        file: PathBuf,
        #[command(flatten)]
        select: Select,
        /// The checkpoint (or safetensors weights) to evaluate.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Which part of the data: the validation split, the `test` source, or the training set.
        #[arg(long, value_enum, default_value_t = SplitArg::Val)]
        split: SplitArg,
        /// Print the metrics as one JSON object.
        #[arg(long)]
        json: bool,
        #[arg(long, value_enum, default_value_t = BackendArg::Cranelift)]
        backend: BackendArg,
    },
    /// Generate from a checkpoint: text from a character-level language model (continuing
    /// `--prompt`), or an image grid from a GAN run's `sample` tensor.
    Sample {
        file: PathBuf,
        #[command(flatten)]
        select: Select,
        #[arg(long)]
        checkpoint: PathBuf,
        /// Text to continue.
        #[arg(long, default_value = "")]
        prompt: String,
        /// Characters to generate.
        #[arg(long, default_value_t = 500)]
        length: usize,
        /// Softmax temperature; 0 always takes the most likely character.
        #[arg(long, default_value_t = 0.8)]
        temperature: f64,
        /// Draw among the k most likely characters only (0: all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Seed of the draws (or of a GAN's noise).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where a GAN's image grid is written.
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = BackendArg::Cranelift)]
        backend: BackendArg,
    },
    /// Compile a run and write its IR dumps (each stage, text and DOT) to a build folder.
    Build {
        file: PathBuf,
        #[command(flatten)]
        select: Select,
        /// Where to write; default `build/<file stem>`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// `cuda`: also write each step's CUDA source, PTX and cubin.
        #[arg(long, value_enum)]
        target: Option<TargetArg>,
        /// `kernels`: also write each step's kernel plan (arena slots, fused kernels, GEMMs),
        /// the text the native backend compiles.
        #[arg(long, value_enum)]
        emit: Option<EmitArg>,
    },
    /// Run the language server on stdin/stdout (editors start this; see editors/vscode).
    Lsp,
}

/// Extra artifacts of `netc build`.
#[derive(Clone, Copy, ValueEnum)]
enum EmitArg {
    /// The kernel IR of each optimized step (`<step>.kernels`).
    Kernels,
}

/// Which run to compile, at which batch size.
#[derive(clap::Args)]
struct Select {
    /// The `train` item to compile (the first one by default).
    #[arg(long)]
    run: Option<String>,
    /// Batch size (the run's `batch` by default).
    #[arg(long)]
    batch: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// Native code compiled with Cranelift, GEMM from the `gemm` crate.
    Cranelift,
    /// The reference interpreter: slow, the oracle.
    Interp,
    /// An NVIDIA GPU: NVRTC-compiled kernels and cuBLAS.
    Cuda,
}

impl BackendArg {
    fn backend(self) -> netc_runtime::train::Backend {
        match self {
            BackendArg::Cranelift => netc_runtime::train::Backend::Cranelift,
            BackendArg::Interp => netc_runtime::train::Backend::Interp,
            BackendArg::Cuda => netc_runtime::train::Backend::Cuda,
        }
    }
}

/// `--device`: where steps run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

impl DeviceArg {
    /// The backend to use: `backend` on the CPU; on `cuda`, the CUDA backend once a GPU was
    /// found (else the reason is printed and `None` returned).
    fn select(self, backend: BackendArg) -> Option<BackendArg> {
        if self == DeviceArg::Cpu && !matches!(backend, BackendArg::Cuda) {
            return Some(backend);
        }
        match netc_backend_cuda::device::Device::open(0) {
            Ok(_) => Some(BackendArg::Cuda),
            Err(e) => {
                eprintln!("error: {e}; `--device cuda` needs an NVIDIA GPU with its driver");
                None
            }
        }
    }
}

/// `netc build --target`: extra artifacts.
#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Val,
    Test,
    Train,
}

#[derive(Clone, Copy, ValueEnum)]
enum StageArg {
    Forward,
    Backward,
    Optimized,
}

impl StageArg {
    fn stage(self) -> Stage {
        match self {
            StageArg::Forward => Stage::Forward,
            StageArg::Backward => Stage::Backward,
            StageArg::Optimized => Stage::Optimized,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum MessageFormat {
    /// Rendered with source snippets, as rustc does.
    Human,
    /// One JSON object per diagnostic, one per line.
    Json,
}

/// Exit codes: 0 success, 1 errors found, 2 usage error (clap's own).
pub fn run() -> i32 {
    let cli = Cli::parse();
    netc_runtime::set_threads(cli.threads);
    match cli.command {
        Command::Check {
            files,
            shapes,
            message_format,
        } => check(&files, shapes, message_format),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Graph {
            file,
            select,
            stage,
            dot,
        } => graph(&file, &select, stage.stage(), dot),
        Command::Build {
            file,
            select,
            out,
            target,
            emit,
        } => build(&file, &select, out, target, emit),
        Command::Train {
            file,
            select,
            epochs,
            max_steps,
            seed,
            out,
            resume,
            init,
            json,
            check_numerics,
            backend,
            device,
        } => {
            let Some(backend) = device.select(backend) else {
                return 1;
            };
            train(
                &file,
                &select,
                TrainArgs {
                    epochs,
                    max_steps,
                    seed,
                    out,
                    resume,
                    init,
                    json,
                    check_numerics,
                    backend,
                },
            )
        }
        Command::Predict {
            file,
            select,
            checkpoint,
            input,
            json,
        } => predict(&file, &select, &checkpoint, &input, json),
        Command::Bench {
            file,
            select,
            backend,
            device,
            warmup,
            seconds,
            profile,
        } => match device.select(backend) {
            Some(backend) => bench(&file, &select, backend, (warmup, seconds), profile),
            None => 1,
        },
        Command::Eval {
            file,
            select,
            checkpoint,
            split,
            json,
            backend,
        } => eval(&file, &select, &checkpoint, split, json, backend),
        Command::Sample {
            file,
            select,
            checkpoint,
            prompt,
            length,
            temperature,
            top_k,
            seed,
            out,
            backend,
        } => sample::sample(
            &file,
            &select,
            sample::SampleArgs {
                checkpoint,
                text: netc_runtime::generate::SampleOptions {
                    prompt,
                    length,
                    temperature,
                    top_k,
                    seed,
                },
                out,
                backend,
            },
        ),
        Command::Lsp => netc_lsp::run_stdio(),
    }
}

fn check(files: &[PathBuf], shapes: bool, format: MessageFormat) -> i32 {
    let mut failed = false;
    for path in files {
        let Some(src) = read_source(path) else {
            failed = true;
            continue;
        };
        let (_, analysis) = netc_compiler::analyze(&src);
        let name = path.display().to_string();
        for d in &analysis.diagnostics {
            failed |= d.severity == Severity::Error;
            match format {
                MessageFormat::Human => eprint!("{}", render_human(d, &name, &src)),
                MessageFormat::Json => println!("{}", diagnostic_json(d, &name, &src)),
            }
        }
        if shapes {
            print_shapes(&name, &analysis);
        }
    }
    i32::from(failed)
}

/// Read a file as text; invalid UTF-8 and I/O errors are reported, not panicked on.
fn read_source(path: &Path) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Some(s),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                eprintln!(
                    "error[N0002]: {} is not valid UTF-8 (first bad byte at offset {at})",
                    path.display()
                );
                None
            }
        },
        Err(e) => {
            eprintln!("error[N0001]: cannot read {}: {e}", path.display());
            None
        }
    }
}

fn render_human(d: &Diagnostic, name: &str, src: &str) -> String {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        render::render_with(miette::GraphicalReportHandler::new(), d, name, src)
    } else {
        render::render_plain(d, name, src)
    }
}

fn diagnostic_json(d: &Diagnostic, name: &str, src: &str) -> serde_json::Value {
    let index = LineIndex::new(src);
    let place = |span: netc_grammar::Span| {
        let start = index.line_col(src, span.start, ColumnUnit::Chars);
        let end = index.line_col(src, span.end, ColumnUnit::Chars);
        serde_json::json!({
            "byte_start": span.start, "byte_end": span.end,
            "line_start": start.line + 1, "column_start": start.col + 1,
            "line_end": end.line + 1, "column_end": end.col + 1,
        })
    };
    let label = |l: &netc_grammar::Label, primary: bool| {
        let mut v = place(l.span);
        v["message"] = l.message.clone().into();
        v["primary"] = primary.into();
        v
    };
    let mut labels = vec![label(&d.primary, true)];
    labels.extend(d.secondary.iter().map(|l| label(l, false)));
    let notes: Vec<_> = d
        .notes
        .iter()
        .map(|(message, l)| serde_json::json!({ "message": message, "label": label(l, true) }))
        .collect();
    let mut v = serde_json::json!({
        "code": d.code,
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": d.message,
        "file": name,
        "labels": labels,
        "help": d.help,
        "notes": notes,
    });
    let primary = place(d.primary.span);
    for key in [
        "byte_start",
        "byte_end",
        "line_start",
        "column_start",
        "line_end",
        "column_end",
    ] {
        v[key] = primary[key].clone();
    }
    v
}

fn print_shapes(name: &str, analysis: &netc_compiler::Analysis) {
    let mut current = String::new();
    for entry in &analysis.shapes {
        if entry.item != current {
            println!("{name}: {}", entry.item);
            current.clone_from(&entry.item);
        }
        println!("  {:<48} {}", one_line(&entry.what), entry.ty);
    }
    for model in analysis.models.values() {
        if let Some(count) = model.parameter_count() {
            println!("{name}: model {} has {count} parameters", model.name);
        }
    }
}

/// Collapse a multi-line source excerpt to one line for the shapes table.
fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text.split_whitespace().collect();
    let s = joined.join(" ");
    if s.chars().count() > 48 {
        format!("{}…", s.chars().take(47).collect::<String>())
    } else {
        s
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> i32 {
    let mut status = 0;
    for path in files {
        let Some(src) = read_source(path) else {
            status = 1;
            continue;
        };
        let Some(formatted) = netc_grammar::format(&src) else {
            eprintln!(
                "error: {} has syntax errors; run `netc check` on it first",
                path.display()
            );
            status = 1;
            continue;
        };
        if formatted == src {
            continue;
        }
        if check_only {
            println!("{} is not formatted", path.display());
            status = 1;
        } else if let Err(e) = std::fs::write(path, formatted) {
            eprintln!("error: cannot write {}: {e}", path.display());
            status = 1;
        }
    }
    status
}

/// Compile a run and load its data set (paths relative to the file); errors are printed.
fn compile_with_data(
    path: &Path,
    select: &Select,
) -> Option<(String, Program, netc_runtime::data::Splits)> {
    let src = read_source(path)?;
    let program = compile(path, select, Stage::Optimized)?;
    match load_data(path, &program) {
        Ok(data) => Some((src, program, data)),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// The run's data set, its paths relative to the `.net` file.
fn load_data(path: &Path, program: &Program) -> Result<netc_runtime::data::Splits, String> {
    let info = program.data.as_ref().ok_or("the run has no data set")?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    netc_runtime::data::load(&program.file, info, &base).map_err(|e| e.to_string())
}

/// Compile a run, printing diagnostics when the file does not check.
fn compile(path: &Path, select: &Select, stage: Stage) -> Option<Program> {
    let src = read_source(path)?;
    let options = CompileOptions {
        batch: select.batch,
        stage,
    };
    match compile_run_with(&src, select.run.as_deref(), options) {
        Ok(program) => Some(program),
        Err(diags) => {
            let name = path.display().to_string();
            for d in &diags {
                eprint!("{}", render_human(d, &name, &src));
            }
            None
        }
    }
}

fn graph(path: &Path, select: &Select, stage: Stage, dot: bool) -> i32 {
    let Some(program) = compile(path, select, stage) else {
        return 1;
    };
    for step in &program.steps {
        if dot {
            print!("{}", netc_compiler::ir::dot::dot(&step.graph));
        } else {
            println!("# step {} ({} nodes)", step.name, step.graph.node_count());
            print!("{}", netc_compiler::ir::text::dump(&step.graph));
        }
    }
    0
}

/// Write each step's graph after each stage, as text and DOT, plus a node-count summary.
fn build(
    path: &Path,
    select: &Select,
    out: Option<PathBuf>,
    target: Option<TargetArg>,
    emit: Option<EmitArg>,
) -> i32 {
    let stem = path
        .file_stem()
        .map_or("program".into(), |s| s.to_string_lossy().to_string());
    let dir = out.unwrap_or_else(|| PathBuf::from("build").join(&stem));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return 1;
    }
    let mut summary = Vec::new();
    let mut write = |name: &str, graph: &netc_compiler::ir::Graph| -> bool {
        for (extension, contents) in [
            ("ir", netc_compiler::ir::text::dump(graph)),
            ("dot", netc_compiler::ir::dot::dot(graph)),
        ] {
            let file = dir.join(format!("{name}.{extension}"));
            if let Err(e) = std::fs::write(&file, contents) {
                eprintln!("error: cannot write {}: {e}", file.display());
                return false;
            }
        }
        summary.push(format!("{name:<40} {:>6} nodes", graph.node_count()));
        true
    };
    let Some(forward) = compile(path, select, Stage::Forward) else {
        return 1;
    };
    let Some(backward) = compile(path, select, Stage::Backward) else {
        return 1;
    };
    let mut plans = Vec::new();
    for (fwd, step) in forward.steps.iter().zip(backward.steps) {
        let mut graph = step.graph;
        if !write(&format!("{}.0-forward", fwd.name), &fwd.graph)
            || !write(&format!("{}.1-backward", step.name), &graph)
        {
            return 1;
        }
        // One dump after each pass of the optimisation pipeline, in order.
        for (i, (pass, run)) in netc_compiler::ir::passes::PIPELINE.iter().enumerate() {
            run(&mut graph);
            if !write(&format!("{}.{}-{pass}", step.name, i + 2), &graph) {
                return 1;
            }
        }
        netc_compiler::ir::passes::optimize(&mut graph);
        if !write(&format!("{}.9-optimized", step.name), &graph) {
            return 1;
        }
        if let Some(EmitArg::Kernels) = emit {
            let file = dir.join(format!("{}.kernels", step.name));
            let written = netc_backend_cpu::plan::plan(&graph)
                .and_then(|p| std::fs::write(&file, p.dump()).map_err(|e| e.to_string()));
            if let Err(e) = written {
                eprintln!("error: cannot write {}: {e}", file.display());
                return 1;
            }
            plans.push(format!(
                "{:<40} kernel plan",
                format!("{}.kernels", step.name)
            ));
        }
    }
    summary.extend(plans);
    if let Some(TargetArg::Cuda) = target
        && let Err(e) = build_cuda(path, select, &dir, &mut summary)
    {
        eprintln!("error: {e}");
        return 1;
    }
    println!("wrote {}", dir.display());
    for line in summary {
        println!("  {line}");
    }
    0
}

/// `build --target cuda`: each optimized step graph's `.cu`, PTX and cubin (see
/// `netc_backend_cuda::build`).
fn build_cuda(
    path: &Path,
    select: &Select,
    dir: &Path,
    summary: &mut Vec<String>,
) -> Result<(), String> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let program = compile(path, select, Stage::Optimized).ok_or("the program did not compile")?;
    let nvrtc = netc_backend_cuda::nvrtc::Nvrtc::load();
    let arch = netc_backend_cuda::build::default_arch();
    for step in &program.steps {
        summary.push(netc_backend_cuda::build::write_step(
            dir,
            &step.name,
            &step.graph,
            &src,
            &nvrtc,
            arch,
        )?);
    }
    Ok(())
}

/// `netc train` options beyond the run selection.
struct TrainArgs {
    epochs: Option<u64>,
    max_steps: Option<u64>,
    seed: Option<u64>,
    out: Option<PathBuf>,
    resume: Option<PathBuf>,
    init: Option<PathBuf>,
    json: bool,
    check_numerics: bool,
    backend: BackendArg,
}

fn train(path: &Path, select: &Select, args: TrainArgs) -> i32 {
    let Some((src, program, data)) = compile_with_data(path, select) else {
        return 1;
    };
    // The last validation batch is usually partial: compile the eval graph for its size too.
    let tail = data
        .val
        .as_ref()
        .map(|v| v.len % program.batch)
        .filter(|&r| r > 0);
    let tail_program = tail.and_then(|rows| {
        compile_run_with(
            &src,
            select.run.as_deref(),
            CompileOptions {
                batch: Some(rows),
                stage: Stage::Optimized,
            },
        )
        .ok()
    });
    let run = program.run.clone().unwrap_or_else(|| "train".to_string());
    let progress = if args.json {
        netc_runtime::log::Progress::Quiet
    } else if std::io::stderr().is_terminal() {
        netc_runtime::log::Progress::Bar
    } else {
        netc_runtime::log::Progress::Lines
    };
    let options = netc_runtime::train::Options {
        epochs: args.epochs,
        max_steps: args.max_steps,
        seed: args
            .seed
            .or(program.info.seed.map(|s| s as u64))
            .unwrap_or(0),
        run_dir: args.out.unwrap_or_else(|| PathBuf::from("runs").join(&run)),
        resume: args.resume,
        init: args.init,
        progress,
        backend: args.backend.backend(),
        check_numerics: args.check_numerics,
        stop: Some(interrupt_flag()),
    };
    let eval_tail = tail_program.as_ref().and_then(|p| p.eval.as_ref());
    match netc_runtime::train::train(&program, &data, eval_tail, &options) {
        Ok(summary) => {
            if args.json {
                println!("{}", netc_runtime::log::summary_json(&summary));
            } else {
                let mut parts: Vec<String> = summary
                    .final_losses
                    .iter()
                    .map(|(step, l)| format!("{step} loss {l:.4}"))
                    .collect();
                parts.extend(
                    summary
                        .validation
                        .iter()
                        .map(|(k, v)| format!("val {k} {v:.4}")),
                );
                eprintln!(
                    "done: {} steps, {} epochs, {}; {:.1} s ({:.0} samples/s); logs in {}",
                    summary.steps,
                    summary.epochs,
                    parts.join(", "),
                    summary.wall_s,
                    summary.samples_per_s,
                    options.run_dir.display()
                );
            }
            0
        }
        Err(e) => {
            match e.span {
                Some(span) => {
                    let d = Diagnostic::error("N5001", e.message.clone(), span, "produced here")
                        .with_help("lower the learning rate, normalise the inputs, or guard the operation (e.g. `log` of values near 0)");
                    eprint!("{}", render_human(&d, &path.display().to_string(), &src));
                }
                None => eprintln!("error: {e}"),
            }
            if e.message.starts_with("interrupted") {
                130
            } else {
                1
            }
        }
    }
}

/// A flag set by Ctrl-C, so training saves a checkpoint and stops between steps.
fn interrupt_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler_flag = flag.clone();
    // Failing to install the handler (one already installed) only loses the Ctrl-C checkpoint.
    let _ =
        ctrlc::set_handler(move || handler_flag.store(true, std::sync::atomic::Ordering::SeqCst));
    flag
}

fn eval(
    path: &Path,
    select: &Select,
    checkpoint: &Path,
    split: SplitArg,
    json: bool,
    backend: BackendArg,
) -> i32 {
    let Some((src, program, data)) = compile_with_data(path, select) else {
        return 1;
    };
    let dataset = match split {
        SplitArg::Val => data.val.as_ref(),
        SplitArg::Test => data.test.as_ref(),
        SplitArg::Train => Some(&data.train),
    };
    let Some(dataset) = dataset else {
        eprintln!(
            "error: the data set has no such split (add `split val: ...` or a `test` source)"
        );
        return 1;
    };
    let rows = dataset.len % program.batch;
    let tail = (rows > 0)
        .then(|| {
            compile_run_with(
                &src,
                select.run.as_deref(),
                CompileOptions {
                    batch: Some(rows),
                    stage: Stage::Optimized,
                },
            )
            .ok()
        })
        .flatten();
    let result = netc_runtime::train::load_values(&program, checkpoint).and_then(|values| {
        let tail = tail.as_ref().and_then(|p| p.eval.as_ref());
        netc_runtime::train::evaluate(&program, tail, dataset, &values, backend.backend())
    });
    match result {
        Ok(metrics) => {
            if json {
                let fields: Vec<String> = metrics
                    .iter()
                    .map(|(k, v)| format!("\"{k}\": {v}"))
                    .collect();
                println!("{{{}}}", fields.join(", "));
            } else {
                for (k, v) in &metrics {
                    println!("{k:<12} {v:.4}");
                }
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn bench(
    path: &Path,
    select: &Select,
    backend: BackendArg,
    (warmup, seconds): (u64, f64),
    profile: Option<usize>,
) -> i32 {
    let Some(program) = compile(path, select, Stage::Optimized) else {
        return 1;
    };
    let model = path
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().to_string());
    let backend = backend.backend();
    let profiling = profile.is_some();
    match netc_runtime::bench::bench(&program, &model, backend, warmup, seconds, profiling) {
        Ok(result) => {
            println!("{}", result.json());
            if let Some(top) = profile {
                use std::io::Write;
                // The JSON first, even when stdout is a pipe (block-buffered).
                let _ = std::io::stdout().flush();
                if result.profile.is_empty() {
                    eprintln!("no kernel profile: only the native backend times its kernels");
                } else {
                    eprint!("{}", result.profile_table(top));
                }
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn predict(path: &Path, select: &Select, checkpoint: &Path, input: &[PathBuf], json: bool) -> i32 {
    match predictions(path, select, checkpoint, input) {
        Ok(rows) => {
            if json {
                let items: Vec<String> = rows
                    .iter()
                    .map(|(class, scores)| {
                        format!("{{\"class\": {class}, \"scores\": {scores:?}}}")
                    })
                    .collect();
                println!("[{}]", items.join(", "));
            } else {
                for (i, (class, scores)) in rows.iter().enumerate() {
                    let best = scores.get(*class).copied().unwrap_or(f32::NAN);
                    println!("{i}\t{class}\t{best:.4}");
                }
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Per sample: the predicted class (arg-max, or score > 0.5 for one output) and the scores
/// (softmax probabilities for several classes, the raw output otherwise).
fn predictions(
    path: &Path,
    select: &Select,
    checkpoint: &Path,
    inputs: &[PathBuf],
) -> Result<Vec<(usize, Vec<f32>)>, String> {
    use netc_compiler::builtins::{BoundArg, BoundArgs};
    use netc_compiler::types::{Spec, Value as CheckValue};
    let src = read_source(path).ok_or("cannot read the program")?;
    let program = compile(path, select, Stage::Optimized).ok_or("the program does not compile")?;
    let mut info = program.data.clone().ok_or("the run has no data set")?;
    let source = info.source.clone().ok_or("the data set has no source")?;
    let images = inputs
        .iter()
        .all(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")));
    let input = match inputs {
        [one] => one,
        _ if images => &inputs[0],
        _ => return Err("several inputs must all be .png images".to_string()),
    };
    let input_text = input.to_string_lossy().to_string();
    info.source = Some(match input.extension().and_then(|e| e.to_str()) {
        _ if images => {
            info.fields.retain(|f| !f.is_label);
            let paths = inputs
                .iter()
                .map(|p| CheckValue::Str(p.to_string_lossy().to_string()))
                .collect();
            let args = vec![BoundArg {
                name: "path",
                value: CheckValue::List(paths),
                span: None,
            }];
            Spec {
                name: "image_files",
                args: BoundArgs { values: args },
                span: source.span,
            }
        }
        Some("npy") => {
            // Features only: label fields are not read.
            info.fields.retain(|f| !f.is_label);
            let args = vec![
                BoundArg {
                    name: "features",
                    value: CheckValue::Str(input_text),
                    span: None,
                },
                BoundArg {
                    name: "labels",
                    value: CheckValue::Error,
                    span: None,
                },
            ];
            Spec {
                name: "npy",
                args: BoundArgs { values: args },
                span: source.span,
            }
        }
        Some("csv") if source.name == "csv" => {
            let mut args = source.args.clone();
            for a in &mut args.values {
                if a.name == "path" {
                    a.value = CheckValue::Str(input_text.clone());
                }
            }
            Spec { args, ..source }
        }
        _ => {
            return Err(format!(
                "{}: give a .npy file of features, a .csv laid out like the training data, or .png images",
                input.display()
            ));
        }
    });
    info.test = None;
    info.split = None;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let data = netc_runtime::data::load(&program.file, &info, &cwd).map_err(|e| e.to_string())?;
    let rows = data.train.len;
    if rows == 0 {
        return Err(format!("{}: no samples", input.display()));
    }
    let at_size = compile_run_with(
        &src,
        select.run.as_deref(),
        CompileOptions {
            batch: Some(rows),
            stage: Stage::Optimized,
        },
    )
    .map_err(|_| "the program does not compile at this batch size".to_string())?;
    let mut graph = at_size
        .eval
        .ok_or("this run has no single loss whose prediction to show")?;
    graph.outputs.retain(|o| o.name == "prediction");
    netc_compiler::ir::passes::optimize(&mut graph);
    let values =
        netc_runtime::train::load_values(&program, checkpoint).map_err(|e| e.to_string())?;
    let mut inputs = values;
    for f in &data.train.fields {
        let mut shape = vec![rows];
        shape.extend(&f.dims);
        let v = match &f.values {
            netc_runtime::data::FieldValues::F32(v) => {
                netc_compiler::ir::interp::Value::f32(shape, v.clone())
            }
            netc_runtime::data::FieldValues::I64(v) => {
                netc_compiler::ir::interp::Value::i64(shape, v.clone())
            }
        };
        inputs.insert(f.name.clone(), v);
    }
    inputs.insert(
        "rng_seed".into(),
        netc_compiler::ir::interp::Value::scalar_i64(0),
    );
    let mut exec = netc_runtime::train::Executor::new(netc_runtime::train::Backend::Cranelift);
    let out = exec.run(&graph, &inputs)?;
    let prediction = out.get("prediction").ok_or("no prediction")?;
    let width = prediction.ty.shape.iter().skip(1).product::<usize>().max(1);
    let scores = prediction.to_f32_vec().unwrap_or_default();
    Ok(scores
        .chunks(width)
        .map(|row| {
            if width == 1 {
                (usize::from(row[0] > 0.5), row.to_vec())
            } else {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
                let total: f32 = exp.iter().sum();
                let probs: Vec<f32> = exp.iter().map(|e| e / total).collect();
                let class = probs
                    .iter()
                    .enumerate()
                    .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b })
                    .0;
                (class, probs)
            }
        })
        .collect())
}
