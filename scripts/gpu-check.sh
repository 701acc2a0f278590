#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one short run, for a session that is lent one (docs/performance.md):
# the CUDA tests, then both benchmarks with --device cuda. It uses the machine's own python3 and torch and runs
# the package from src/ (its dependencies are common ones: torch, numpy, pillow, safetensors, matplotlib, tqdm).
# Each part has its own time limit, so that one that hangs leaves the others' results.
#
#   bash scripts/gpu-check.sh            # results in $OUT (the device tool's folder) or ./gpu-check
#   DEVICE=cpu REPEATS=1 bash scripts/gpu-check.sh   # a dry run of the plumbing on a machine without a GPU
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-gpu-check}
DEVICE=${DEVICE:-cuda}
REPEATS=${REPEATS:-5}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS"
export PYTHONPATH="$PWD/src:$PWD" PYTHONUNBUFFERED=1

part() {  # part NAME SECONDS COMMAND...: runs one part, its output in RESULTS/NAME.log and on the screen
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit}s): $*"
    timeout "$limit" "$@" 2>&1 | tee "$RESULTS/$name.log"
    echo "== $name: exit status ${PIPESTATUS[0]}"
}

part device 60 "$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
part cuda-tests 240 "$PYTHON" -m pytest -q -p no:cacheprovider -rs -k cuda \
    tests/training/test_precision.py tests/training/test_memory_format.py tests/test_inference.py
part train-step 240 "$PYTHON" benchmarks/train_step.py --device "$DEVICE" --repeats "$REPEATS" --data-steps 0
part translate 300 "$PYTHON" benchmarks/translate.py --device "$DEVICE" --repeats "$REPEATS"
find benchmarks/results -name '*.json' -newer "$RESULTS/device.log" -exec cp {} "$RESULTS"/ \;
ls "$RESULTS"
