"""Observables of a sample of events, computed once per dataset from the hadron momenta.

Event-level observables hold one value per event; hadron-level ones (spectra) hold one value per
hadron plus int64 event offsets (the Arrow list layout), so that a hadron inherits its event's weight.
Nothing here depends on the Lund parameters: the fit reweights these fixed values, which is why they
are computed at load time and never per optimizer step.

Frames: both setups store hadrons in the centre-of-mass frame with the string / beam axis along z.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .dataset import SHARD_GLOB
from .errors import DatasetError, ParameterError
from .format import META_KEY

# name -> (level, description)
OBSERVABLES = {
    "multiplicity": ("event", "number of final hadrons"),
    "charged_multiplicity": ("event", "number of charged final hadrons"),
    "thrust": ("event", "thrust T = max_n sum|p.n| / sum|p| (exact: every partition by a plane "
                        "through two hadrons)"),
    "sphericity": ("event", "S = 3/2 (l2 + l3), eigenvalues of sum p_a p_b / sum |p|^2"),
    "pt": ("hadron", "hadron transverse momentum to the string / beam axis [GeV]"),
    "rapidity": ("hadron", "hadron rapidity y along the string / beam axis"),
    "x": ("hadron", "hadron momentum fraction x = 2|p| / E_cm"),
}
# Shorthands accepted on the command line.
GROUPS = {"shapes": ("thrust", "sphericity"), "spectra": ("pt", "rapidity", "x")}
CLASSIFIER_PREFIX = "classifier:"
HADRON_COLUMNS = ("px", "py", "pz", "e", "pdg")


@dataclass
class Observable:
    """Values of one observable on one sample: [n_events] or [n_hadrons] with event `offsets`."""

    name: str
    level: str
    values: np.ndarray
    offsets: np.ndarray | None = None

    def event_index(self) -> np.ndarray:
        """For hadron-level values: the event each value belongs to (int64)."""
        if self.offsets is None:
            return np.arange(len(self.values), dtype=np.int64)
        return np.repeat(np.arange(len(self.offsets) - 1, dtype=np.int64), np.diff(self.offsets))


@dataclass
class HadronSample:
    """Hadron momenta of a sample (flat arrays + int64 offsets), its setup and optional event weights."""

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pdg: np.ndarray
    offsets: np.ndarray
    setup: dict
    path: str
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def e_cm(self) -> float:
        """Centre-of-mass energy: the string setup stores the energy per quark."""
        e = float(self.setup["energy"])
        return 2.0 * e if self.setup["name"] == "string" else e


def expand_names(names) -> list[str]:
    """Validate observable names (and shorthands 'shapes', 'spectra'); unknown names are an error."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    out = []
    for raw in names:
        n = raw.strip()
        if n in GROUPS:
            out.extend(GROUPS[n])
        elif n in OBSERVABLES or n.startswith(CLASSIFIER_PREFIX):
            if n.startswith(CLASSIFIER_PREFIX) and not n[len(CLASSIFIER_PREFIX):]:
                raise ParameterError("observables: 'classifier:' needs a model path, e.g. "
                                     "classifier:model.pt (train one with 'fastrsa classifier')")
            out.append(n)
        else:
            known = ", ".join(list(OBSERVABLES) + list(GROUPS) + ["classifier:PATH"])
            raise ParameterError(f"observables: {n!r} does not exist; known: {known}")
    if not out:
        raise ParameterError("observables: none given; e.g. --observables multiplicity,shapes")
    seen = set()
    return [n for n in out if not (n in seen or seen.add(n))]


def level_of(name: str) -> str:
    return "event" if name.startswith(CLASSIFIER_PREFIX) else OBSERVABLES[name][0]


