"""Parameters: the one `ParameterSpace` of the fit parameters, and the base point of a dataset.

`SPACE` owns every fit parameter's name, Pythia setting, unit, domain, default, the field of
`BaseParams` that holds its base value, and the weight engine (and kernel column) that consumes it.
It holds the one validator (`SPACE.check`) and the one clamp (`SPACE.clamp`); the CLI, the fit, the
weight op and the kernels' callers all go through it. A new parameter is one `SPACE.register(...)`.

`BaseParams` is every Pythia setting the weights depend on; it is stored with every dataset (see
docs/format.md), so that a dataset can be reweighted without access to the run that made it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import ParameterError

# The RSA paper's base point (arXiv:2411.02194) and Pythia's default (Monash) point.
PAPER_BASE = {"a": 0.72, "b": 0.88, "sigma": 0.335}
PYTHIA_DEFAULT = {"a": 0.68, "b": 0.98, "sigma": 0.335}


@dataclass(frozen=True)
class Parameter:
    """One fit parameter. Its domain is lower <= x (or lower < x when `open_lower`), x <= upper.

    `floor` is where the optimizer's clamp puts a value that stepped below the domain (for an open
    lower bound, a small number inside it). `engine` names the weight engine that consumes the
    parameter and `column` its column in that engine's kernel theta.
    """

    name: str
    setting: str
    unit: str
    lower: float
    open_lower: bool
    floor: float
    default: float
    base_field: str
    engine: str
    column: int
    description: str
    upper: float = math.inf
    typical: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} [{self.unit}]" if self.unit else self.name

    def domain(self) -> str:
        if math.isinf(self.upper):
            return f"{self.name} {'>' if self.open_lower else '>='} {self.lower:g}"
        return f"{self.lower:g} {'<' if self.open_lower else '<='} {self.name} <= {self.upper:g}"

    def contains(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        ok = np.isfinite(x) & ((x > self.lower) if self.open_lower else (x >= self.lower))
        return ok & (x <= self.upper)


class ParameterSpace:
    """An ordered set of fit parameters; a theta vector has one column per parameter, in this order."""

    def __init__(self, params=()):
        self._params: list[Parameter] = []
        for p in params:
            self.register(p)

    def register(self, p: Parameter) -> Parameter:
        if p.name in self.names:
            raise ParameterError(f"parameter {p.name!r} is registered already")
        self._params.append(p)
        return p

    # --- vocabulary --------------------------------------------------------------------------------
    @property
    def names(self) -> tuple:
        return tuple(p.name for p in self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __iter__(self):
        return iter(self._params)

    def __getitem__(self, name: str) -> Parameter:
        for p in self._params:
            if p.name == name:
                return p
        raise ParameterError(f"parameter {name!r} does not exist; known: {', '.join(self.names)}")

    def index(self, name: str) -> int:
        return self.names.index(self[name].name)

    def indices(self, names) -> list[int]:
        return [self.index(n) for n in names]

    def parse_names(self, text, what: str = "params") -> list[str]:
        """'a,b' (or a list) -> validated names in the space's order."""
        names = [n.strip() for n in text.split(",") if n.strip()] if isinstance(text, str) else list(text)
        bad = [n for n in names if n not in self.names]
        if bad or not names:
            raise ParameterError(f"{what}: {bad or 'none'}; choose from {', '.join(self.names)} "
                                 "(e.g. --params a,b)")
        return [n for n in self.names if n in names]

    def columns(self, engine: str) -> list[int]:
        """Indices into theta of the parameters `engine` consumes, ordered by its kernel column."""
        mine = sorted((p for p in self._params if p.engine == engine), key=lambda p: p.column)
        if [p.column for p in mine] != list(range(len(mine))):
            raise ParameterError(f"engine {engine!r}: kernel columns {[p.column for p in mine]} are not 0..n-1")
        return [self.index(p.name) for p in mine]

    # --- points ------------------------------------------------------------------------------------
    def base_point(self, base: "BaseParams") -> tuple:
        return tuple(float(getattr(base, p.base_field)) for p in self._params)

    def defaults(self) -> tuple:
        return tuple(p.default for p in self._params)

    def format_point(self, theta, digits: int = 4) -> str:
        return ", ".join(f"{n}={float(v):.{digits}f}" for n, v in zip(self.names, theta))

    # --- the one validator and the one clamp ----------------------------------------------------------
    def check(self, theta, where: str = "theta", names=None) -> None:
        """Raise ParameterError unless every row of theta [..., P] lies in the model's domain.

        `names` gives the parameters of theta's columns (default: the whole space, in order). Accepts
        numbers, sequences, numpy arrays and torch tensors (any device)."""
        names = self.names if names is None else tuple(names)
        if hasattr(theta, "detach"):
            theta = theta.detach().to("cpu").double().numpy()
        try:
            t = np.asarray(theta, np.float64)
        except (TypeError, ValueError):
            raise ParameterError(f"{where}: {theta!r} is not a vector of numbers "
                                 f"({', '.join(names)})") from None
        if t.ndim == 0 or t.shape[-1] != len(names):
            raise ParameterError(f"{where}: shape {t.shape}; expected [{len(names)}] or [K, {len(names)}] "
                                 f"(columns {', '.join(names)})")
        t = t.reshape(-1, len(names))
        if t.shape[0] == 0:
            raise ParameterError(f"{where}: K = 0 parameter points")
        for j, n in enumerate(names):
            p = self[n]
            ok = p.contains(t[:, j])
            if not ok.all():
                bad = float(t[~ok][0, j])
                if not math.isfinite(bad):
                    raise ParameterError(f"{where}: {n} = {bad} must be a finite number (not NaN or inf)")
                raise ParameterError(f"{where}: {n} = {bad} outside the model ({p.domain()}; {p.setting}"
                                     f"{' [' + p.unit + ']' if p.unit else ''}); use e.g. {p.typical or p.default}")

    def clamp(self, x, names):
        """Clamp values of the parameters `names` (last axis of torch tensor x) into their domain."""
        import torch
        lo = torch.tensor([self[n].floor for n in names], dtype=x.dtype, device=x.device)
        hi = torch.tensor([self[n].upper for n in names], dtype=x.dtype, device=x.device)
        return torch.minimum(torch.maximum(x, lo), hi)


