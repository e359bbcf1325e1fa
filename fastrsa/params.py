"""Lund-model parameters: the base point a dataset was generated at, and validation of any point.

The weights depend on exactly these settings of Pythia; they are stored with every dataset
(see docs/format.md) so that a dataset can be reweighted without access to the run that made it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .errors import ParameterError

# The RSA paper's base point (arXiv:2411.02194) and Pythia's default (Monash) point.
PAPER_BASE = {"a": 0.72, "b": 0.88, "sigma": 0.335}
PYTHIA_DEFAULT = {"a": 0.68, "b": 0.98, "sigma": 0.335}


@dataclass(frozen=True)
class BaseParams:
    """Every Pythia setting the fragmentation weights depend on (names follow Pythia's settings)."""

    a: float = 0.72               # StringZ:aLund
    b: float = 0.88               # StringZ:bLund [GeV^-2]
    sigma: float = 0.335          # StringPT:sigma [GeV]
    z_head: float = 10.0          # VariationFrag:zHead
    r_fact_c: float = 1.32        # StringZ:rFactC
    r_fact_b: float = 0.855       # StringZ:rFactB
    r_fact_h: float = 1.0         # StringZ:rFactH (not reweightable; heavier-than-b strings are refused)
    a_extra_squark: float = 0.0   # StringZ:aExtraSQuark
    a_extra_diquark: float = 0.97  # StringZ:aExtraDiquark
    use_old_aextra: bool = True   # StringZ:useOldAExtra (Pythia 8.317 default: on)
    m_c: float = 1.5              # ParticleData m0(4), enters c through rFactC * b * m_c^2
    m_b: float = 4.8              # ParticleData m0(5)

    def __post_init__(self):
        check_theta(self.a, self.b, self.sigma, where="base parameters")
        check_z_head(self.z_head)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BaseParams":
        names = {f.name for f in fields(cls)}
        missing = names - set(d)
        if missing:
            raise ParameterError(f"base parameters: missing {sorted(missing)}; regenerate the dataset "
                                 "with this fastrsa version")
        return cls(**{k: d[k] for k in names})

    def same_as(self, other: "BaseParams", rtol: float = 0.0) -> bool:
        for f in fields(self):
            x, y = getattr(self, f.name), getattr(other, f.name)
            if isinstance(x, bool) or rtol == 0.0:
                if x != y:
                    return False
            elif not math.isclose(x, y, rel_tol=rtol):
                return False
        return True


def _finite(name: str, value, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{where}: {name} = {value!r} is not a number") from None
    if not math.isfinite(v):
        raise ParameterError(f"{where}: {name} = {value!r} must be finite")
    return v


def check_theta(a, b, sigma, where: str = "theta") -> None:
    """Raise ParameterError unless a >= 0, b > 0, sigma > 0 and all finite (the model's domain)."""
    a = _finite("a", a, where)
    b = _finite("b", b, where)
    sigma = _finite("sigma", sigma, where)
    if a < 0:
        raise ParameterError(f"{where}: a = {a} must be >= 0 (StringZ:aLund); use a value in [0, 2]")
    if b <= 0:
        raise ParameterError(f"{where}: b = {b} must be > 0 (StringZ:bLund, GeV^-2); use e.g. 0.2-2")
    if sigma <= 0:
        raise ParameterError(f"{where}: sigma = {sigma} must be > 0 (StringPT:sigma, GeV); use e.g. 0.335")


def check_z_head(z_head) -> None:
    z = _finite("zhead", z_head, "VariationFrag:zHead")
    if z < 1:
        raise ParameterError(f"zhead = {z} must be >= 1 (VariationFrag:zHead oversamples the proposal); "
                             "use 10 for reweighting far from the base point")
    if z > 100:
        raise ParameterError(f"zhead = {z} must be <= 100 (Pythia's allowed range)")