def load_hadrons(path) -> HadronSample:
    """Hadron columns of a fastrsa dataset, or of any Parquet file/directory with the hadron list
    columns (px, py, pz, e, pdg), fastrsa schema metadata naming the setup, and optionally a float64
    'weight' column (weighted pseudo-data or unfolded data)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such dataset")
    files = [p] if p.is_file() else sorted(p.glob(SHARD_GLOB))
    if not files:
        raise DatasetError(f"{p}: holds no Parquet shards ({SHARD_GLOB})")
    tables, setup = [], None
    for f in files:
        try:
            schema = pq.read_schema(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"{f}: not a readable Parquet file ({exc})") from None
        missing = [c for c in HADRON_COLUMNS if c not in schema.names]
        if missing:
            raise DatasetError(f"{f}: missing columns {missing}, needed for the observables; a target "
                               "needs per-event lists px, py, pz, e, pdg (as 'fastrsa generate' writes)")
        raw = (schema.metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else {}
        if "setup" not in meta:
            raise DatasetError(f"{f}: no fastrsa metadata with the 'setup' (name, energy); the fit must know "
                               "the process and energy to compare like with like")
        s = {"name": meta["setup"]["name"], "energy": float(meta["setup"]["energy"])}
        if setup is not None and s != setup:
            raise DatasetError(f"{f}: setup {s} differs from {setup} in the other shards")
        setup = s
        cols = list(HADRON_COLUMNS) + (["weight"] if "weight" in schema.names else [])
        tables.append(pq.read_table(f, columns=cols))
    table = pa.concat_tables(tables).combine_chunks()
    arrays, offsets = {}, None
    for name in HADRON_COLUMNS:
        arr = table.column(name).chunks[0]
        off = np.asarray(arr.offsets).astype(np.int64)
        if offsets is not None and not np.array_equal(off - off[0], offsets):
            raise DatasetError(f"{p}: column {name!r} has other list lengths than px; the file is corrupt")
        offsets = off - off[0]
        arrays[name] = np.asarray(arr.values.to_numpy(zero_copy_only=False)[off[0]:off[-1]])
    weights = None
    if "weight" in table.column_names:
        weights = table.column("weight").to_numpy().astype(np.float64)
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
            raise DatasetError(f"{p}: column 'weight' must be finite, >= 0 and not all zero")
    for name in ("px", "py", "pz", "e"):
        if not np.all(np.isfinite(arrays[name])):
            raise DatasetError(f"{p}: column {name!r} holds NaN or inf")
    return HadronSample(arrays["px"].astype(np.float64), arrays["py"].astype(np.float64),
                        arrays["pz"].astype(np.float64), arrays["e"].astype(np.float64),
                        arrays["pdg"].astype(np.int64), offsets, setup, str(p), weights)


def check_same_setup(samples: dict) -> None:
    """All samples (name -> HadronSample) must come from the same process at the same energy."""
    items = list(samples.items())
    ref_name, ref = items[0]
    for name, s in items[1:]:
        if s.setup["name"] != ref.setup["name"] or not math.isclose(s.setup["energy"], ref.setup["energy"],
                                                                     rel_tol=1e-9):
            raise DatasetError(f"{name} ({s.path}) is setup '{s.setup['name']}' at {s.setup['energy']} GeV but "
                               f"{ref_name} ({ref.path}) is '{ref.setup['name']}' at {ref.setup['energy']} "
                               "GeV; compare samples of the same process and energy")


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


def thrust(h: HadronSample) -> np.ndarray:
    out = np.empty(len(h))
    _thrust(h.offsets, h.px, h.py, h.pz, out)
    return out


def sphericity(h: HadronSample) -> np.ndarray:
    t = np.empty((len(h), 3, 3))
    _momentum_tensors(h.offsets, h.px, h.py, h.pz, t)
    lam = np.linalg.eigvalsh(t)            # ascending
    return 1.5 * (lam[:, 0] + lam[:, 1])


def compute(h: HadronSample, names, classifiers: dict | None = None) -> dict[str, Observable]:
    """Every observable in `names` on sample `h` (see OBSERVABLES; 'classifier:PATH' needs the model)."""
    out = {}
    n_had = np.diff(h.offsets).astype(np.float64)
    for name in expand_names(names):
        if name == "multiplicity":
            v = n_had
        elif name == "charged_multiplicity":
            charged = (charge3(h.pdg) != 0).astype(np.float64)
            v = np.add.reduceat(charged, h.offsets[:-1]) if len(charged) else np.zeros(len(h))
            v[n_had == 0] = 0.0
        elif name == "thrust":
            v = thrust(h)
        elif name == "sphericity":
            v = sphericity(h)
        elif name == "pt":
            out[name] = Observable(name, "hadron", np.hypot(h.px, h.py), h.offsets)
            continue
        elif name == "rapidity":
            # Guard E = |pz| (massless along the axis) against log(0).
            num = np.maximum(h.e + h.pz, 1e-300)
            den = np.maximum(h.e - h.pz, 1e-300)
            out[name] = Observable(name, "hadron", 0.5 * np.log(num / den), h.offsets)
            continue
        elif name == "x":
            p = np.sqrt(h.px ** 2 + h.py ** 2 + h.pz ** 2)
            out[name] = Observable(name, "hadron", 2.0 * p / h.e_cm, h.offsets)
            continue
        else:
            from .classifier import load_classifier
            path = name[len(CLASSIFIER_PREFIX):]
            model = (classifiers or {}).get(path) or load_classifier(path)
            v = model.score(h)
        out[name] = Observable(name, "event", np.ascontiguousarray(v, np.float64))
    return out
