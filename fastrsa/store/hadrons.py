"""The final-state particles of a sample as flat arrays plus int64 event offsets, for the observables.

A sample is a fastrsa dataset (read through `Dataset.flat`, the same view the weight engine uses,
so a fit reads each dataset once) or any Parquet file/directory with per-event lists px, py, pz, e,
pdg, the fastrsa schema metadata naming the setup, and optionally a float64 `weight` column
(weighted pseudo-data or unfolded data) and a bool list column `is_hadron`.

Format 2 stores every final-state particle and marks the hadrons (`is_hadron`); format 1 and targets
without `is_hadron` hold hadrons only (`is_hadron` None, `final_state_complete` False). Hadron-level
observables (the RSA paper's) use `h.hadrons()`; observables "of all particles" need
`final_state_complete`.
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
IS_HADRON = "is_hadron"


@dataclass
class HadronSample:
    """Final-state particle momenta of a sample (flat arrays + int64 offsets), its setup and optional
    event weights.

    `is_hadron` (bool per particle) marks the hadrons; None means every stored particle is a hadron
    (format-1 datasets, targets without the column). `final_state_complete` is True only when the
    arrays hold every final-state particle (format 2), so that "all particles" / "all charged
    particles" observables can be computed as measurements define them.
    """

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pdg: np.ndarray
    offsets: np.ndarray
    setup: dict
    path: str
    weights: np.ndarray | None = None
    is_hadron: np.ndarray | None = None
    final_state_complete: bool = False
    species: np.ndarray | None = None      # int [N, S] identified-hadron counts (format 3), labels in setup meta
    species_labels: tuple = ()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def select(self, mask) -> "HadronSample":
        """The sample restricted to the particles where `mask` is true (same events, weights and setup;
        int64 offsets recomputed)."""
        mask = np.asarray(mask, bool)
        csum = np.zeros(len(mask) + 1, np.int64)
        np.cumsum(mask, out=csum[1:])
        return HadronSample(self.px[mask], self.py[mask], self.pz[mask], self.e[mask], self.pdg[mask],
                            csum[self.offsets], self.setup, self.path, self.weights)

    def hadrons(self) -> "HadronSample":
        """The sample restricted to hadrons. Returns `self` when every stored particle is a hadron."""
        if self.is_hadron is None:
            return self
        cached = self.__dict__.get("_hadrons")
        if cached is None:
            mask = np.asarray(self.is_hadron, bool)
            cached = (HadronSample(self.px, self.py, self.pz, self.e, self.pdg, self.offsets, self.setup,
                                   self.path, self.weights) if mask.all() else self.select(mask))
            self.__dict__["_hadrons"] = cached
        return cached

    @property
    def e_cm(self) -> float:
        """Centre-of-mass energy: the string setup stores the energy per quark."""
        e = float(self.setup["energy"])
        return 2.0 * e if self.setup["name"] == "string" else e

    @classmethod
    def from_flat(cls, fv, meta: dict, path) -> "HadronSample":
        """From a dataset's FlatView (its hadron group) and metadata; no second read of the files."""
        f64 = lambda name: np.asarray(fv[name], np.float64)  # noqa: E731
        mask = fv.values.get(IS_HADRON)
        return cls(f64("px"), f64("py"), f64("pz"), f64("e"), np.asarray(fv["pdg"], np.int64),
                   fv.offsets["hadrons"], _setup_of(meta, path), str(path),
                   is_hadron=None if mask is None else np.asarray(mask, bool),
                   final_state_complete=mask is not None and int(meta.get("format_version", 1)) >= 2,
                   **_species_of(fv, meta))


def dataset_hadrons(ds) -> HadronSample:
    """A dataset's particles (group "hadrons") and, in format 3, its identified-hadron counts ("species"),
    read in one pass without the trial columns."""
    groups = ("hadrons", "species") if ds.format_version >= 3 else ("hadrons",)
    return HadronSample.from_flat(ds.flat(groups=groups), ds.meta, ds.path)


def _species_of(fv, meta: dict) -> dict:
    """Identified-hadron counts [N, S] of a format-3 flat view that holds the species group, else none."""
    labels = tuple(meta.get("species") or ())
    vals = fv.values.get("species_counts")
    if vals is None or not labels or "species" not in fv.offsets:
        return {}
    off = np.asarray(fv.offsets["species"])
    if len(off) != len(fv) + 1 or np.any(np.diff(off) != len(labels)):
        return {}       # events without counts (a Recorder of another process): no species observables
    return {"species": np.asarray(vals, np.int64).reshape(len(fv), len(labels)), "species_labels": labels}


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
    tables, setup, with_mask, species_labels = [], None, [], []
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
        with_mask.append(IS_HADRON in schema.names)
        if with_mask[-1] != with_mask[0]:
            raise DatasetError(f"{f}: has{'' if with_mask[-1] else ' no'} column {IS_HADRON!r} unlike "
                               f"{files[0]}; a sample is of one format")
        species_labels.append(tuple((json.loads(raw) if raw else {}).get("species") or ())
                              if "species_counts" in schema.names else ())
        cols = list(HADRON_COLUMNS) + [c for c in (IS_HADRON, "weight", "species_counts") if c in schema.names]
        tables.append(pq.read_table(f, columns=cols))
    table = pa.concat_tables(tables).combine_chunks()
    arrays, offsets = {}, None
    for name in HADRON_COLUMNS + ((IS_HADRON,) if with_mask[0] else ()):
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
    mask = arrays[IS_HADRON].astype(bool) if with_mask[0] else None
    species = {}
    labels = species_labels[0]
    if labels and all(s == labels for s in species_labels):    # format 3: identified-hadron counts
        arr = table.column("species_counts").chunks[0]
        off = np.asarray(arr.offsets).astype(np.int64)
        if np.all(np.diff(off) == len(labels)):
            vals = np.asarray(arr.values.to_numpy(zero_copy_only=False)[off[0]:off[-1]], np.int64)
            species = {"species": vals.reshape(len(offsets) - 1, len(labels)), "species_labels": labels}
    return HadronSample(arrays["px"].astype(np.float64), arrays["py"].astype(np.float64),
                        arrays["pz"].astype(np.float64), arrays["e"].astype(np.float64),
                        arrays["pdg"].astype(np.int64), offsets, setup, str(p), weights,
                        is_hadron=mask, final_state_complete=mask is not None, **species)


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
