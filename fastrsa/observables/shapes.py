"""Event shapes of the hadrons (`h.hadrons()`; format-2 datasets also store leptons and photons):
thrust (exact) and sphericity."""
from __future__ import annotations

import math

import numba
import numpy as np

from ..store.hadrons import HadronSample
from .registry import register, register_group


@numba.njit(cache=True, parallel=True)
def _thrust(offsets, px, py, pz, out):
    n_ev = len(offsets) - 1
    for i in numba.prange(n_ev):
        lo, hi = offsets[i], offsets[i + 1]
        n = hi - lo
        norm = 0.0
        for k in range(lo, hi):
            norm += math.sqrt(px[k] ** 2 + py[k] ** 2 + pz[k] ** 2)
        if n == 0 or norm == 0.0:
            out[i] = 1.0
            continue
        best = 0.0
        # Candidate axes along each hadron (covers n < 3 and collinear events).
        for j in range(lo, hi):
            sx = sy = sz = 0.0
            for k in range(lo, hi):
                if px[k] * px[j] + py[k] * py[j] + pz[k] * pz[j] >= 0.0:
                    sx += px[k]; sy += py[k]; sz += pz[k]
                else:
                    sx -= px[k]; sy -= py[k]; sz -= pz[k]
            best = max(best, sx * sx + sy * sy + sz * sz)
        # The thrust axis splits the event by a plane; that plane can be turned until it touches two
        # hadrons, so trying every pair's plane (with both signs for the two on it) finds the maximum.
        for j in range(lo, hi):
            for l in range(j + 1, hi):
                nx = py[j] * pz[l] - pz[j] * py[l]
                ny = pz[j] * px[l] - px[j] * pz[l]
                nz = px[j] * py[l] - py[j] * px[l]
                if nx == 0.0 and ny == 0.0 and nz == 0.0:
                    continue
                sx = sy = sz = 0.0
                for k in range(lo, hi):
                    if k == j or k == l:
                        continue
                    if px[k] * nx + py[k] * ny + pz[k] * nz >= 0.0:
                        sx += px[k]; sy += py[k]; sz += pz[k]
                    else:
                        sx -= px[k]; sy -= py[k]; sz -= pz[k]
                for sj in (-1.0, 1.0):
                    for sl in (-1.0, 1.0):
                        tx = sx + sj * px[j] + sl * px[l]
                        ty = sy + sj * py[j] + sl * py[l]
                        tz = sz + sj * pz[j] + sl * pz[l]
                        best = max(best, tx * tx + ty * ty + tz * tz)
        out[i] = math.sqrt(best) / norm


@numba.njit(cache=True)
def _momentum_tensors(offsets, px, py, pz, out):
    for i in range(len(offsets) - 1):
        s = 0.0
        t = np.zeros((3, 3))
        for k in range(offsets[i], offsets[i + 1]):
            p = (px[k], py[k], pz[k])
            for x in range(3):
                for y in range(3):
                    t[x, y] += p[x] * p[y]
            s += px[k] ** 2 + py[k] ** 2 + pz[k] ** 2
        if s > 0.0:
            t /= s
        out[i] = t


@register("thrust", "event", "thrust T = max_n sum|p.n| / sum|p| (exact: every partition by a plane "
                              "through two hadrons)")
def thrust(h: HadronSample) -> np.ndarray:
    return thrust_of(h.hadrons())


def thrust_of(h: HadronSample) -> np.ndarray:
    """Thrust of every particle the sample holds (callers choose the particles)."""
    out = np.empty(len(h))
    _thrust(h.offsets, h.px, h.py, h.pz, out)
    return out


@register("sphericity", "event", "S = 3/2 (l2 + l3), eigenvalues of sum p_a p_b / sum |p|^2")
def sphericity(h: HadronSample) -> np.ndarray:
    h = h.hadrons()
    t = np.empty((len(h), 3, 3))
    _momentum_tensors(h.offsets, h.px, h.py, h.pz, t)
    lam = np.linalg.eigvalsh(t)            # ascending
    return 1.5 * (lam[:, 0] + lam[:, 1])


register_group("shapes", ("thrust", "sphericity"))
