//! `cifar10(path)`: CIFAR-10 "binary version" batch files, read in the order given.
//!
//! There is no header: each record is 3073 bytes, one label byte (0–9) then a 3x32x32 image as
//! three 1024-byte planes (red, green, blue), each row-major. So a file's size must be a whole
//! number of records, and any prefix of whole records is a valid file.

use std::path::{Path, PathBuf};

use super::{Column, DataError, Features, Loaded, Locator, Raw, Reshape, read_file};

/// Bytes of one record: the label byte and 3 × 32 × 32 pixels.
pub const RECORD: usize = 1 + PIXELS;
const PIXELS: usize = 3 * 32 * 32;

pub(crate) fn load(paths: &[PathBuf]) -> Result<Loaded, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut parts = Vec::new();
    for path in paths {
        let bytes = read_file(path)?;
        check_size(path, bytes.len())?;
        parts.push((path.clone(), labels.len()));
        pixels.reserve(bytes.len() / RECORD * PIXELS);
        for record in bytes.chunks_exact(RECORD) {
            labels.push(record[0]);
            pixels.extend_from_slice(&record[1..]);
        }
    }
    let first = paths.first().cloned().unwrap_or_default();
    Ok(Loaded {
        len: labels.len(),
        features: Features::Dense(Column {
            values: Raw::U8(pixels),
            dims: vec![3, 32, 32],
            path: first.clone(),
            what: "records hold 3x32x32 images".to_string(),
            reshape: Reshape::Exact,
            locate: Locator::Records {
                parts: parts.clone(),
                offset: 1,
                stride: RECORD,
                note: "",
            },
        }),
        labels: Some(Column {
            values: Raw::U8(labels),
            dims: Vec::new(),
            path: first,
            what: "each record has one label byte".to_string(),
            reshape: Reshape::Scalar,
            locate: Locator::Records {
                parts,
                offset: 0,
                stride: RECORD,
                note: "",
            },
        }),
    })
}

fn check_size(path: &Path, len: usize) -> Result<(), DataError> {
    if len == 0 {
        return Err(DataError::at(
            path,
            "the file is empty (expected 3073-byte CIFAR-10 records)",
        ));
    }
    if !len.is_multiple_of(RECORD) {
        return Err(DataError::at(
            path,
            format!(
                "{len} bytes is not a whole number of 3073-byte CIFAR-10 records (a label byte and 3x32x32 pixels): {} records and {} bytes left over",
                len / RECORD,
                len % RECORD
            ),
        ));
    }
    Ok(())
}
