"""A fit whose events stay on the workers of a Dask cluster: `DistributedProblem`, a drop-in for `Problem`
in `fit`, `covariance` and `landscape`.

Each worker holds, in a Dask actor (`ShardHolder`), the TrialBatch and the observables of its share of
every base's shards (shard k of a base goes to worker k mod W). A step sends theta [K, P] to every
worker and brings back, per base, sums whose size depends on the number of bins, never on the
number of events: with w_i = exp(log w_i(theta) - m) (m: the worker's largest log-weight),

    Z = sum_i w_i,  Q = sum_i w_i^2,  S1_k = sum_{entries e in bin k} w_e,  S2_k = sum_{e in k} w_e^2,

and the derivatives of Z and S1 in the Lund parameters (from the kernel's exact per-event Jacobian
d log w_i / d theta: dZ = sum_i w_i d log w_i, ...; S2, the chi2's variance, is a constant in the gradient
as in losses.PseudoChi2, and a bootstrap replica's k-fold event counts k times in it). The driver
rescales the workers' sums to a common m and forms the mixture of bases exactly as `Problem` does
(alpha_b = N_eff,b / sum N_eff, N_eff,b = Z_b^2 / Q_b, held constant in the gradient), so the binned
pseudo-chi2 (`--loss chi2`) and its gradient are the single-process ones up to floating-point summation
order: no approximation. The bins are fixed before the first step from what the workers report (each
observable's range and integrality, then the bins their entries occupy), the same bins
`losses.default_bins` gives one process.

The sandwich covariance's bootstrap replicas draw each base event's Poisson(1) multiplicity from a
stream seeded by (seed, base, shard index) (`shard_multiplicities`), so they do not depend on how the
shards are spread over workers; the workers return the same per-bin sums per replica ([R, bins]).
`replica_multiplicities` gives a single `Problem` the same replicas, which makes the whole fit,
covariance included, comparable to one process.

Supported: `--loss chi2` against a target sample. The other losses sort all events together (exact W1,
sliced W1) and are refused, as are measurements (`--data`), bootstrap refits and the shower.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import torch

from ..cluster import worker_addresses
from ..errors import DatasetError, FastRSAError, ParameterError
from ..hadronization.batch import TrialBatch
from ..hadronization.weights import log_weights_and_jacobian
from ..losses import PseudoChi2, bins_from_range, per_count
from ..observables import compute, expand_names
from ..params import SPACE
from ..store.dataset import Dataset, open_dataset
from ..store.hadrons import HadronSample, check_same_setup, load_hadrons
from .problem import Evaluation

LUND_COLUMNS = SPACE.columns("lund")
SUPPORTED_LOSSES = ("chi2", "w1")
CHUNK_ELEMENTS = 2**25  # a worker's largest intermediate in sums(): 256 MB of float64
GRID = 1000         # w1: target-quantile levels of the grid (an integer-valued observable gets every integer)


# --- bootstrap replicas that do not depend on the split over workers ---------------------------------

def _stream(*key) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1)[0]))


def shard_multiplicities(seed: int, base: int, shard: int, n_events: int, replicas: int) -> torch.Tensor:
    """Poisson(1) multiplicities [replicas, n_events] of the events of shard `shard` of base `base`."""
    return torch.poisson(torch.ones(replicas, n_events, dtype=torch.float64), generator=_stream(seed, base, shard))


def target_multiplicities(seed: int, n_target: int, replicas: int) -> torch.Tensor:
    """Poisson(1) multiplicities [replicas, n_target] of the target's events (drawn on the driver)."""
    return torch.poisson(torch.ones(replicas, n_target, dtype=torch.float64), generator=_stream(seed, 2**32 - 1))


def shard_rows(ds) -> list[int]:
    """Events in each shard of a dataset (from the Parquet footers)."""
    return [pq.ParquetFile(s).metadata.num_rows for s in ds.shards]


