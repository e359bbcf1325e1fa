"""Scans of the loss: the (a, b) landscape with gradients and reweighting diagnostics."""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from ..params import SPACE
from .problem import Problem


def landscape(problem: Problem, a_values, b_values, sigma: float, chunk: int = 16,
              progress: bool = True, stream=None) -> dict:
    """Loss, its gradient and the reweighting diagnostics on the grid a_values x b_values (sigma fixed),
    evaluated in batched passes of `chunk` points through the weight op."""
    stream = stream or sys.stderr
    A, B = np.meshgrid(np.asarray(a_values, float), np.asarray(b_values, float), indexing="ij")
    pts = np.stack([A.ravel(), B.ravel(), np.full(A.size, sigma)], 1)
    SPACE.check(pts, where="grid")
    loss, grad, mean_w, neff = [], [], [], []
    t0 = time.time()
    for s in range(0, len(pts), chunk):
        th = torch.from_numpy(pts[s:s + chunk]).to(problem.device)
        ev = problem.loss_and_grad(th)
        loss.append(ev.loss.cpu().numpy())
        grad.append(ev.grad.cpu().numpy())
        # Report the base that covers each point best (the largest alpha).
        best = torch.argmax(ev.alpha, -1)[:, None]
        neff.append(ev.n_eff_frac.gather(1, best)[:, 0].cpu().numpy())
        mean_w.append(ev.mean_weight.gather(1, best)[:, 0].cpu().numpy())
        if progress:
            print(f"  landscape {min(s + chunk, len(pts))}/{len(pts)} points ({time.time() - t0:.0f} s)",
                  file=stream, flush=True)
    shape = A.shape
    return {"a": list(map(float, a_values)), "b": list(map(float, b_values)), "sigma": sigma,
            "loss": np.concatenate(loss).reshape(shape).tolist(),
            "grad_a": np.concatenate(grad)[:, 0].reshape(shape).tolist(),
            "grad_b": np.concatenate(grad)[:, 1].reshape(shape).tolist(),
            "mean_weight": np.concatenate(mean_w).reshape(shape).tolist(),
            "n_eff_frac": np.concatenate(neff).reshape(shape).tolist()}
