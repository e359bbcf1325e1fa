"""An independent float64 reference for event weights, written from Pythia's formulas in linear
space with plain Python floats (no numba, no log-space tricks). Slow; for tests only."""
from __future__ import annotations

import math

import numpy as np

from ..params import BaseParams


def _shape(a, b, base: BaseParams, id_old, id_new, mt2):
    io, inn = abs(int(id_old)), abs(int(id_new))
    old_s, new_s = io == 3, inn == 3
    old_qq, new_qq = 1000 < io < 10000, 1000 < inn < 10000
    frag = max(io // 1000, (io // 100) % 10) if old_qq else io
    if base.use_old_aextra:
        big_a = a + (base.a_extra_squark if old_s else 0.0) + (base.a_extra_diquark if old_qq else 0.0)
    else:
        big_a = a + (base.a_extra_squark if new_s else 0.0) + (base.a_extra_diquark if new_qq else 0.0)
    c = 1.0
    if old_s:
        c -= base.a_extra_squark
    if new_s:
        c += base.a_extra_squark
    if old_qq:
        c -= base.a_extra_diquark
    if new_qq:
        c += base.a_extra_diquark
    if frag == 4:
        c += base.r_fact_c * b * base.m_c ** 2
    if frag == 5:
        c += base.r_fact_b * b * base.m_b ** 2
    return big_a, b * mt2, c


def _zmax(a, b, c):
    if a < 0.02:
        return b / c if c > b else 1.0
    if abs(a - c) < 0.01:
        return b / (b + c)
    zm = 0.5 * (b + c - math.sqrt((b - c) ** 2 + 4 * a * b)) / (c - a)
    if zm > 0.9999 and b > 100:
        zm = min(zm, 1 - a / b)
    return zm


def lund_f(a, b, c, z):
    zm = _zmax(a, b, c)
    e = b * (1 / zm - 1 / z) + c * math.log(zm / z)
    if a >= 0.02:
        e += a * math.log((1 - z) / (1 - zm))
    return math.exp(max(-50.0, min(50.0, e)))


def event_weight(theta, base: BaseParams, z, fprel, mt2, id_old, id_new, pt2) -> float:
    """Weight of one event at theta = (a, b, sigma) relative to `base` (linear, not log)."""
    a, b, sigma = theta
    w = 1.0
    for zt, fp, m, io, inn in zip(z, fprel, mt2, id_old, id_new):
        fn = lund_f(*_shape(a, b, base, io, inn, abs(m)), zt)
        fo = lund_f(*_shape(base.a, base.b, base, io, inn, abs(m)), zt)
        r = min(fn / fo, base.z_head)
        if m > 0:
            w *= r
        else:
            w *= (1 - fo * r / (fp * base.z_head)) / (1 - fo / (fp * base.z_head))
    ratio = base.sigma / sigma
    for p in pt2:
        w *= ratio ** 2 * math.exp(-0.5 * p * (ratio ** 2 - 1))
    return w


def dataset_weights(ds, theta, n: int | None = None) -> np.ndarray:
    fv = ds.flat(groups=("trials", "breaks"))
    to, bo = fv.offsets["trials"], fv.offsets["breaks"]
    n = len(fv) if n is None else n
    out = np.empty(n)
    for i in range(n):
        s, e = to[i], to[i + 1]
        out[i] = event_weight(theta, ds.base, fv["z"][s:e], fv["fprel"][s:e], fv["mt2"][s:e], fv["id_old"][s:e],
                              fv["id_new"][s:e], fv["pt2"][bo[i]:bo[i + 1]])
    return out
