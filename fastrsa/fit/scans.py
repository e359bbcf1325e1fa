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


def profile(problem: Problem, result, direction: dict | None = None, n: int = 21, span: float | None = None,
            newton: int = 3) -> dict:
    """The loss profiled along one combination (default: the least constrained one of result.directions()).

    Points theta(t) = theta_hat + t v * s move along the combination v (relative units, s = the scales) for
    t in [-span, span] (default: 3 errors of the combination, at most 0.5); at each point the other free
    directions are re-minimized with `newton` Newton steps in that subspace (the fit's Hessian, exact
    gradients), all points together in one batch per step. Returns t, theta, loss and N_eff/N per point."""
    space = problem.space
    free = result.free
    idx = space.indices(free)
    direction = direction or result.directions()[-1]
    scales = np.array([direction["scales"][f] for f in free])
    v = np.array([direction["coefficients"][f] for f in free]) * scales          # physical units
    span = min(3.0 * direction["error"], 0.5) if span is None else span
    span = span if span > 0 else 0.1
    t = np.linspace(-span, span, n)
    th = torch.as_tensor(result.theta, dtype=torch.float64).repeat(n, 1)
    th[:, idx] += torch.from_numpy(np.outer(t, v))
    H = np.asarray(result.hessian)
    # Moves that keep the combination's value c = sum_j coeff_j theta_j / s_j fixed: the complement of
    # w = coeff / s. The loss is minimized over them at each point.
    w = np.array([direction["coefficients"][f] for f in free]) / scales
    others = np.linalg.svd(np.eye(len(free)) - np.outer(w, w) / (w @ w))[0][:, :len(free) - 1]
    if others.shape[1]:
        Hs = others.T @ H @ others
        for _ in range(newton):
            g = problem.loss_and_grad(space.clamp(th, space.names).to(problem.device)).grad.cpu().numpy()[:, idx]
            step = -np.linalg.solve(Hs, (g @ others).T).T @ others.T
            th[:, idx] += torch.from_numpy(step)
    th = space.clamp(th, space.names)
    ev = problem.loss_and_grad(th.to(problem.device))
    best = torch.argmax(ev.alpha, -1)[:, None]
    return {"t": t.tolist(), "theta": th.tolist(), "loss": ev.loss.cpu().tolist(),
            "n_eff_frac": ev.n_eff_frac.gather(1, best)[:, 0].cpu().tolist(), "direction": direction,
            "free": free, "loss_at_fit": float(result.loss)}
