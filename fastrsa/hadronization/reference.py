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


# --- flavour ---------------------------------------------------------------------------------------------

def flavour_ratios(rho, xi, x, y, decuplet_sup=1.0) -> list:
    """Pythia's nine flavour parameters (the q -> B Bbar diquark ratios d0, d1, d2, d3, d6, then xi, rho, x,
    y), built as StringFlav builds them: half-tunnelling factors times spin-vertex factors per diquark type,
    times the types' maximal SU(6) weights. Same order as pythia8mc.FlavorVariations.parms."""
    oct_ = (0.75, 0.5, 0.0, 1 / 6, 1 / 12, 1 / 6)
    dec = (0.0, 0.0, 1.0, 1 / 3, 2 / 3, 1 / 3)
    cg = [o + decuplet_sup * d for o, d in zip(oct_, dec)]
    cg_max = {"ud0": max(cg[0], cg[1]), "ud1": max(cg[4], cg[5]), "uu1": max(cg[2], cg[3])}
    kind = {"ud1": "ud1", "uu1": "uu1", "us0": "ud0", "su0": "ud0", "us1": "ud1", "su1": "ud1", "ss1": "uu1"}
    sr, sx, sy = math.sqrt(rho), math.sqrt(x), math.sqrt(y)
    half = {"ud1": sy, "uu1": sy, "us0": sx, "su0": sr * sx, "us1": sy * sx, "su1": sy * sr * sx,
            "ss1": sr * sx * sx * sy}
    vertex = {"ud1": 3.0, "uu1": 6.0, "us0": rho, "su0": 1.0, "us1": 3.0 * rho, "su1": 3.0, "ss1": 6.0 * rho}
    q = {k: half[k] * vertex[k] * half[k] * cg_max[kind[k]] / cg_max["ud0"] for k in half}
    d0 = (2 * (q["su0"] + q["su1"]) + q["ss1"]) / (1 + q["ud1"] + q["uu1"] + q["us0"] + q["us1"])
    d1 = 2 * (q["us0"] + q["us1"]) / (1 + q["ud1"] + q["uu1"])
    d2 = q["ss1"] / (q["su0"] + q["su1"])
    d3 = q["uu1"] / (1 + q["ud1"] + q["uu1"])
    return [d0, d1, d2, d3, q["ud1"], xi, rho, x, y]


def flavour_event_weight(theta, base, counts) -> float:
    """Flavour weight of one event at theta = (rho, xi, x, y) relative to `base` (a FlavourBase), from its
    13 flavour counters, as a product of ratios of the probabilities of every counted choice."""
    p = flavour_ratios(*theta, decuplet_sup=base.decuplet_sup)
    q = flavour_ratios(base.rho, base.xi, base.x, base.y, decuplet_sup=base.decuplet_sup)
    factor = [(1 + q[5]) / (1 + p[5]), (2 + q[6]) / (2 + p[6]), p[6] / q[6],
              p[5] / q[5] * (2 + q[0]) / (2 + p[0]), p[0] / q[0], (2 + q[1]) / (2 + p[1]), p[1] / q[1],
              (2 + q[2]) / (2 + p[2]), p[2] / q[2], p[3] / q[3], (1 - p[3]) / (1 - q[3]),
              (1 + q[4]) / (1 + p[4]), p[4] / q[4]]
    w = 1.0
    for f, n in zip(factor, counts):
        w *= f ** int(n)
    return w


def dataset_flavour_weights(ds, theta, n: int | None = None) -> np.ndarray:
    """Flavour weights of the first n events of a dataset with flavour records."""
    from ..store.flavour import dataset_flavour_base  # noqa: PLC0415 (tests only)
    counts = ds.flat(groups=("flavour",))["flav_breaks"].reshape(-1, 13)
    base = dataset_flavour_base(ds)
    n = len(counts) if n is None else n
    return np.array([flavour_event_weight(theta, base, counts[i]) for i in range(n)])
