"""A fit's problem: bases, target, observables and loss, prepared once, and the loss and its gradient
at any batch of parameter points.

At a parameter point theta (one column per parameter of fastrsa.params.SPACE) the simulated sample is
the union of the bases' events with weights

    p_i = alpha_b w_i / sum_{j in b} w_j   (event i of base b),   alpha_b = N_eff,b / sum_c N_eff,c,

so each base counts by how well it covers theta (alpha is held constant in the gradient; any fixed
alpha gives an unbiased estimate of the distribution at theta). With one base, alpha = 1.
"""
from __future__ import annotations

import inspect
import math
from typing import NamedTuple

import numpy as np
import torch

from ..errors import DatasetError, ParameterError
from ..hadronization.batch import TrialBatch
from ..hadronization.diagnostics import summarize_log_weights
from ..hadronization.dispatch import BACKENDS, resolve_device
from ..hadronization.weights import log_weights_and_jacobian, lund_log_weights
from ..losses import LOSSES, build_loss, check_loss, per_count
from ..observables import Observable, compute, expand_names
from ..params import SPACE, WEIGHT_SPACE
from ..progress import Phases
from ..store.dataset import open_dataset
from ..store.flavour import dataset_flavour_base, has_flavour
from ..store.hadrons import check_same_setup, dataset_hadrons, load_hadrons
from .measured import DataChi2, DataTarget, MeasuredChi2, parse_data

LUND_COLUMNS = SPACE.columns("lund")


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


def counts(base_mult, target_mult):
    """The losses' `counts` (losses module docstring) for bootstrap multiplicities: the bases' [K, N_b]
    concatenated as the mixture concatenates the bases, and the target's; None without a bootstrap."""
    if base_mult is None and target_mult is None:
        return None
    return (None if base_mult is None else torch.cat(list(base_mult), -1)), target_mult


def normalized_weights(lw: torch.Tensor, mult=None, keep=None):
    """Rows of exp(lw) (times `keep` and the bootstrap multiplicities `mult`, when given) normalized to 1, and
    their 1 / N_eff = sum w^2, where a replica's k-fold event counts k times (losses.per_count)."""
    w = torch.exp(lw - lw.detach().max(-1, keepdim=True).values)
    if keep is not None:
        w = w * keep
    if mult is not None:
        w = w * mult
    w = w / w.sum(-1, keepdim=True)
    w2 = w.detach() ** 2
    return w, (w2 if mult is None else per_count(w2, mult)).sum(-1)


def apply_loss(loss, p, q, c):
    """loss(p, q), with counts=c when there are bootstrap counts and the loss takes them (every built-in loss
    does; a user's registered loss need not)."""
    if c is None or "counts" not in inspect.signature(loss.forward).parameters:
        return loss(p, q)
    return loss(p, q, counts=c)


