//! Classification metrics over a whole evaluation pass: accuracy, and precision, recall and F1
//! (macro-averaged over classes for multi-class, of the positive class for binary tasks).
//!
//! Predictions arrive as the model's raw outputs: logits `[B, C]` (the class is the arg-max) or
//! a single column `[B, 1]` for binary tasks (positive when above `threshold`: 0 for logits, 0.5
//! for probabilities). Counts accumulate over batches so every sample counts exactly once.

/// A confusion matrix, accumulated batch by batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    classes: usize,
    /// `counts[truth * classes + predicted]`.
    counts: Vec<u64>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        let classes = classes.max(2);
        Confusion {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Add one sample. Out-of-range classes are ignored (the data loader validates labels).
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if truth < self.classes && predicted < self.classes {
            self.counts[truth * self.classes + predicted] += 1;
        }
    }

    /// Add the first `rows` samples of a batch of multi-class logits `[B, C]` and integer targets.
    pub fn add_logits(&mut self, logits: &[f32], targets: &[i64], rows: usize) {
        let c = self.classes;
        for (row, &t) in logits.chunks_exact(c).zip(targets).take(rows) {
            let predicted = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0;
            self.add(t.max(0) as usize, predicted);
        }
    }

    /// Add the first `rows` samples of a binary task: one score per sample, positive above
    /// `threshold`; targets are 0/1 (as floats or integers).
    pub fn add_binary(&mut self, scores: &[f32], targets: &[f64], rows: usize, threshold: f32) {
        for (&s, &t) in scores.iter().zip(targets).take(rows) {
            self.add(usize::from(t > 0.5), usize::from(s > threshold));
        }
    }

    fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|k| self.count(k, k)).sum();
        ratio(correct, self.total())
    }

    /// Precision, recall and F1 of class `k` (0 when undefined, as scikit-learn's
    /// `zero_division=0`).
    fn per_class(&self, k: usize) -> (f64, f64, f64) {
        let tp = self.count(k, k);
        let predicted: u64 = (0..self.classes).map(|t| self.count(t, k)).sum();
        let actual: u64 = (0..self.classes).map(|p| self.count(k, p)).sum();
        let precision = ratio(tp, predicted);
        let recall = ratio(tp, actual);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        (precision, recall, f1)
    }

    /// `(precision, recall, f1)` averaged as asked: `binary` scores class 1; `macro` averages
    /// every class equally.
    pub fn scores(&self, average: Average) -> (f64, f64, f64) {
        match average {
            Average::Binary => self.per_class(1),
            Average::Macro => {
                let n = self.classes as f64;
                let (p, r, f) = (0..self.classes)
                    .map(|k| self.per_class(k))
                    .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
                (p / n, r / n, f / n)
            }
        }
    }
}

/// How precision, recall and F1 combine classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    Macro,
    Binary,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_multiclass() {
        // truth:     0 0 1 1 2 2
        // predicted: 0 1 1 1 2 0
        let mut c = Confusion::new(3);
        for (t, p) in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 2), (2, 0)] {
            c.add(t, p);
        }
        assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-12);
        // class 0: tp 1, predicted 2, actual 2 -> p .5 r .5 f .5
        // class 1: tp 2, predicted 3, actual 2 -> p 2/3 r 1 f .8
        // class 2: tp 1, predicted 1, actual 2 -> p 1 r .5 f 2/3
        let (p, r, f) = c.scores(Average::Macro);
        assert!((p - (0.5 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        assert!((r - (0.5 + 1.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((f - (0.5 + 0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_binary() {
        // scores above 0 are positive: predicted 1 0 1 1, truth 1 0 0 1
        let mut c = Confusion::new(2);
        c.add_binary(&[2.0, -1.0, 0.5, 3.0], &[1.0, 0.0, 0.0, 1.0], 4, 0.0);
        assert_eq!(c.accuracy(), 0.75);
        let (p, r, f) = c.scores(Average::Binary);
        assert!((p - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r, 1.0);
        assert!((f - 0.8).abs() < 1e-12);
    }

    #[test]
    fn logits_use_argmax_and_padding_rows_are_skipped() {
        let mut c = Confusion::new(3);
        let logits = [0.1, 0.9, 0.0, 5.0, 1.0, 2.0, 0.0, 0.0, 9.0];
        c.add_logits(&logits, &[1, 2, 0], 2);
        assert_eq!(c.total(), 2);
        assert_eq!(c.accuracy(), 0.5);
    }

    #[test]
    fn empty_is_zero_not_nan() {
        let c = Confusion::new(4);
        assert_eq!(c.accuracy(), 0.0);
        assert_eq!(c.scores(Average::Macro), (0.0, 0.0, 0.0));
    }
}
