"""Fitting (a, b, sigma_pT) to a target sample by gradient descent on reweighted base samples.

A `Problem` holds everything that does not depend on theta, prepared once: the base datasets' trial
records (TrialBatch), the observables of bases and target, and the loss with its sorting and binning.
At a parameter point theta the simulated sample is the union of the bases' events with weights

    p_i = alpha_b w_i / sum_{j in b} w_j   (event i of base b),   alpha_b = N_eff,b / sum_c N_eff,c,

so each base counts by how well it covers theta (alpha is held constant in the gradient; any fixed
alpha gives an unbiased estimate of the distribution at theta). With one base, alpha = 1.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from .dataset import open_dataset
from .errors import DatasetError, ParameterError
from .losses import PseudoChi2, SlicedWasserstein, Wasserstein1D
from .observables import Observable, check_same_setup, compute, expand_names, level_of, load_hadrons
from .weights import lund_log_weights, log_weights_and_jacobian, summarize_log_weights

PARAMS = ("a", "b", "sigma")
LOSSES = {"swd": "sliced Wasserstein of the standardized event-level observables",
          "w1": "sum of exact 1D Wasserstein distances, each over the target's standard deviation",
          "chi2": "sum of pseudo-chi2 over the binned observables"}
CHI2_95_2D = 5.991464547107979     # chi2 quantiles for 2 degrees of freedom (ellipses in a, b)
CHI2_68_2D = 2.295748928898636


class SumLoss(torch.nn.Module):
    def __init__(self, terms):
        super().__init__()
        self.terms = torch.nn.ModuleList(terms)

    def forward(self, p, q=None):
        return sum(t(p, q) for t in self.terms)


def build_loss(kind: str, names: list[str], sim: dict, tgt: dict, target_weights=None, n_sim: int = 0,
               n_target: int = 0, n_projections: int = 128, seed: int = 0) -> torch.nn.Module:
    """The loss module for observables `names` (sim/tgt: name -> Observable over all events)."""
    if kind not in LOSSES:
        raise ParameterError(f"loss = {kind!r}; use one of {sorted(LOSSES)}")
    if kind == "swd":
        hadron = [n for n in names if level_of(n) == "hadron"]
        if hadron:
            raise ParameterError(f"loss 'swd' projects event-level observables; {hadron} are per hadron: "
                                 "use --loss w1 or --loss chi2 for spectra")
        xs = np.stack([sim[n].values for n in names], 1)
        xt = np.stack([tgt[n].values for n in names], 1)
        return SlicedWasserstein(xs, xt, target_weights, n_projections=n_projections, seed=seed)
    terms = []
    for n in names:
        s, t = sim[n], tgt[n]
        kw = dict(sim_index=s.event_index(), target_index=t.event_index(), target_weights=target_weights,
                  n_sim_events=n_sim, n_target_events=n_target)
        if kind == "w1":
            sd = float(np.std(t.values))
            if sd == 0:
                raise ParameterError(f"observables: {n!r} is constant in the target; drop it")
            terms.append(Wasserstein1D(s.values, t.values, scale=sd, **kw))
        else:
            terms.append(PseudoChi2(s.values, t.values, **kw))
    return SumLoss(terms)


def _concat(obs_list: list[dict], names) -> dict:
    out = {}
    for n in names:
        parts = [o[n] for o in obs_list]
        if parts[0].offsets is None:
            out[n] = Observable(n, "event", np.concatenate([p.values for p in parts]))
        else:
            offs, shift = [np.zeros(1, np.int64)], 0
            for p in parts:
                offs.append(p.offsets[1:] + shift)
                shift += p.offsets[-1]
            out[n] = Observable(n, "hadron", np.concatenate([p.values for p in parts]), np.concatenate(offs))
    return out


class Evaluation(NamedTuple):
    """Loss and gradient at K points, with each base's share and coverage there ([K, B] each)."""
    loss: torch.Tensor
    grad: torch.Tensor
    alpha: torch.Tensor
    n_eff_frac: torch.Tensor
    mean_weight: torch.Tensor


