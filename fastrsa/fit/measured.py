"""Measured histograms as the target of a fit: a chi2 between the reweighted prediction and the data.

For a measurement with bins b (data d_b, covariance C) and an event-level observable x, the prediction
from normalized event weights p_i (sum_i p_i = 1) is

    density:   s_b = sum_{i: x_i in b} p_i / width_b          (1/N dN/dx)
    fraction:  s_b = sum_{i: x_i in b} p_i                    (1/N N_b)
    mean:      s   = sum_i p_i x_i                            (<x>, one bin)
    means:     s_b = sum_i p_i x_ib                           (<x_b>: bin b is the mean of its own
                                                               observable, e.g. one hadron species each)

and the statistical variance of the prediction from the finite weighted sample (first order in the
fluctuations of the weights, normalization included) is

    var f_b = sum_i p_i^2 (1[x_i in b] - f_b)^2 = S2_b (1 - 2 f_b) + f_b^2 S2,   S2_b = sum_{i in b} p_i^2,
    var <x> = sum_i p_i^2 (x_i - <x>)^2  (per bin for 'means'; the bins' correlations are left out),

divided by width_b^2 for densities. The loss is chi2 = r^T (C + diag(var s))^-1 r with r = s - d. C is the
measurement's covariance when it gives one, otherwise diagonal with the symmetrized errors
((err_minus + err_plus) / 2)^2. Bins that no base event can reach (no entry in any base sample: no
weight can fill them) are left out, and the fit reports them.

The gradient treats var s as a constant (evaluated at the current weights, not differentiated), as a
weighted least-squares fit treats its errors. Differentiated, var s offers the minimizer a way down that is
not a better description of the data: weights concentrated on few events inflate var s and shrink every
pull. Measured: a fit of (a, b, sigma, rho, xi) to ALEPH d44 + <n_ch> from 15,000 Monash events went from
chi2 23 at N_eff/N = 0.6 to chi2 4.6 at N_eff/N = 0.006 that way. The value is the full chi2 above.
`fix_variance(p_ref)` goes further and holds var s at its value for the weights p_ref (a reference sample)
from then on, in value too: the joint fit's signed mixtures of grid samples (fit/joint.py) have a variance
that grows with |shares| at the grid's ends, which would lower the chi2's value there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ParameterError
from ..losses import per_count
from ..measurements import Measurement, load
from ..observables.lep import LEP_ECM, MEASURED, STATISTICS


@dataclass
class DataTarget:
    """A measurement and how to predict it: the observable and the statistic its values are."""

    measurement: Measurement
    observable: str | tuple         # 'means': one observable per bin (a tuple, or a comma-separated string)
    statistic: str
    name: str = ""
    skipped: list = field(default_factory=list)
    ecm: float | None = None        # the measurement's centre-of-mass energy [GeV], when known

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise ParameterError(f"data {self.name}: statistic {self.statistic!r}; use one of {STATISTICS}")
        n = self.measurement.n
        if self.statistic == "mean" and n != 1:
            raise ParameterError(f"data {self.name}: a mean needs one bin, this table has {n}; "
                                 "select one with NAME@X (e.g. @91.2 for sqrt(s) = 91.2 GeV)")
        if isinstance(self.observable, str) and (self.statistic == "means" or "," in self.observable):
            self.observable = tuple(o.strip() for o in self.observable.split(","))
        if self.statistic == "means":
            if len(self.observable) != n:
                raise ParameterError(f"data {self.name}: 'means' needs one observable per bin: {n} bins, "
                                     f"{len(self.observable)} observables given")
        elif not isinstance(self.observable, str):
            raise ParameterError(f"data {self.name}: one observable for the statistic {self.statistic!r} "
                                 f"(several, one per bin, only with 'means')")
        self.name = self.name or self.measurement.path

    @property
    def observables(self) -> tuple:
        """The observables the prediction needs (one, or one per bin for 'means')."""
        return self.observable if isinstance(self.observable, tuple) else (self.observable,)

    @property
    def label(self) -> str:
        return ",".join(self.observables)

    def simulated(self, values: dict) -> np.ndarray:
        """The per-event values of the prediction from `values` (observable -> Observable): [N], or [N, B]
        for 'means'."""
        if self.statistic == "means":
            return np.column_stack([np.asarray(values[o].values, np.float64) for o in self.observables])
        return np.asarray(values[self.observable].values, np.float64)

    def check_setup(self, setup: dict) -> None:
        """A measurement of e+e- -> hadrons at ecm needs base samples of that process and energy."""
        if self.ecm is None:
            return
        e = float(setup["energy"]) * (2.0 if setup["name"] == "string" else 1.0)
        if setup["name"] == "string" or abs(e - self.ecm) > 1e-6 * self.ecm:
            raise ParameterError(f"data {self.name}: measured in e+e- -> hadrons at {self.ecm} GeV, but the bases "
                                 f"are setup '{setup['name']}' at {e:g} GeV; generate bases with --setup ee "
                                 f"--energy {self.ecm} (or your own .cmnd at that energy)")


def parse_data(spec: str) -> DataTarget:
    """'NAME[=OBSERVABLE[:STATISTIC]]': a shipped or user measurement (see fastrsa.measurements.load) and,
    unless it is one of the known LEP tables (fastrsa.observables.lep.MEASURED), the observable and the
    statistic (density, fraction or mean) that reproduce it; 'NAME=OBS1,OBS2,...:means' for a table of
    means, one observable per bin."""
    name, _, how = spec.partition("=")
    m = load(name)
    key = m.path.split("@")[0]
    if how:
        obs, _, stat = how.partition(":")
        return DataTarget(m, obs, stat or "density", spec)
    if key not in MEASURED:
        raise ParameterError(f"--data {spec}: fastrsa does not know which observable reproduces {key}; "
                             "give it as NAME=OBSERVABLE:STATISTIC (statistic: density, fraction or mean)")
    d = MEASURED[key]
    return DataTarget(m, d.observable, d.statistic, name, ecm=LEP_ECM)


def pseudo_measurement(values: np.ndarray, edges, statistic: str = "density", weights=None,
                       path: str = "pseudo", x_label: str = "") -> Measurement:
    """A measurement made from a sample's per-event values (pseudo-data): the statistic per bin with
    its statistical error (the same variance formulas as the prediction's, with unit or given weights)."""
    if statistic not in ("density", "fraction", "mean"):
        raise ParameterError(f"statistic = {statistic!r}: a pseudo-measurement is a 'density', 'fraction' or "
                             "'mean' of one observable (make a table of means one 'mean' at a time)")
    x = np.asarray(values, np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64)
    p = w / w.sum()
    S2 = float(np.sum(p * p))
    if statistic == "mean":
        m = float(np.sum(p * x))
        err = np.sqrt([np.sum(p * p * (x - m) ** 2)])
        lo, hi, vals = np.array([x.min()]), np.array([x.max()]), np.array([m])
    else:
        edges = np.asarray(edges, np.float64)
        lo, hi = edges[:-1], edges[1:]
        b = np.searchsorted(edges, x, side="right") - 1
        inside = (b >= 0) & (b < len(lo)) & (x < edges[-1])
        f = np.bincount(b[inside], p[inside], len(lo))
        s2 = np.bincount(b[inside], p[inside] ** 2, len(lo))
        var = s2 * (1 - 2 * f) + f * f * S2
        scale = 1.0 / (hi - lo) if statistic == "density" else np.ones(len(lo))
        vals, err = f * scale, np.sqrt(np.maximum(var, 0.0)) * scale
    return Measurement(path, lo, hi, vals, err, err, x_label=x_label, y_label=statistic,
                       source="pseudo-data made by fastrsa.fit.measured.pseudo_measurement")


class MeasuredChi2(torch.nn.Module):
    """chi2 of one measurement against the reweighted prediction (see the module docstring).

    Built once from the simulated per-event values (the bins every event falls in are found here);
    forward(p [..., N], q=None) takes normalized event weights and returns chi2 [...]."""

    constant_variance = True        # its gradient holds the variances constant (fit.uncertainty.bootstrap)

    def __init__(self, target: DataTarget, sim_values, reachable=None):
        super().__init__()
        m = target.measurement
        x = np.ascontiguousarray(sim_values, np.float64)
        self.statistic = target.statistic
        self.name = target.name
        if self.statistic in ("mean", "means"):
            used = np.ones(m.n, bool)
            self.register_buffer("x", torch.from_numpy(x if x.ndim == 2 else x[:, None]))     # [N, B]
            self.register_buffer("bin", torch.zeros(0, dtype=torch.int64))
            self.register_buffer("inv_width", torch.ones(1, dtype=torch.float64))
        else:
            b = np.full(len(x), -1, np.int64)
            for k in range(m.n):      # bins need not be contiguous; the last bin's upper edge is inclusive
                inb = (x >= m.lo[k]) & ((x < m.hi[k]) | ((k == m.n - 1) & (x == m.hi[k])))
                b[inb & (b < 0)] = k
            counts = np.bincount(b[b >= 0], minlength=m.n)
            used = counts > 0
            remap = np.full(m.n, -1, np.int64)
            remap[used] = np.arange(int(used.sum()))
            b = np.where(b >= 0, remap[np.maximum(b, 0)], -1)
            self.register_buffer("x", torch.zeros(0, dtype=torch.float64))
            self.register_buffer("bin", torch.from_numpy(b))
            w = (m.hi - m.lo)[used] if self.statistic == "density" else np.ones(int(used.sum()))
            self.register_buffer("inv_width", torch.from_numpy(1.0 / w))
        target.skipped = [f"{m.lo[k]:g}-{m.hi[k]:g}" for k in np.flatnonzero(~used)]
        if not used.any():
            raise ParameterError(f"data {target.name}: no simulated event falls in any bin; the base samples do "
                                 "not cover this measurement (other process or energy?)")
        self.n_bins = int(used.sum())
        self.register_buffer("data", torch.from_numpy(m.values[used].copy()))
        cov = m.covariance()[np.ix_(used, used)]
        self.diagonal = bool(np.all(cov == np.diag(np.diag(cov))))
        self.register_buffer("cov", torch.from_numpy(np.ascontiguousarray(cov)))
        self.register_buffer("fixed_var", None)

    def fix_variance(self, p_ref: torch.Tensor) -> None:
        """From now on the chi2 uses the prediction's statistical variance at the normalized weights p_ref [N]
        (a constant, module docstring) instead of the variance at the weights it is given."""
        with torch.no_grad():
            _, var = self.prediction(p_ref.reshape(1, -1).to(self.cov))
        self.fixed_var = var[0].clamp(min=0)

    def prediction(self, p: torch.Tensor, counts: torch.Tensor | None = None):
        """(s [..., B], var s [..., B]) from normalized weights p [..., N]; `counts`: bootstrap multiplicities
        that p includes (each p_i^2 is then divided by its k_i: losses.per_count)."""
        p2 = p * p if counts is None else per_count(p * p, counts)
        S2 = p2.sum(-1, keepdim=True)
        if self.statistic in ("mean", "means"):
            # sum_i p_i^2 (x_ib - s_b)^2 expanded, so that no [..., N, B] intermediate is made
            mean = p @ self.x
            var = p2 @ (self.x * self.x) - 2 * mean * (p2 @ self.x) + mean * mean * S2
            return mean, var.clamp(min=0.0)
        inside = self.bin >= 0
        idx, pin = self.bin[inside], p[..., inside]
        f = pin.new_zeros(*p.shape[:-1], self.n_bins).index_add(-1, idx, pin)
        s2 = pin.new_zeros(*p2.shape[:-1], self.n_bins).index_add(-1, idx, p2[..., inside])
        var = s2 * (1 - 2 * f) + f * f * S2
        return f * self.inv_width, var * self.inv_width ** 2

    def chi2(self, s: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """r^T (C + diag(var))^-1 r, r = s - data, for predictions s [..., B] with variances var [..., B]."""
        r = s - self.data
        if self.diagonal:
            return (r * r / (torch.diagonal(self.cov) + var)).sum(-1)
        c = self.cov + torch.diag_embed(var)
        return (r * torch.linalg.solve(c, r.unsqueeze(-1)).squeeze(-1)).sum(-1)

    def forward(self, p: torch.Tensor, q=None, counts=None) -> torch.Tensor:
        """chi2 [...] of the normalized weights p [..., N]; var s enters as a constant (module docstring).
        `counts`: (bootstrap multiplicities of the simulated events, unused target's), see losses."""
        s, var = self.prediction(p, None if counts is None else counts[0])
        return self.chi2(s, var.detach() if self.fixed_var is None else self.fixed_var.expand_as(s))


class DataChi2(torch.nn.Module):
    """The sum of MeasuredChi2 over several measurements (they are treated as independent)."""

    constant_variance = True        # its gradient holds the variances constant (fit.uncertainty.bootstrap)

    def __init__(self, terms):
        super().__init__()
        self.terms = torch.nn.ModuleList(terms)

    @property
    def n_bins(self) -> int:
        return sum(t.n_bins for t in self.terms)

    def forward(self, p, q=None, counts=None):
        return sum(t(p, q, counts) for t in self.terms)

    def fix_variance(self, p_ref) -> None:
        """MeasuredChi2.fix_variance for every measurement."""
        for t in self.terms:
            t.fix_variance(p_ref)

    def per_term(self, p) -> dict:
        return {t.name: t(p) for t in self.terms}


def evaluate_data(problem, theta) -> dict:
    """Per measurement at one point: prediction s, its statistical sd (the one the chi2 uses: fixed when the
    loss's variance is, `MeasuredChi2.fix_variance`), and chi2; plus the total chi2."""
    th = problem.as_points(theta)
    with torch.no_grad():
        p, _, _ = problem.mixture(problem.log_weights(th))
        out = {}
        for t in problem.loss.terms:
            s, var = t.prediction(p)
            var = var[0] if t.fixed_var is None else t.fixed_var         # the variance the chi2 uses
            out[t.name] = {"prediction": s[0].cpu().tolist(), "sd": var.clamp(min=0).sqrt().cpu().tolist(),
                           "chi2": float(t(p)[0]), "bins": t.n_bins}
    return {"terms": out, "chi2": sum(v["chi2"] for v in out.values()),
            "bins": sum(v["bins"] for v in out.values())}


def chi2_of_sample(targets: list, sample) -> dict:
    """chi2 of an unweighted sample (a HadronSample, e.g. generated directly at the fitted point) against
    each measurement, with the sample's own statistical variance."""
    import dataclasses

    from ..observables import compute
    values = compute(sample, sorted({o for t in targets for o in t.observables}))
    p = torch.full((1, len(sample)), 1.0 / len(sample), dtype=torch.float64)
    out = {}
    for t in targets:
        term = MeasuredChi2(dataclasses.replace(t, skipped=[]), t.simulated(values))
        with torch.no_grad():
            out[t.name] = {"chi2": float(term(p)[0]), "bins": term.n_bins}
    return {"terms": out, "chi2": sum(v["chi2"] for v in out.values()),
            "bins": sum(v["bins"] for v in out.values())}
