//! `npy(features, labels)`: NumPy `.npy` arrays, samples on axis 0.
//!
//! The format (versions 1.0, 2.0 and 3.0) is a magic string `\x93NUMPY`, a version, a header
//! length (u16 for 1.0, u32 after), and a Python dict literal giving `descr` (the element type),
//! `fortran_order` and `shape`; the data follows. Read here without a crate: little-endian
//! `f4 f8 i1 i2 i4 i8 u1 u2 u4 u8` and `b1`, C order. Labels are `(N,)` or `(N, 1)`. A feature
//! field may be declared with the array's sample shape, that shape with a leading 1, or flat.

use std::path::Path;

use super::{Column, DataError, Features, Loaded, Locator, Raw, Reshape, read_file};

/// A parsed array.
struct Array {
    shape: Vec<usize>,
    values: Raw,
    data_start: usize,
    item: usize,
}

pub(crate) fn load(features: &Path, labels: Option<&Path>) -> Result<Loaded, DataError> {
    let x = read(features)?;
    let n = x.shape[0];
    let sample_dims = x.shape[1..].to_vec();
    let per: usize = sample_dims.iter().product();
    let shape_text = tuple(&sample_dims);
    let labels = match labels {
        Some(path) => {
            let y = read(path)?;
            if y.shape.len() > 2 || (y.shape.len() == 2 && y.shape[1] != 1) {
                return Err(DataError::at(
                    path,
                    format!(
                        "a labels array must have shape (N,) or (N, 1), found {}",
                        tuple(&y.shape)
                    ),
                ));
            }
            if y.shape[0] != n {
                return Err(DataError::at(
                    features,
                    format!(
                        "the array has {n} samples, but {} has {} labels",
                        path.display(),
                        y.shape[0]
                    ),
                ));
            }
            Some(Column {
                values: y.values,
                dims: Vec::new(),
                path: path.to_path_buf(),
                what: "the array has one label per sample".to_string(),
                reshape: Reshape::Scalar,
                locate: Locator::Records {
                    parts: vec![(path.to_path_buf(), 0)],
                    offset: y.data_start,
                    stride: y.item,
                    note: "",
                },
            })
        }
        None => None,
    };
    Ok(Loaded {
        len: n,
        features: Features::Dense(Column {
            values: x.values,
            dims: sample_dims,
            path: features.to_path_buf(),
            what: format!("samples have shape {shape_text}"),
            reshape: Reshape::Image,
            locate: Locator::Records {
                parts: vec![(features.to_path_buf(), 0)],
                offset: x.data_start,
                stride: per * x.item,
                note: "",
            },
        }),
        labels,
    })
}