class Problem:
    """Bases, target, observables and loss of a fit, prepared once (see module docstring)."""

    def __init__(self, bases, target, observables="multiplicity,shapes", loss: str = "swd",
                 n_projections: int = 128, seed: int = 0, device="cpu", classifiers: dict | None = None):
        if isinstance(bases, (str, bytes)) or not hasattr(bases, "__iter__"):
            bases = [bases]
        if not bases:
            raise ParameterError("base: give at least one base dataset")
        self.names = expand_names(observables)
        self.loss_kind = loss
        if loss not in LOSSES:
            raise ParameterError(f"loss = {loss!r}; use one of {sorted(LOSSES)}")
        self.datasets = [open_dataset(b) for b in bases]
        for ds in self.datasets:
            if not ds.complete:
                raise DatasetError(f"{ds.path}: incomplete ({len(ds.shards)} of {ds.manifest['n_shards']} "
                                   f"shards); finish it with 'fastrsa generate {ds.path}' (it resumes)")
        hadrons = [load_hadrons(ds.path) for ds in self.datasets]
        self.target = load_hadrons(target)
        check_same_setup({"target": self.target, **{f"base {i}": h for i, h in enumerate(hadrons)}})
        self.setup = self.target.setup
        self.device = torch.device(device)
        self.batches = [ds.to_torch(self.device) for ds in self.datasets]
        self.sizes = [len(b) for b in self.batches]
        self.sim_obs = [compute(h, self.names, classifiers) for h in hadrons]
        self.target_obs = compute(self.target, self.names, classifiers)
        self.all_sim = _concat(self.sim_obs, self.names)
        tw = self.target.weights
        self.loss = build_loss(loss, self.names, self.all_sim, self.target_obs, tw, sum(self.sizes),
                               len(self.target), n_projections, seed).to(self.device)
        # The target's event weights (1 unless the target file has a 'weight' column), on the weights' device.
        self.target_weights = torch.as_tensor(tw if tw is not None else np.ones(len(self.target)),
                                              dtype=torch.float64, device=self.device)

    @property
    def base_points(self) -> list[tuple]:
        return [(ds.base.a, ds.base.b, ds.base.sigma) for ds in self.datasets]

    def describe(self) -> str:
        bases = "; ".join(f"{ds.path} ({len(ds)} events at a={ds.base.a}, b={ds.base.b}, sigma={ds.base.sigma})"
                          for ds in self.datasets)
        return (f"bases: {bases}\ntarget: {self.target.path} ({len(self.target)} events)\n"
                f"observables: {', '.join(self.names)}; loss: {self.loss_kind} ({LOSSES[self.loss_kind]})")

    # --- weights -----------------------------------------------------------------------------------
    def mixture(self, lws: list[torch.Tensor], base_mult: list | None = None):
        """Event weights p [K, N_total] (each row sums to 1), alpha [K, B] and N_eff/N [K, B] per base."""
        ps, neffs = [], []
        for b, lw in enumerate(lws):
            w = torch.exp(lw - lw.detach().max(-1, keepdim=True).values)
            if base_mult is not None:
                w = w * base_mult[b]
            w = w / w.sum(-1, keepdim=True)
            ps.append(w)
            neffs.append(1.0 / (w.detach() ** 2).sum(-1))
        neff = torch.stack(neffs, -1)
        alpha = neff / neff.sum(-1, keepdim=True)
        p = torch.cat([alpha[..., b:b + 1] * ps[b] for b in range(len(ps))], -1)
        return p, alpha, neff / torch.tensor(self.sizes, dtype=neff.dtype, device=neff.device)

    def log_weights(self, theta: torch.Tensor) -> list[torch.Tensor]:
        return [lund_log_weights(batch, theta) for batch in self.batches]

    def evaluate(self, theta: torch.Tensor, base_mult=None, target_mult=None):
        """Loss [K] at theta [K, 3] (differentiable), plus alpha and N_eff/N per base."""
        p, alpha, neff = self.mixture(self.log_weights(theta), base_mult)
        q = None if target_mult is None else self.target_weights * target_mult
        return self.loss(p, q), alpha, neff

    def loss_and_grad(self, theta: torch.Tensor, base_mult=None, target_mult=None, chunk: int = 8) -> Evaluation:
        """Loss [K] and d loss / d theta [K, 3] at K independent points (plus alpha, N_eff/N and the
        mean weight per base, from the same kernel pass).

        The weight op runs once for all K; the loss is evaluated in chunks of rows (its intermediates
        grow with K) and its gradient in log w carried back to theta through the op in one pass.
        """
        theta = theta.detach().clone().requires_grad_(True)
        lws = self.log_weights(theta)
        leaves = [lw.detach().requires_grad_(True) for lw in lws]
        K = theta.shape[0]
        losses, alphas, neffs = [], [], []
        for s in range(0, K, chunk):
            sl = slice(s, s + chunk)
            bm = None if base_mult is None else [m[sl] for m in base_mult]
            p, alpha, neff = self.mixture([x[sl] for x in leaves], bm)
            q = None if target_mult is None else self.target_weights * target_mult[sl]
            loss = self.loss(p, q)
            loss.sum().backward()
            losses.append(loss.detach())
            alphas.append(alpha)
            neffs.append(neff)
        torch.autograd.backward(lws, [x.grad for x in leaves])
        mean_w = torch.stack([torch.exp(torch.logsumexp(x.detach(), -1) - math.log(x.shape[-1])) for x in leaves], -1)
        return Evaluation(torch.cat(losses), theta.grad.detach(), torch.cat(alphas), torch.cat(neffs), mean_w)

    def event_weights(self, theta) -> np.ndarray:
        """Normalized event weights p [N_total] at one point (for plots and summaries)."""
        th = torch.as_tensor(theta, dtype=torch.float64, device=self.device).reshape(1, 3)
        with torch.no_grad():
            p, _, _ = self.mixture(self.log_weights(th))
        return p[0].cpu().numpy()

    def poisson_multiplicities(self, n: int, seed: int):
        """Bootstrap replicas as Poisson(1) multiplicities of base and target events ([n, N] each):
        the samples, and therefore every sort and binning, stay as they are."""
        g = torch.Generator().manual_seed(seed)
        ones = lambda k: torch.ones(n, k, dtype=torch.float64)  # noqa: E731
        base = [torch.poisson(ones(s), generator=g).to(self.device) for s in self.sizes]
        tgt = torch.poisson(ones(len(self.target)), generator=g).to(self.device)
        return base, tgt


