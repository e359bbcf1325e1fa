"""Reweighting diagnostics: mean weight with its error, N_eff = (sum w)^2 / sum w^2, capped trials."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from .batch import TrialBatch
from .weights import NP, lund_log_weights


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
    th = torch.as_tensor(theta, dtype=torch.float64, device=batch.device).reshape(-1, NP)
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
