"""The CUDA kernels compile for real hardware, not only under numba's CUDA simulator.

The simulator runs a kernel's Python, so it accepts code that NVVM refuses (and never sees shared memory
that the hardware cannot give). Here NVVM compiles both kernels for an H100 (sm_90) and ptxas assembles
them, on a machine without a GPU or a driver: NVVM, libdevice and ptxas come from the nvidia-cuda-nvcc-cu12
wheel of the test extra. This runs in a child process, since this one has the simulator switched on
(tests/conftest.py) before numba.cuda was imported.
"""
import json
import os
import subprocess
import sys

import pytest

_CHILD = """
import json
from fastrsa.testing import cuda_kernels_ptx, ptxas_resources
out = {}
for name, ptx in cuda_kernels_ptx((9, 0)).items():
    out[name] = dict(ptxas_resources(ptx, (9, 0)), entry=(".entry " in ptx), f64=(".f64" in ptx))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def built():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    res = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_kernels_compile_and_assemble_for_sm90(built):
    assert set(built) == {"event_log_weights_cuda", "flavour_tables_cuda"}
    for name, r in built.items():
        assert r["entry"] and r["f64"], name          # a kernel entry, in double precision
        assert 0 < r["registers"] <= 255, (name, r)


def test_weight_kernel_shared_memory_is_what_its_layout_says(built):
    """The weight kernel's static shared memory is its reduction buffers (three float64 and one int32 per
    thread), the per-warp shapes of 32 z samplings (NCOEF float64 each) and one chunk count per warp; the
    hardware gives at most 48 KB of static shared memory to a block (ptxas refuses more)."""
    from fastrsa.hadronization.kernels import cuda as k
    expect = k.THREADS * (3 * 8 + 4) + k.WARPS * k.WARP * k.NCOEF * 8 + k.WARPS * 4
    r = built["event_log_weights_cuda"]
    assert r["smem"] == expect <= 48 * 1024, r
    assert built["flavour_tables_cuda"]["smem"] == 0