class Problem:
    """Bases, target, observables and loss of a fit, prepared once (see module docstring)."""

    def __init__(self, bases, target=None, observables="multiplicity,shapes", loss: str = "swd",
                 n_projections: int = 128, seed: int = 0, device="cpu", classifiers: dict | None = None,
                 backend: str = "auto", data=None, flavour: bool = False, features: bool = False):
        """`target`: a sample to compare with (any registered loss), or `data`: measurements (DataTarget
        or 'NAME[=OBSERVABLE[:STATISTIC]]' strings) fitted by their chi2; one of the two. `flavour`: theta
        also holds the flavour parameters rho, xi, x, y (params.WEIGHT_SPACE); every base needs flavour
        records (format 3, ee or cmnd setups). `features`: precompute per-trial features in the batches
        (TrialBatch.with_features: the same weights, 24 more bytes per trial; docs/weights.md says when
        that is faster)."""
        if isinstance(bases, (str, bytes)) or not hasattr(bases, "__iter__"):
            bases = [bases]
        if not bases:
            raise ParameterError("base: give at least one base dataset")
        if (target is None) == (not data):
            raise ParameterError("target: give either a target sample (--target) or measurements (--data)")
        self.space = WEIGHT_SPACE if flavour else SPACE
        self.flavour = bool(flavour)
        self.data = [d if isinstance(d, DataTarget) else parse_data(d) for d in (data or [])]
        if self.data:
            observables, loss = list(dict.fromkeys(o for d in self.data for o in d.observables)), "data-chi2"
        self.names = expand_names(observables)
        self.loss_kind = loss
        if not self.data:
            check_loss(loss)
        if backend not in BACKENDS:
            raise ParameterError(f"backend = {backend!r}; use one of {BACKENDS}")
        self.device = resolve_device(device)
        self.backend = backend
        self.datasets = [open_dataset(b) for b in bases]
        if flavour:
            for ds in self.datasets:
                if not has_flavour(ds.meta):
                    raise ParameterError(f"params: flavour parameters (rho, xi, x, y) need bases with flavour records; "
                                         f"{ds.path} has none (format {ds.format_version}, setup "
                                         f"{ds.meta['setup'].get('name')}): generate it with --setup ee or --cmnd")
        for ds in self.datasets:
            if not ds.complete:
                raise DatasetError(f"{ds.path}: incomplete ({len(ds.shards)} of {ds.manifest['n_shards']} "
                                   f"shards); finish it with 'fastrsa generate {ds.path}' (it resumes)")
        # Only the columns each part needs: the particles for the observables; the trial and break columns,
        # shard by shard, for the weight engine (TrialBatch.from_dataset), so no whole-table copy is held.
        # `phases` records each part's time and the peak memory so far (a fit reports them).
        self.phases = Phases()
        with self.phases("observables"):
            hadrons = [dataset_hadrons(ds) for ds in self.datasets]
            self.target = None if target is None else load_hadrons(target)
            samples = {f"base {i}": h for i, h in enumerate(hadrons)}
            check_same_setup({"target": self.target, **samples} if self.target is not None else samples)
            self.setup = hadrons[0].setup
            for d in self.data:
                d.check_setup(self.setup)
            self.sim_obs = [compute(h, self.names, classifiers) for h in hadrons]
            del hadrons             # the particles are done with: their observables are kept
            self.target_obs = {} if self.data else compute(self.target, self.names, classifiers)
        with self.phases("weights"):
            self.batches = [TrialBatch.from_dataset(ds, self.device) for ds in self.datasets]
            if features:
                self.batches = [b.with_features() for b in self.batches]
        self.sizes = [len(b) for b in self.batches]
        self.all_sim = _concat(self.sim_obs, self.names)
        with self.phases("loss"):
            self._build_loss(loss, n_projections, seed)
        self.loss = self.loss.to(self.device)

    def _build_loss(self, loss: str, n_projections: int, seed: int) -> None:
        if self.data:
            self.loss = DataChi2([MeasuredChi2(d, d.simulated(self.all_sim)) for d in self.data])
            self.target_weights = None
        else:
            tw = self.target.weights
            if tw is not None:      # every loss compares normalized distributions: scale so sums cannot overflow
                tw = tw / tw.max()
            self.loss = build_loss(loss, self.names, self.all_sim, self.target_obs, tw, sum(self.sizes),
                                   len(self.target), n_projections, seed)
            # The target's event weights (1 unless the target has a 'weight' column), on the weights' device.
            self.target_weights = torch.as_tensor(tw if tw is not None else np.ones(len(self.target)),
                                                  dtype=torch.float64, device=self.device)

    @property
    def base_points(self) -> list[tuple]:
        """Each base's point in the ParameterSpace's coordinates."""
        if self.flavour:
            return [ds.base.theta + dataset_flavour_base(ds).theta for ds in self.datasets]
        return [ds.base.theta for ds in self.datasets]

    def describe(self) -> str:
        bases = "; ".join(f"{ds.path} ({len(ds)} events at a={ds.base.a}, b={ds.base.b}, sigma={ds.base.sigma})"
                          for ds in self.datasets)
        if self.data:
            data = "; ".join(f"{d.name} ({d.label}, {d.statistic}, {t.n_bins} bins"
                             + (f", skipped {', '.join(d.skipped)}" if d.skipped else "") + ")"
                             for d, t in zip(self.data, self.loss.terms))
            return f"bases: {bases}\ndata: {data}\nloss: chi2 with the data's errors and the bases' statistics"
        return (f"bases: {bases}\ntarget: {self.target.path} ({len(self.target)} events)\n"
                f"observables: {', '.join(self.names)}; loss: {self.loss_kind} ({LOSSES[self.loss_kind].description})")

    # --- weights -----------------------------------------------------------------------------------
    def mixture(self, lws: list[torch.Tensor], base_mult: list | None = None):
        """Event weights p [K, N_total] (each row sums to 1), alpha [K, B] and N_eff/N [K, B] per base."""
        ps, neffs = [], []
        for b, lw in enumerate(lws):
            w, inv_neff = normalized_weights(lw, None if base_mult is None else base_mult[b])
            ps.append(w)
            neffs.append(1.0 / inv_neff)
        neff = torch.stack(neffs, -1)
        alpha = neff / neff.sum(-1, keepdim=True)
        p = torch.cat([alpha[..., b:b + 1] * ps[b] for b in range(len(ps))], -1)
        return p, alpha, neff / torch.tensor(self.sizes, dtype=neff.dtype, device=neff.device)

    def log_weights(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """Each base's log-weights [K, N_b] at theta [K, P] (the Lund engine takes its columns)."""
        if self.flavour:
            return [lund_log_weights(batch, theta, names=self.space.names, backend=self.backend)
                    for batch in self.batches]
        lund = theta[..., LUND_COLUMNS]
        return [lund_log_weights(batch, lund, backend=self.backend) for batch in self.batches]

    def as_points(self, theta) -> torch.Tensor:
        """theta as a float64 [K, P] tensor on the problem's device."""
        return torch.as_tensor(theta, dtype=torch.float64, device=self.device).reshape(-1, len(self.space))

    def evaluate(self, theta: torch.Tensor, base_mult=None, target_mult=None):
        """Loss [K] at theta [K, P] (differentiable), plus alpha and N_eff/N per base."""
        p, alpha, neff = self.mixture(self.log_weights(theta), base_mult)
        q = None if target_mult is None else self.target_weights * target_mult
        return apply_loss(self.loss, p, q, counts(base_mult, target_mult)), alpha, neff

    def loss_and_grad(self, theta: torch.Tensor, base_mult=None, target_mult=None, chunk: int = 8) -> Evaluation:
        """Loss [K] and d loss / d theta [K, P] at K independent points (plus alpha, N_eff/N and the
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
            loss = apply_loss(self.loss, p, q, counts(bm, None if target_mult is None else target_mult[sl]))
            loss.sum().backward()
            losses.append(loss.detach())
            alphas.append(alpha)
            neffs.append(neff)
        torch.autograd.backward(lws, [x.grad for x in leaves])
        mean_w = torch.stack([torch.exp(torch.logsumexp(x.detach(), -1) - math.log(x.shape[-1])) for x in leaves], -1)
        return Evaluation(torch.cat(losses), theta.grad.detach(), torch.cat(alphas), torch.cat(neffs), mean_w)

    def event_weights(self, theta) -> np.ndarray:
        """Normalized event weights p [N_total] at one point (for plots and summaries)."""
        with torch.no_grad():
            p, _, _ = self.mixture(self.log_weights(self.as_points(theta)))
        return p[0].cpu().numpy()

    def diagnostics_at(self, theta) -> dict:
        """Mean weight (and its error) and N_eff/N of each base at one point; the best-covering base's too."""
        with torch.no_grad():
            lws = self.log_weights(self.as_points(theta))
        per_base = []
        for lw, n in zip(lws, self.sizes):
            mean, err, n_eff = summarize_log_weights(lw[0])
            per_base.append({"mean_weight": mean, "mean_weight_err": err, "n_eff_frac": n_eff / n})
        _, alpha, neff = self.mixture(lws)
        best = int(torch.argmax(alpha[0]))
        return {"mean_weight": per_base[best]["mean_weight"], "mean_weight_err": per_base[best]["mean_weight_err"],
                "n_eff_frac": float(neff[0, best]), "per_base": per_base, "alpha": alpha[0].tolist(),
                "best_base": best}

    def replica_gradients(self, theta, idx: list, replicas: int, seed: int, chunk: int = 8) -> np.ndarray:
        """The loss gradient [replicas, len(idx)] in theta's columns idx under bootstrap replicas (Poisson(1)
        multiplicities of base and target events), all at theta. log w is linearized at theta with the
        kernel's exact Jacobian, which gives each replica's exact gradient there from one kernel pass."""
        th = self.as_points(theta)
        cols = list(range(len(self.space))) if self.flavour else LUND_COLUMNS
        names = self.space.names if self.flavour else None
        lin = [log_weights_and_jacobian(b, th[:, cols], self.backend, names) for b in self.batches]
        bm, tm = self.poisson_multiplicities(replicas, seed)
        grads = []
        for s in range(0, replicas, chunk):
            n = min(chunk, replicas - s)
            phi = th.repeat(n, 1).requires_grad_(True)
            lws = [lw + torch.einsum("kp,np->kn", (phi - th)[:, cols], jac[0]) for lw, jac in lin]
            bms = [m[s:s + n] for m in bm]
            p, _, _ = self.mixture(lws, bms)
            q = None if tm is None else self.target_weights * tm[s:s + n]
            apply_loss(self.loss, p, q, counts(bms, None if tm is None else tm[s:s + n])).sum().backward()
            grads.append(phi.grad.detach().cpu().numpy()[:, idx])
        return np.concatenate(grads)

    def poisson_multiplicities(self, n: int, seed: int):
        """Bootstrap replicas as Poisson(1) multiplicities of base and target events ([n, N] each):
        the samples, and therefore every sort and binning, stay as they are."""
        g = torch.Generator().manual_seed(seed)
        ones = lambda k: torch.ones(n, k, dtype=torch.float64)  # noqa: E731
        base = [torch.poisson(ones(s), generator=g).to(self.device) for s in self.sizes]
        tgt = None if self.target is None else torch.poisson(ones(len(self.target)), generator=g).to(self.device)
        return base, tgt
