//! Initial values of parameters and buffers, drawn from each one's initialiser with a seeded,
//! counter-based generator (the IR's own), so the same seed gives the same model everywhere.

use netc_compiler::ir::Distribution;
use netc_compiler::ir::interp::{Value, random};
use netc_compiler::lower::{Init, ParamSpec};

/// Values for `spec`, drawn from stream `index` of `seed` (one stream per parameter, so adding
/// a parameter does not change the others).
pub fn initial_value(spec: &ParamSpec, seed: i64, index: u64) -> Value {
    let n = spec.ty.numel();
    let data: Vec<f64> = match spec.init {
        Init::Constant(c) => vec![c; n],
        Init::Uniform(bound) => random::generate(Distribution::Uniform, seed, index, n)
            .into_iter()
            .map(|u| (2.0 * u - 1.0) * bound)
            .collect(),
        Init::Normal(std) => random::generate(Distribution::Normal, seed, index, n)
            .into_iter()
            .map(|z| z * std)
            .collect(),
    };
    Value::from_f64(spec.ty.shape.clone(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netc_compiler::ir::Type;

    fn spec(init: Init) -> ParamSpec {
        ParamSpec {
            name: "w".into(),
            ty: Type::f32(vec![100, 50]),
            init,
            trainable: true,
        }
    }

    #[test]
    fn uniform_stays_in_bounds_and_is_seeded() {
        let a = initial_value(&spec(Init::Uniform(0.1)), 7, 0);
        let xs = a.as_f64_slice().unwrap();
        assert!(xs.iter().all(|x| x.abs() <= 0.1));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.01);
        assert_eq!(
            a.as_f64_slice(),
            initial_value(&spec(Init::Uniform(0.1)), 7, 0).as_f64_slice()
        );
        assert_ne!(
            a.as_f64_slice(),
            initial_value(&spec(Init::Uniform(0.1)), 8, 0).as_f64_slice()
        );
    }

    #[test]
    fn normal_has_the_right_spread() {
        let v = initial_value(&spec(Init::Normal(2.0)), 1, 3);
        let xs = v.as_f64_slice().unwrap();
        let var = xs.iter().map(|x| x * x).sum::<f64>() / xs.len() as f64;
        assert!((var.sqrt() - 2.0).abs() < 0.1, "{}", var.sqrt());
    }
}
