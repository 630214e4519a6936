#!/usr/bin/env bash
# The GPU path, exercised: on a machine with CUDA, in under 5 minutes,
#   1. the CUDA-marked tests (tests/test_cuda.py: every bundled network on the GPU in every
#      precision, tiled == whole, a real out-of-memory recovered by smaller tiles),
#   2. benchmarks/gpu_check.py: fp16/bf16 against fp32 on Set5 and Set14 for every bundled
#      model (the benchmark protocol), tiled == whole, out-of-memory recovery, throughput.
# Without a GPU it runs the CPU side of the same checks (the CUDA tests skip, quality on one
# image per set, small throughput images) so the script itself stays working.
#
#   benchmarks/gpu_check.sh            # auto: cuda if torch sees a GPU, else the CPU side
#   benchmarks/gpu_check.sh --record   # also write the GPU measurements into weights/manifest.json
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=passive
export RESIZER_DATASETS="${RESIZER_DATASETS:-../shared/datasets}"
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    device=cuda; quick=()
    python -c "import torch; print('gpu_check: ' + torch.cuda.get_device_name(0) + ', torch ' + torch.__version__)"
else
    device=cpu; quick=(--quick)
    echo "gpu_check: no CUDA GPU here: running the CPU side of the checks"
fi
started=$(date +%s)
status=0
echo "gpu_check: 1/2 CUDA-marked tests"
python -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py -rs || { rc=$?; [ "$rc" -eq 5 ] || status=1; }
echo "gpu_check: 2/2 quality per precision, tiling, out-of-memory, throughput on $device"
python benchmarks/gpu_check.py --device "$device" "${quick[@]}" "$@" || status=1
echo "gpu_check: done in $(( $(date +%s) - started )) s, status $status"
exit $status
