//! Host steps: kernel-IR fallbacks (scans, random numbers, anything without a GPU kernel) run
//! on the reference interpreter over host copies of their operand slots, so every graph runs on
//! the GPU path too. The emulator calls this on its host arenas; the device runner copies the
//! operands down into a host mirror first and the results back up after.

use std::collections::HashMap;

use netc_backend_cpu::kernel::{Kernel, Slot};
use netc_compiler::ir::DType;
use netc_compiler::ir::interp::{self, Data, Precision, Value};

/// The slots a host step reads and writes: `(inputs, outputs)`.
pub fn slots(k: &Kernel) -> Result<(&[Slot], &[Slot]), String> {
    match k {
        Kernel::Fallback {
            inputs, outputs, ..
        } => Ok((inputs, outputs)),
        _ => Err("internal: a host step that is not a fallback".into()),
    }
}

/// Evaluate the fallback kernel `k` (its one-op graph) with the interpreter at f32 precision,
/// reading operands from the host arenas and writing its results into them.
pub fn run_fallback(k: &Kernel, f32s: &mut [f32], i64s: &mut [i64]) -> Result<(), String> {
    let Kernel::Fallback {
        graph,
        inputs,
        outputs,
        what,
        ..
    } = k
    else {
        return Err("internal: a host step that is not a fallback".into());
    };
    let mut values = HashMap::new();
    for (i, (s, id)) in inputs.iter().zip(graph.inputs()).enumerate() {
        let shape = graph.ty(id).shape.clone();
        let range = s.offset..s.offset + s.len;
        let v = match s.dtype {
            DType::F32 => Value::f32(shape, f32s[range].to_vec()),
            DType::I64 => Value::i64(shape, i64s[range].to_vec()),
        };
        values.insert(format!("in{i}"), v);
    }
    let mut results = interp::run(graph, &values, Precision::F32).map_err(|e| e.message)?;
    for (i, s) in outputs.iter().enumerate() {
        let v = results
            .remove(&format!("out{i}"))
            .ok_or_else(|| format!("internal: {what}: result out{i} missing"))?;
        let range = s.offset..s.offset + s.len;
        match (v.data, s.dtype) {
            (Data::F(d), DType::F32) => {
                for (t, x) in f32s[range].iter_mut().zip(d) {
                    *t = x as f32;
                }
            }
            (Data::I(d), DType::I64) => i64s[range].copy_from_slice(&d),
            _ => return Err(format!("internal: {what}: a result of the wrong type")),
        }
    }
    Ok(())
}
