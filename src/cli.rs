//! Command-line interface: argument parsing and the subcommands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
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
    match cli.command {
        Command::Check {
            files,
            shapes,
            message_format,
        } => check(&files, shapes, message_format),
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
