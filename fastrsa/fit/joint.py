"""The joint fit: the shower scale Lambda by moving events, the Lund parameters (a, b, sigma) by RSA weights, one
optimizer (docs/shower.md, "The joint fit").

Hadronization is not differentiable, so a hadron-level observable cannot follow a moved parton event by autodiff.
The modelling choice here: **a Lambda grid of moved, re-hadronized samples, interpolated linearly in Lambda**.

- From one dqcd base sample at Lambda_0 the events are moved (Taylor order `order`) to Lambda_k = Lambda_0 + k h,
  k = 0..K, and each moved sample is hadronized by Pythia with every event's own hadronization seed
  (`generation.dqcd.hadronize_moved`); each carries its RSA trial records at the base's (a, b, sigma) and its
  structure weight r_k,e = P(structure | Lambda_k) / P(structure | Lambda_0) (Taylor, exact derivatives).
- At theta = (Lambda, a, b, sigma) the simulated sample is a signed mixture of the grid samples with shares
  c_k(Lambda), the rows of the least-squares parabola (default) through the grid's distributions (`shares`),
  each event weighted by its Lund weight w_e(a, b, sigma) (exact, from its own records) times r_k,e, normalized
  per sample.
  The loss (any registered loss) compares that mixture with the target.
- Gradients: exact in (a, b, sigma) (the RSA kernel); in Lambda the derivative of the shares, i.e. the
  least-squares slope of the grid samples' predictions. Because both samples are the same parton
  events, moved, and hadronized with the same random numbers, that difference has far less noise than two
  independent samples would have (measured: the per-event charged multiplicity of base and moved events is
  correlated).
- Approximation: the distribution is quadratic in Lambda across the grid, and
  moving is valid over the grid's range (Taylor convergence; events with an unphysical moved parton are left out
  of a moved sample and reported, `M2_TOLERANCE`). Lambda is confined to [Lambda_0, Lambda_0 + K h]: downward moves
  cannot create the columns that only open below the base cut-off (docs/shower.md, section 7).
- Against measurements the chi2's prediction variance is held at the base sample's (`fix_base_variance`): the
  signed mixture's own variance grows with |shares| towards the grid's ends and would lower the chi2 there.

Why not shift hadron-level values by the parton-level shift: the charged multiplicity changes with Lambda at
fixed structure through the string's kinematics, with the opposite sign to the structure weights (measured,
docs/shower.md), and no parton-level value carries that; re-hadronizing the moved partons does.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, ParameterError
from ..hadronization.weights import lund_log_weights
from ..params import SHOWER_SPACE, SPACE, Parameter, ParameterSpace
from .problem import Evaluation, Problem, apply_loss, counts, normalized_weights

DEFAULT_STEP = 0.025        # grid spacing h in Lambda [GeV]
DEFAULT_CELLS = 4           # grid Lambda_0 ... Lambda_0 + 4 h


def joint_space(lam0: float, lam_max: float) -> ParameterSpace:
    """(lambda, a, b, sigma): SHOWER_SPACE + SPACE, with lambda confined to the grid [lam0, lam_max]."""
    p = SHOWER_SPACE["lambda"]
    lam = Parameter(p.name, p.setting, p.unit, lam0, False, lam0, lam0, p.base_field, p.engine, p.column,
                    p.description + f" (joint fit: the grid of moved samples, {lam0:g}-{lam_max:g} GeV)",
                    upper=lam_max, typical=p.typical)
    return ParameterSpace([lam, *SPACE])


#: The joint vocabulary (lambda over its whole domain); a JointProblem confines lambda to its grid.
JOINT_SPACE = ParameterSpace([*SHOWER_SPACE, *SPACE])


def grid_samples(base, work, step: float = DEFAULT_STEP, cells: int = DEFAULT_CELLS, order: int = 3,
                 progress: bool = True) -> tuple:
    """The moved, re-hadronized samples of `base` at Lambda_0 + k step, k = 1..cells, in `work` (made once, reused
    when present). Returns (paths, deltas, reports); paths[0] is the base itself."""
    from ..generation.dqcd import hadronize_moved
    if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0):
        raise ParameterError(f"step = {step!r} must be a positive shift of Lambda in GeV (e.g. 0.025)")
    if isinstance(cells, bool) or not isinstance(cells, int) or cells < 1:
        raise ParameterError(f"cells = {cells!r} must be an integer >= 1")
    work = Path(work)
    paths, deltas, reports = [Path(base)], [0.0], [None]
    for k in range(1, cells + 1):
        d = round(k * step, 10)
        out = work / f"moved_{d:+.4f}_o{order}"
        reports.append(hadronize_moved(base, out, d, order, progress=progress))
        paths.append(out)
        deltas.append(d)
    return paths, deltas, reports


class JointProblem(Problem):
    """(Lambda, a, b, sigma) against a target sample: see the module docstring."""

    hessian_rel_step = 0.01

    def __init__(self, base, target=None, observables="thrust_all,charged_multiplicity_all", loss: str = "w1",
                 work=None, step: float = DEFAULT_STEP, cells: int = DEFAULT_CELLS, order: int = 3,
                 n_projections: int = 128, seed: int = 0, device="cpu", backend: str = "auto",
                 progress: bool = True, interpolation: str = "quadratic", data=None, data_variance: str = "base"):
        """`target`: pseudo-data (a sample) compared by `loss`, or `data`: measurements (as `Problem`, the chi2 with
        the data's errors and the prediction's statistical variance). `data_variance`: that variance is the base
        sample's ("base", default: unit weights on the events used, a constant of the fit, `fix_base_variance`) or
        the signed mixture's at each point ("mixture": it grows with |shares| towards the grid's ends and lowers
        the chi2 there, which pulled fits to ALEPH onto the grid's edge, docs/shower.md)."""
        if interpolation not in ("regression", "quadratic", "piecewise"):
            raise ParameterError(f"interpolation = {interpolation!r}; use 'regression', 'quadratic' or 'piecewise'")
        if data_variance not in ("base", "mixture"):
            raise ParameterError(f"data_variance = {data_variance!r}; use 'base' or 'mixture'")
        self.data_variance = data_variance
        if interpolation == "quadratic" and cells < 2:
            raise ParameterError("interpolation = 'quadratic' needs cells >= 2 (three grid samples)")
        self.interpolation = interpolation
        from ..store.dataset import open_dataset
        b = open_dataset(base)
        sh = b.meta.get("setup", {}).get("shower")
        if b.meta.get("setup", {}).get("name") != "dqcd" or sh is None or "moved" in sh:
            raise DatasetError(f"base = {str(base)!r}: a joint fit needs one dqcd base sample ('fastrsa generate OUT "
                               "--setup dqcd'), not a moved one")
        if order > sh["orders"]:
            raise ParameterError(f"order = {order}: the base stores Taylor orders 1..{sh['orders']}")
        work = Path(work) if work is not None else Path(base).parent / (Path(base).name + "_moved")
        paths, deltas, self.reports = grid_samples(base, work, step, cells, order, progress)
        super().__init__(paths, target, observables, loss, n_projections, seed, device, backend=backend, data=data)
        self.lam0 = float(sh["lambda"])
        self.step = float(step)
        self.lams = [self.lam0 + d for d in deltas]
        self.space = joint_space(self.lam0, self.lams[-1])
        self.lund_cols = self.space.columns("lund")
        self.lam_col = self.space.columns("shower")[0]
        self.order = order
        self.work = work
        # per sample: the structure weights ln P(g | Lambda_k) / P(g | Lambda_0) and the base event of every row
        self.struct_lw, self.events = [], []
        for k, ds in enumerate(self.datasets):
            cols = ["parton_event"] + (["parton_log_weight"] if k else [])
            t = ds.table(columns=cols)
            self.events.append(np.array(t.column("parton_event").to_numpy()))
            lw = np.array(t.column("parton_log_weight").to_numpy()) if k else np.zeros(t.num_rows)
            self.struct_lw.append(torch.as_tensor(lw, dtype=torch.float64, device=self.device))
        self.n_base = int(self.events[0].max()) + 1 if len(self.events[0]) else 0
        # Only events that are physical in every grid sample enter: the samples then hold one population and
        # their differences are the Lambda dependence, not a selection (an unphysical moved event is reported by
        # hadronize_moved and here, never mended).
        common = set(self.events[0].tolist())
        for ev in self.events[1:]:
            common &= set(ev.tolist())
        self.common = np.array(sorted(common), np.int64)
        self.keep = [torch.as_tensor(np.isin(ev, self.common), dtype=torch.float64, device=self.device)
                     for ev in self.events]
        self.n_left_out = self.n_base - len(self.common)
        if self.data and data_variance == "base":
            self.fix_base_variance()

    def fix_base_variance(self) -> None:
        """Hold the chi2's prediction variance (fits to data) at that of the base sample: unit weights on the
        events used, shares (1, 0, ..., 0). The signed mixture's own variance, sum_k c_k^2 var_k to first order,
        grows with |c_k| towards the grid's ends and would make the chi2 smaller there for no better
        description of the data; the grid samples are the base events moved, so the base's variance is the
        statistical precision of every point of the fit (Lund weights lower it where N_eff drops, which the
        bootstrap covariance sees)."""
        w0 = self.keep[0] / self.keep[0].sum()
        p = torch.cat([w0] + [torch.zeros_like(k) for k in self.keep[1:]])
        self.loss.fix_variance(p)

    # --- the model -----------------------------------------------------------------------------------------
    @property
    def base_points(self) -> list[tuple]:
        bp = self.datasets[0].base
        return [(self.lam0, bp.a, bp.b, bp.sigma)]

    def info(self) -> dict:
        return {"base": {"path": str(self.datasets[0].path), "lambda": self.lam0, "events": self.sizes[0],
                         "a": self.base_points[0][1], "b": self.base_points[0][2], "sigma": self.base_points[0][3]},
                "grid": {"lambda": self.lams, "order": self.order, "step": self.step,
                         "interpolation": self.interpolation, "moved": [r for r in self.reports[1:]],
                         "events_used": len(self.common), "events_left_out": self.n_left_out},
                "target": None if self.target is None else {"path": str(self.target.path), "events": len(self.target)},
                "data": [{"name": d.name, "observable": d.observable, "statistic": d.statistic,
                          "skipped_bins": d.skipped} for d in self.data],
                "observables": self.names, "loss": self.loss_kind,
                "data_variance": self.data_variance if self.data else None,
                "model": f"signed mixture of the moved, re-hadronized grid samples ({self.interpolation} in Lambda), each "
                         "event weighted by its Lund weight and its structure weight (docs/shower.md)"}

    def describe(self) -> str:
        target = (f"target: {self.target.path} ({len(self.target)} events)" if self.target is not None else
                  "data: " + ", ".join(d.name for d in self.data))
        return (f"base: {self.sizes[0]} dqcd events at Lambda = {self.lam0} GeV; grid of moved samples at "
                + ", ".join(f"{x:.4g}" for x in self.lams) + f" GeV (order {self.order}); {self.n_left_out} events "
                "left out (an unphysical moved parton in some grid sample)\n"
                f"{target}\nobservables: {', '.join(self.names)}; "
                f"loss: {self.loss_kind}")

    def shares(self, lam: torch.Tensor) -> torch.Tensor:
        """[K, B] the grid samples' shares at lam [K] (differentiable; each row sums to 1).

        "quadratic" (default): the least-squares parabola in Lambda through all B grid distributions (needs
        B >= 3; it removed a +0.01 GeV bias that the straight line had at 3000 events, docs/shower.md).
        "regression": the least-squares straight line in Lambda through all B grid distributions,
        share_k = 1/B + (lam - mean) (Lambda_k - mean) / sum_j (Lambda_j - mean)^2 (shares may be negative:
        a signed mixture); its slope averages the noise of every grid sample. "piecewise": the two samples
        around lam with shares (1 - t, t) (noisier: a kink at every node)."""
        B = len(self.lams)
        L = torch.tensor(self.lams, dtype=lam.dtype, device=lam.device)
        if self.interpolation in ("regression", "quadratic"):
            deg = 1 if self.interpolation == "regression" else 2
            scale = (L.max() - L.min()) / 2
            u, v = (L - L.mean()) / scale, (lam - L.mean()) / scale
            X = torch.stack([u ** j for j in range(deg + 1)], 1)                     # [B, deg+1]
            x = torch.stack([v ** j for j in range(deg + 1)], 1)                     # [K, deg+1]
            return x @ torch.linalg.solve(X.T @ X, X.T)                              # [K, B] hat-matrix rows
        u = (lam - self.lam0) / self.step
        k = torch.clamp(torch.floor(u.detach()), 0, B - 2).long()
        t = u - k.to(u.dtype)
        out = torch.zeros(lam.shape[0], B, dtype=lam.dtype, device=lam.device)
        out = out.scatter(1, k[:, None], (1.0 - t)[:, None])
        return out.scatter_add(1, (k + 1)[:, None], t[:, None])

    def log_weights(self, theta: torch.Tensor) -> list[torch.Tensor]:
        # remembered for `mixture(lws)`, the two-argument form that Problem's helpers (evaluate_data) call
        self._last_shares = self.shares(theta[..., self.lam_col].reshape(-1)).detach()
        lund = theta[..., self.lund_cols]
        return [lund_log_weights(batch, lund, backend=self.backend) + s
                for batch, s in zip(self.batches, self.struct_lw)]

    def mixture(self, lws: list, base_mult=None):
        """Problem's interface: (p, shares, N_eff/N) at the point of the last `log_weights` call."""
        p, neff = self.joint_mixture(lws, self._last_shares, base_mult)
        return p, self._last_shares, neff

    def joint_mixture(self, lws: list, shares: torch.Tensor, base_mult=None):
        """Event weights p [K, N_total] (rows sum to 1), and N_eff/N per sample [K, B]."""
        ps, neffs = [], []
        for b, lw in enumerate(lws):
            w, inv_neff = normalized_weights(lw, None if base_mult is None else base_mult[b], self.keep[b])
            ps.append(shares[:, b:b + 1] * w)
            neffs.append(1.0 / inv_neff)
        neff = torch.stack(neffs, -1) / max(len(self.common), 1)
        return torch.cat(ps, -1), neff

    def evaluate(self, theta, base_mult=None, target_mult=None):
        th = self.as_points(theta)
        p, neff = self.joint_mixture(self.log_weights(th), self.shares(th[:, self.lam_col]), base_mult)
        q = None if target_mult is None else self.target_weights * target_mult
        return apply_loss(self.loss, p, q, counts(base_mult, target_mult)), None, neff

    def loss_and_grad(self, theta, base_mult=None, target_mult=None, chunk: int = 8) -> Evaluation:
        theta = self.as_points(theta).detach().clone().requires_grad_(True)
        lws = self.log_weights(theta)
        shares = self.shares(theta[:, self.lam_col])
        p, neff = self.joint_mixture(lws, shares, base_mult)
        q = None if target_mult is None else self.target_weights * target_mult
        loss = apply_loss(self.loss, p, q, counts(base_mult, target_mult))
        loss.sum().backward()
        mean_w = torch.stack([torch.exp(torch.logsumexp(x.detach(), -1) - math.log(x.shape[-1])) for x in lws], -1)
        return Evaluation(loss.detach(), theta.grad.detach(), shares.detach(), neff, mean_w)

    def as_points(self, theta) -> torch.Tensor:
        return torch.as_tensor(theta, dtype=torch.float64, device=self.device).reshape(-1, len(self.space))

    def event_weights(self, theta) -> np.ndarray:
        with torch.no_grad():
            th = self.as_points(theta)
            p, _ = self.joint_mixture(self.log_weights(th), self.shares(th[:, self.lam_col]))
        return p[0].cpu().numpy()

    def diagnostics_at(self, theta) -> dict:
        ev = self.loss_and_grad(self.as_points(theta)[:1])
        best = int(torch.argmax(ev.alpha[0]))
        return {"mean_weight": float(ev.mean_weight[0, best]), "n_eff_frac": float(ev.n_eff_frac[0, best]),
                "alpha": ev.alpha[0].tolist(), "best_base": best, "grid_lambda": self.lams,
                "per_base": [{"mean_weight": float(m), "n_eff_frac": float(n)}
                             for m, n in zip(ev.mean_weight[0], ev.n_eff_frac[0])]}

    # --- bootstrap: a replica resamples the base's *events*, the same multiplicity in every grid sample --------
    def poisson_multiplicities(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        m = torch.poisson(torch.ones(n, self.n_base, dtype=torch.float64), generator=g)
        base = [m[:, torch.as_tensor(ev, dtype=torch.long)].to(self.device) for ev in self.events]
        if self.target is None:
            return base, None
        tgt = torch.poisson(torch.ones(n, len(self.target), dtype=torch.float64), generator=g).to(self.device)
        return base, tgt

    def replica_gradients(self, theta, idx: list, replicas: int, seed: int, chunk: int = 8) -> np.ndarray:
        bm, tm = self.poisson_multiplicities(replicas, seed)
        th = self.as_points(theta)[:1]
        out = []
        for s in range(0, replicas, chunk):
            n = min(chunk, replicas - s)
            ev = self.loss_and_grad(th.repeat(n, 1), [m[s:s + n] for m in bm], None if tm is None else tm[s:s + n])
            out.append(ev.grad.cpu().numpy()[:, idx])
        return np.concatenate(out)


def joint_summary(result) -> dict:
    """What result.json adds for a joint fit: the correlation matrix of the free parameters and the
    correlation of Lambda with each Lund parameter (multiplicity depends on both)."""
    c = np.asarray(result.cov, np.float64)
    sd = np.sqrt(np.clip(np.diag(c), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = c / np.outer(sd, sd)
    corr = [[float(v) if np.isfinite(v) else None for v in row] for row in corr]
    free = list(result.free)
    lam = {f"lambda,{n}": corr[free.index("lambda")][free.index(n)] for n in free if n != "lambda"} \
        if "lambda" in free else {}
    return {"correlation_matrix": {"params": free, "matrix": corr}, "lambda_correlation": lam}