def replica_multiplicities(datasets, n_target: int, replicas: int, seed: int):
    """(per base [replicas, N_b], target [replicas, N_t]): the replicas of a distributed fit, for a
    single-process `Problem` (assign to its poisson_multiplicities to compare the two)."""
    base = [torch.cat([shard_multiplicities(seed, b, k, n, replicas) for k, n in enumerate(shard_rows(ds))], 1)
            for b, ds in enumerate(datasets)]
    return base, target_multiplicities(seed, n_target, replicas)


# --- the worker side ---------------------------------------------------------------------------------

class ShardHolder:
    """A Dask actor: one worker's shards of every base, loaded once, and its per-bin sums at any theta.

    parts: per base, (dataset path, its metadata, [(shard index in the dataset, shard path), ...]) (the
    list may be empty). Each worker reads only its own shards."""

    def __init__(self, parts, names, device="cpu", backend="auto"):
        self.names, self.device, self.backend = list(names), device, backend
        self.bases = []
        for path, meta, shard_list in parts:
            if not shard_list:
                self.bases.append(None)
                continue
            ds = Dataset(Path(path), meta, [Path(s) for _, s in shard_list], None)
            # As Problem reads a base: particles once for the observables, trials shard by shard for the batch.
            h = HadronSample.from_flat(ds.flat(groups=("hadrons",)), ds.meta, ds.path)
            obs = compute(h, self.names)
            self.bases.append(SimpleNamespace(
                batch=TrialBatch.from_dataset(ds, device), obs=obs, setup=h.setup, path=str(path),
                shards=[k for k, _ in shard_list], rows=shard_rows(ds), n=len(ds)))
            del h

    def summary(self) -> dict:
        """Per observable (min, max, all integer) over this worker's entries; events per base; setup."""
        out = {"events": [0 if b is None else b.n for b in self.bases],
               "trials": [0 if b is None else b.batch.n_trials for b in self.bases],
               "setups": [None if b is None else (b.setup, b.path) for b in self.bases], "ranges": {}}
        for n in self.names:
            vals = [b.obs[n].values for b in self.bases if b is not None and len(b.obs[n].values)]
            if vals:
                v = np.concatenate(vals)
                out["ranges"][n] = (float(v.min()), float(v.max()), bool(np.all(v == np.round(v))))
        return out

    def occupied(self, edges: dict) -> dict:
        """Per observable, the (unmapped) bins of `edges` that this worker's entries fall in."""
        found = {}
        for n in self.names:
            bins = [np.searchsorted(edges[n], b.obs[n].values, side="right") for b in self.bases if b is not None]
            found[n] = np.unique(np.concatenate(bins)) if bins else np.zeros(0, np.int64)
        return found

    def set_bins(self, edges: dict, remaps: dict, starts: dict, n_bins: int, side: str = "right") -> None:
        """Fix every entry's global bin (observable n's bins start at starts[n] of n_bins in all; `side`:
        'right' puts a value on an edge into the bin above it (histograms), 'left' into the bin below
        (CDFs at the grid points: bin j holds the values in (g_j-1, g_j])."""
        self.n_bins = n_bins
        for b in self.bases:
            if b is None:
                continue
            ev, bins, vals = [], [], []
            for n in self.names:
                o = b.obs[n]
                ev.append(o.event_index())
                vals.append(np.asarray(o.values, np.float64))
                bins.append(remaps[n][np.searchsorted(edges[n], o.values, side=side)] + starts[n])
            b.entry_event = torch.from_numpy(np.concatenate(ev)).to(self.device)
            b.entry_bin = torch.from_numpy(np.concatenate(bins)).to(self.device)
            b.entry_value = torch.from_numpy(np.concatenate(vals)).to(self.device)

    def sums(self, theta, replicas: int = 0, seed: int = 0, loss: str = "chi2") -> list:
        """Per base: m [K], Z, Q [K], S1 [K, bins] and dZ [K, L], dS1 [K, bins, L] (L: the Lund columns) at
        theta [K, P]; for loss 'chi2' also S2 = sum w^2 per bin, for 'w1' X = sum w x per bin (x the
        entry's value) and dX. With `replicas`: at one theta for R bootstrap replicas (K = R)."""
        th = torch.as_tensor(np.asarray(theta, np.float64), device=self.device).reshape(-1, len(SPACE))
        out = []
        for bi, b in enumerate(self.bases):
            if b is None:
                out.append(None)
                continue
            lw, jac = log_weights_and_jacobian(b.batch, th[:, LUND_COLUMNS], self.backend)
            m = lw.max(-1).values
            mult = None
            if replicas:
                mult = torch.cat([shard_multiplicities(seed, bi, k, n, replicas) for k, n in zip(b.shards, b.rows)],
                                 1).to(lw.device)                   # [R, N]
                m = m.expand(replicas)
            rows = len(m)
            # Rows in chunks: the [rows, entries, L] intermediates stay below ~CHUNK_ELEMENTS numbers.
            step = max(1, CHUNK_ELEMENTS // (max(len(b.entry_event), lw.shape[-1], 1) * jac.shape[-1]))
            chunks = [self._sums_rows(b, lw, jac, m, mult, slice(r, r + step), loss) for r in range(0, rows, step)]
            out.append({k: torch.cat([c[k] for c in chunks]).detach().cpu().numpy() for k in chunks[0]})
        return out

    def _sums_rows(self, b, lw, jac, m, mult, rows: slice, loss: str) -> dict:
        """The sums of `sums` for the rows `rows` (points, or replicas of the one point)."""
        if mult is None:
            w, jr = torch.exp(lw[rows] - m[rows, None]), jac[rows]
        else:
            w, jr = torch.exp(lw - m[:1, None]) * mult[rows], jac
        wj = w[..., None] * jr                                      # d w / d theta
        we, wje = w[:, b.entry_event], wj[:, b.entry_event]
        K, L = w.shape[0], jr.shape[-1]
        z1 = lambda: w.new_zeros(K, self.n_bins)                    # noqa: E731
        z2 = lambda: w.new_zeros(K, self.n_bins, L)                 # noqa: E731
        q2 = w * w if mult is None else per_count(w * w, mult[rows])     # a k-fold event is k events
        res = {"m": m[rows], "Z": w.sum(-1), "Q": q2.sum(-1), "dZ": wj.sum(1),
               "S1": z1().index_add_(1, b.entry_bin, we), "dS1": z2().index_add_(1, b.entry_bin, wje)}
        if loss == "chi2":
            # A replica's k-fold event counts k times in the variance: k w0^2 = w^2 / k (losses.per_count).
            we2 = we * we if mult is None else per_count(we * we, mult[rows][:, b.entry_event])
            res["S2"] = z1().index_add_(1, b.entry_bin, we2)
        else:
            res["X"] = z1().index_add_(1, b.entry_bin, we * b.entry_value)
            res["dX"] = z2().index_add_(1, b.entry_bin, wje * b.entry_value[:, None])
        return res


# --- the driver side ---------------------------------------------------------------------------------

def _merge(parts: list) -> dict:
    """One base's sums from several workers, rescaled to the largest m (exact up to rounding)."""
    parts = [p for p in parts if p is not None]
    M = np.max(np.stack([p["m"] for p in parts]), 0)
    out = {"m": M}
    for p in parts:
        c = np.exp(p["m"] - M)
        for k, power in (("Z", 1), ("Q", 2), ("S1", 1), ("S2", 2), ("X", 1), ("dZ", 1), ("dS1", 1), ("dX", 1)):
            if k not in p:
                continue
            scale = (c ** power).reshape(-1, *([1] * (p[k].ndim - 1)))
            out[k] = out.get(k, 0.0) + scale * p[k]
    return out


class DistributedProblem:
    """Bases spread over the workers of a Dask cluster, target and loss on the driver (module docstring).
    Offers what `fit`, `covariance` and `landscape` use of a `Problem`."""

    def __init__(self, bases, target, client, observables="multiplicity,shapes", loss: str = "chi2",
                 device="cpu", backend: str = "auto", grid: int = GRID):
        if isinstance(bases, (str, bytes, Path)) or not hasattr(bases, "__iter__"):
            bases = [bases]
        if not bases:
            raise ParameterError("base: give at least one base dataset")
        if loss not in SUPPORTED_LOSSES:
            raise ParameterError(f"loss = {loss!r} is not available on a Dask cluster: use --loss chi2 (exact) or "
                                 "--loss w1 (on a grid of target quantiles); the sliced Wasserstein projects all "
                                 "events together")
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ParameterError(f"grid = {grid!r}: the w1 grid needs an integer number of quantile levels >= 2")
        if target is None:
            raise ParameterError("target: a distributed fit needs a target sample (--target); fit measurements "
                                 "(--data) in one process")
        self.space, self.data, self.loss, self.loss_kind, self.grid = SPACE, [], None, loss, grid
        self.device, self.backend, self.client = device, backend, client
        self.names = expand_names(observables)
        self.datasets = [open_dataset(b) for b in bases]
        for ds in self.datasets:
            if not ds.complete:
                raise DatasetError(f"{ds.path}: incomplete ({len(ds.shards)} of {ds.manifest['n_shards']} "
                                   f"shards); finish it with 'fastrsa generate {ds.path}' (it resumes)")
        self.target = load_hadrons(target)
        self.target_obs = compute(self.target, self.names)
        workers = worker_addresses(client)
        if not workers:
            raise ParameterError("dask: the cluster has no workers; start some (or use local:N)")
        # Shard k of each base goes to worker k mod W; a worker without shards holds no actor.
        parts = [[(str(ds.path.resolve()), ds.meta, [(k, str(s.resolve())) for k, s in enumerate(ds.shards)
                                                     if k % len(workers) == w]) for ds in self.datasets]
                 for w in range(len(workers))]
        used = [w for w in range(len(workers)) if any(p[1] for p in parts[w])]
        self._actor_futures = [client.submit(ShardHolder, parts[w], self.names, device, backend, actor=True,
                                             workers=[workers[w]], allow_other_workers=False, pure=False)
                               for w in used]
        self.actors = [f.result() for f in self._actor_futures]
        self.workers = [workers[w] for w in used]
        summaries = self._all("summary")
        self.sizes = [sum(s["events"][b] for s in summaries) for b in range(len(self.datasets))]
        self.n_trials = sum(sum(s["trials"]) for s in summaries)
        setups = {f"base {b}": SimpleNamespace(setup=st[0], path=st[1]) for s in summaries
                  for b, st in enumerate(s["setups"]) if st is not None}
        check_same_setup({"target": self.target, **setups})
        self.setup = next(iter(setups.values())).setup
        self._fix_bins(summaries)
        tw = self.target.weights
        if tw is not None:
            tw = tw / tw.max()
        self.target_weights = torch.as_tensor(tw if tw is not None else np.ones(len(self.target)), dtype=torch.float64)
        # Bytes sent to and received from the workers (pickled), evaluations, and points evaluated (K or R each).
        self.traffic = {"sent": 0, "received": 0, "evaluations": 0, "points": 0}

    def _all(self, method, *args, **kw) -> list:
        """Call `method` on every worker's actor at once; their results in worker order."""
        if not self.actors:
            raise DatasetError("the distributed problem is closed (its workers released the events)")
        calls = [getattr(a, method)(*args, **kw) for a in self.actors]
        try:
            return [c.result() for c in calls]
        except (FastRSAError, KeyboardInterrupt):
            raise
        except Exception as exc:        # a worker lost with its events: they cannot be fetched back
            raise DatasetError(f"a Dask worker holding base events failed ({type(exc).__name__}: {exc}); "
                               "the fit cannot go on without its events: rerun it") from None

    def _ranges(self, summaries) -> dict:
        """Per observable (min, max, all integer) over the workers' entries and the target's."""
        out = {}
        for n in self.names:
            y = self.target_obs[n].values
            r = [s["ranges"][n] for s in summaries if n in s["ranges"]] + \
                [(float(y.min()), float(y.max()), bool(np.all(y == np.round(y))))]
            out[n] = (min(x[0] for x in r), max(x[1] for x in r), all(x[2] for x in r))
        return out

    def _fix_bins(self, summaries) -> None:
        if self.loss_kind == "w1":
            return self._fix_grid(summaries)
        edges, remaps, starts, self.slices = {}, {}, {}, {}
        for n, (lo, hi, integer) in self._ranges(summaries).items():
            edges[n] = bins_from_range(self.target_obs[n].values, lo, hi, integer)
        occupied = self._all("occupied", edges)
        start, tbins, tev = 0, [], []
        for n in self.names:
            by = np.searchsorted(edges[n], self.target_obs[n].values, side="right")
            used = np.unique(np.concatenate([by] + [o[n] for o in occupied]))
            remaps[n] = np.full(len(edges[n]) + 1, -1, np.int64)
            remaps[n][used] = np.arange(len(used))
            starts[n] = start
            self.slices[n] = slice(start, start + len(used))
            tbins.append(remaps[n][by] + start)
            tev.append(self.target_obs[n].event_index())
            start += len(used)
        self.n_bins, self.edges = start, edges
        self._all("set_bins", edges, remaps, starts, start)
        self.target_bin = torch.from_numpy(np.concatenate(tbins))
        self.target_event = torch.from_numpy(np.concatenate(tev))

    def _fix_grid(self, summaries) -> None:
        """w1: per observable the grid g_0 < ... < g_G: every integer from min to max for an integer-valued
        observable (at most `grid` + 1 of them), else the target's quantiles at `grid` + 1 levels together
        with `grid` + 1 equidistant points from the overall min to max (the simulation's tails beyond the
        target's range are resolved too); bin j collects the entries in (g_j-1, g_j], so a cumulative sum
        gives the CDF at the grid points."""
        edges, remaps, starts, self.slices, self.edges_t, self.scales = {}, {}, {}, {}, {}, {}
        start, tbins, tev, tval = 0, [], [], []
        for n, (lo, hi, integer) in self._ranges(summaries).items():
            y = self.target_obs[n].values
            sd = float(np.std(y))
            if sd == 0:
                raise ParameterError(f"observables: {n!r} is constant in the target; drop it")
            if integer and hi - lo <= self.grid:
                g = np.arange(lo, hi + 1)
            else:
                g = np.unique(np.concatenate([np.quantile(y, np.linspace(0, 1, self.grid + 1)),
                                              np.linspace(lo, hi, self.grid + 1)]))
            edges[n], remaps[n], starts[n] = g, np.arange(len(g) + 1), start
            self.slices[n] = slice(start, start + len(g))          # bin len(g) (above max) stays empty
            self.edges_t[n] = torch.from_numpy(np.asarray(g, np.float64))
            self.scales[n] = sd
            tbins.append(np.searchsorted(g, y, side="left") + start)
            tev.append(self.target_obs[n].event_index())
            tval.append(np.asarray(y, np.float64))
            start += len(g) + 1
        self.n_bins, self.edges = start, edges
        self._all("set_bins", edges, remaps, starts, start, "left")
        self.target_bin = torch.from_numpy(np.concatenate(tbins))
        self.target_event = torch.from_numpy(np.concatenate(tev))
        self.target_value = torch.from_numpy(np.concatenate(tval))

    def close(self) -> None:
        """Release the workers' actors (and the memory of their events)."""
        self.actors, self._actor_futures = [], []

    # --- what Problem offers ----------------------------------------------------------------------
    @property
    def base_points(self) -> list[tuple]:
        return [ds.base.theta for ds in self.datasets]

    def as_points(self, theta) -> torch.Tensor:
        return torch.as_tensor(theta, dtype=torch.float64).reshape(-1, len(self.space))

    def describe(self) -> str:
        bases = "; ".join(f"{ds.path} ({len(ds)} events at a={ds.base.a}, b={ds.base.b}, sigma={ds.base.sigma})"
                          for ds in self.datasets)
        return (f"bases: {bases}\ntarget: {self.target.path} ({len(self.target)} events)\n"
                f"observables: {', '.join(self.names)}; loss: {self.loss_kind} ({self.n_bins} bins"
                + (f", a grid of {self.grid} target quantiles" if self.loss_kind == "w1" else "")
                + f"), exact per-bin sums from {len(self.actors)} Dask workers")

    def info(self) -> dict:
        return {"bases": [{"path": str(ds.path), "events": len(ds), "a": ds.base.a, "b": ds.base.b,
                           "sigma": ds.base.sigma} for ds in self.datasets],
                "setup": self.setup, "observables": self.names, "loss": self.loss_kind,
                "target": {"path": self.target.path, "events": len(self.target)},
                "dask": {"workers": self.workers, "bins": self.n_bins, "traffic": dict(self.traffic)}}

    def _gather(self, theta: np.ndarray, replicas: int = 0, seed: int = 0) -> list[dict]:
        res = self._all("sums", theta, replicas, seed, self.loss_kind)
        self.traffic["evaluations"] += 1
        self.traffic["points"] += replicas or len(theta)
        self.traffic["sent"] += len(self.actors) * len(pickle.dumps(theta))
        self.traffic["received"] += sum(len(pickle.dumps(r)) for r in res)
        return [_merge([r[b] for r in res]) for b in range(len(self.datasets))]

    def _loss(self, merged: list[dict], q: torch.Tensor, target_counts=None):
        """Loss [K] from the merged sums, differentiable in the leaves (Z, S1 or X) of every base; the chi2's
        variances (S2) are constants, as in losses.PseudoChi2."""
        leaves, neffs = [], []
        for s in merged:
            leaves.append({k: torch.from_numpy(np.asarray(s[k], np.float64)).requires_grad_(k != "S2")
                           for k in ("Z", "S1", "S2", "X") if k in s})
            neffs.append(leaves[-1]["Z"].detach() ** 2 / torch.from_numpy(np.asarray(s["Q"], np.float64)))
        neff = torch.stack(neffs, -1)
        alpha = neff / neff.sum(-1, keepdim=True)
        # The mixture p_i = alpha_b w_i / Z_b, summed per bin (and its square, and times the value).
        mix = lambda k, power=1: sum((alpha[:, b] ** power / lv["Z"] ** power)[:, None] * lv[k]  # noqa: E731
                                     for b, lv in enumerate(leaves))
        tq = q[..., self.target_event]
        t = tq.new_zeros(*tq.shape[:-1], self.n_bins).index_add(-1, self.target_bin, tq)
        if self.loss_kind == "w1":
            tx = tq.new_zeros(*tq.shape[:-1], self.n_bins).index_add(-1, self.target_bin, tq * self.target_value)
            return self._w1(mix("S1"), mix("X"), t, tx), leaves, alpha, neff
        total = sum(alpha[:, b] * lv["Z"] / lv["Z"] for b, lv in enumerate(leaves))
        s, vs = mix("S1") / total[:, None], mix("S2", 2) / (total * total)[:, None]
        ttot = q.sum(-1, keepdim=True)
        tq2 = tq * tq if target_counts is None else per_count(tq * tq, target_counts[..., self.target_event])
        vt = tq.new_zeros(*tq2.shape[:-1], self.n_bins).index_add(-1, self.target_bin, tq2) / (ttot * ttot)
        t = t / ttot
        loss = sum(PseudoChi2.from_histograms(s[:, sl], vs[:, sl].detach(), t[..., sl], vt[..., sl].detach())
                   for sl in self.slices.values())
        return loss, leaves, alpha, neff

    def _w1(self, ps, px, t, tx):
        """Sum over observables of the integral of |F_sim - F_target| over their grid, / sd_target.

        Per grid interval (g_j-1, g_j] each sample's mass in it is placed at its weighted mean value there
        (per-bin sums of w and w x); between those points both CDFs are constant, so the integral over
        the interval is a sum of three rectangles. Exact when no interval holds two distinct values of one
        sample (every integer-valued observable); otherwise the error of the grid (docs/distributed.md).
        The CDFs are normalized over each observable's entries, as losses.Wasserstein1D normalizes them."""
        loss = 0.0
        for n, sl in self.slices.items():
            g = self.edges_t[n]
            a, b = g[:-1], g[1:]

            def cdf_and_mean(mass, moment):
                f = torch.cumsum(mass, -1)
                f = f / f[..., -1:]
                m, x = mass[..., 1:], moment[..., 1:]
                xbar = torch.where(m > 0, x / torch.where(m > 0, m, 1.0), a).clamp(a, b)
                return f[..., :-1], f[..., 1:], xbar

            s0, s1, xs = cdf_and_mean(ps[:, sl], px[:, sl])
            t0, t1, xt = cdf_and_mean(t[..., sl], tx[..., sl])
            lo, hi = torch.minimum(xs, xt), torch.maximum(xs, xt)
            mid = torch.where(xs < xt, (s1 - t0).abs(), (s0 - t1).abs())
            inner = (s0 - t0).abs() * (lo - a) + mid * (hi - lo) + (s1 - t1).abs() * (b - hi)
            loss = loss + inner.sum(-1) / self.scales[n]
        return loss

    def _evaluate(self, theta: np.ndarray, q: torch.Tensor, replicas: int = 0, seed: int = 0, target_counts=None):
        merged = self._gather(theta, replicas, seed)
        loss, leaves, alpha, neff = self._loss(merged, q, target_counts)
        loss.sum().backward()
        K = loss.shape[0]
        grad = np.zeros((K, len(self.space)))
        for s, lv in zip(merged, leaves):
            for k, leaf in lv.items():
                if leaf.grad is not None:
                    grad[:, LUND_COLUMNS] += np.einsum("kb,kbl->kl", leaf.grad.numpy().reshape(K, -1),
                                                       s["d" + k].reshape(K, -1, len(LUND_COLUMNS)))
        return loss.detach(), grad, alpha, neff, merged

    def loss_and_grad(self, theta, base_mult=None, target_mult=None, chunk: int = 8) -> Evaluation:
        """Loss [K] and d loss / d theta [K, P] at K points, with alpha, N_eff/N and the mean weight per base."""
        if base_mult is not None or target_mult is not None:
            raise ParameterError("bootstrap refits are not available on a Dask cluster; run 'fastrsa bootstrap' "
                                 "in one process")
        th = self.as_points(theta).detach().cpu().numpy()
        loss, grad, alpha, neff, merged = self._evaluate(th, self.target_weights)
        sizes = torch.tensor(self.sizes, dtype=torch.float64)
        mean_w = torch.stack([torch.from_numpy(np.exp(s["m"]) * s["Z"]) for s in merged], -1) / sizes
        return Evaluation(loss, torch.from_numpy(grad), alpha, neff / sizes, mean_w)

    def replica_gradients(self, theta, idx: list, replicas: int, seed: int, chunk: int = 8) -> np.ndarray:
        """The loss gradient [replicas, len(idx)] at theta under bootstrap replicas (module docstring)."""
        th = self.as_points(theta).detach().cpu().numpy()[:1]
        tm = target_multiplicities(seed, len(self.target), replicas)
        _, grad, _, _, _ = self._evaluate(th, self.target_weights * tm, replicas, seed, tm)
        return grad[:, idx]

    def diagnostics_at(self, theta) -> dict:
        """Mean weight (and its error) and N_eff/N of each base at one point; the best-covering base's too."""
        merged = self._gather(self.as_points(theta).detach().cpu().numpy()[:1])
        per_base, neffs = [], []
        for s, n in zip(merged, self.sizes):
            m, Z, Q = float(s["m"][0]), float(s["Z"][0]), float(s["Q"][0])
            mean = math.exp(m) * Z / n
            mean_sq = math.exp(2 * m) * Q / n
            err = math.sqrt(max(mean_sq - mean ** 2, 0.0) / max(n - 1, 1))
            neffs.append(Z * Z / Q)
            per_base.append({"mean_weight": mean, "mean_weight_err": err, "n_eff_frac": Z * Z / Q / n})
        alpha = [x / sum(neffs) for x in neffs]
        best = int(np.argmax(alpha))
        return {"mean_weight": per_base[best]["mean_weight"], "mean_weight_err": per_base[best]["mean_weight_err"],
                "n_eff_frac": per_base[best]["n_eff_frac"], "per_base": per_base, "alpha": alpha, "best_base": best}