# Domains are Pythia 8.317's allowed ranges of the settings (Settings::parm min/max; a value outside them is
# one Pythia would not generate, so a weight to it compares with nothing), except sigma's lower end: below
# 0.01 GeV the pT weight of an event underflows (log w ~ -(sigma_B/sigma)^2 sum pT2 / 2), so the model is
# refused there rather than returning -inf with an infinite gradient. tests/test_architecture.py checks the
# ranges against the installed Pythia.
SPACE = ParameterSpace([
    Parameter("a", "StringZ:aLund", "", 0.0, False, 0.0, 0.68, "a", "lund", 0,
              "Lund a: the (1-z)^a term of the fragmentation function", upper=2.0, typical="a value in [0, 2]"),
    Parameter("b", "StringZ:bLund", "GeV^-2", 0.2, False, 0.2, 0.98, "b", "lund", 1,
              "Lund b: the exp(-b mT^2/z) term", upper=2.0, typical="0.2-2"),
    Parameter("sigma", "StringPT:sigma", "GeV", 0.01, False, 0.01, 0.335, "sigma", "lund", 2,
              "Gaussian width of the hadrons' transverse momenta", upper=1.0, typical="0.335"),
])
PARAMS = SPACE.names        # the fit parameters' names, in theta's column order

# The flavour parameters of the string model (Pythia's StringFlav). Their weights come from the per-event
# counts of flavour choices that Pythia keeps with VariationFrag:flav = on (fastrsa.hadronization.flavmath);
# their base values are stored with a dataset's flavour records (docs/format.md), not in BaseParams.
# Lower ends: Pythia allows 0, where the weight to or from the point is 0 or undefined (Pythia divides by
# the base value), so 0 itself is left out of the model.
FLAVOUR_PARAMS = (
    Parameter("rho", "StringFlav:probStoUD", "", 0.0, True, 1e-6, 0.217, "rho", "flavour", 0,
              "strangeness suppression s/u of string-break quarks", upper=1.0, typical="0.1-0.4"),
    Parameter("xi", "StringFlav:probQQtoQ", "", 0.0, True, 1e-6, 0.081, "xi", "flavour", 1,
              "diquark suppression qq/q at string breaks", upper=1.0, typical="0.04-0.15"),
    Parameter("x", "StringFlav:probSQtoQQ", "", 0.0, True, 1e-6, 0.915, "x", "flavour", 2,
              "extra suppression of strange diquarks (su/ud over s/u)", upper=1.0, typical="0.5-1"),
    Parameter("y", "StringFlav:probQQ1toQQ0", "", 0.0, True, 1e-6, 0.0275, "y", "flavour", 3,
              "suppression of spin-1 diquarks relative to spin 0 (spin factor 3 apart)", upper=1.0,
              typical="0.01-0.1"),
)
# Every parameter the weight op (fastrsa.lund_log_weights) takes: the fit's SPACE plus the flavour ones.
WEIGHT_SPACE = ParameterSpace(list(SPACE) + list(FLAVOUR_PARAMS))

