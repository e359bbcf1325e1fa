"""The weight op: exact per-event log-weights of a dataset at new Lund parameters, differentiable.

    log w_i(theta) = sum over trials t of event i of log r_t(theta) + sum over its pT breaks,
with Pythia's per-trial ratios (see fastrsa.hadronization.lund.trial_log_weight) and theta =
(a, b, sigma_pT), the kernel columns of fastrsa.params.SPACE's 'lund' parameters.
"""
from __future__ import annotations

import torch

from ..errors import DatasetError, ParameterError
from ..params import SPACE, BaseParams
from .batch import TrialBatch
from .dispatch import run_lund_kernel
from .lund import KERNEL_COLUMNS

NP = len(KERNEL_COLUMNS)


def check_theta(theta: torch.Tensor, batch: TrialBatch) -> None:
    """theta must be a float tensor [3] or [K, 3] on the batch's device, inside the model's domain."""
    cols = ", ".join(KERNEL_COLUMNS)
    if not isinstance(theta, torch.Tensor):
        raise ParameterError(f"theta: must be a torch tensor of shape [{NP}] or [K, {NP}] (columns {cols})")
    if not theta.is_floating_point() or theta.dtype in (torch.float16, torch.bfloat16):
        # Half precision would silently move the point (0.68 is 0.6802 in float16): refused, not rounded.
        raise ParameterError(f"theta: dtype {theta.dtype} cannot hold the point exactly; use torch.float64")
    if theta.device != batch.device:
        raise ParameterError(f"theta: on {theta.device} but the batch is on {batch.device}; move one of them")
    if theta.dim() not in (1, 2) or theta.shape[-1] != NP:
        raise ParameterError(f"theta: shape {tuple(theta.shape)}; expected [{NP}] or [K, {NP}] ({cols})")
    SPACE.check(theta, where="theta", names=KERNEL_COLUMNS)


class LundLogWeight(torch.autograd.Function):
    """Forward runs the kernel, which also returns d log w / d theta; backward contracts it."""

    @staticmethod
    def forward(ctx, theta2, batch, backend, stats):
        lw, grad, cap = run_lund_kernel(batch, theta2, backend)
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
    check_theta(theta, batch)
    lw = LundLogWeight.apply(theta.reshape(-1, NP), batch, backend, stats)
    return lw[0] if theta.dim() == 1 else lw


def log_weights_and_jacobian(batch: TrialBatch, theta: torch.Tensor, backend: str = "auto"):
    """(log w [K, N], d log w / d theta [K, N, 3]) at theta [K, 3], without autograd.

    The kernel computes both in one pass; callers that need per-event derivatives (the bootstrap's
    per-replica gradients, linearized around one point) use this instead of K backward passes.
    """
    check_theta(theta, batch)
    lw, grad, _ = run_lund_kernel(batch, theta.detach().reshape(-1, NP), backend)
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
