"""Fitting the shower scale Lambda by moving events (EventMover), not by reweighting them.

A base sample generated at Lambda_0 carries, per parton, the Taylor coefficients c_k = d^k p / dLambda^k / k!
and, per event, the log-rate derivatives r_k = d^k ln(rate) / dLambda^k. At Lambda = Lambda_0 + delta the
moved sample is

    p_i(delta) = p_i + sum_{k=1..n} c_{k,i} delta^k,      w_e(delta) = exp(sum_{k=1..n} r_{k,e} delta^k / k!),

and its observables (thrust, C-parameter: torch functions of the momenta) are compared with the target's by
the exact weighted 1D Wasserstein distance, re-sorted at every evaluation since the values move. Every step
is differentiable in delta by autograd, so the fit, its Hessian and the sandwich covariance run through
fastrsa.fit.fit unchanged (`ShowerProblem` has the interface of `Problem`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ParameterError
from ..params import SHOWER_SPACE
from ..shower import c_parameter, thrust

# Parton-level observables: torch functions (p [n_partons, 4], offsets [n+1]) -> [n], differentiable in p.
PARTON_OBSERVABLES = {"thrust": thrust, "c_parameter": c_parameter}


def moving_w1(x: torch.Tensor, p: torch.Tensor, y: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Exact W1 = integral |F_x - F_y| between weighted samples x [K, N] (weights p, rows sum to 1) and
    y [M] (weights q, sum 1), sorting the union at every call so that x may move (differentiable in x and p)."""
    K = x.shape[0]
    u = torch.cat([x, y.expand(K, -1)], -1)
    us, order = torch.sort(u, dim=-1, stable=True)
    mass = torch.cat([p, -q.expand(K, -1)], -1).gather(-1, order)
    cdf = torch.cumsum(mass, -1)[..., :-1]
    return (cdf.abs() * torch.diff(us, dim=-1)).sum(-1)


