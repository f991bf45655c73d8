//! `Scan` run natively: the body graph compiled once into a nested [`CompiledStep`], run once
//! per step with the step's `x` slices and the carries copied into its input slots, and the new
//! carries and per-step `ys` copied out (the `ys` into their stacked slots, aligned with the
//! `xs` as the interpreter's `run_scan` does). Consts are copied in once per outer run.

use netc_compiler::ir::{DType, Graph, Op};

use crate::CompiledStep;
use crate::kernel::Slot;

/// A value held between body runs (a carry), in the arena type of its slot.
enum Buf {
    F(Vec<f32>),
    I(Vec<i64>),
}

/// A fallback kernel's `Scan` (with its projections), compiled natively (the body for the
/// outer step's thread count).
pub(crate) struct ScanExec {
    body: Box<CompiledStep>,
    length: usize,
    reverse: bool,
    /// Per carry: the body's `carry{i}` input slot (absent when the body does not read it).
    carry_in: Vec<Option<Slot>>,
    /// Per carry: the body's output slot of the new carry.
    carry_out: Vec<Slot>,
    /// Per carry: its current value between body runs.
    carry: Vec<Buf>,
    /// Per sequence input: the body's `x{i}` input slot (if read).
    xs: Vec<Option<Slot>>,
    /// Per const: the body's `const{i}` input slot (if read).
    consts: Vec<Option<Slot>>,
    /// Per per-step output: the body's output slot.
    ys: Vec<Slot>,
    /// Per kernel output (`out{k}`): the scan result index it projects.
    projections: Vec<usize>,
}

impl ScanExec {
    /// Compile the scan of a fallback kernel's one-op graph (`in0..` operands, `out{k}` =
    /// projections), or `None` when the graph is not such a scan or its body does not fit the
    /// native path (then the interpreter runs it).
    pub(crate) fn compile(
        graph: &Graph,
        inputs: &[Slot],
        outputs: &[Slot],
        threads: usize,
    ) -> Option<ScanExec> {
        let mut scan_node = None;
        let mut projections = Vec::new();
        for o in &graph.outputs {
            let Op::Project { index } = graph.node(o.node).op else {
                return None;
            };
            let s = *graph.operands(o.node).first()?;
            if scan_node.is_some_and(|n| n != s) {
                return None;
            }
            scan_node = Some(s);
            projections.push(index);
        }
        let Op::Scan(scan) = &graph.node(scan_node?).op else {
            return None;
        };
        let (nc, nx, nk) = (scan.carries, scan.xs, scan.consts);
        let body = &scan.body;
        if inputs.len() != nc + nx + nk
            || outputs.len() != projections.len()
            || body.outputs.len() < nc
            || body.outputs.iter().any(|o| o.updates.is_some())
        {
            return None;
        }
        let step = CompiledStep::compile_with_threads(body, threads).ok()?;
        // Every body input must be a carry, an x or a const.
        let allowed = |n: &str| {
            let idx = |p: &str, count: usize| {
                n.strip_prefix(p)
                    .and_then(|r| r.parse::<usize>().ok())
                    .is_some_and(|i| i < count && n == format!("{p}{i}"))
            };
            idx("carry", nc) || idx("x", nx) || idx("const", nk)
        };
        if !step.program.inputs.iter().all(|(n, _, _)| allowed(n)) {
            return None;
        }
        let input = |name: String, len: usize, dtype: DType| -> Result<Option<Slot>, ()> {
            match step.inputs.get(&name) {
                None => Ok(None),
                Some((s, _)) if s.len == len && s.dtype == dtype => Ok(Some(*s)),
                Some(_) => Err(()),
            }
        };
        let body_out: Vec<Slot> = step.program.outputs.iter().map(|(_, s, _)| *s).collect();
        if body_out.len() != body.outputs.len() {
            return None;
        }
        let length = scan.length;
        let mut carry_in = Vec::new();
        let mut carry = Vec::new();
        for (i, s) in inputs[..nc].iter().enumerate() {
            if body_out[i].len != s.len || body_out[i].dtype != s.dtype {
                return None;
            }
            carry_in.push(input(format!("carry{i}"), s.len, s.dtype).ok()?);
            carry.push(match s.dtype {
                DType::F32 => Buf::F(vec![0.0; s.len]),
                DType::I64 => Buf::I(vec![0; s.len]),
            });
        }
        let mut xs = Vec::new();
        for (i, s) in inputs[nc..nc + nx].iter().enumerate() {
            if length == 0 || s.len % length != 0 {
                if length == 0 && s.len == 0 {
                    xs.push(None);
                    continue;
                }
                return None;
            }
            xs.push(input(format!("x{i}"), s.len / length, s.dtype).ok()?);
        }
        let mut consts = Vec::new();
        for (i, s) in inputs[nc + nx..].iter().enumerate() {
            consts.push(input(format!("const{i}"), s.len, s.dtype).ok()?);
        }
        let ys = body_out[nc..].to_vec();
        for (&p, o) in projections.iter().zip(outputs) {
            let want = if p < nc {
                body_out[p].len
            } else {
                ys.get(p - nc)?.len * length
            };
            let dtype = body_out.get(p)?.dtype;
            if o.len != want || o.dtype != dtype {
                return None;
            }
        }
        Some(ScanExec {
            body: Box::new(step),
            length,
            reverse: scan.reverse,
            carry_in,
            carry_out: body_out[..nc].to_vec(),
            carry,
            xs,
            consts,
            ys,
            projections,
        })
    }

