"""The `Measurement`: one measured table (a histogram or a set of single numbers) with its errors.

Errors are kept as the two one-sided magnitudes the source gives (``err_minus``, ``err_plus``, both >= 0),
and, where the source splits them (HEPData ``stat``/``sys`` columns), as named components too. Bins are
kept as ``lo``/``hi`` arrays; ``edges`` gives the usual n+1 array when the bins are contiguous.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import DatasetError

_SIDES = ("sym", "minus", "plus", "max")


def _vec(name: str, path: str, a, n: int | None) -> np.ndarray:
    try:
        out = np.array(a, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DatasetError(f"measurement {path!r}: field {name!r} is not a list of numbers; "
                           f"pass numbers only") from None
    if n is not None and out.shape[0] != n:
        raise DatasetError(f"measurement {path!r}: field {name!r} has {out.shape[0]} entries, "
                           f"values has {n}; give one per bin")
    return out


@dataclass(frozen=True, eq=False)
class Measurement:
    """A measured table: per bin ``lo``/``hi`` (x range), ``x`` (the point's x as given), ``values``,
    ``err_minus``/``err_plus`` (total one-sided error magnitudes, >= 0).

    ``components`` maps an error source (``"stat"``, ``"sys"``, ...) to its ``(minus, plus)`` magnitudes;
    ``err_minus``/``err_plus`` are their sum in quadrature. ``cov`` is an optional full covariance matrix
    (n x n) from the source; without one `covariance()` is diagonal. ``bin_labels`` names the bins of a
    table of single numbers (e.g. the particle species of a table of mean multiplicities).
    """

    path: str
    lo: np.ndarray
    hi: np.ndarray
    values: np.ndarray
    err_minus: np.ndarray
    err_plus: np.ndarray
    x: np.ndarray | None = None
    components: dict = field(default_factory=dict)
    cov: np.ndarray | None = None
    x_label: str = ""
    y_label: str = ""
    title: str = ""
    x_units: str = ""
    y_units: str = ""
    bin_labels: tuple | None = None
    source: str = ""

    def __post_init__(self):
        p = self.path
        values = _vec("values", p, self.values, None)
        n = values.shape[0]
        if n == 0:
            raise DatasetError(f"measurement {p!r}: field 'values' is empty; a measurement needs >= 1 bin")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("values", values)
        for name in ("lo", "hi", "err_minus", "err_plus"):
            set_(name, _vec(name, p, getattr(self, name), n))
        set_("x", 0.5 * (self.lo + self.hi) if self.x is None else _vec("x", p, self.x, n))
        for name in ("lo", "hi", "x", "values", "err_minus", "err_plus"):
            a = getattr(self, name)
            if not np.all(np.isfinite(a)):
                i = int(np.flatnonzero(~np.isfinite(a))[0])
                raise DatasetError(f"measurement {p!r}: field {name!r} bin {i} is {a[i]}, not finite; "
                                   f"give a finite number")
            a.setflags(write=False)
        for name in ("err_minus", "err_plus"):
            a = getattr(self, name)
            if np.any(a < 0):
                i = int(np.flatnonzero(a < 0)[0])
                raise DatasetError(f"measurement {p!r}: field {name!r} bin {i} is {a[i]} < 0; "
                                   f"give error magnitudes (>= 0)")
        if np.any(self.hi < self.lo):
            i = int(np.flatnonzero(self.hi < self.lo)[0])
            raise DatasetError(f"measurement {p!r}: bin {i} has hi {self.hi[i]} < lo {self.lo[i]}; "
                               f"give lo <= hi")
        comps = {}
        for k, (m, pl) in dict(self.components).items():
            m, pl = _vec(f"components[{k!r}] minus", p, m, n), _vec(f"components[{k!r}] plus", p, pl, n)
            if np.any(m < 0) or np.any(pl < 0) or not (np.all(np.isfinite(m)) and np.all(np.isfinite(pl))):
                raise DatasetError(f"measurement {p!r}: error component {k!r} has a negative or non-finite "
                                   f"entry; give finite magnitudes (>= 0)")
            m.setflags(write=False)
            pl.setflags(write=False)
            comps[str(k)] = (m, pl)
        set_("components", comps)
        if self.cov is not None:
            set_("cov", _check_cov(p, self.cov, n))
        if self.bin_labels is not None:
            labels = tuple(str(s) for s in self.bin_labels)
            if len(labels) != n:
                raise DatasetError(f"measurement {p!r}: field 'bin_labels' has {len(labels)} entries, "
                                   f"values has {n}; give one label per bin")
            set_("bin_labels", labels)

    # ---- shape -------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of bins (points)."""
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def widths(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def contiguous(self) -> bool:
        """True when the bins are increasing and each one starts where the previous one ends."""
        if self.n == 1:
            return bool(self.hi[0] > self.lo[0])
        tol = 1e-9 * max(1.0, float(np.max(np.abs(np.concatenate([self.lo, self.hi])))))
        return bool(np.all(self.hi > self.lo) and np.all(np.abs(self.hi[:-1] - self.lo[1:]) <= tol))

    @property
    def edges(self) -> np.ndarray:
        """The n+1 bin edges; a DatasetError when the bins are not contiguous (then use ``lo``/``hi``)."""
        if not self.contiguous:
            raise DatasetError(f"measurement {self.path!r}: field 'edges' is undefined, its bins are not "
                               f"contiguous and increasing; use .lo and .hi instead")
        return np.append(self.lo, self.hi[-1])

    # ---- errors ------------------------------------------------------------------------------------
    def total_error(self, side: str = "sym") -> np.ndarray:
        """Total error per bin: ``"sym"`` (mean of the two sides), ``"minus"``, ``"plus"`` or ``"max"``."""
        if side == "sym":
            return 0.5 * (self.err_minus + self.err_plus)
        if side == "minus":
            return self.err_minus.copy()
        if side == "plus":
            return self.err_plus.copy()
        if side == "max":
            return np.maximum(self.err_minus, self.err_plus)
        raise DatasetError(f"total_error: field 'side' is {side!r}; use one of {', '.join(_SIDES)}")

    def covariance(self) -> np.ndarray:
        """The n x n covariance: the source's matrix when one was given, else diag(total_error('sym')**2)."""
        if self.cov is not None:
            return np.array(self.cov, dtype=np.float64)
        return np.diag(self.total_error("sym") ** 2)

    def correlation(self) -> np.ndarray:
        c = self.covariance()
        s = np.sqrt(np.diag(c))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = c / np.outer(s, s)
        return np.where(np.outer(s, s) > 0, r, np.eye(self.n))

    def with_covariance(self, cov) -> "Measurement":
        """A copy with a full covariance matrix (n x n, symmetric, positive semi-definite)."""
        return dataclasses.replace(self, cov=_check_cov(self.path, cov, self.n))

    def with_correlation(self, corr) -> "Measurement":
        """A copy whose covariance is ``corr * outer(s, s)`` with s = total_error('sym')."""
        corr = _check_cov(self.path, corr, self.n, what="correlation")
        if not np.allclose(np.diag(corr), 1.0, atol=1e-6):
            raise DatasetError(f"measurement {self.path!r}: field 'correlation' has diagonal entries != 1; "
                               f"pass a correlation matrix (or use with_covariance for a covariance)")
        s = self.total_error("sym")
        return dataclasses.replace(self, cov=corr * np.outer(s, s))

    # ---- subsets -----------------------------------------------------------------------------------
    def select(self, mask) -> "Measurement":
        """The bins picked by ``mask``: a boolean array of length n, or integer indices."""
        m = np.asarray(mask)
        if m.dtype == bool:
            if m.shape != (self.n,):
                raise DatasetError(f"select: field 'mask' has shape {m.shape}, measurement {self.path!r} "
                                   f"has {self.n} bins; pass one boolean per bin or integer indices")
            idx = np.flatnonzero(m)
        elif np.issubdtype(m.dtype, np.integer):
            idx = m.reshape(-1)
            if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
                raise DatasetError(f"select: field 'mask' has an index outside 0..{self.n - 1} for "
                                   f"{self.path!r}; pass valid bin indices")
        else:
            raise DatasetError(f"select: field 'mask' has dtype {m.dtype}; pass booleans or integer indices")
        if idx.size == 0:
            raise DatasetError(f"select: field 'mask' selects no bin of {self.path!r}; select at least one")
        comps = {k: (mi[idx], pl[idx]) for k, (mi, pl) in self.components.items()}
        return dataclasses.replace(
            self, lo=self.lo[idx], hi=self.hi[idx], x=self.x[idx], values=self.values[idx],
            err_minus=self.err_minus[idx], err_plus=self.err_plus[idx], components=comps,
            cov=None if self.cov is None else self.cov[np.ix_(idx, idx)],
            bin_labels=None if self.bin_labels is None else tuple(self.bin_labels[i] for i in idx))

    def at(self, x: float) -> "Measurement":
        """The single bin whose [lo, hi] range holds ``x`` (the nearest point x wins a tie)."""
        inside = np.flatnonzero((self.lo <= x) & (x <= self.hi))
        if inside.size == 0:
            raise DatasetError(f"measurement {self.path!r}: no bin holds x = {x}; bins span "
                               f"{self.lo.min():g}..{self.hi.max():g}, pick an x inside")
        best = inside[np.argmin(np.abs(self.x[inside] - x))]
        return self.select(np.array([best]))

    def __repr__(self) -> str:
        return (f"Measurement({self.path!r}, n={self.n}, x={self.lo.min():g}..{self.hi.max():g}, "
                f"source={self.source!r})")


def _check_cov(path: str, cov, n: int, what: str = "covariance") -> np.ndarray:
    try:
        c = np.array(cov, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"measurement {path!r}: field {what!r} is not a numeric matrix; "
                           f"pass an n x n array of numbers") from None
    if c.shape != (n, n):
        raise DatasetError(f"measurement {path!r}: field {what!r} has shape {c.shape}, expected ({n}, {n}); "
                           f"give one row and column per bin")
    if not np.all(np.isfinite(c)):
        raise DatasetError(f"measurement {path!r}: field {what!r} has non-finite entries; give finite numbers")
    scale = max(float(np.max(np.abs(c))), 1e-300)
    if not np.allclose(c, c.T, rtol=1e-6, atol=1e-9 * scale):
        raise DatasetError(f"measurement {path!r}: field {what!r} is not symmetric; give a symmetric matrix")
    c = 0.5 * (c + c.T)
    if np.any(np.diag(c) < 0):
        raise DatasetError(f"measurement {path!r}: field {what!r} has a negative diagonal entry; "
                           f"variances must be >= 0")
    if np.linalg.eigvalsh(c).min() < -1e-8 * scale:
        raise DatasetError(f"measurement {path!r}: field {what!r} is not positive semi-definite; "
                           f"check the matrix (e.g. rounding of a correlation table)")
    c.setflags(write=False)
    return c
