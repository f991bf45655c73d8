//! The generated CUDA as snapshots (`BLESS=1` rewrites them): the whole MLP training module, and
//! the first kernel of every kind (elementwise, reductions, gather, one-hot, concat, im2col,
//! col2im, pools and their gradients, ...) met in the LeNet, DCGAN and transformer steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netc_backend_cuda::lower::{Config, lower, origins};
use netc_backend_cuda::print;
use netc_compiler::lower::program::compile_run;

fn compare(file: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(file);
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "generated CUDA differs from {} (BLESS=1 to accept):\n{text}",
        path.display()
    );
}

fn source(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name),
    )
    .unwrap()
}

#[test]
fn mlp_training_module() {
    let src = source("mlp.net");
    let p = compile_run(&src, None, None).unwrap();
    let program = lower(&p.steps[0].graph, Config::default()).unwrap();
    compare(
        "mlp.train.cu",
        &print::module(&program.kernels, &origins(&program, Some(&src))),
    );
}

#[test]
fn one_kernel_of_each_kind() {
    let mut kinds = BTreeMap::new();
    for name in ["lenet.net", "dcgan.net", "transformer.net"] {
        let src = source(name);
        let p = compile_run(&src, None, Some(2)).unwrap();
        for step in &p.steps {
            let program = lower(&step.graph, Config::default()).unwrap();
            let origins = origins(&program, Some(&src));
            for (k, origin) in program.kernels.iter().zip(origins) {
                let kind = k
                    .name
                    .split_once('_')
                    .map_or("", |(_, kind)| kind)
                    .to_string();
                kinds.entry(kind).or_insert_with(|| {
                    format!(
                        "// {name} {}\n{}",
                        step.name,
                        print::kernel(k, Some(&origin))
                    )
                });
            }
        }
    }
    let text: String = kinds.into_values().collect::<Vec<_>>().join("\n");
    compare("kinds.cu", &format!("{}\n{text}", print::PRELUDE));
}