class ShowerProblem:
    """A base shower sample moved in Lambda and compared with a target sample (see module docstring)."""

    space = SHOWER_SPACE
    data: list = []
    target_weights = None
    # Moving values make the W1 loss kink wherever two events' values cross (thrust also where an event's
    # optimal partition changes): the Hessian's differences of the exact gradient use 5% steps in Lambda
    # to average over them (measured: at 1% the thrust Hessian of a 1200-event fit came out negative).
    hessian_rel_step = 0.05

    def __init__(self, base, target, observables="thrust", order: int | None = None, device="cpu"):
        from ..hadronization.dispatch import resolve_device
        from ..shower.dataset import as_shower_sample
        self.device = resolve_device(device)
        self.base = as_shower_sample(base, self.device)
        self.target = as_shower_sample(target, self.device)
        names = [n.strip() for n in observables.split(",")] if isinstance(observables, str) else list(observables)
        bad = [n for n in names if n not in PARTON_OBSERVABLES]
        if bad or not names:
            raise ParameterError(f"observables: {bad or 'none'}; a shower fit takes parton-level observables of "
                                 f"{', '.join(PARTON_OBSERVABLES)}")
        self.names = names
        self.order = self.base.orders if order is None else int(order)
        if not 0 <= self.order <= self.base.orders:
            raise ParameterError(f"order = {order}: the base stores Taylor orders 1..{self.base.orders}")
        if not math.isclose(self.base.ecm, self.target.ecm, rel_tol=1e-9):
            raise ParameterError(f"target: sqrt(s) = {self.target.ecm} GeV but the base has {self.base.ecm} GeV; "
                                 "compare samples at the same energy")
        self.lam0 = float(self.base.lam)
        self.sizes = [self.base.n_events]
        self.datasets = []
        self.loss_kind = "w1 (moved events)"
        with torch.no_grad():
            tv = {n: PARTON_OBSERVABLES[n](self.target.p, self.target.offsets) for n in names}
        srt = {n: torch.sort(v) for n, v in tv.items()}
        self.target_values = {n: x.values for n, x in srt.items()}
        self._target_order = {n: x.indices for n, x in srt.items()}   # multiplicities follow the sorted values
        self.scale = {n: float(v.std()) for n, v in tv.items()}      # each observable in units of its spread
        for n, s in self.scale.items():
            if not s > 0:
                raise ParameterError(f"observables: {n!r} is constant in the target; drop it")

    def info(self) -> dict:
        """What result.json records of the problem."""
        return {"base": {"lambda": self.lam0, "events": self.base.n_events, "orders": self.base.orders},
                "target": {"events": self.target.n_events, "lambda": float(self.target.lam)},
                "ecm": self.base.ecm, "observables": self.names, "order": self.order, "loss": self.loss_kind}

    @property
    def base_points(self) -> list[tuple]:
        return [(self.lam0,)]

    def describe(self) -> str:
        return (f"base: {self.base.n_events} showers at Lambda = {self.lam0} GeV (Taylor orders 1..{self.base.orders}, "
                f"moved at order {self.order})\ntarget: {self.target.n_events} showers\n"
                f"observables: {', '.join(self.names)}; loss: W1 of the moved sample, each over the target's sd")

    def as_points(self, theta) -> torch.Tensor:
        return torch.as_tensor(theta, dtype=torch.float64, device=self.device).reshape(-1, len(self.space))

    # --- the moved sample ---------------------------------------------------------------------------
    def moved(self, delta: torch.Tensor):
        """(momenta, log rate weights) of the base moved by delta (a 0-d tensor; differentiable)."""
        p = self.base.p
        # (+ 0 * delta keeps the loss a function of delta at order 0, so that its gradient is defined: zero.)
        lw = torch.zeros(self.base.n_events, dtype=p.dtype, device=p.device) + 0 * delta
        for k in range(1, self.order + 1):
            p = p + self.base.coeffs[k - 1] * delta ** k
            lw = lw + self.base.log_rate_derivs[:, k - 1] * delta ** k / math.factorial(k)
        return p, lw

    def _moved_values(self, lam: torch.Tensor):
        """The observables of the base moved to lam, and its log rate weights (one pass per point)."""
        p, lw = self.moved(lam - self.lam0)
        return {n: PARTON_OBSERVABLES[n](p, self.base.offsets) for n in self.names}, lw

    def _loss(self, values: dict, lw: torch.Tensor, base_mult=None, target_mult=None) -> tuple:
        w = torch.exp(lw - lw.detach().max())
        if base_mult is not None:
            w = w * base_mult
        w = w / w.sum()
        q = torch.ones(self.target.n_events, dtype=w.dtype, device=w.device)
        loss = 0.0
        for n in self.names:
            if target_mult is not None:      # the target's values are kept sorted; its multiplicities follow them
                q = target_mult[self._target_order[n]]
            loss = loss + moving_w1(values[n][None], w[None], self.target_values[n], q / q.sum())[0] / self.scale[n]
        return loss, w

    def evaluate(self, theta, base_mult=None, target_mult=None):
        th = self.as_points(theta)
        losses = [self._loss(*self._moved_values(th[k, 0]), None if base_mult is None else base_mult[k],
                             None if target_mult is None else target_mult[k])[0] for k in range(th.shape[0])]
        return torch.stack(losses), None, None

    def loss_and_grad(self, theta, base_mult=None, target_mult=None, chunk: int = 8):
        """Loss [K] and d loss / d Lambda [K, 1] at K points (plus N_eff/N and the mean rate weight). Rows at
        the same Lambda (bootstrap replicas) share one moved sample: its observables are computed once."""
        from .problem import Evaluation
        th = self.as_points(theta).detach()
        moved = {}
        losses, grads, neff, mean_w = [], [], [], []
        for k in range(th.shape[0]):
            key = float(th[k, 0])
            if key not in moved:
                lam = th[k, 0].clone().requires_grad_(True)
                moved[key] = (lam, *self._moved_values(lam))
            lam, values, lw = moved[key]
            loss, w = self._loss(values, lw, None if base_mult is None else base_mult[k],
                                 None if target_mult is None else target_mult[k])
            (g,) = torch.autograd.grad(loss, lam, retain_graph=True)
            losses.append(loss.detach())
            grads.append(g.reshape(1))
            wd = w.detach()
            neff.append(1.0 / (wd * wd).sum() / self.base.n_events)
            mean_w.append(torch.exp(torch.logsumexp(lw.detach(), 0) - math.log(self.base.n_events)))
        ones = torch.ones(th.shape[0], 1, dtype=torch.float64, device=self.device)
        return Evaluation(torch.stack(losses), torch.stack(grads), ones, torch.stack(neff)[:, None],
                          torch.stack(mean_w)[:, None])

    def diagnostics_at(self, theta) -> dict:
        ev = self.loss_and_grad(self.as_points(theta)[:1])
        return {"mean_weight": float(ev.mean_weight[0, 0]), "n_eff_frac": float(ev.n_eff_frac[0, 0]),
                "alpha": [1.0], "best_base": 0, "per_base": []}

    # --- bootstrap ------------------------------------------------------------------------------------
    def poisson_multiplicities(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        base = torch.poisson(torch.ones(n, self.base.n_events, dtype=torch.float64), generator=g).to(self.device)
        tgt = torch.poisson(torch.ones(n, self.target.n_events, dtype=torch.float64), generator=g).to(self.device)
        return [base], tgt

    def replica_gradients(self, theta, idx: list, replicas: int, seed: int, chunk: int = 8) -> np.ndarray:
        """The loss gradient under bootstrap replicas (Poisson(1) multiplicities of base and target events)."""
        (bm,), tm = self.poisson_multiplicities(replicas, seed)
        th = self.as_points(theta)[:1].repeat(replicas, 1)
        return self.loss_and_grad(th, bm, tm).grad.cpu().numpy()[:, idx]
