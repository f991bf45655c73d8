//! Tensors in and out as safetensors, PyTorch's interchange format.
//!
//! Parameters keep their readable names (`Mlp.fc1.weight`) and PyTorch layouts, so a state
//! dict converts with a name map. Values are held as interpreter values; floats are stored as
//! float32 (f64 inputs are accepted) and integers as int64, as PyTorch writes them.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::ir::interp::{Data, Value};

/// Why a safetensors file could not be read or written.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsError {
    pub message: String,
}

impl std::fmt::Display for WeightsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parse safetensors bytes into named values.
pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<BTreeMap<String, Value>, WeightsError> {
    from_bytes_with_metadata(bytes, origin).map(|(tensors, _)| tensors)
}

/// Named tensors and the header's string metadata.
pub type Tensors = (BTreeMap<String, Value>, BTreeMap<String, String>);

/// Parse safetensors bytes into named values and the header's string metadata.
pub fn from_bytes_with_metadata(bytes: &[u8], origin: &str) -> Result<Tensors, WeightsError> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| WeightsError {
        message: format!("{origin}: not a valid safetensors file ({e})"),
    })?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| WeightsError {
        message: format!("{origin}: not a valid safetensors file ({e})"),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        let data = view.data();
        let value = match view.dtype() {
            Dtype::F32 => Value::from_f64(
                shape,
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                    .collect(),
            ),
            Dtype::F64 => Value::from_f64(
                shape,
                data.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")))
                    .collect(),
            ),
            Dtype::I64 => Value::i64(
                shape,
                data.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8")))
                    .collect(),
            ),
            Dtype::I32 => Value::i64(
                shape,
                data.chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .collect(),
            ),
            other => {
                return Err(WeightsError {
                    message: format!(
                        "{origin}: tensor `{name}` has dtype {other:?}; expected F32, F64, I32 or I64"
                    ),
                });
            }
        };
        out.insert(name, value);
    }
    Ok((out, metadata))
}

/// Read a safetensors file.
pub fn load(path: &Path) -> Result<BTreeMap<String, Value>, WeightsError> {
    let bytes = std::fs::read(path).map_err(|e| WeightsError {
        message: format!("{}: {e}", path.display()),
    })?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Serialise named values: floats as F32, integers as I64.
pub fn to_bytes(tensors: &BTreeMap<String, Value>) -> Result<Vec<u8>, WeightsError> {
    to_bytes_with_metadata(tensors, None)
}

/// [`to_bytes`] with string metadata in the header (a checkpoint's manifest).
pub fn to_bytes_with_metadata(
    tensors: &BTreeMap<String, Value>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>, WeightsError> {
    let buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, v)| match &v.data {
            Data::F(xs) => (
                name.clone(),
                Dtype::F32,
                v.ty.shape.clone(),
                xs.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
            ),
            Data::I(xs) => (
                name.clone(),
                Dtype::I64,
                v.ty.shape.clone(),
                xs.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        })
        .collect();
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| WeightsError {
                    message: format!("tensor `{name}`: {e}"),
                })
        })
        .collect::<Result<_, _>>()?;
    safetensors::tensor::serialize(views, metadata).map_err(|e| WeightsError {
        message: e.to_string(),
    })
}