# The shower's scale: Lambda sets the running coupling and the cut-off of the Discrete-QCD cascade
# (fastrsa.shower). Its events move with it (Taylor coefficients) instead of being reweighted.
SHOWER_SPACE = ParameterSpace([
    Parameter("lambda", "DQCD:Lambda", "GeV", 0.05, False, 0.05, 0.4, "lam", "shower", 0,
              "QCD scale of the shower: running coupling and cut-off", upper=2.0, typical="0.2-0.6"),
])


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
        SPACE.check(SPACE.base_point(self), where="base parameters")
        check_z_head(self.z_head)

    @property
    def theta(self) -> tuple:
        """The base point in the ParameterSpace's coordinates."""
        return SPACE.base_point(self)

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


def check_z_head(z_head) -> None:
    try:
        z = float(z_head)
    except (TypeError, ValueError):
        raise ParameterError(f"zhead = {z_head!r} is not a number (VariationFrag:zHead)") from None
    if not math.isfinite(z) or z < 1:
        raise ParameterError(f"zhead = {z} must be >= 1 (VariationFrag:zHead oversamples the proposal); "
                             "use 10 for reweighting far from the base point")
    if z > 100:
        raise ParameterError(f"zhead = {z} must be <= 100 (Pythia's allowed range)")


# SU(6) weights of a baryon's octet and decuplet members per diquark spin-flavour case (Pythia's StringFlav
# baryonCGOct / baryonCGDec; physics constants of the quark model).
_BARYON_CG_OCT = (0.75, 0.5, 0.0, 1.0 / 6.0, 1.0 / 12.0, 1.0 / 6.0)
_BARYON_CG_DEC = (0.0, 0.0, 1.0, 1.0 / 3.0, 2.0 / 3.0, 1.0 / 3.0)


@dataclass(frozen=True)
class FlavourBase:
    """The flavour settings a dataset's flavour records were made with (names follow Pythia's settings).

    `decuplet_sup` (StringFlav:decupletSup) is not reweighted; it fixes the ratios c1, c2 of baryon SU(6)
    weight maxima that enter the derived diquark ratios (fastrsa.hadronization.flavmath)."""

    rho: float = 0.217            # StringFlav:probStoUD
    xi: float = 0.081             # StringFlav:probQQtoQ
    x: float = 0.915              # StringFlav:probSQtoQQ
    y: float = 0.0275             # StringFlav:probQQ1toQQ0
    decuplet_sup: float = 1.0     # StringFlav:decupletSup
    popcorn_rate: float | None = None  # StringFlav:popcornRate (not reweighted; None: not recorded)

    @property
    def theta(self) -> tuple:
        """(rho, xi, x, y): the flavour engine's columns."""
        return (self.rho, self.xi, self.x, self.y)

    def cg_ratios(self) -> tuple:
        """(c1, c2) = max SU(6) weight of (spin-1 ud, uu) diquarks over that of spin-0 ud."""
        s = [o + self.decuplet_sup * d for o, d in zip(_BARYON_CG_OCT, _BARYON_CG_DEC)]
        m0, m2, m4 = max(s[0], s[1]), max(s[2], s[3]), max(s[4], s[5])
        return m4 / m0, m2 / m0

    @property
    def popcorn(self) -> bool:
        """True unless popcorn baryon production is known to be off (StringFlav:popcornRate = 0): with it
        on, Pythia's flavour weights do not close (docs/weights.md, 'Popcorn')."""
        return self.popcorn_rate is None or self.popcorn_rate > 0

    def check_reweightable(self, where: str = "flavour base") -> None:
        """A weight away from this base divides by each base value: all four must lie inside the model."""
        WEIGHT_SPACE.check(self.theta, where=where, names=[p.name for p in FLAVOUR_PARAMS])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FlavourBase":
        names = {f.name for f in fields(cls)}
        missing = names - set(d) - {"popcorn_rate"}
        if missing:
            raise ParameterError(f"flavour base: missing {sorted(missing)}; the dataset's metadata is incomplete")
        return cls(**{k: (None if d.get(k) is None else float(d[k])) for k in names})
