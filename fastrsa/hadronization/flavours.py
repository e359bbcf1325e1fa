"""Flavour dependence of the Lund shape, per trial, exactly as Pythia's StringZ::initFlav/initShape.

Each trial gets a small integer class from (idOld, idNew); a table maps the class to the shifts
    A = a + a_off,   C = c0 + kc * b,   B = b * mT2
for the dataset's base settings (aExtraSQuark, aExtraDiquark, useOldAExtra, rFactC, rFactB, quark
masses). Light quarks: a_off = 0, c0 = 1, kc = 0. Heavier-than-b fragmenting flavours are refused.
"""
from __future__ import annotations

import numpy as np

from ..errors import DatasetError
from ..params import BaseParams

N_CLASSES = 48  # old s, new s, old diquark, new diquark (2^4) x fragmenting flavour {light, c, b}


def _is_diquark(a: np.ndarray) -> np.ndarray:
    return (a > 1000) & (a < 10000)


def flavour_class(id_old: np.ndarray, id_new: np.ndarray) -> np.ndarray:
    """int8 class per trial (see module docstring)."""
    o, n = np.abs(id_old.astype(np.int64)), np.abs(id_new.astype(np.int64))
    o_qq, n_qq = _is_diquark(o), _is_diquark(n)
    frag = np.where(o_qq, np.maximum(o // 1000, (o // 100) % 10), o)
    if np.any(frag > 5):
        bad = int(id_old[np.argmax(frag > 5)])
        raise DatasetError(f"id_old: trial with fragmenting flavour {bad} heavier than b; Pythia's "
                           "rFactH shape is not reweighted by fastrsa")
    heavy = np.where(frag == 4, 1, np.where(frag == 5, 2, 0))
    cls = (o == 3) + 2 * (n == 3) + 4 * o_qq + 8 * n_qq + 16 * heavy
    return cls.astype(np.int8)


def flavour_table(base: BaseParams) -> np.ndarray:
    """float64 [N_CLASSES, 3]: (a_off, c0, kc) per class for the base settings."""
    t = np.zeros((N_CLASSES, 3))
    for cls in range(N_CLASSES):
        o_s, n_s, o_qq, n_qq = cls & 1, (cls >> 1) & 1, (cls >> 2) & 1, (cls >> 3) & 1
        heavy = cls >> 4
        if base.use_old_aextra:   # Pythia's default in 8.317: the shift follows the *old* flavour
            a_off = base.a_extra_squark * o_s + base.a_extra_diquark * o_qq
        else:
            a_off = base.a_extra_squark * n_s + base.a_extra_diquark * n_qq
        c0 = 1.0 + base.a_extra_squark * (n_s - o_s) + base.a_extra_diquark * (n_qq - o_qq)
        kc = {0: 0.0, 1: base.r_fact_c * base.m_c ** 2, 2: base.r_fact_b * base.m_b ** 2}[heavy]
        t[cls] = (a_off, c0, kc)
    return t
