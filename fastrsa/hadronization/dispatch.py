"""The one kernel dispatch: which device and backend a weight pass runs on, and how a TrialBatch
becomes kernel arguments.

Backends: 'cpu' (numba, parallel over blocks of events, vectorized over each z sampling's trials), 'cuda'
(numba-cuda on torch CUDA tensors, on torch's current stream, without copies) and the same CUDA kernel
under numba's simulator when the batch is on the CPU and NUMBA_ENABLE_CUDASIM=1 (how CI tests the GPU
code). 'auto' picks by the batch's device.
"""
from __future__ import annotations

import math
import os

import torch

from ..errors import ParameterError

BACKENDS = ("auto", "cpu", "cuda")


def simulator_on() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def resolve_device(device) -> torch.device:
    """A torch device that exists on this machine, or one clear ParameterError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"device = {device!r} is not a torch device; use cpu or cuda") from None
    if dev.type not in ("cpu", "cuda"):
        raise ParameterError(f"device = {device!r}: fastrsa runs on cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device = {device!r}: this torch has no usable CUDA (built for CPU, or no GPU "
                             "visible); use --device cpu, or install a CUDA torch and fastrsa[gpu]")
    return dev


def resolve_backend(backend: str, dev: torch.device) -> str:
    """'cpu', 'cuda' or 'cudasim' for a batch on `dev`."""
    if backend not in BACKENDS:
        raise ParameterError(f"backend = {backend!r}; use one of {BACKENDS}")
    if backend == "auto":
        backend = "cuda" if dev.type == "cuda" else "cpu"
    if backend == "cpu" and dev.type != "cpu":
        raise ParameterError(f"backend 'cpu' needs a CPU batch; this one is on {dev}")
    if backend == "cuda" and dev.type != "cuda":
        if not simulator_on():
            raise ParameterError("backend 'cuda': the batch is on the CPU and the numba CUDA simulator is off; "
                                 "use batch.to('cuda') or set NUMBA_ENABLE_CUDASIM=1")
        return "cudasim"
    return backend


def kernel_args(batch) -> tuple:
    """The batch's tensors in the kernels' argument order, and its scalars."""
    feat = batch.feat if batch.feat is not None else torch.empty((0, 3), dtype=torch.float64, device=batch.device)
    tensors = (batch.offsets, batch.z, batch.qB, feat, batch.hadron, batch.h_start, batch.h_m, batch.h_cls,
               batch.h_base, batch.table, batch.n_breaks, batch.sum_pt2)
    b = batch.base
    return tensors, (b.a, b.b, b.sigma, math.log(b.z_head))


def run_lund_kernel(batch, theta2: torch.Tensor, backend: str = "auto"):
    """log w [K, N], d log w / d theta [K, N, 3] and capped-trial counts [K, N] at kernel theta [K, 3]."""
    K, N = theta2.shape[0], len(batch)
    dev = batch.device
    which = resolve_backend(backend, dev)
    out_lw = torch.empty((K, N), dtype=torch.float64, device=dev)
    out_grad = torch.empty((K, N, 3), dtype=torch.float64, device=dev)
    out_cap = torch.empty((K, N), dtype=torch.int32, device=dev)
    tensors, scalars = kernel_args(batch)
    tensors = (*tensors, theta2.to(torch.float64).contiguous())
    outs = (out_lw, out_grad, out_cap)
    if which == "cpu":
        from .kernels import cpu as cpu_kernels
        cpu_kernels.event_log_weights(*[x.numpy() for x in tensors], *scalars, *[x.numpy() for x in outs])
    else:
        from .kernels import cuda as cuda_kernels
        if which == "cuda":
            from numba import cuda
            stream = cuda.external_stream(torch.cuda.current_stream(dev).cuda_stream)
            cuda_kernels.launch((*[cuda.as_cuda_array(x) for x in tensors], *scalars,
                                 *[cuda.as_cuda_array(x) for x in outs]), N, stream)
        else:
            cuda_kernels.launch((*[x.numpy() for x in tensors], *scalars, *[x.numpy() for x in outs]), N)
    return out_lw, out_grad, out_cap


def run_flavour_tables(batch, theta_f: torch.Tensor, backend: str = "auto"):
    """Per flavour point (theta_f [K, 4] = rho, xi, x, y): L [K, 13] and dL [K, 13, 4] (see
    fastrsa.hadronization.flavmath), on the batch's device, from the same kernel source on CPU and GPU."""
    from .flavmath import N_FLAV
    K, dev = theta_f.shape[0], batch.device
    which = resolve_backend(backend, dev)
    fb = batch.flavour
    base = torch.tensor(fb.theta, dtype=torch.float64, device=dev)
    cg = torch.tensor(fb.cg_ratios(), dtype=torch.float64, device=dev)
    out_L = torch.empty((K, N_FLAV), dtype=torch.float64, device=dev)
    out_dL = torch.empty((K, N_FLAV, 4), dtype=torch.float64, device=dev)
    args = (theta_f.detach().to(torch.float64).contiguous(), base, cg, out_L, out_dL)
    if which == "cpu":
        from .kernels import cpu as cpu_kernels
        cpu_kernels.flavour_tables(*[x.numpy() for x in args])
    else:
        from .kernels import cuda as cuda_kernels
        if which == "cuda":
            from numba import cuda
            stream = cuda.external_stream(torch.cuda.current_stream(dev).cuda_stream)
            cuda_kernels.launch_flavour([cuda.as_cuda_array(x) for x in args], K, stream)
        else:
            cuda_kernels.launch_flavour([x.numpy() for x in args], K)
    return out_L, out_dL
