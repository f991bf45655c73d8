//! `idx(images, labels)`: MNIST-style IDX files, raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 TT RR` (element type `TT`, rank `RR`), `RR`
//! big-endian u32 sizes, then the elements, big-endian, row-major. MNIST images are
//! `0x00000803` (u8, `[N, 28, 28]`), labels `0x00000801` (u8, `[N]`). Gzip is recognised by its
//! content (`1f 8b`), not by the file name, and decompressed whole in memory (47 MB for the MNIST
//! training images). A declared image field may be the file's shape (`[28, 28]`), that shape
//! with a leading channel of 1 (`[1, 28, 28]`, for a CNN), or flat (`[784]`, for an MLP).

use std::io::Read;
use std::path::Path;

use super::{Column, DataError, Features, Loaded, Locator, Raw, Reshape, read_file};

/// One IDX file, parsed and checked.
struct Idx {
    /// All dims, the sample count first.
    dims: Vec<usize>,
    values: Raw,
    header_len: usize,
    item: usize,
    /// " of the decompressed data" for gzip files, so byte offsets are not misread.
    note: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Images,
    Labels,
}

pub(crate) fn load(images: &Path, labels: &Path) -> Result<Loaded, DataError> {
    let img = read(images, Role::Images)?;
    let lab = read(labels, Role::Labels)?;
    let (n, n_labels) = (img.dims[0], lab.dims[0]);
    if n != n_labels {
        return Err(DataError::at(
            images,
            format!(
                "the file has {n} images, but {} has {n_labels} labels",
                labels.display()
            ),
        ));
    }
    let sample_dims = img.dims[1..].to_vec();
    let per: usize = sample_dims.iter().product();
    let shape: Vec<String> = sample_dims.iter().map(usize::to_string).collect();
    Ok(Loaded {
        len: n,
        features: Features::Dense(Column {
            values: img.values,
            dims: sample_dims,
            path: images.to_path_buf(),
            what: format!("the images are {}", shape.join("x")),
            reshape: Reshape::Image,
            locate: Locator::Records {
                parts: vec![(images.to_path_buf(), 0)],
                offset: img.header_len,
                stride: per * img.item,
                note: img.note,
            },
        }),
        labels: Some(Column {
            values: lab.values,
            dims: Vec::new(),
            path: labels.to_path_buf(),
            what: "the file has one label per sample".to_string(),
            reshape: Reshape::Scalar,
            locate: Locator::Records {
                parts: vec![(labels.to_path_buf(), 0)],
                offset: lab.header_len,
                stride: lab.item,
                note: lab.note,
            },
        }),
    })
}

/// Read a file, decompressing it when it is gzip.
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<(Vec<u8>, bool), DataError> {
    let bytes = read_file(path)?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok((bytes.into_vec(), false));
    }
    // The gzip trailer holds the uncompressed size mod 2^32: a capacity hint only.
    let hint = bytes
        .len()
        .checked_sub(4)
        .map(|i| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize)
        .unwrap_or(0)
        .min(1 << 30);
    let mut out = Vec::with_capacity(hint);
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .map_err(|e| {
            DataError::at(
                path,
                format!("not valid gzip data (truncated or corrupt): {e}"),
            )
        })?;
    Ok((out, true))
}

fn read(path: &Path, role: Role) -> Result<Idx, DataError> {
    let (bytes, gz) = read_maybe_gzip(path)?;
    let (note, once) = if gz {
        (" of the decompressed data", " once decompressed")
    } else {
        ("", "")
    };
    let expected = match role {
        Role::Images => "0x00000803 (unsigned bytes, 3 dimensions) for images",
        Role::Labels => "0x00000801 (unsigned bytes, 1 dimension) for labels",
    };
    if bytes.len() < 4 {
        return Err(DataError::at(
            path,
            format!(
                "truncated: the file has {} bytes{once}, too few for an IDX magic number (4 bytes)",
                bytes.len()
            ),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let item = match bytes[2] {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => 0,
    };
    let rank = bytes[3] as usize;
    if bytes[0] != 0 || bytes[1] != 0 || item == 0 || rank == 0 {
        return Err(DataError::at(
            path,
            format!("not an IDX file: the magic number is 0x{magic:08x}, expected {expected}"),
        ));
    }
    let plural = |r: usize| if r == 1 { "dimension" } else { "dimensions" };
    match role {
        Role::Labels if rank != 1 => {
            return Err(DataError::at(
                path,
                format!(
                    "expected an IDX labels file (magic 0x00000801, 1 dimension), found {rank} {} (magic 0x{magic:08x})",
                    plural(rank)
                ),
            ));
        }
        Role::Images if rank < 2 => {
            return Err(DataError::at(
                path,
                format!(
                    "expected an IDX images file (magic 0x00000803, 3 dimensions), found {rank} {} (magic 0x{magic:08x})",
                    plural(rank)
                ),
            ));
        }
        _ => {}
    }
    let header_len = 4 + 4 * rank;
    if bytes.len() < header_len {
        return Err(DataError::at(
            path,
            format!(
                "truncated: the header of {rank} {} needs {header_len} bytes, but the file has {}{once}",
                plural(rank),
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let what = match role {
        Role::Labels => format!("{} labels", dims[0]),
        Role::Images => {
            let shape: Vec<String> = dims[1..].iter().map(usize::to_string).collect();
            format!("{} images of {}", dims[0], shape.join("x"))
        }
    };
    let need = dims
        .iter()
        .try_fold(item, |acc: usize, &d| acc.checked_mul(d))
        .and_then(|b| b.checked_add(header_len));
    let have = bytes.len();
    match need {
        Some(need) if need == have => {}
        Some(need) if need < have => {
            return Err(DataError::at(
                path,
                format!(
                    "the header declares {what}, which need {need} bytes, but the file has {have} bytes{once} ({} more)",
                    have - need
                ),
            ));
        }
        Some(need) => {
            return Err(DataError::at(
                path,
                format!(
                    "truncated: the header declares {what}, which need {need} bytes, but the file has {have} bytes{once}"
                ),
            ));
        }
        None => {
            return Err(DataError::at(
                path,
                format!("the header declares {what}, more than can be addressed"),
            ));
        }
    }
    let data = &bytes[header_len..];
    let values = match bytes[2] {
        0x08 => {
            let mut bytes = bytes;
            bytes.drain(..header_len);
            Raw::U8(bytes)
        }
        0x09 => Raw::I64(data.iter().map(|&b| i64::from(b as i8)).collect()),
        0x0B => Raw::I64(
            data.chunks_exact(2)
                .map(|c| i64::from(i16::from_be_bytes([c[0], c[1]])))
                .collect(),
        ),
        0x0C => Raw::I64(
            data.chunks_exact(4)
                .map(|c| i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        0x0D => Raw::F32(
            data.chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => Raw::F64(
            data.chunks_exact(8)
                .map(|c| f64::from_be_bytes(c.try_into().expect("8-byte chunk")))
                .collect(),
        ),
    };
    Ok(Idx {
        dims,
        values,
        header_len,
        item,
        note,
    })
}