/// A shape as Python writes it: `(30, 64)`, `(30,)`, `()`.
fn tuple(dims: &[usize]) -> String {
    match dims {
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

fn read(path: &Path) -> Result<Array, DataError> {
    let bytes = read_file(path)?;
    let err = |m: String| DataError::at(path, m);
    if !bytes.starts_with(b"\x93NUMPY") {
        let head: Vec<String> = bytes.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return Err(err(format!(
            "not a .npy file: expected the magic bytes 93 4e 55 4d 50 59 (\\x93NUMPY), found {}",
            head.join(" ")
        )));
    }
    if bytes.len() < 10 {
        return Err(err(format!(
            "truncated: the file has {} bytes, too few for a .npy header",
            bytes.len()
        )));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => {
            return Err(err(format!(
                "truncated: the file has {} bytes, too few for a .npy header",
                bytes.len()
            )));
        }
        v => return Err(err(format!("unsupported .npy version {v}.{}", bytes[7]))),
    };
    let data_start = start + header_len;
    if bytes.len() < data_start {
        return Err(err(format!(
            "truncated: the header needs {data_start} bytes, but the file has {}",
            bytes.len()
        )));
    }
    let header = String::from_utf8_lossy(&bytes[start..data_start]);
    let descr = quoted_value(&header, "descr")
        .ok_or_else(|| err(format!("malformed header, no `descr`: {}", header.trim())))?;
    let fortran = raw_value(&header, "fortran_order").ok_or_else(|| {
        err(format!(
            "malformed header, no `fortran_order`: {}",
            header.trim()
        ))
    })?;
    if fortran.starts_with("True") {
        return Err(err(
            "the array is in Fortran order; save it in C order (numpy.ascontiguousarray)"
                .to_string(),
        ));
    }
    let shape = shape_value(&header).ok_or_else(|| {
        err(format!(
            "malformed header, no readable `shape`: {}",
            header.trim()
        ))
    })?;
    if shape.is_empty() {
        return Err(err(
            "the array is 0-dimensional; samples must be on axis 0".to_string()
        ));
    }
    let (order, kind) = descr.split_at(1.min(descr.len()));
    let item: usize = match kind {
        "f4" | "i4" | "u4" => 4,
        "f8" | "i8" | "u8" => 8,
        "i2" | "u2" => 2,
        "i1" | "u1" | "b1" => 1,
        _ => 0,
    };
    if item == 0 || !matches!(order, "<" | "|" | "=") || (order == "|" && item != 1) {
        let hint = if order == ">" && item != 0 {
            " (big-endian arrays are not supported)"
        } else {
            ""
        };
        return Err(err(format!(
            "unsupported element type `{descr}`{hint}; expected little-endian f4, f8, i1, i2, i4, i8, u1, u2, u4, u8 or b1"
        )));
    }
    let need = shape
        .iter()
        .try_fold(item, |acc: usize, &d| acc.checked_mul(d))
        .and_then(|b| b.checked_add(data_start));
    match need {
        Some(need) if need == bytes.len() => {}
        Some(need) if need > bytes.len() => {
            return Err(err(format!(
                "truncated: the header declares shape {} of `{descr}`, which needs {need} bytes, but the file has {}",
                tuple(&shape),
                bytes.len()
            )));
        }
        Some(need) => {
            return Err(err(format!(
                "the header declares shape {} of `{descr}`, which needs {need} bytes, but the file has {} ({} more)",
                tuple(&shape),
                bytes.len(),
                bytes.len() - need
            )));
        }
        None => {
            return Err(err(format!(
                "the header declares shape {}, more than can be addressed",
                tuple(&shape)
            )));
        }
    }
    let data = &bytes[data_start..];
    let le4 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
    let values = match kind {
        "f4" => Raw::F32(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(le4(c)))
                .collect(),
        ),
        "f8" => Raw::F64(
            data.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        "i1" => Raw::I64(data.iter().map(|&b| i64::from(b as i8)).collect()),
        "u1" | "b1" => Raw::U8(data.to_vec()),
        "i2" => Raw::I64(
            data.chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        "u2" => Raw::I64(
            data.chunks_exact(2)
                .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        "i4" => Raw::I64(
            data.chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(le4(c))))
                .collect(),
        ),
        "u4" => Raw::I64(
            data.chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes(le4(c))))
                .collect(),
        ),
        "i8" => Raw::I64(
            data.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        // u8 above i64::MAX cannot be a label or a feature we could represent exactly.
        _ => Raw::F64(
            data.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                .collect(),
        ),
    };
    Ok(Array {
        shape,
        values,
        data_start,
        item,
    })
}

/// The text after `'key':` in the header dict, trimmed at the start.
fn raw_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

/// A quoted string value: `'descr': '<f8'`.
fn quoted_value(header: &str, key: &str) -> Option<String> {
    let v = raw_value(header, key)?;
    let quote = v.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let end = v[1..].find(quote)?;
    Some(v[1..1 + end].to_string())
}

/// The shape tuple: `'shape': (30, 64)`.
fn shape_value(header: &str) -> Option<Vec<usize>> {
    let v = raw_value(header, "shape")?;
    let v = v.strip_prefix('(')?;
    let end = v.find(')')?;
    v[..end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (30, 64), }";
        assert_eq!(quoted_value(h, "descr").as_deref(), Some("<f8"));
        assert!(raw_value(h, "fortran_order").unwrap().starts_with("False"));
        assert_eq!(shape_value(h), Some(vec![30, 64]));
        assert_eq!(shape_value("{'shape': (5,), }"), Some(vec![5]));
        assert_eq!(shape_value("{'shape': (), }"), Some(vec![]));
        assert_eq!(tuple(&[5]), "(5,)");
        assert_eq!(tuple(&[5, 2]), "(5, 2)");
    }
}