    /// The compiled body, for profiles.
    pub(crate) fn body(&self) -> &CompiledStep {
        &self.body
    }

    /// The compiled body, to switch its profiling.
    pub(crate) fn body_mut(&mut self) -> &mut CompiledStep {
        &mut self.body
    }

    /// Run the scan on the outer arenas: operands in `inputs`, results into `outputs`.
    pub(crate) fn run(
        &mut self,
        f32s: &mut [f32],
        i64s: &mut [i64],
        inputs: &[Slot],
        outputs: &[Slot],
    ) -> Result<(), String> {
        let nc = self.carry.len();
        let nx = self.xs.len();
        let body = &mut *self.body;
        // Consts once; the initial carries.
        for (s, b) in inputs[nc + nx..].iter().zip(&self.consts) {
            if let Some(b) = b {
                body.copy_in(f32s, i64s, *s, 0, *b);
            }
        }
        for (s, c) in inputs[..nc].iter().zip(&mut self.carry) {
            match c {
                Buf::F(v) => v.copy_from_slice(&f32s[s.offset..s.offset + s.len]),
                Buf::I(v) => v.copy_from_slice(&i64s[s.offset..s.offset + s.len]),
            }
        }
        for t in 0..self.length {
            let step = if self.reverse { self.length - 1 - t } else { t };
            for (c, b) in self.carry.iter().zip(&self.carry_in) {
                if let Some(b) = b {
                    body.write(c, *b);
                }
            }
            for (s, b) in inputs[nc..nc + nx].iter().zip(&self.xs) {
                if let Some(b) = b {
                    body.copy_in(f32s, i64s, *s, step * b.len, *b);
                }
            }
            body.run()?;
            for (c, b) in self.carry.iter_mut().zip(&self.carry_out) {
                body.read_into(c, *b);
            }
            // `ys[step]` comes from the step that read `xs[step]`.
            for (&p, o) in self.projections.iter().zip(outputs) {
                if p >= nc {
                    let y = self.ys[p - nc];
                    body.copy_out(f32s, i64s, y, *o, step * y.len);
                }
            }
        }
        for (&p, o) in self.projections.iter().zip(outputs) {
            if p < nc {
                match &self.carry[p] {
                    Buf::F(v) => f32s[o.offset..o.offset + o.len].copy_from_slice(v),
                    Buf::I(v) => i64s[o.offset..o.offset + o.len].copy_from_slice(v),
                }
            }
        }
        Ok(())
    }
}

impl CompiledStep {
    /// Copy `to.len` elements of the outer slot `from`, starting `at` elements in, into this
    /// step's slot `to`.
    fn copy_in(&mut self, f32s: &[f32], i64s: &[i64], from: Slot, at: usize, to: Slot) {
        let r = from.offset + at..from.offset + at + to.len;
        match from.dtype {
            DType::F32 => self.arena()[to.offset..to.offset + to.len].copy_from_slice(&f32s[r]),
            DType::I64 => self.i64s[to.offset..to.offset + to.len].copy_from_slice(&i64s[r]),
        }
    }

    /// Copy this step's slot `from` into the outer slot `to`, starting `at` elements in.
    fn copy_out(&mut self, f32s: &mut [f32], i64s: &mut [i64], from: Slot, to: Slot, at: usize) {
        let r = to.offset + at..to.offset + at + from.len;
        match from.dtype {
            DType::F32 => {
                f32s[r].copy_from_slice(&self.arena()[from.offset..from.offset + from.len])
            }
            DType::I64 => i64s[r].copy_from_slice(&self.i64s[from.offset..from.offset + from.len]),
        }
    }

    fn write(&mut self, v: &Buf, to: Slot) {
        let r = to.offset..to.offset + to.len;
        match v {
            Buf::F(v) => self.arena()[r].copy_from_slice(v),
            Buf::I(v) => self.i64s[r].copy_from_slice(v),
        }
    }

    fn read_into(&mut self, v: &mut Buf, from: Slot) {
        let r = from.offset..from.offset + from.len;
        match v {
            Buf::F(v) => v.copy_from_slice(&self.arena()[r]),
            Buf::I(v) => v.copy_from_slice(&self.i64s[r]),
        }
    }
}
