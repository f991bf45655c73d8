//! Batching: training batches in a seeded per-epoch order, and evaluation batches that cover
//! every sample exactly once.
//!
//! **The last partial batch.** A compiled step has a fixed batch size `B`, so training
//! ([`Dataset::batches`]) yields only full batches and drops the `len % B` samples left over
//! (PyTorch's `drop_last=True`). With shuffling, a different set of samples is left out each
//! epoch, so none is ignored for good. Evaluation ([`Dataset::batches_padded`]) must see every
//! sample exactly once, so it goes through the data in order and pads the last batch with rows
//! of zeros up to `B`; [`Batch::real`] says how many leading rows are real, and metrics must
//! count only those.

use super::{Dataset, FieldValues, rng};

/// Rows of every field for one step, in the dataset's field order.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Per field, `rows × row_len` values, row after row (a `[rows, ...dims]` tensor).
    pub fields: Vec<FieldValues>,
    /// Rows in the batch: always the requested batch size.
    pub rows: usize,
    /// Leading rows that are real samples; the rest (only in the last padded evaluation batch)
    /// are zeros to be ignored.
    pub real: usize,
    /// The dataset index of each real row, so predictions can be matched to samples.
    pub samples: Vec<usize>,
}

/// The sample order of one training epoch over `len` samples: a permutation seeded by
/// `(seed, epoch)` (`shuffle seed: S` in the `.net` file), or `0..len` without shuffling. The
/// same seed and epoch always give the same order, on every machine, which is what lets a
/// resumed run see exactly the batches an uninterrupted one would.
pub fn epoch_order(len: usize, shuffle: Option<i64>, epoch: u64) -> Vec<usize> {
    match shuffle {
        Some(seed) => rng::permutation(len, rng::key(&[rng::SHUFFLE_TAG, seed as u64, epoch])),
        None => (0..len).collect(),
    }
}

impl Dataset {
    /// The order of one training epoch of this data set; see [`epoch_order`].
    pub fn epoch_order(&self, shuffle: Option<i64>, epoch: u64) -> Vec<usize> {
        epoch_order(self.len, shuffle, epoch)
    }

    /// Training batches of `batch` rows for one epoch (see [`Dataset::epoch_order`]); the last
    /// partial batch is dropped, so a dataset smaller than `batch` yields no batch at all.
    /// `skip(k)` on the iterator is cheap (it copies nothing), for resuming mid-epoch.
    ///
    /// # Panics
    /// If `batch` is 0 (a run's batch size is checked to be positive).
    pub fn batches(&self, batch: usize, shuffle: Option<i64>, epoch: u64) -> Batches<'_> {
        assert!(batch > 0, "batch size must be positive");
        Batches {
            data: self,
            order: self.epoch_order(shuffle, epoch),
            batch,
            next: 0,
            count: self.len / batch,
        }
    }

    /// Evaluation batches of `batch` rows, in dataset order, covering every sample once: the
    /// last batch is padded with zero rows and reports its real rows in [`Batch::real`].
    ///
    /// # Panics
    /// If `batch` is 0.
    pub fn batches_padded(&self, batch: usize) -> PaddedBatches<'_> {
        assert!(batch > 0, "batch size must be positive");
        PaddedBatches {
            data: self,
            batch,
            next: 0,
            count: self.len.div_ceil(batch),
        }
    }

    /// The batch made of the samples `indices`, padded with zero rows up to `rows`.
    fn batch_of(&self, indices: &[usize], rows: usize) -> Batch {
        let fields = self
            .fields
            .iter()
            .map(|f| {
                let r = f.row_len();
                match &f.values {
                    FieldValues::F32(v) => {
                        let mut out = Vec::with_capacity(rows * r);
                        for &i in indices {
                            out.extend_from_slice(&v[i * r..(i + 1) * r]);
                        }
                        out.resize(rows * r, 0.0);
                        FieldValues::F32(out)
                    }
                    FieldValues::I64(v) => {
                        let mut out = Vec::with_capacity(rows * r);
                        for &i in indices {
                            out.extend_from_slice(&v[i * r..(i + 1) * r]);
                        }
                        out.resize(rows * r, 0);
                        FieldValues::I64(out)
                    }
                }
            })
            .collect();
        Batch {
            fields,
            rows,
            real: indices.len(),
            samples: indices.to_vec(),
        }
    }
}

