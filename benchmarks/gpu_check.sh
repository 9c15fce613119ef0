#!/usr/bin/env bash
# GPU check: parity tests, then the tensor-level benchmark (fp32/bf16/fp16 x batch 1/8/32 x torch.compile off/on).
#
#   benchmarks/gpu_check.sh                 # on CUDA: full-size random weights in the published layout (no network)
#   benchmarks/gpu_check.sh --device cpu    # the same steps on the CPU with a tiny fixture model (a few minutes)
#
# Run from the repository root with the package importable (pip install -e ".[test]", or PYTHONPATH=src).
# Parity on CUDA compares float32 with TF32 off against the original's tensors at the CPU tolerance (atol 1e-4 +
# rtol 1e-5, tests/test_parity.py). Results: bench_out/device_bench_<device>.json and the tables on stdout.
# Not included: the video benchmark (none exists yet in benchmarks/; see docs_fragments/performance.md).
set -euo pipefail
device=cuda
if [[ "${1:-}" == "--device" ]]; then device="${2:?--device needs a value}"; fi
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
python=${PYTHON:-python}

echo "== parity tests on $device"
DENSEAV_TEST_DEVICE=$device "$python" -m pytest -q tests/test_parity.py -k "every_loading_path"

echo "== tensor-level benchmark on $device"
if [[ "$device" == cpu ]]; then
    fixture=$("$python" -c "import sys; sys.path.insert(0, 'tests'); from _fixtures import PARITY_DIRS; print(PARITY_DIRS[-1])")
    # torch.compile costs ~1 minute per model on a CPU: compiled only once here (float32, batch 1)
    "$python" benchmarks/device_bench.py --device cpu --weights "$fixture" --batches 1,2 --runs 2 --warmup 1 \
        --audio-seconds 2 --compile off --out bench_out/device_bench_cpu.json
    "$python" benchmarks/device_bench.py --device cpu --weights "$fixture" --batches 1 --runs 2 --warmup 1 \
        --audio-seconds 2 --dtypes float32 --compile on --out bench_out/device_bench_cpu_compiled.json
else
    "$python" benchmarks/device_bench.py --device "$device" --out "bench_out/device_bench_${device//:/_}.json"
fi
