"""Uncertainties of a fitted point: the loss Hessian, the bootstrap covariance of its gradient, the
sandwich covariance, confidence ellipses, and refitted bootstrap replicas."""
from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

from ..errors import ParameterError
from .problem import Problem

CHI2_95_2D = 5.991464547107979     # chi2 quantiles for 2 degrees of freedom (ellipses in a, b)
CHI2_68_2D = 2.295748928898636


def hessian(problem: Problem, theta, free: list[str], steps=None) -> np.ndarray:
    """Hessian of the loss in the free parameters at theta: central differences of the analytic
    (autodiff) gradient, all 2d displaced points in one batched pass. Default steps are 1% of each
    parameter: wide enough to average over the kinks that sorting-based losses have in finite samples."""
    space = problem.space
    idx = space.indices(free)
    th = torch.as_tensor(theta, dtype=torch.float64)
    rel = getattr(problem, "hessian_rel_step", 0.01)
    h = np.array([rel * abs(float(th[i])) or 1e-3 for i in idx]) if steps is None else np.asarray(steps)
    pts = th.repeat(2 * len(idx), 1)
    width = np.empty(len(idx))
    for j, (i, name) in enumerate(zip(idx, free)):
        # At a bound of the domain the difference is one-sided (it never evaluates outside the model).
        up = float(th[i]) + h[j] if space[name].contains(float(th[i]) + h[j]) else float(th[i])
        down = float(th[i]) - h[j] if space[name].contains(float(th[i]) - h[j]) else float(th[i])
        if up == down:
            raise ParameterError(f"hessian: no room for a step of {h[j]:g} in {name} at {float(th[i]):g} inside "
                                 f"the model ({space[name].domain()})")
        pts[2 * j, i], pts[2 * j + 1, i] = up, down
        width[j] = h[j] * (int(up != float(th[i])) + int(down != float(th[i])))      # 2h central, h one-sided
    g = problem.loss_and_grad(pts.to(problem.device)).grad.cpu().numpy()[:, idx]
    H = np.stack([(g[2 * j] - g[2 * j + 1]) / width[j] for j in range(len(idx))])
    return 0.5 * (H + H.T)


def gradient_covariance(problem: Problem, theta, free: list[str], replicas: int = 64, seed: int = 0) -> np.ndarray:
    """Covariance of the loss gradient in the free parameters under bootstrap replicas of the problem's
    events, all at theta (see Problem.replica_gradients)."""
    g = problem.replica_gradients(theta, problem.space.indices(free), replicas, seed)
    return np.cov(g, rowvar=False).reshape(len(free), len(free))


def covariance(problem: Problem, theta, free: list[str], replicas: int = 64, seed: int = 0):
    """Covariance of the fitted point and the loss Hessian H there. Returns (cov, H).

    Against a target sample: the sandwich H^-1 J H^-1 (J: bootstrap covariance of the loss gradient over
    base and target events). It holds for any of the losses (an M-estimator), not only for a likelihood.
    Against measurements (a chi2 whose denominators hold the data's errors and the bases' statistical
    variance): 2 H^-1, the chi2's own covariance (Delta chi2 = 1 at one sigma)."""
    H = hessian(problem, theta, free)
    try:
        Hi = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        raise ParameterError("the loss Hessian at the fitted point is singular: the observables do not "
                             "constrain all of " + ", ".join(free) + "; fix one (--params) or add observables")
    if problem.data:
        return 2.0 * Hi, H
    J = gradient_covariance(problem, theta, free, replicas, seed)
    return Hi @ J @ Hi, H


def ellipse(mean, cov, level: float = 0.95, n: int = 200) -> np.ndarray:
    """Points [n, 2] of the confidence ellipse of a 2D Gaussian (level 0.68 or 0.95, 2 dof)."""
    k = {0.68: CHI2_68_2D, 0.95: CHI2_95_2D}.get(level) or -2.0 * math.log(1.0 - level)
    vals, vecs = np.linalg.eigh(np.asarray(cov, np.float64))
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)], 1) * np.sqrt(np.maximum(vals, 0) * k)
    return np.asarray(mean, np.float64) + circle @ vecs.T


def inside_ellipse(point, mean, cov, level: float = 0.95) -> tuple[bool, float]:
    """(is `point` inside the ellipse, its chi2 = d^T cov^-1 d)."""
    d = np.asarray(point, np.float64) - np.asarray(mean, np.float64)
    chi2 = float(d @ np.linalg.solve(np.asarray(cov, np.float64), d))
    k = {0.68: CHI2_68_2D, 0.95: CHI2_95_2D}.get(level) or -2.0 * math.log(1.0 - level)
    return chi2 <= k, chi2


