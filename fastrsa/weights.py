"""The weight op: exact per-event log-weights of a dataset at new Lund parameters, differentiable.

    log w_i(theta) = sum over trials t of event i of log r_t(theta) + sum over its pT breaks,
with Pythia's per-trial ratios (see fastrsa.lund.trial_log_weight) and theta = (a, b, sigma_pT).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import torch

from .batch import TrialBatch
from .errors import DatasetError, ParameterError
from .kernels import cpu as cpu_kernels
from .params import BaseParams

BACKENDS = ("auto", "cpu", "cuda")


def _check_theta(theta: torch.Tensor, batch: TrialBatch) -> None:
    if not isinstance(theta, torch.Tensor):
        raise ParameterError("theta: must be a torch tensor of shape [3] or [K, 3] (columns a, b, sigma)")
    if not theta.is_floating_point():
        raise ParameterError(f"theta: dtype {theta.dtype} is not floating point; use torch.float64")
    if theta.device != batch.device:
        raise ParameterError(f"theta: on {theta.device} but the batch is on {batch.device}; move one of them")
    if theta.dim() not in (1, 2) or theta.shape[-1] != 3:
        raise ParameterError(f"theta: shape {tuple(theta.shape)}; expected [3] or [K, 3] (a, b, sigma)")
    t = theta.detach().reshape(-1, 3)
    if t.shape[0] == 0:
        raise ParameterError("theta: K = 0 parameter points")
    if not torch.isfinite(t).all():
        raise ParameterError("theta: contains NaN or inf")
    for j, (name, ok, rule) in enumerate((("a", t[:, 0] >= 0, ">= 0"), ("b", t[:, 1] > 0, "> 0"),
                                          ("sigma", t[:, 2] > 0, "> 0"))):
        if not bool(ok.all()):
            bad = float(t[~ok][0, j])
            raise ParameterError(f"theta: {name} = {bad} outside the model ({name} {rule})")


def _run_kernel(batch: TrialBatch, theta2: torch.Tensor, backend: str):
    K, N = theta2.shape[0], len(batch)
    dev = batch.device
    out_lw = torch.empty((K, N), dtype=torch.float64, device=dev)
    out_grad = torch.empty((K, N, 3), dtype=torch.float64, device=dev)
    out_cap = torch.empty((K, N), dtype=torch.int32, device=dev)
    th = theta2.to(torch.float64).contiguous()
    scalars = (batch.base.sigma, math.log(batch.base.z_head))
    if backend == "auto":
        backend = "cuda" if dev.type == "cuda" else "cpu"
    if backend == "cpu":
        if dev.type != "cpu":
            raise ParameterError(f"backend 'cpu' needs a CPU batch; this one is on {dev}")
        arrs = [x.numpy() for x in (batch.offsets, batch.z, batch.mt2, batch.cls, batch.lfb, batch.lfB,
                                    batch.table, batch.n_breaks, batch.sum_pt2, th)]
        cpu_kernels.event_log_weights(*arrs, *scalars, out_lw.numpy(), out_grad.numpy(), out_cap.numpy())
    elif backend == "cuda":
        from .kernels import cuda as cuda_kernels
        from numba import cuda
        tensors = (batch.offsets, batch.z, batch.mt2, batch.cls, batch.lfb, batch.lfB, batch.table,
                   batch.n_breaks, batch.sum_pt2, th)
        outs = (out_lw, out_grad, out_cap)
        if dev.type == "cuda":
            stream = cuda.external_stream(torch.cuda.current_stream(dev).cuda_stream)
            arrs = [cuda.as_cuda_array(x) for x in tensors]
            o = [cuda.as_cuda_array(x) for x in outs]
            cuda_kernels.launch((*arrs, *scalars, *o), N, stream)
        elif os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
            cuda_kernels.launch((*[x.numpy() for x in tensors], *scalars, *[x.numpy() for x in outs]), N)
        else:
            raise ParameterError("backend 'cuda': the batch is on the CPU and the numba CUDA simulator is off; "
                                 "use batch.to('cuda') or set NUMBA_ENABLE_CUDASIM=1")
    else:
        raise ParameterError(f"backend = {backend!r}; use one of {BACKENDS}")
    return out_lw, out_grad, out_cap


class LundLogWeight(torch.autograd.Function):
    """Forward runs the kernel, which also returns d log w / d theta; backward contracts it."""

    @staticmethod
    def forward(ctx, theta2, batch, backend, stats):
        lw, grad, cap = _run_kernel(batch, theta2, backend)
        if stats is not None:
            stats["capped_trials"] = cap
        ctx.save_for_backward(grad)
        return lw

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return torch.einsum("kn,knp->kp", grad_out.to(grad.dtype), grad), None, None, None


def lund_log_weights(batch: TrialBatch, theta: torch.Tensor, *, expected_base: BaseParams | None = None,
                     backend: str = "auto", stats: dict | None = None) -> torch.Tensor:
    """Per-event log-weights log w_i(theta) relative to the batch's base point.

    theta: [3] or [K, 3] float tensor (a, b, sigma_pT) on the batch's device; returns [N] or [K, N]
    float64. Differentiable in theta (analytic gradients from the same kernel pass). A weight is
    exactly Pythia's (KinematicVariations / in-situ VariationFrag weights): product over every trial
    of min(f_theta/f_B, zHead) (accepted) or (1 - F_B min(f_theta/f_B, zHead)) / (1 - F_B) (rejected),
    times the pT ratio of every break. `stats`, if given, receives 'capped_trials' [K, N]: trials
    whose ratio hit zHead, i.e. where the base sampling does not cover theta.
    """
    if not isinstance(batch, TrialBatch):
        raise ParameterError("batch: expected a TrialBatch (dataset.to_torch(device))")
    if expected_base is not None and not batch.base.same_as(expected_base):
        raise DatasetError("batch: its dataset's base parameters differ from the expected ones "
                           f"({batch.base} vs {expected_base}); use a batch of the matching dataset")
    _check_theta(theta, batch)
    lw = LundLogWeight.apply(theta.reshape(-1, 3), batch, backend, stats)
    return lw[0] if theta.dim() == 1 else lw


def log_weights_and_jacobian(batch: TrialBatch, theta: torch.Tensor, backend: str = "auto"):
    """(log w [K, N], d log w / d theta [K, N, 3]) at theta [K, 3], without autograd.

    The kernel computes both in one pass; callers that need per-event derivatives (the bootstrap's
    per-replica gradients, linearized around one point) use this instead of K backward passes.
    """
    _check_theta(theta, batch)
    lw, grad, _ = _run_kernel(batch, theta.detach().reshape(-1, 3), backend)
    return lw, grad


class LundReweighter(torch.nn.Module):
    """theta = (a, b, sigma_pT) as a Parameter; forward(batch) -> log-weights [N] (any torch optimizer)."""

    def __init__(self, a: float, b: float, sigma: float, base: BaseParams | None = None,
                 dtype=torch.float64, device="cpu"):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([a, b, sigma], dtype=dtype, device=device))
        self.base = base

    def forward(self, batch: TrialBatch) -> torch.Tensor:
        return lund_log_weights(batch, self.theta, expected_base=self.base)

    def extra_repr(self) -> str:
        a, b, s = self.theta.detach().tolist()
        return f"a={a:.4f}, b={b:.4f}, sigma={s:.4f}"


@dataclass
class Diagnostics:
    theta: tuple
    mean_weight: float
    mean_weight_err: float
    n_eff: float
    n_eff_frac: float
    capped_trials: int
    capped_events: int
    zero_weight_events: int

    def __str__(self) -> str:
        a, b, s = self.theta
        return (f"(a, b, sigma) = ({a:.4f}, {b:.4f}, {s:.4f}): mean weight {self.mean_weight:.4f} +- "
                f"{self.mean_weight_err:.4f}, N_eff/N = {self.n_eff_frac:.4f}, capped trials "
                f"{self.capped_trials} in {self.capped_events} events")


def summarize_log_weights(lw: torch.Tensor) -> tuple[float, float, float]:
    """(mean weight, its standard error, N_eff) from log-weights, computed stably in log space."""
    lw = lw.detach().to(torch.float64)
    n = lw.numel()
    m = torch.max(lw)
    if not torch.isfinite(m):
        return 0.0, 0.0, 0.0
    s1 = torch.logsumexp(lw, 0)
    s2 = torch.logsumexp(2 * lw, 0)
    mean = float(torch.exp(s1 - math.log(n)))
    n_eff = float(torch.exp(2 * s1 - s2))
    mean_sq = float(torch.exp(s2 - math.log(n)))
    err = math.sqrt(max(mean_sq - mean ** 2, 0.0) / max(n - 1, 1))
    return mean, err, n_eff


def diagnostics(batch: TrialBatch, theta, warn_below: float = 0.1, backend: str = "auto") -> list[Diagnostics]:
    """Mean weight, N_eff/N and clamped-trial counts at each theta ([3] or [K, 3]).

    Warns (RuntimeWarning) when N_eff/N < warn_below or when any trial is capped.
    """
    th = torch.as_tensor(theta, dtype=torch.float64, device=batch.device).reshape(-1, 3)
    stats = {}
    with torch.no_grad():
        lw = lund_log_weights(batch, th, backend=backend, stats=stats)
    cap = stats["capped_trials"]
    out = []
    for k in range(th.shape[0]):
        mean, err, n_eff = summarize_log_weights(lw[k])
        d = Diagnostics(tuple(th[k].tolist()), mean, err, n_eff, n_eff / len(batch), int(cap[k].sum()),
                        int((cap[k] > 0).sum()), int(torch.isinf(lw[k]).sum()))
        if d.n_eff_frac < warn_below:
            warnings.warn(f"reweighting to {d.theta}: N_eff/N = {d.n_eff_frac:.3g} < {warn_below}; the base "
                          "sample barely covers this point", RuntimeWarning, stacklevel=2)
        if d.capped_trials:
            warnings.warn(f"reweighting to {d.theta}: {d.capped_trials} trials in {d.capped_events} events "
                          "capped at zHead (not covered by the base sampling; raise --zhead)",
                          RuntimeWarning, stacklevel=2)
        out.append(d)
    return out
