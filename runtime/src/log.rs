//! What a run shows and leaves behind: a progress bar (or plain lines when not on a terminal),
//! `metrics.jsonl` with one JSON object per logged step and per epoch, `summary.json`, and a
//! loss curve as `curves.svg`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::Summary;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A live bar on the terminal.
    Bar,
    /// A plain line every few steps and every epoch (logs, CI, pipes).
    Lines,
    /// Nothing but errors (`--json` prints only the summary).
    Quiet,
}

/// The run's log files and progress display.
pub struct Log {
    dir: PathBuf,
    jsonl: File,
    bar: Option<ProgressBar>,
    progress: Progress,
    /// Log every this many steps (about 500 lines per run at most).
    every: u64,
    /// `(step, loss)` of logged steps and `(step, name, value)` of epoch metrics, for the plot.
    losses: Vec<(u64, f64)>,
    epochs: Vec<(u64, String, f64)>,
    last_step: u64,
}

impl Log {
    /// Create the run directory and open `metrics.jsonl` for appending (a resumed run continues
    /// the same file).
    pub fn open(dir: &Path, progress: Progress, total_steps: u64) -> Result<Log, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("metrics.jsonl");
        let jsonl = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let bar = (progress == Progress::Bar).then(|| {
            let bar = ProgressBar::new(total_steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  epoch {prefix}  {msg}  [{elapsed} < {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Ok(Log {
            dir: dir.to_path_buf(),
            jsonl,
            bar,
            progress,
            every: (total_steps / 500).max(1),
            losses: Vec::new(),
            epochs: Vec::new(),
            last_step: 0,
        })
    }

    fn write(&mut self, line: String) -> Result<(), String> {
        writeln!(self.jsonl, "{line}").map_err(|e| {
            format!(
                "cannot write {}: {e}",
                self.dir.join("metrics.jsonl").display()
            )
        })
    }

    /// After each optimizer step.
    pub fn step(
        &mut self,
        step: u64,
        epoch: u64,
        losses: &[(String, f64)],
        lr_factor: f64,
        samples_per_s: f64,
    ) -> Result<(), String> {
        self.last_step = step;
        let loss_text: Vec<String> = losses
            .iter()
            .map(|(n, l)| format!("{n} loss {l:.4}"))
            .collect();
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_prefix(epoch.to_string());
            bar.set_message(format!(
                "{}  {samples_per_s:.0} samples/s",
                loss_text.join("  ")
            ));
        }
        if !step.is_multiple_of(self.every) {
            return Ok(());
        }
        self.losses.push((step, losses[0].1));
        let fields: Vec<String> = losses
            .iter()
            .map(|(n, l)| format!("\"{n}_loss\": {}", json_number(*l)))
            .collect();
        self.write(format!(
            "{{\"step\": {step}, \"epoch\": {epoch}, {}, \"lr_factor\": {}, \"samples_per_s\": {}}}",
            fields.join(", "),
            json_number(lr_factor),
            json_number(samples_per_s)
        ))?;
        if self.progress == Progress::Lines && step.is_multiple_of(self.every * 50) {
            eprintln!(
                "step {step}  epoch {epoch}  {}  {samples_per_s:.0} samples/s",
                loss_text.join("  ")
            );
        }
        Ok(())
    }

    /// After each epoch, with the validation metrics.
    pub fn epoch(
        &mut self,
        epoch: u64,
        train_loss: f64,
        validation: &std::collections::BTreeMap<String, f64>,
    ) -> Result<(), String> {
        let mut fields = vec![
            format!("\"epoch\": {epoch}"),
            format!("\"train_loss\": {}", json_number(train_loss)),
        ];
        let mut text = vec![format!("epoch {epoch}: train loss {train_loss:.4}")];
        for (name, value) in validation {
            fields.push(format!("\"val_{name}\": {}", json_number(*value)));
            text.push(format!("val {name} {value:.4}"));
            self.epochs.push((self.last_step, name.clone(), *value));
        }
        self.write(format!("{{{}}}", fields.join(", ")))?;
        match (&self.bar, self.progress) {
            (Some(bar), _) => bar.println(text.join("  ")),
            (None, Progress::Lines) => eprintln!("{}", text.join("  ")),
            _ => {}
        }
        Ok(())
    }

    /// Write `summary.json` and `curves.svg`.
    pub fn finish(&mut self, summary: &Summary) -> Result<(), String> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let path = self.dir.join("summary.json");
        fs::write(&path, summary_json(summary))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let svg = crate::plot::curves(&self.losses, &self.epochs);
        let path = self.dir.join("curves.svg");
        fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// JSON has no NaN or infinity; write them as `null`.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".to_string()
    }
}

/// The summary as one JSON object (what `netc train --json` prints).
pub fn summary_json(s: &Summary) -> String {
    let validation: Vec<String> = s
        .validation
        .iter()
        .map(|(k, v)| format!("\"{k}\": {}", json_number(*v)))
        .collect();
    let losses: Vec<String> = s
        .final_losses
        .iter()
        .map(|(k, v)| format!("\"{k}\": {}", json_number(*v)))
        .collect();
    format!(
        "{{\"run\": \"{}\", \"steps\": {}, \"epochs\": {}, \"final_train_loss\": {}, \"final_losses\": {{{}}}, \"validation\": {{{}}}, \"wall_s\": {}, \"samples_per_s\": {}}}",
        s.run.replace('"', "\\\""),
        s.steps,
        s.epochs,
        json_number(s.final_train_loss),
        losses.join(", "),
        validation.join(", "),
        json_number(s.wall_s),
        json_number(s.samples_per_s)
    )
}
