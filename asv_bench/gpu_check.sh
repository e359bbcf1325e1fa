#!/usr/bin/env bash
# Issue 13's GPU checks in one device call, for the first session lent a GPU (15 minutes of device time,
# start-up included: this script is sized to run in about 6).
#
# On this machine first, in the repository root (the device reaches no package registry; its image has
# Python 3.12, a CUDA torch, numba, numba-cuda, pyarrow, scipy and pytest, but not pythia8mc):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl pythia8mc==8.317.2
# then one device call: command `bash asv_bench/gpu_check.sh`, carry [".whl"], timeout_s 540.
# Everything it prints is also written under $OUT (log.txt, the fit results).
#
# Stages, each with its own time limit so that one hang leaves the others' numbers:
#   1. the GPU and the software, as the device has them;
#   2. the weight tests on the real device (tests/test_weights.py runs each kernel test on cpu and cuda;
#      tests/test_cuda_build.py compiles with the toolkit there);
#   3. benchmarks/bench_gpu.py: forward + backward on 1e6 events against the bandwidth floor;
#   4. the same fit on the GPU and on the CPU (100k + 100k events, swd, 300 steps): both results and times.
# Stage 3 and 4 run with DEVICE=cpu too (no GPU: stage 3 says so), which is how this script was tried
# on a machine without one.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
DEVICE=${DEVICE:-cuda}
EVENTS=${EVENTS:-100000}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 FASTRSA_BENCH_DIR=/tmp/fastrsa-bench
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
stage() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }

stage "1. GPU and software"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
python3 -c "import sys, torch, numba, numba_cuda, pyarrow, fastrsa; print(sys.version.split()[0], 'torch',
torch.__version__, 'cuda', torch.cuda.is_available(), 'numba', numba.__version__, 'numba-cuda',
numba_cuda.__version__, 'pyarrow', pyarrow.__version__)"

stage "2. weight tests on the device"
timeout 240 python3 -m pytest -q -x -p no:cacheprovider -n 4 --dist loadfile tests/test_weights.py \
    tests/test_cuda_build.py 2>&1 | tail -25

stage "3. forward + backward on 1e6 events against the bandwidth floor"
(cd asv_bench && timeout 150 python3 -m benchmarks.bench_gpu)

stage "4. one fit on $DEVICE and on cpu: $EVENTS + $EVENTS events, swd on multiplicity and shapes, 300 steps"
D=/tmp/gpu-check-data
timeout 120 python3 -m fastrsa.cli generate $D/base --events "$EVENTS" --seed 5 --jobs 8 --quiet &&
timeout 120 python3 -m fastrsa.cli generate $D/target --events "$EVENTS" --a 0.68 --b 0.98 --seed 6 --jobs 8 --quiet &&
for dev in "$DEVICE" cpu; do
    timeout 200 python3 -m fastrsa.cli fit --base $D/base --target $D/target --steps 300 --no-plots \
        --device "$dev" --out "$OUT/fit-$dev" --overwrite 2>&1 | grep -v "^  step"
done
echo; echo "=== done ($(date -u +%H:%M:%S))"
