//! The CUDA commands through the real binary: `--device cuda` on a machine without a GPU is a
//! clear error (exit 1, no panic), and `netc build --target cuda` writes each step's `.cu`
//! (plus PTX and an `sm_90` cubin when NVRTC is installed, else it says why they were skipped).

use std::path::PathBuf;
use std::process::Command;

fn netc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netc"))
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn device_cuda_without_a_gpu_is_a_clear_error() {
    if netc_backend_cuda::device::Device::open(0).is_ok() {
        eprintln!("a CUDA device is present: the no-GPU error cannot be shown here");
        return;
    }
    let commands: [&[&str]; 2] = [
        &["bench", "--device", "cuda"],
        &["train", "--device", "cuda", "--max-steps", "1"],
    ];
    for command in commands {
        let out = netc()
            .args(command)
            .arg(example("mlp.net"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.starts_with("error: no CUDA device: ")
                && stderr.contains("`--device cuda` needs an NVIDIA GPU"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn build_target_cuda_writes_sources_and_with_nvrtc_ptx_and_cubins() {
    let dir = std::env::temp_dir().join(format!("netc-cli-cuda-build-{}", std::process::id()));
    let out = netc()
        .args(["build", "--target", "cuda", "--out"])
        .arg(&dir)
        .arg(example("mlp.net"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cu = std::fs::read_to_string(dir.join("train.cu")).unwrap();
    assert!(cu.contains("extern \"C\" __global__ void"), "{cu}");
    let nvrtc = netc_backend_cuda::nvrtc::Nvrtc::load();
    match nvrtc {
        Ok(_) => {
            assert!(
                std::fs::read_to_string(dir.join("train.ptx"))
                    .unwrap()
                    .contains(".entry")
            );
            let arch = netc_backend_cuda::build::default_arch();
            let cubin = std::fs::read(dir.join(format!("train.sm_{arch}.cubin"))).unwrap();
            assert!(cubin.starts_with(b"\x7fELF"));
        }
        Err(_) => assert!(stdout.contains("PTX and cubin skipped: NVRTC"), "{stdout}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}
