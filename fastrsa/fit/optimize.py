"""The fit: AdamW on the free parameters through the batched loss and gradient, its history and
diagnostics, and the result with its sandwich covariance."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ParameterError
from ..params import SPACE
from ..progress import Phases
from .problem import Problem
from .uncertainty import covariance

FLAT_ABOVE = 0.25     # a combination whose relative error exceeds this is reported as not constrained


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
    names: tuple = SPACE.names     # the problem's parameter names, theta's columns
    phases: dict = field(default_factory=dict)      # name -> {seconds, peak_rss_gb (the peak so far)}

    def errors(self) -> dict:
        c = np.asarray(self.cov)
        return {n: float(math.sqrt(max(c[i, i], 0.0))) for i, n in enumerate(self.free)}

    def correlation(self) -> float | None:
        c = np.asarray(self.cov)
        if c.shape[0] < 2 or c[0, 0] <= 0 or c[1, 1] <= 0:
            return None
        return float(c[0, 1] / math.sqrt(c[0, 0] * c[1, 1]))

    def directions(self, flat_above: float = FLAT_ABOVE) -> list[dict]:
        """The parameter combinations the fit constrains, and those it does not.

        In relative units u_j = theta_j / s_j (s_j = |theta_j| at the fit), the covariance's eigenvectors v_k
        are independent combinations c_k = sum_j v_kj u_j with errors sqrt(eigenvalue). A combination is
        'flat' (not constrained) when its error exceeds `flat_above` (default 0.25: a quarter of the
        parameters' own size) or the Hessian has no positive curvature along it. Sorted best first."""
        if not np.all(np.isfinite(np.asarray(self.cov))):
            return []
        th = np.array([self.theta[self.names.index(n)] for n in self.free])
        scale = np.where(np.abs(th) > 0, np.abs(th), 1.0)
        C = np.asarray(self.cov) / np.outer(scale, scale)
        H = np.asarray(self.hessian) * np.outer(scale, scale)
        vals, vecs = np.linalg.eigh(0.5 * (C + C.T))
        out = []
        for k in range(len(vals)):
            v = vecs[:, k] * np.sign(vecs[np.argmax(np.abs(vecs[:, k])), k])
            curvature = float(v @ H @ v)
            err = math.sqrt(vals[k]) if vals[k] > 0 and curvature > 0 else math.inf   # no curvature: unbounded
            out.append({"coefficients": dict(zip(self.free, v.tolist())), "scales": dict(zip(self.free, scale.tolist())),
                        "value": float(v @ (th / scale)), "error": err, "curvature": curvature,
                        "constrained": bool(curvature > 0 and err <= flat_above)})
        return sorted(out, key=lambda d: (not d["constrained"], d["error"]))

    def to_dict(self) -> dict:
        d = {n: v for n, v in zip(self.names, self.theta)}
        d.update(free=self.free, errors=_json_numbers(self.errors()), cov=_json_numbers(self.cov),
                 correlation=_json_numbers(self.correlation()), loss=self.loss,
                 hessian=_json_numbers(self.hessian), diagnostics=self.diagnostics,
                 directions=[{**c, "error": c["error"] if math.isfinite(c["error"]) else None}
                             for c in self.directions()],
                 warnings=self.warnings, interrupted=self.interrupted, phases=self.phases, history=self.history)
        return d

    def time_line(self) -> str:
        """'time: observables 41 s, weights 60 s, loss 25 s, 300 steps 1020 s (3.40 s each), covariance
        103 s; peak memory 18.4 GB', from `phases` (empty without them)."""
        if not self.phases:
            return ""
        n = max(len(self.history) - 1, 1)
        parts = [f"{n} steps {r['seconds']:.0f} s ({r['seconds'] / n:.2f} s each)" if k == "steps"
                 else f"{k} {r['seconds']:.0f} s" for k, r in self.phases.items()]
        peaks = [r["peak_rss_gb"] for r in self.phases.values() if r.get("peak_rss_gb") is not None]
        return "time: " + ", ".join(parts) + (f"; peak memory {max(peaks):.1f} GB" if peaks else "")

    def summary(self) -> str:
        err = self.errors()
        dirs = self.directions()
        flat = [d for d in dirs if not d["constrained"]]
        if flat or not dirs:      # errors on single parameters would be meaningless along a flat valley
            parts = [f"{n} = {self.theta[self.names.index(n)]:.4f}" for n in self.free]
        else:
            parts = [f"{n} = {self.theta[self.names.index(n)]:.4f} +- {err[n]:.4f}" for n in self.free]
        fixed = [f"{n} = {self.theta[i]:.4f} (fixed)" for i, n in enumerate(self.names) if n not in self.free]
        lines = ["fit: " + ", ".join(parts + fixed)]
        rho = self.correlation()
        if flat:
            lines.append(f"     the data constrain {len(dirs) - len(flat)} of {len(dirs)} combinations "
                         "(relative units: each parameter over its fitted value):")
            for d in dirs:
                combo = " ".join(f"{c:+.3f} {n}/{d['scales'][n]:.4g}" for n, c in d["coefficients"].items())
                lines.append(f"       {'constrained' if d['constrained'] else 'flat       '}  {combo} = "
                             f"{d['value']:.4f} +- {d['error']:.4f}")
        elif rho is not None and math.isfinite(rho):
            lines.append(f"     correlation({self.free[0]}, {self.free[1]}) = {rho:+.3f}")
        d = self.diagnostics
        lines.append(f"     loss {self.loss:.6g}; mean weight {d.get('mean_weight', float('nan')):.4f}, "
                     f"N_eff/N {d.get('n_eff_frac', float('nan')):.3f} at the fitted point")
        if self.phases:
            lines.append("     " + self.time_line())
        lines += [f"     warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _json_numbers(x):
    """NaN and inf become None (JSON null) in result.json; everything else is kept as it is."""
    if isinstance(x, dict):
        return {k: _json_numbers(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_numbers(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


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
    space = problem.space
    free = space.parse_names(params)
    idx = space.indices(free)
    theta0 = np.array(problem.base_points[0] if start is None else start, np.float64)
    if theta0.shape != (len(space),):
        raise ParameterError(f"start: {start!r}; give ({', '.join(space.names)})")
    space.check(theta0, where="start")
    d0 = problem.diagnostics_at(theta0)
    if d0["n_eff_frac"] < min_neff:
        raise ParameterError(f"start (a, b, sigma) = {tuple(theta0)}: N_eff/N = {d0['n_eff_frac']:.2g} < "
                             f"{min_neff} for every base; the bases do not cover this point. Start at or near "
                             "a base point, or generate a base there")
    if steps < 0 or not lr > 0:
        raise ParameterError(f"steps = {steps}, lr = {lr}: need steps >= 0 and lr > 0")
    if replicas < 2 and not problem.data:
        raise ParameterError(f"replicas = {replicas}: the covariance needs at least 2 bootstrap replicas (e.g. 64)")
    x = torch.tensor(theta0[idx], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([x], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr / 20)
    history, warned, interrupted = [], False, False
    res_warn = []
    phases = Phases()       # the problem's loading (when it records it), then the steps and the covariance
    phases.record.update(getattr(getattr(problem, "phases", None), "record", {}))
    t0 = time.time()
    try:
        with phases("steps"):
            for step in range(steps + 1):
                th = torch.tensor(theta0, dtype=torch.float64)
                th[idx] = x.detach()
                if redraw and hasattr(problem.loss, "resample") and step > 0:
                    problem.loss.resample()
                loss, g, alpha, neff, _ = problem.loss_and_grad(th.reshape(1, -1).to(problem.device))
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
                    x.copy_(space.clamp(x, free))
    except KeyboardInterrupt:
        interrupted = True
        res_warn.append(f"interrupted after {len(history)} steps; the result is the last point reached")
    theta = history[-1]["theta"]
    # The fitted point is never lost to its own uncertainty step: a covariance that fails (a singular
    # Hessian, an interrupt) leaves NaN there and says why.
    try:
        with phases("covariance"):
            cov, H = covariance(problem, theta, free, replicas=replicas, seed=seed)
    except (ParameterError, np.linalg.LinAlgError, KeyboardInterrupt) as exc:
        cov = H = np.full((len(free), len(free)), np.nan)
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        interrupted = interrupted or isinstance(exc, KeyboardInterrupt)
        res_warn.append(f"no covariance ({why}); the fitted point is kept")
    diag = problem.diagnostics_at(theta)
    if diag["n_eff_frac"] < warn_neff and not warned:
        res_warn.append(f"N_eff/N = {diag['n_eff_frac']:.3f} at the fitted point: the bases barely cover it")
    if np.all(np.isfinite(H)) and np.any(np.linalg.eigvalsh(H) <= 0):
        res_warn.append("the loss Hessian is not positive definite at the fitted point: not a minimum "
                        "(more steps, or a smaller --lr), or a combination the observables do not constrain "
                        "(see the flat combinations)")
    return FitResult(theta=theta, free=free, loss=history[-1]["loss"], cov=cov.tolist(), hessian=H.tolist(),
                     history=history, warnings=res_warn, diagnostics=diag, interrupted=interrupted,
                     names=space.names, phases=phases.record)
