//! Learning-rate schedules: a factor on every optimizer's base rate, computed on the host each
//! step (the step graph takes the rate as a scalar input, so schedules never recompile).

/// A checked `schedule` of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every` epochs (PyTorch's `StepLR` stepped per epoch).
    StepDecay {
        every: u64,
        gamma: f64,
    },
    /// Linear warm-up over `warmup` steps, then cosine decay from the base rate to `min_lr` at
    /// the last step.
    Cosine {
        warmup: u64,
        min_lr: f64,
    },
    /// Linear warm-up over `steps` steps, then constant.
    Warmup {
        steps: u64,
    },
}

impl Schedule {
    /// The learning rate at `step` (counted from 0) of `total` steps, in `epoch` (from 0).
    pub fn lr(&self, base: f64, step: u64, epoch: u64, total: u64) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::StepDecay { every, gamma } => {
                base * gamma.powi((epoch / every.max(1)).min(i32::MAX as u64) as i32)
            }
            Schedule::Warmup { steps } => base * warmup_factor(step, steps),
            Schedule::Cosine { warmup, min_lr } => {
                if step < warmup {
                    return base * warmup_factor(step, warmup);
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

fn warmup_factor(step: u64, steps: u64) -> f64 {
    if steps == 0 {
        1.0
    } else {
        ((step + 1) as f64 / steps as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decay_per_epoch() {
        let s = Schedule::StepDecay {
            every: 10,
            gamma: 0.5,
        };
        assert_eq!(s.lr(0.1, 0, 9, 100), 0.1);
        assert_eq!(s.lr(0.1, 0, 10, 100), 0.05);
        assert_eq!(s.lr(0.1, 0, 25, 100), 0.025);
    }

    #[test]
    fn cosine_warms_up_then_decays_to_min() {
        let s = Schedule::Cosine {
            warmup: 10,
            min_lr: 0.0,
        };
        assert!((s.lr(1.0, 0, 0, 110) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9, 0, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 0, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 60, 0, 110) - 0.5).abs() < 1e-12);
        assert!(s.lr(1.0, 110, 0, 110).abs() < 1e-12);
    }

    #[test]
    fn warmup_then_constant() {
        let s = Schedule::Warmup { steps: 4 };
        assert_eq!(s.lr(2.0, 0, 0, 10), 0.5);
        assert_eq!(s.lr(2.0, 3, 0, 10), 2.0);
        assert_eq!(s.lr(2.0, 9, 0, 10), 2.0);
    }
}
