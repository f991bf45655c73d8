//! Reading data files: small files into memory, large ones memory-mapped.
//!
//! A loader parses a file once and copies out the samples it keeps, so the whole file only
//! needs to be readable during loading. Reading a large file into a buffer first would hold it
//! twice in the process's memory (the buffer and the parsed samples); a mapping instead lets
//! the kernel page the file in as the parser walks it and drop those pages under pressure.

use std::ops::Deref;
use std::path::Path;

use super::DataError;

/// Files at least this large are memory-mapped. Unit tests map every file, so both ways of
/// reading run under test.
#[cfg(not(test))]
const MAP_AT: u64 = 64 << 20;
#[cfg(test)]
const MAP_AT: u64 = 1;

/// A file's bytes, read or mapped.
pub(crate) enum FileBytes {
    Read(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

impl FileBytes {
    /// The bytes as an owned buffer (moved when read, copied when mapped).
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Mapped(m) => m.to_vec(),
        }
    }
}

/// Read a whole file; a missing file names the path as resolved from the `.net` file.
pub(crate) fn read_file(path: &Path) -> Result<FileBytes, DataError> {
    let error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::at(
            path,
            "no such file (paths in a `.net` file are relative to its directory)",
        ),
        std::io::ErrorKind::IsADirectory => DataError::at(path, "is a directory, not a file"),
        _ => DataError::at(path, format!("cannot read: {e}")),
    };
    let file = std::fs::File::open(path).map_err(error)?;
    let meta = file.metadata().map_err(error)?;
    if meta.is_dir() {
        return Err(DataError::at(path, "is a directory, not a file"));
    }
    if meta.len() >= MAP_AT && meta.is_file() {
        // SAFETY: the mapping is read-only and lives only while the loader parses it. Were
        // another process to truncate the file meanwhile, reads past the new end would fault;
        // data sets are not rewritten while a run loads them, and every loader checks sizes
        // against the header before indexing.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(error)?;
        return Ok(FileBytes::Mapped(map));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(error)?;
    Ok(FileBytes::Read(bytes))
}

/// Read a text file, which must be UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = read_file(path)?.into_vec();
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        DataError::at(
            path,
            format!("line {line}: not UTF-8 text (invalid byte at offset {at})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_read_bytes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let data: Vec<u8> = (0..=255).cycle().take(10_000).collect();
        std::fs::write(&path, &data).unwrap();
        let mapped = read_file(&path).unwrap();
        assert!(
            matches!(mapped, FileBytes::Mapped(_)),
            "tests map every file"
        );
        assert_eq!(&*mapped, &data[..]);
        assert_eq!(mapped.into_vec(), data);
        // An empty file cannot be mapped; it is read.
        let empty = dir.path().join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(read_file(&empty).unwrap(), FileBytes::Read(v) if v.is_empty()));
    }

    #[test]
    fn missing_files_and_folders_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.bin");
        assert_eq!(
            read_file(&missing).err().unwrap().to_string(),
            format!(
                "{}: no such file (paths in a `.net` file are relative to its directory)",
                missing.display()
            )
        );
        assert_eq!(
            read_file(dir.path()).err().unwrap().to_string(),
            format!("{}: is a directory, not a file", dir.path().display())
        );
    }
}

/// The binary loaders parse mapped files as they parse read ones (the integration tests in
/// `runtime/tests/data.rs` read the same fixtures into memory).
#[cfg(test)]
mod mapped_loaders {
    use std::path::PathBuf;

    use crate::data::{Features, Raw, cifar, idx};

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn bytes(raw: &Raw) -> Vec<i64> {
        match raw {
            Raw::U8(v) => v.iter().map(|&b| i64::from(b)).collect(),
            Raw::I64(v) => v.clone(),
            _ => panic!("expected integers"),
        }
    }

    #[test]
    fn cifar_records_from_a_mapping() {
        let loaded = cifar::load(&[fixture("cifar10-10.bin")]).unwrap();
        assert_eq!(loaded.len, 10);
        let labels = bytes(&loaded.labels.unwrap().values);
        assert_eq!(labels, [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
        let Features::Dense(pixels) = loaded.features else {
            panic!("dense pixels")
        };
        let raw = std::fs::read(fixture("cifar10-10.bin")).unwrap();
        assert_eq!(
            bytes(&pixels.values)[..3072],
            raw[1..3073]
                .iter()
                .map(|&b| i64::from(b))
                .collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn raw_idx_labels_from_a_mapping() {
        let loaded = idx::load(
            &fixture("mnist-20-images-idx3-ubyte.gz"),
            &fixture("mnist-20-labels-idx1-ubyte"),
        )
        .unwrap();
        assert_eq!(
            bytes(&loaded.labels.unwrap().values),
            [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9]
        );
    }
}
