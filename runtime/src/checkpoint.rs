//! Checkpoints: every parameter, buffer and optimizer-state tensor in one safetensors file, with
//! a manifest (step, epoch, position in the epoch, seeds) in its header metadata.
//!
//! Writes are atomic: the file is written under a temporary name in the same folder, flushed
//! to disk, then renamed over the final name, and the folder is synced. A crash or a full disk
//! at any point leaves every checkpoint already saved intact.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use netc_compiler::ir::interp::Value;
use netc_compiler::weights;

/// Where training stood when the checkpoint was written: enough to continue exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Optimizer steps taken (the next step is `step + 1`).
    pub step: u64,
    /// The epoch in progress, counted from 0.
    pub epoch: u64,
    /// Batches of `epoch` already consumed.
    pub batch_in_epoch: u64,
    /// The run's seed (initialisation, dropout, noise and data order derive from it).
    pub seed: u64,
    pub run: String,
}

const MANIFEST_KEY: &str = "netc.manifest";
const FORMAT: &str = "netc-checkpoint-1";

impl Manifest {
    fn to_metadata(&self) -> HashMap<String, String> {
        let text = format!(
            "format={FORMAT};run={};step={};epoch={};batch_in_epoch={};seed={}",
            self.run, self.step, self.epoch, self.batch_in_epoch, self.seed
        );
        HashMap::from([(MANIFEST_KEY.to_string(), text)])
    }

    fn from_metadata(meta: &BTreeMap<String, String>, origin: &str) -> Result<Manifest, String> {
        let text = meta.get(MANIFEST_KEY).ok_or_else(|| {
            format!("{origin}: not a netc checkpoint (no `{MANIFEST_KEY}` in its header)")
        })?;
        let fields: BTreeMap<&str, &str> = text
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if fields.get("format") != Some(&FORMAT) {
            return Err(format!(
                "{origin}: unknown checkpoint format {:?} (expected {FORMAT})",
                fields.get("format")
            ));
        }
        let number = |key: &str| -> Result<u64, String> {
            fields
                .get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{origin}: checkpoint manifest has no valid `{key}`"))
        };
        Ok(Manifest {
            step: number("step")?,
            epoch: number("epoch")?,
            batch_in_epoch: number("batch_in_epoch")?,
            seed: number("seed")?,
            run: fields.get("run").unwrap_or(&"").to_string(),
        })
    }
}

/// Write `tensors` and `manifest` to `path` atomically.
pub fn save(
    path: &Path,
    tensors: &BTreeMap<String, Value>,
    manifest: &Manifest,
) -> Result<(), String> {
    let bytes = weights::to_bytes_with_metadata(tensors, Some(manifest.to_metadata()))
        .map_err(|e| e.to_string())?;
    write_atomically(path, &bytes)
}

/// Read a checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<(BTreeMap<String, Value>, Manifest), String> {
    let origin = path.display().to_string();
    let bytes = fs::read(path).map_err(|e| format!("{origin}: {e}"))?;
    let (tensors, meta) =
        weights::from_bytes_with_metadata(&bytes, &origin).map_err(|e| e.to_string())?;
    let manifest = Manifest::from_metadata(&meta, &origin)?;
    Ok((tensors, manifest))
}

/// Temp file in the same folder, fsync, rename, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            // Persist the rename itself; not every file system supports syncing a folder.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!(
            "cannot write {}: {e} (checkpoints already saved are unchanged)",
            path.display()
        )
    })
}

/// Keeps the last `keep` step checkpoints of a run and, optionally, the best one.
pub struct Keeper {
    pub dir: PathBuf,
    pub keep: usize,
    written: Vec<PathBuf>,
    best: Option<f64>,
}

impl Keeper {
    pub fn new(dir: PathBuf, keep: usize) -> Self {
        Keeper {
            dir,
            keep: keep.max(1),
            written: Vec::new(),
            best: None,
        }
    }

    /// Save a step checkpoint and delete the ones beyond `keep`. Returns its path.
    pub fn save(
        &mut self,
        tensors: &BTreeMap<String, Value>,
        manifest: &Manifest,
    ) -> Result<PathBuf, String> {
        let path = self
            .dir
            .join(format!("step-{:08}.safetensors", manifest.step));
        save(&path, tensors, manifest)?;
        fs::copy(&path, self.dir.join("last.safetensors.tmp"))
            .and_then(|_| {
                fs::rename(
                    self.dir.join("last.safetensors.tmp"),
                    self.dir.join("last.safetensors"),
                )
            })
            .map_err(|e| format!("cannot update last.safetensors: {e}"))?;
        self.written.push(path.clone());
        while self.written.len() > self.keep {
            let old = self.written.remove(0);
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }

    /// Save as `best.safetensors` when `score` (higher is better) beats every earlier one.
    pub fn offer_best(
        &mut self,
        score: f64,
        tensors: &BTreeMap<String, Value>,
        manifest: &Manifest,
    ) -> Result<bool, String> {
        if self.best.is_some_and(|b| b >= score) || score.is_nan() {
            return Ok(false);
        }
        save(&self.dir.join("best.safetensors"), tensors, manifest)?;
        self.best = Some(score);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> BTreeMap<String, Value> {
        BTreeMap::from([
            (
                "M.w".to_string(),
                Value::f32(vec![2, 2], vec![1.0, -2.0, 3.5, 0.25]),
            ),
            (
                "M.bn.num_batches_tracked".to_string(),
                Value::i64(vec![], vec![7]),
            ),
        ])
    }

    fn manifest() -> Manifest {
        Manifest {
            step: 12,
            epoch: 1,
            batch_in_epoch: 3,
            seed: 42,
            run: "mlp".into(),
        }
    }

    #[test]
    fn round_trips_exactly() {
        let dir = std::env::temp_dir().join(format!("netc-ckpt-{}", std::process::id()));
        let path = dir.join("a.safetensors");
        save(&path, &tensors(), &manifest()).unwrap();
        let (t, m) = load(&path).unwrap();
        assert_eq!(m, manifest());
        assert_eq!(t["M.w"].as_f64_slice(), tensors()["M.w"].as_f64_slice());
        assert_eq!(
            t["M.bn.num_batches_tracked"].as_i64_slice(),
            Some(&[7i64][..])
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keeper_keeps_the_last_n() {
        let dir = std::env::temp_dir().join(format!("netc-keep-{}", std::process::id()));
        let mut k = Keeper::new(dir.clone(), 2);
        for step in 1..=4 {
            k.save(&tensors(), &Manifest { step, ..manifest() })
                .unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "last.safetensors",
                "step-00000003.safetensors",
                "step-00000004.safetensors"
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_checkpoint() {
        let dir = std::env::temp_dir().join(format!("netc-fail-{}", std::process::id()));
        let path = dir.join("c.safetensors");
        save(&path, &tensors(), &manifest()).unwrap();
        // Writing into a path whose parent is a file fails; the existing checkpoint stays.
        let bad = path.join("inside-a-file.safetensors");
        let err = save(&bad, &tensors(), &manifest()).unwrap_err();
        assert!(err.contains("cannot"), "{err}");
        assert_eq!(load(&path).unwrap().1, manifest());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncated_and_foreign_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("netc-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.safetensors");
        save(&path, &tensors(), &manifest()).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains("not a valid safetensors file"), "{err}");
        let plain = dir.join("plain.safetensors");
        fs::write(&plain, weights::to_bytes(&tensors()).unwrap()).unwrap();
        let err = load(&plain).unwrap_err();
        assert!(err.contains("not a netc checkpoint"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }
}
