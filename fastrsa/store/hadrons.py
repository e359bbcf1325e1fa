"""The hadrons of a sample as flat arrays plus int64 event offsets, for the observables.

A sample is a fastrsa dataset (read through `Dataset.flat`, the same view the weight engine uses,
so a fit reads each dataset once) or any Parquet file/directory with per-event lists px, py, pz, e,
pdg, the fastrsa schema metadata naming the setup, and optionally a float64 `weight` column
(weighted pseudo-data or unfolded data).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DatasetError
from .layout import SHARD_GLOB
from .layout import shards as list_shards
from .schema import META_KEY

HADRON_COLUMNS = ("px", "py", "pz", "e", "pdg")


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

    @classmethod
    def from_flat(cls, fv, meta: dict, path) -> "HadronSample":
        """From a dataset's FlatView (its hadron group) and metadata; no second read of the files."""
        f64 = lambda name: np.asarray(fv[name], np.float64)  # noqa: E731
        return cls(f64("px"), f64("py"), f64("pz"), f64("e"), np.asarray(fv["pdg"], np.int64),
                   fv.offsets["hadrons"], _setup_of(meta, path), str(path))


def _setup_of(meta: dict, where) -> dict:
    setup = meta.get("setup") if isinstance(meta, dict) else None
    if not isinstance(setup, dict) or "name" not in setup or "energy" not in setup:
        raise DatasetError(f"{where}: no fastrsa metadata with the 'setup' (name, energy); the fit must know "
                           "the process and energy to compare like with like")
    return {"name": setup["name"], "energy": float(setup["energy"])}


def load_hadrons(path) -> HadronSample:
    """Hadron columns of a fastrsa dataset, or of any Parquet file/directory with the hadron list
    columns (px, py, pz, e, pdg), fastrsa schema metadata naming the setup, and optionally a float64
    'weight' column (weighted pseudo-data or unfolded data)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such dataset")
    files = [p] if p.is_file() else list_shards(p)
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
        s = _setup_of(json.loads(raw) if raw else {}, f)
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
        col = table.column("weight")
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise DatasetError(f"{p}: column 'weight' has type {col.type}; it must hold numbers (float64), one "
                               "per event")
        weights = col.to_numpy().astype(np.float64)
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.max() > 0):
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
