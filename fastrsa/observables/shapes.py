"""Event shapes of the hadrons (`h.hadrons()`; format-2 datasets also store leptons and photons):
thrust (exact) and sphericity."""
from __future__ import annotations

import numba
import numpy as np

from ..eventshapes import thrust_kernel
from ..store.hadrons import HadronSample
from .registry import register, register_group


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
    thrust_kernel(h.offsets, h.px, h.py, h.pz, out, np.empty(0), False)
    return out


@register("sphericity", "event", "S = 3/2 (l2 + l3), eigenvalues of sum p_a p_b / sum |p|^2")
def sphericity(h: HadronSample) -> np.ndarray:
    h = h.hadrons()
    t = np.empty((len(h), 3, 3))
    _momentum_tensors(h.offsets, h.px, h.py, h.pz, t)
    lam = np.linalg.eigvalsh(t)            # ascending
    return 1.5 * (lam[:, 0] + lam[:, 1])


register_group("shapes", ("thrust", "sphericity"))