/// Iterator over one epoch's full training batches; see [`Dataset::batches`].
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    batch: usize,
    next: usize,
    count: usize,
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.count {
            return None;
        }
        let start = self.next * self.batch;
        self.next += 1;
        Some(
            self.data
                .batch_of(&self.order[start..start + self.batch], self.batch),
        )
    }

    fn nth(&mut self, n: usize) -> Option<Batch> {
        self.next = self.next.saturating_add(n).min(self.count);
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.count - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

/// Iterator over evaluation batches; see [`Dataset::batches_padded`].
#[derive(Clone, Debug)]
pub struct PaddedBatches<'a> {
    data: &'a Dataset,
    batch: usize,
    next: usize,
    count: usize,
}

impl Iterator for PaddedBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.count {
            return None;
        }
        let start = self.next * self.batch;
        let end = (start + self.batch).min(self.data.len);
        self.next += 1;
        let indices: Vec<usize> = (start..end).collect();
        Some(self.data.batch_of(&indices, self.batch))
    }

    fn nth(&mut self, n: usize) -> Option<Batch> {
        self.next = self.next.saturating_add(n).min(self.count);
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.count - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for PaddedBatches<'_> {}

#[cfg(test)]
mod tests {
    use super::super::Field;
    use super::*;

    fn data(n: usize) -> Dataset {
        Dataset {
            fields: vec![
                Field {
                    name: "x".into(),
                    dims: vec![2],
                    values: FieldValues::F32((0..2 * n).map(|v| v as f32).collect()),
                },
                Field {
                    name: "label".into(),
                    dims: vec![],
                    values: FieldValues::I64((0..n as i64).collect()),
                },
            ],
            len: n,
        }
    }

    #[test]
    fn training_batches_drop_the_partial_batch() {
        let d = data(10);
        let batches: Vec<Batch> = d.batches(4, None, 0).collect();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].fields[1], FieldValues::I64(vec![0, 1, 2, 3]));
        assert_eq!(
            batches[1].fields[0],
            FieldValues::F32(vec![8., 9., 10., 11., 12., 13., 14., 15.])
        );
        assert_eq!(batches[1].real, 4);
        assert_eq!(d.batches(11, None, 0).count(), 0);
        assert_eq!(d.batches(3, None, 0).len(), 3);
    }

    #[test]
    fn shuffled_epochs_are_seeded_permutations() {
        let d = data(100);
        let order = |seed, epoch| -> Vec<i64> {
            d.batches(10, Some(seed), epoch)
                .flat_map(|b| b.fields[1].as_i64().unwrap().to_vec())
                .collect()
        };
        let e0 = order(3, 0);
        assert_eq!(e0, order(3, 0));
        assert_ne!(e0, order(3, 1));
        assert_ne!(e0, order(4, 0));
        let mut sorted = e0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        // Features stay with their labels.
        let b = d.batches(10, Some(3), 0).next().unwrap();
        let x = b.fields[0].as_f32().unwrap();
        for (k, &l) in b.fields[1].as_i64().unwrap().iter().enumerate() {
            assert_eq!(x[2 * k], 2.0 * l as f32);
            assert_eq!(b.samples[k] as i64, l);
        }
    }

    #[test]
    fn skipping_is_the_same_as_iterating() {
        let d = data(50);
        let all: Vec<Batch> = d.batches(7, Some(1), 2).collect();
        let rest: Vec<Batch> = d.batches(7, Some(1), 2).skip(3).collect();
        assert_eq!(rest, all[3..]);
        assert_eq!(d.batches(7, Some(1), 2).skip(100).count(), 0);
    }

    #[test]
    fn evaluation_batches_cover_every_sample_once() {
        let d = data(10);
        let batches: Vec<Batch> = d.batches_padded(4).collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].real, 2);
        assert_eq!(batches[2].rows, 4);
        assert_eq!(batches[2].samples, vec![8, 9]);
        assert_eq!(batches[2].fields[1], FieldValues::I64(vec![8, 9, 0, 0]));
        assert_eq!(
            batches[2].fields[0],
            FieldValues::F32(vec![16., 17., 18., 19., 0., 0., 0., 0.])
        );
        let real: usize = batches.iter().map(|b| b.real).sum();
        assert_eq!(real, 10);
        assert_eq!(data(8).batches_padded(4).count(), 2);
        assert_eq!(data(0).batches_padded(4).count(), 0);
    }
}
