"""Counting and single-hadron observables. Frames: both setups store hadrons in the centre-of-mass
frame with the string / beam axis along z. Each is computed on the sample's hadrons (`h.hadrons()`):
format-2 datasets also store leptons and photons, which these hadron-level observables leave out."""
from __future__ import annotations

import numpy as np

from ..store.hadrons import HadronSample
from .registry import register, register_group


def charge3(pdg: np.ndarray) -> np.ndarray:
    """Three times the electric charge from PDG codes (quark content; hadrons and leptons)."""
    pdg = np.asarray(pdg, np.int64)
    a = np.abs(pdg)
    q = np.array([0, -1, 2, -1, 2, -1, 2], np.int64)          # 3 x charge of d u s c b t (index 1..6)
    n1, n2, n3 = (a // 1000) % 10, (a // 100) % 10, (a // 10) % 10
    baryon = n1 > 0
    meson = ~baryon & (n2 > 0)
    ch = np.zeros_like(a)
    ch[baryon] = q[np.minimum(n1[baryon], 6)] + q[np.minimum(n2[baryon], 6)] + q[np.minimum(n3[baryon], 6)]
    m2, m3 = np.minimum(n2[meson], 6), np.minimum(n3[meson], 6)
    mc = q[m2] - q[m3]
    # Meson codes list the heavier quark first; when it is down-type the particle holds its antiquark.
    ch[meson] = np.where(m2 % 2 == 1, -mc, mc)
    lepton = (a >= 11) & (a <= 16) & (a % 2 == 1)
    ch[lepton] = -3
    ch[a == 24] = 3
    return np.sign(pdg) * ch


def _n_hadrons(h: HadronSample) -> np.ndarray:
    return np.diff(h.offsets).astype(np.float64)


@register("multiplicity", "event", "number of final hadrons")
def multiplicity(h: HadronSample) -> np.ndarray:
    return _n_hadrons(h.hadrons())


@register("charged_multiplicity", "event", "number of charged final hadrons (charge from the PDG code)")
def charged_multiplicity(h: HadronSample) -> np.ndarray:
    h = h.hadrons()
    charged = (charge3(h.pdg) != 0).astype(np.float64)
    v = np.add.reduceat(charged, h.offsets[:-1]) if len(charged) else np.zeros(len(h))
    v[_n_hadrons(h) == 0] = 0.0
    return v


@register("pt", "hadron", "hadron transverse momentum to the string / beam axis [GeV]")
def pt(h: HadronSample) -> np.ndarray:
    h = h.hadrons()
    return np.hypot(h.px, h.py)


@register("rapidity", "hadron", "hadron rapidity y along the string / beam axis")
def rapidity(h: HadronSample) -> np.ndarray:
    h = h.hadrons()
    # Guard E = |pz| (massless along the axis) against log(0).
    num = np.maximum(h.e + h.pz, 1e-300)
    den = np.maximum(h.e - h.pz, 1e-300)
    return 0.5 * np.log(num / den)


@register("x", "hadron", "hadron momentum fraction x = 2|p| / E_cm")
def x(h: HadronSample) -> np.ndarray:
    h = h.hadrons()
    p = np.sqrt(h.px ** 2 + h.py ** 2 + h.pz ** 2)
    return 2.0 * p / h.e_cm
register_group("spectra", ("pt", "rapidity", "x"))