@dataclass
class FitResult:
    theta: list
    free: list
    loss: float
    cov: list                      # covariance of the free parameters (order of `free`)
    hessian: list
    history: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    interrupted: bool = False

    def errors(self) -> dict:
        c = np.asarray(self.cov)
        return {n: float(math.sqrt(max(c[i, i], 0.0))) for i, n in enumerate(self.free)}

    def correlation(self) -> float | None:
        c = np.asarray(self.cov)
        if c.shape[0] < 2 or c[0, 0] <= 0 or c[1, 1] <= 0:
            return None
        return float(c[0, 1] / math.sqrt(c[0, 0] * c[1, 1]))

    def to_dict(self) -> dict:
        d = {n: v for n, v in zip(PARAMS, self.theta)}
        d.update(free=self.free, errors=self.errors(), cov=self.cov, correlation=self.correlation(),
                 loss=self.loss, hessian=self.hessian, diagnostics=self.diagnostics,
                 warnings=self.warnings, interrupted=self.interrupted, history=self.history)
        return d

    def summary(self) -> str:
        err = self.errors()
        parts = [f"{n} = {self.theta[PARAMS.index(n)]:.4f} +- {err[n]:.4f}" for n in self.free]
        fixed = [f"{n} = {self.theta[i]:.4f} (fixed)" for i, n in enumerate(PARAMS) if n not in self.free]
        lines = ["fit: " + ", ".join(parts + fixed)]
        rho = self.correlation()
        if rho is not None:
            lines.append(f"     correlation({self.free[0]}, {self.free[1]}) = {rho:+.3f}")
        d = self.diagnostics
        lines.append(f"     loss {self.loss:.6g}; mean weight {d.get('mean_weight', float('nan')):.4f}, "
                     f"N_eff/N {d.get('n_eff_frac', float('nan')):.3f} at the fitted point")
        lines += [f"     warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _parse_free(params) -> list[str]:
    if isinstance(params, str):
        params = [p.strip() for p in params.split(",") if p.strip()]
    bad = [p for p in params if p not in PARAMS]
    if bad or not params:
        raise ParameterError(f"params: {bad or 'none'}; choose from {', '.join(PARAMS)} (e.g. --params a,b)")
    return [p for p in PARAMS if p in params]


def _diag_at(problem: Problem, theta) -> dict:
    th = torch.as_tensor(theta, dtype=torch.float64, device=problem.device).reshape(1, 3)
    with torch.no_grad():
        lws = problem.log_weights(th)
    per_base = []
    for lw, n in zip(lws, problem.sizes):
        mean, err, n_eff = summarize_log_weights(lw[0])
        per_base.append({"mean_weight": mean, "mean_weight_err": err, "n_eff_frac": n_eff / n})
    _, alpha, neff = problem.mixture(lws)
    best = int(torch.argmax(alpha[0]))
    return {"mean_weight": per_base[best]["mean_weight"], "mean_weight_err": per_base[best]["mean_weight_err"],
            "n_eff_frac": float(neff[0, best]), "per_base": per_base, "alpha": alpha[0].tolist(),
            "best_base": best}


def hessian(problem: Problem, theta, free: list[str], steps=None) -> np.ndarray:
    """Hessian of the loss in the free parameters at theta: central differences of the analytic
    (autodiff) gradient, all 2d displaced points in one batched pass. Default steps are 1% of each
    parameter: wide enough to average over the kinks that sorting-based losses have in finite samples."""
    idx = [PARAMS.index(n) for n in free]
    th = torch.as_tensor(theta, dtype=torch.float64)
    h = np.array([0.01 * abs(float(th[i])) or 1e-3 for i in idx]) if steps is None else np.asarray(steps)
    pts = th.repeat(2 * len(idx), 1)
    for j, i in enumerate(idx):
        pts[2 * j, i] += h[j]
        pts[2 * j + 1, i] -= h[j]
    g = problem.loss_and_grad(pts.to(problem.device)).grad.cpu().numpy()[:, idx]
    H = np.stack([(g[2 * j] - g[2 * j + 1]) / (2 * h[j]) for j in range(len(idx))])
    return 0.5 * (H + H.T)


def gradient_covariance(problem: Problem, theta, free: list[str], replicas: int = 64, seed: int = 0,
                        chunk: int = 8) -> np.ndarray:
    """Covariance of the loss gradient under bootstrap replicas (Poisson(1) multiplicities of base and
    target events), all at theta. log w is linearized at theta with the kernel's exact Jacobian, which
    gives each replica's exact gradient there from one kernel pass."""
    idx = [PARAMS.index(n) for n in free]
    th = torch.as_tensor(theta, dtype=torch.float64, device=problem.device).reshape(1, 3)
    lin = [log_weights_and_jacobian(b, th) for b in problem.batches]
    bm, tm = problem.poisson_multiplicities(replicas, seed)
    grads = []
    for s in range(0, replicas, chunk):
        n = min(chunk, replicas - s)
        phi = th.repeat(n, 1).requires_grad_(True)
        lws = [lw + torch.einsum("kp,np->kn", phi - th, jac[0]) for lw, jac in lin]
        p, _, _ = problem.mixture(lws, [m[s:s + n] for m in bm])
        problem.loss(p, problem.target_weights * tm[s:s + n]).sum().backward()
        grads.append(phi.grad.detach().cpu().numpy()[:, idx])
    return np.cov(np.concatenate(grads), rowvar=False).reshape(len(idx), len(idx))


def covariance(problem: Problem, theta, free: list[str], replicas: int = 64, seed: int = 0):
    """Sandwich covariance H^-1 J H^-1 of the fitted point (H: Hessian of the loss, J: bootstrap
    covariance of its gradient). It holds for any of the losses (an M-estimator), not only for a
    likelihood; for chi2 with correct variances it reduces to 2 H^-1. Returns (cov, H)."""
    H = hessian(problem, theta, free)
    J = gradient_covariance(problem, theta, free, replicas, seed)
    try:
        Hi = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        raise ParameterError("the loss Hessian at the fitted point is singular: the observables do not "
                             "constrain all of " + ", ".join(free) + "; fix one (--params) or add observables")
    return Hi @ J @ Hi, H


def fit(problem: Problem, start=None, params="a,b", steps: int = 150, lr: float = 0.01, redraw: bool = False,
        min_neff: float = 0.01, warn_neff: float = 0.1, replicas: int = 64, seed: int = 0,
        progress: bool = True, stream=None) -> FitResult:
    """Minimize the loss over the free parameters with AdamW (no weight decay: the parameters are
    physics, not weights to shrink), learning rate `lr` decaying by a cosine to lr/20 over `steps`.

    start: (a, b, sigma) or None for the first base point. Refuses to start where every base has
    N_eff/N < min_neff; warns when the path goes where N_eff/N < warn_neff. The result carries the
    sandwich covariance (see `covariance`) and the history of theta, loss, mean weight and N_eff/N.
    """
    stream = stream or sys.stderr
    free = _parse_free(params)
    idx = [PARAMS.index(n) for n in free]
    theta0 = np.array(problem.base_points[0] if start is None else start, np.float64)
    if theta0.shape != (3,):
        raise ParameterError(f"start: {start!r}; give (a, b, sigma)")
    from .params import check_theta
    check_theta(*theta0, where="start")
    d0 = _diag_at(problem, theta0)
    if d0["n_eff_frac"] < min_neff:
        raise ParameterError(f"start (a, b, sigma) = {tuple(theta0)}: N_eff/N = {d0['n_eff_frac']:.2g} < "
                             f"{min_neff} for every base; the bases do not cover this point. Start at or near "
                             "a base point, or generate a base there")
    if steps < 0 or not lr > 0:
        raise ParameterError(f"steps = {steps}, lr = {lr}: need steps >= 0 and lr > 0")
    x = torch.tensor(theta0[idx], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([x], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr / 20)
    lower = torch.tensor([(0.0, 1e-6, 1e-6)[i] for i in idx], dtype=torch.float64)
    history, warned, interrupted = [], False, False
    res_warn = []
    t0 = time.time()
    try:
        for step in range(steps + 1):
            th = torch.tensor(theta0, dtype=torch.float64)
            th[idx] = x.detach()
            if redraw and hasattr(problem.loss, "resample") and step > 0:
                problem.loss.resample()
            loss, g, alpha, neff, _ = problem.loss_and_grad(th.reshape(1, 3).to(problem.device))
            best = int(torch.argmax(alpha[0]))
            rec = {"step": step, "theta": th.tolist(), "loss": float(loss[0]), "grad": g[0].tolist(),
                   "n_eff_frac": float(neff[0, best]), "alpha": alpha[0].tolist(), "best_base": best}
            history.append(rec)
            if rec["n_eff_frac"] < warn_neff and not warned:
                warned = True
                res_warn.append(f"step {step}: N_eff/N = {rec['n_eff_frac']:.3f} < {warn_neff} at "
                                f"{tuple(round(v, 4) for v in th.tolist())}: the path leaves the region the "
                                "bases cover; results there rest on few events")
            if progress and (step % 10 == 0 or step == steps):
                print(f"  step {step:4d}  loss {rec['loss']:.6g}  " +
                      "  ".join(f"{n}={th[i]:.4f}" for n, i in zip(free, idx)) +
                      f"  N_eff/N {rec['n_eff_frac']:.3f}" + (f"  base {best}" if len(alpha[0]) > 1 else "") +
                      f"  ({time.time() - t0:.0f} s)", file=stream, flush=True)
            if step == steps:
                break
            opt.zero_grad()
            x.grad = g[0, idx].cpu().clone()
            opt.step()
            sched.step()
            with torch.no_grad():
                x.copy_(torch.maximum(x, lower))
    except KeyboardInterrupt:
        interrupted = True
        res_warn.append(f"interrupted after {len(history)} steps; the result is the last point reached")
    theta = history[-1]["theta"]
    cov, H = covariance(problem, theta, free, replicas=replicas, seed=seed)
    diag = _diag_at(problem, theta)
    if diag["n_eff_frac"] < warn_neff and not warned:
        res_warn.append(f"N_eff/N = {diag['n_eff_frac']:.3f} at the fitted point: the bases barely cover it")
    if np.any(np.linalg.eigvalsh(H) <= 0):
        res_warn.append("the loss Hessian is not positive definite at the fitted point: not a minimum "
                        "(more steps, or a smaller --lr)")
    return FitResult(theta=theta, free=free, loss=history[-1]["loss"], cov=cov.tolist(), hessian=H.tolist(),
                     history=history, warnings=res_warn, diagnostics=diag, interrupted=interrupted)


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
    Hessian H (eigenvalues taken by magnitude) and its own lambda (divided by 3 when its loss falls, times 4 and the step undone when it
    rises), which stays stable along a flat valley where a plain Newton step would overshoot.
    Returns the replicas' points, their mean and covariance, and how many converged."""
    stream = stream or sys.stderr
    free = _parse_free(params)
    idx = [PARAMS.index(n) for n in free]
    if replicas < 2:
        raise ParameterError(f"replicas = {replicas}; need at least 2 for a covariance")
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
    g0 = np.abs(g.numpy()[:, idx]).max(1)
    lam = np.full(replicas, 0.1)
    t0 = time.time()
    for it in range(iters):
        gi = g.numpy()[:, idx]
        step = np.stack([-np.linalg.solve(H + lam[r] * D, gi[r]) for r in range(replicas)])
        trial = th.clone()
        trial[:, idx] += torch.from_numpy(step)
        trial[:, 0].clamp_(min=0.0)
        trial[:, 1:].clamp_(min=1e-6)
        tl, tg = problem.loss_and_grad(trial.to(problem.device), bm, tm)[:2]
        better = (tl <= loss).cpu().numpy()
        th[better], loss[better], g[better] = trial[better], tl[better].to(loss.device), tg.cpu()[better]
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


def landscape(problem: Problem, a_values, b_values, sigma: float, chunk: int = 16,
              progress: bool = True, stream=None) -> dict:
    """Loss, its gradient and the reweighting diagnostics on the grid a_values x b_values (sigma fixed),
    evaluated in batched passes of `chunk` points through the weight op."""
    stream = stream or sys.stderr
    A, B = np.meshgrid(np.asarray(a_values, float), np.asarray(b_values, float), indexing="ij")
    pts = np.stack([A.ravel(), B.ravel(), np.full(A.size, sigma)], 1)
    from .params import check_theta
    for p in (pts[0], pts[-1]):
        check_theta(*p, where="grid")
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