def bootstrap(problem: Problem, theta_hat, params="a,b", replicas: int = 32, seed: int = 1, iters: int = 25,
              progress: bool = True, stream=None) -> dict:
    """Refit R bootstrap replicas (Poisson(1) multiplicities of base and target events) together: every
    iteration evaluates all R points as one [R, 3] batch through the weight op. Each replica starts at
    the nominal fit and takes Levenberg-Marquardt steps -(H + lambda diag H)^-1 g with the nominal
    Hessian H (eigenvalues taken by magnitude) and its own lambda (divided by 3 when its loss falls, times 4 and
    the step undone when it rises; for a chi2 with constant variances, when its Newton decrement g^T H^-1 g
    falls), which stays stable along a flat valley where a plain Newton step would overshoot.
    Returns the replicas' points, their mean and covariance, and how many converged."""
    stream = stream or sys.stderr
    space = problem.space
    free = space.parse_names(params)
    idx = space.indices(free)
    if replicas < 2:
        raise ParameterError(f"replicas = {replicas}; need at least 2 for a covariance")
    if iters < 1:
        raise ParameterError(f"iters = {iters}; need at least 1 Levenberg-Marquardt iteration")
    # |H| (eigenvalues by magnitude): a step direction that descends even where the nominal fit's
    # Hessian is not positive definite (an unconverged fit or a flat valley).
    vals, vecs = np.linalg.eigh(hessian(problem, theta_hat, free))
    vals = np.maximum(np.abs(vals), 1e-9 * max(np.abs(vals).max(), 1e-300))
    H = (vecs * vals) @ vecs.T
    D = np.diag(np.diag(H))
    bm, tm = problem.poisson_multiplicities(replicas, seed)
    th = torch.as_tensor(theta_hat, dtype=torch.float64).repeat(replicas, 1)
    loss, g = problem.loss_and_grad(th.to(problem.device), bm, tm)[:2]
    g = g.cpu()
    # A chi2 whose variances are constants of its gradient (losses.PseudoChi2, the data chi2) is solved as an
    # estimating equation g = 0: a step is kept when the Newton decrement g^T |H|^-1 g falls. Its value still
    # moves with the variances, so "the loss falls" would refuse steps towards the replica's own root.
    by_gradient = bool(getattr(problem.loss, "constant_variance", False))
    Hi = np.linalg.inv(H) if by_gradient else None

    def merit(loss, g):
        if not by_gradient:
            return loss.cpu()
        gi = g.numpy()[:, idx]
        return torch.from_numpy(np.einsum("ri,ij,rj->r", gi, Hi, gi))
    score = merit(loss, g)
    g0 = np.abs(g.numpy()[:, idx]).max(1)
    lam = np.full(replicas, 0.1)
    t0 = time.time()
    for it in range(iters):
        gi = g.numpy()[:, idx]
        step = np.stack([-np.linalg.solve(H + lam[r] * D, gi[r]) for r in range(replicas)])
        trial = th.clone()
        trial[:, idx] += torch.from_numpy(step)
        trial = space.clamp(trial, space.names)
        tl, tg = problem.loss_and_grad(trial.to(problem.device), bm, tm)[:2]
        ts = merit(tl, tg.cpu())
        better = (ts <= score).numpy()
        th[better], loss[better], g[better] = trial[better], tl[better].to(loss.device), tg.cpu()[better]
        score[better] = ts[better]
        lam = np.where(better, lam / 3, lam * 4)
        size = np.abs(step).max()
        if progress:
            print(f"  iteration {it + 1:3d}  largest step {size:.2e}  replicas improved "
                  f"{better.sum()}/{replicas}  ({time.time() - t0:.0f} s)", file=stream, flush=True)
        if size < 1e-6:        # every replica's proposed step is negligible
            break
    pts = th.numpy()[:, idx]
    converged = int(np.sum(np.abs(g.numpy()[:, idx]).max(1) < 0.05 * np.maximum(g0, 1e-300)))
    return {"free": free, "points": pts.tolist(), "mean": pts.mean(0).tolist(),
            "cov": np.cov(pts, rowvar=False).reshape(len(idx), len(idx)).tolist(),
            "replicas": replicas, "seed": seed, "theta_hat": list(map(float, theta_hat)),
            "iterations": it + 1, "gradient_reduced_20x": converged}
