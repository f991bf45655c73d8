#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build, run the CUDA backend's tests (the device tests run
# there instead of skipping), then `netc bench` of every benches/*.net on the CPU and on the GPU,
# and print a short table last. Needs the NVIDIA driver; NVRTC and cuBLAS come from PyPI wheels
# when the CUDA toolkit is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

lib_of() { python3 -c "import os, nvidia.$1 as m; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null; }
if ! lib_of cuda_nvrtc >/dev/null; then
  python3 -m pip install --quiet nvidia-cuda-nvrtc-cu12==12.8.93 || true
fi
if ! ldconfig -p | grep -q libcublas.so.12 && ! lib_of cublas >/dev/null; then
  python3 -m pip install --quiet "nvidia-cublas-cu12==12.8.*" || true
fi
NETC_NVRTC_LIB="$(lib_of cuda_nvrtc || true)"
export NETC_NVRTC_LIB NETC_REQUIRE_NVRTC=1
if cublas="$(lib_of cublas)"; then
  export LD_LIBRARY_PATH="$cublas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader || true

cargo build --release
cargo test --release -p netc-backend-cuda -- --nocapture 2>&1 | tee /tmp/netc-gpu-tests.log
# Training through the runtime with parameters resident on the device (a two-step GAN).
cargo test --release -p netc-runtime --test train cuda -- --nocapture 2>&1 | tee -a /tmp/netc-gpu-tests.log
# PyTorch parity of the five reference models, on the device among the other backends.
cargo test --release --test parity -- --nocapture 2>&1 | tee -a /tmp/netc-gpu-tests.log
tests="$(grep -E '^test result' /tmp/netc-gpu-tests.log | awk '{p+=$4; f+=$6} END {print p " passed, " f " failed"}')"

rows=()
for f in benches/*.net; do
  cpu="$(target/release/netc bench "$f" --seconds 3 2>/dev/null || echo '{}')"
  gpu="$(target/release/netc bench "$f" --device cuda --seconds 3 2>&1 || true)"
  num() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$2"; }
  rows+=("$(printf '%-24s %12s %12s %12s %12s' "$(basename "$f" .net)" "$(num steps_per_s "$cpu")" "$(num steps_per_s "$gpu")" "$(num gflop_per_s "$gpu")" "$(num compile_ms "$gpu")")")
  if ! grep -q steps_per_s <<<"$gpu"; then echo "$f on cuda: $gpu"; fi
done

echo
echo "GPU tests: $tests"
printf '%-24s %12s %12s %12s %12s\n' model "cpu steps/s" "gpu steps/s" "gpu GFLOP/s" "gpu compile ms"
printf '%s\n' "${rows[@]}"
