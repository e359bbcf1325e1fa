"""Helpers for tests: the devices every kernel test runs on, Pythia runs with in-situ weights, and a
pseudo-chi2 fit's loss with its variances frozen (the function whose derivative its gradient is).

Devices: 'cpu' (numba CPU kernel), 'cuda' (numba-cuda kernel on torch CUDA tensors) when a GPU is
present, and 'cudasim' (the same CUDA kernel under numba's CUDA simulator) when NUMBA_ENABLE_CUDASIM=1
(tests/conftest.py turns the simulator on when there is no GPU, so CI runs the GPU code too).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Device:
    name: str           # cpu | cuda | cudasim
    torch_device: str   # where the batch tensors live
    backend: str        # backend argument of lund_log_weights


def devices() -> list[Device]:
    import torch

    from .hadronization.dispatch import simulator_on
    out = [Device("cpu", "cpu", "cpu")]
    if simulator_on():
        out.append(Device("cudasim", "cpu", "cuda"))
    elif torch.cuda.is_available():
        out.append(Device("cuda", "cuda", "cuda"))
    return out


def insitu_run(out: Path, points: list, events: int, setup: str = "string", seed: int = 7,
               base: dict | None = None) -> tuple:
    """Generate `events` into dataset dir `out` with Pythia computing in-situ weights for `points`
    ((a, b, sigma) tuples). Returns (dataset, insitu [K, N], kinematic_variations [K, N]) where the
    last holds pythia8mc.KinematicVariations(...).weight recomputed from the stored records.
    """
    from .generation.plan import RunConfig
    from .generation.shard import shard_meta
    from .params import BaseParams
    from .pythia.records import import_pythia, make_reader
    from .pythia.run import actual_base, actual_flavour_base, new_pythia
    from .pythia.setups import make_setup, pythia_settings

    p8 = import_pythia()
    cfg = RunConfig(events, BaseParams(**(base or {})), make_setup(setup), seed, events)
    groups = ", ".join(f"p{k} frag:aLund={a!r} frag:bLund={b!r} frag:ptSigma={s!r}"
                       for k, (a, b, s) in enumerate(points))
    extra = [f"VariationFrag:List = {{{groups}}}"]
    py = new_pythia(p8, cfg.base, cfg.setup, cfg.shard_seed(0), extra=extra)
    reader = make_reader(py, p8)
    bp = actual_base(py)
    kv = p8.KinematicVariations(bp.a, bp.b, bp.r_fact_c, bp.r_fact_b, bp.sigma, bp.z_head)
    info = py.infoPython()
    names = [info.weightNameByIndex(i) for i in range(info.numberOfWeights())]
    idx = [names.index(f"p{k}") for k in range(len(points))]
    rows, insitu, kvw = _insitu_events(py, reader, cfg.setup, events, idx, lambda r: [
        kv.weight(a, b, bp.r_fact_c, bp.r_fact_b, s, r.z_int.tolist(), r.z_dbl.tolist(), r.pt.tolist())
        for (a, b, s) in points])
    meta = shard_meta(bp, cfg, 0, cfg.shard_seed(0), events, 0, generator="fastrsa.testing",
                      settings=pythia_settings(cfg.base, cfg.setup, cfg.shard_seed(0)) + extra,
                      flavour=actual_flavour_base(py))
    return _one_shard(out, rows, meta), insitu, kvw


def insitu_flavour_run(out: Path, points: list, events: int, seed: int = 11, base: dict | None = None) -> tuple:
    """e+e- -> Z events into dataset dir `out` with Pythia's in-situ weights at `points`: dicts over any of
    a, b, sigma, rho, xi, x, y (Pythia's frag: keys). Returns (dataset, insitu [K, N], posthoc [K, N]) where
    posthoc is Pythia's own post-hoc weight from the stored records: KinematicVariations times
    FlavorVariations (each 1 when none of its parameters is in the point)."""
    from .generation.plan import RunConfig
    from .generation.shard import shard_meta
    from .params import BaseParams
    from .pythia.records import import_pythia, make_reader
    from .pythia.run import actual_base, actual_flavour_base, new_pythia
    from .pythia.setups import make_setup, pythia_settings

    key = {"a": "aLund", "b": "bLund", "sigma": "ptSigma", "rho": "rho", "xi": "xi", "x": "x", "y": "y"}
    p8 = import_pythia()
    cfg = RunConfig(events, BaseParams(**(base or {})), make_setup("ee"), seed, events)
    groups = ", ".join(f"p{k} " + " ".join(f"frag:{key[n]}={v!r}" for n, v in pt.items())
                       for k, pt in enumerate(points))
    extra = [f"VariationFrag:List = {{{groups}}}"]
    py = new_pythia(p8, cfg.base, cfg.setup, cfg.shard_seed(0), extra=extra)
    fb = actual_flavour_base(py)
    reader = make_reader(py, p8, flavour=True)
    bp = actual_base(py)
    kv = p8.KinematicVariations(bp.a, bp.b, bp.r_fact_c, bp.r_fact_b, bp.sigma, bp.z_head)
    fv = p8.FlavorVariations(fb.xi, fb.rho, fb.x, fb.y)
    full = [{n: pt.get(n, v) for n, v in (("a", bp.a), ("b", bp.b), ("sigma", bp.sigma), ("rho", fb.rho),
                                          ("xi", fb.xi), ("x", fb.x), ("y", fb.y))} for pt in points]
    fparms = [fv.parms(q["xi"], q["rho"], q["x"], q["y"]) for q in full]
    info = py.infoPython()
    names = [info.weightNameByIndex(i) for i in range(info.numberOfWeights())]
    idx = [names.index(f"p{k}") for k in range(len(points))]
    rows, insitu, post = _insitu_events(py, reader, cfg.setup, events, idx, lambda r: [
        kv.weight(q["a"], q["b"], bp.r_fact_c, bp.r_fact_b, q["sigma"], r.z_int.tolist(), r.z_dbl.tolist(),
                  r.pt.tolist()) * fv.weight(fp, r.flav.tolist() + [0]) for q, fp in zip(full, fparms)])
    meta = shard_meta(bp, cfg, 0, cfg.shard_seed(0), events, 0, generator="fastrsa.testing",
                      settings=pythia_settings(cfg.base, cfg.setup, cfg.shard_seed(0)) + extra, flavour=fb)
    return _one_shard(out, rows, meta), insitu, post


def _insitu_events(py, reader, setup, events: int, idx: list, posthoc) -> tuple:
    """The next `events` successful events of `py`: their rows, Pythia's in-situ weights at the weight indices
    `idx` ([K, N]) and `posthoc(records)` per event ([K, N])."""
    from .pythia.run import next_event
    rows, insitu, post, cache = [], [], [], {}
    while len(rows) < events:
        got = next_event(py, reader, setup, cache)
        if got is None:
            continue
        rows.append(got)
        info = py.infoPython()
        insitu.append([info.weightValueByIndex(i) for i in idx])
        post.append(posthoc(got[0]))
    return rows, np.array(insitu).T, np.array(post).T


def _one_shard(out, rows: list, meta: dict):
    """A one-shard dataset in directory `out`, opened."""
    from .generation.shard import build_table
    from .store.dataset import open_dataset
    from .store.writer import write_manifest, write_shard
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_shard(out, 0, build_table(rows, meta))
    write_manifest(out, {"identity": {}, "n_shards": 1})
    return open_dataset(out)


def frozen_variance_loss(problem, theta0):
    """theta [K, P] -> the loss of `problem` (a pseudo-chi2 fit: losses.PseudoChi2 terms) with every bin's
    variance held at its value at theta0 [1, P]. The fit's gradient at theta0 is this function's gradient
    there (the variances are constants in the gradient), so gradcheck and finite differences apply to it."""
    import torch
    terms = list(getattr(problem.loss, "terms", [problem.loss]))
    with torch.no_grad():
        p0 = problem.mixture(problem.log_weights(problem.as_points(theta0)))[0]
        frozen = [t.histograms(p0) for t in terms]

    def loss(theta):
        p = problem.mixture(problem.log_weights(theta))[0]
        out = 0.0
        for t, v in zip(terms, frozen):
            s, _, tt, _ = t.histograms(p)
            out = out + t.from_histograms(s, v[1], tt, v[3])
        return out
    return loss


def cuda_toolkit() -> Path:
    """The CUDA toolkit whose NVVM, libdevice and ptxas compile_cuda_kernels uses: CUDA_HOME when set, else the
    pip wheel nvidia-cuda-nvcc-cu12 (the test extra installs it: NVVM without a driver or a GPU), else
    /usr/local/cuda."""
    import importlib.util
    import os
    if os.environ.get("CUDA_HOME"):
        return Path(os.environ["CUDA_HOME"])
    spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path("/usr/local/cuda")


def cuda_kernels_ptx(cc: tuple = (9, 0)) -> dict:
    """PTX of fastrsa's CUDA kernels compiled by NVVM for compute capability `cc`, on a machine without a
    GPU: the check that the kernels compile for real hardware, which numba's CUDA simulator (it runs them as
    Python) cannot make. Returns {kernel name: PTX}. Needs numba-cuda with the simulator off and a CUDA
    toolkit's NVVM and libdevice (cuda_toolkit()); the argument types are those the dispatcher passes
    (hadronization.dispatch.kernel_args of a one-event batch).

    numba-cuda asks the driver for the device's compute capability and NVRTC for the supported ones; with
    neither present both answers are given here, and libdevice is taken from the toolkit."""
    import os
    from unittest import mock

    import numba

    from .hadronization.batch import TrialBatch
    from .hadronization.dispatch import kernel_args, simulator_on
    from .hadronization.flavmath import N_FLAV
    from .params import BaseParams
    if simulator_on():
        raise RuntimeError("cuda_kernels_ptx: numba's CUDA simulator is on; run with NUMBA_ENABLE_CUDASIM=0")
    home = cuda_toolkit()
    libdevice = next(iter(sorted(home.glob("nvvm/libdevice/libdevice*.bc"))), None)
    if libdevice is None:
        raise FileNotFoundError(f"{home}: no nvvm/libdevice/libdevice*.bc (a CUDA toolkit's NVVM is needed: "
                                "pip install nvidia-cuda-nvcc-cu12, or set CUDA_HOME)")
    os.environ.setdefault("CUDA_HOME", str(home))      # where numba-cuda looks for libnvvm
    import numba.cuda.cudadrv.libs as libs
    import numba.cuda.cudadrv.nvrtc as nvrtc
    import numba.cuda.cudadrv.nvvm as nvvm
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    from .hadronization.kernels import cuda as kernels

    class _Device:
        compute_capability = tuple(cc)

    batch = TrialBatch.from_arrays(BaseParams(), np.array([0, 1]), np.array([0.5]), np.array([1.0]), np.array([0.1]),
                                   np.array([1]), np.array([2]), np.array([0, 1]), np.array([0.1]))
    tensors, scalars = kernel_args(batch)
    arrays = [x.numpy() for x in tensors] + [np.zeros((1, 3))]
    outs = [np.zeros((1, 1)), np.zeros((1, 1, 3)), np.zeros((1, 1), np.int32)]
    weights_sig = tuple(numba.typeof(x) for x in arrays) + (numba.float64,) * len(scalars) + \
        tuple(numba.typeof(x) for x in outs)
    flav = [np.zeros((1, 4)), np.zeros(4), np.zeros(2), np.zeros((1, N_FLAV)), np.zeros((1, N_FLAV, 4))]
    flavour_sig = tuple(numba.typeof(x) for x in flav)
    with mock.patch.object(dispatcher, "get_current_device", lambda: _Device()), \
            mock.patch.object(nvrtc, "get_supported_ccs", lambda: (tuple(cc),)), \
            mock.patch.object(libs, "get_libdevice", lambda: str(libdevice)), \
            mock.patch.object(nvvm, "get_libdevice", lambda: str(libdevice)):
        return {name: cuda.compile_ptx(kernel.py_func, sig, cc=tuple(cc))[0]
                for name, kernel, sig in (("event_log_weights_cuda", kernels.event_log_weights_cuda, weights_sig),
                                          ("flavour_tables_cuda", kernels.flavour_tables_cuda, flavour_sig))}


def ptxas_resources(ptx: str, cc: tuple = (9, 0)) -> dict:
    """Assemble PTX for sm_<cc> with the toolkit's ptxas (cuda_toolkit()) and return what it reports per
    kernel: registers per thread, static shared memory and spilled bytes (stores + loads), as
    {"registers": int, "smem": int, "spill": int}. ptxas refuses what the hardware cannot run (such as more
    than 48 KB of static shared memory), raising CalledProcessError with its message."""
    import re
    import subprocess
    import tempfile
    ptxas = cuda_toolkit() / "bin" / "ptxas"
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        res = subprocess.run([str(ptxas), f"-arch=sm_{cc[0]}{cc[1]}", "-v", str(src), "-o", str(Path(d) / "k.cubin")],
                             capture_output=True, text=True, check=True)
    text = res.stdout + res.stderr
    spill = sum(int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", text))
    regs = re.search(r"Used (\d+) registers", text)
    smem = re.search(r"(\d+) bytes smem", text)
    return {"registers": int(regs.group(1)), "smem": int(smem.group(1)) if smem else 0, "spill": spill}
