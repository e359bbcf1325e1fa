"""One shard: a pure function of (run configuration, shard index) -> Arrow table.

`ShardMaker` holds what is made once per process (the self-check, the base point as Pythia has it);
`make(i)` initializes a fresh Pythia with shard i's complete settings (`pythia_settings`, its seed
last), so that those settings, stored in the shard's metadata, reproduce the shard on any fresh Pythia
(reseeding a used Pythia does not: some processes draw random numbers during init). The local process
pool calls it, and so can any other executor: the data depend only on the run seed and the shard index.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import __version__
from ..errors import PythiaError
from ..params import BaseParams, FlavourBase
from ..pythia.records import import_pythia, make_reader, pythia_version
from ..pythia.run import actual_base, actual_flavour_base, new_pythia, next_event
from ..pythia.sentinel import N_SENTINEL_EVENTS, SENTINEL_RTOL, run_sentinel, sentinel_flavour_point, sentinel_point
from ..pythia.setups import pythia_settings
from ..pythia.species import SPECIES_LABELS
from ..store.flavour import flavour_meta
from ..store.schema import FORMAT_NAME, FORMAT_VERSION, schema_with_meta
from .plan import RunConfig


def build_table(rows: list, meta: dict) -> pa.Table:
    """rows: list of (Records, particles); particles = (px, py, pz, e, m, pdg[, is_hadron]) lists (without
    is_hadron every particle is a hadron). Builds the Arrow table of one shard without padding."""
    def offsets(lengths):
        off = np.zeros(len(lengths) + 1, np.int32)
        np.cumsum(lengths, out=off[1:])
        return pa.array(off)

    def cat(chunks, dtype):
        return np.concatenate(chunks).astype(dtype, copy=False) if chunks else np.zeros(0, dtype)

    # One concatenation per Pythia vector, then strided views pick the columns out of it.
    zd = cat([r.z_dbl for r, _ in rows], np.float64).reshape(-1, 3)
    zi = cat([r.z_int for r, _ in rows], np.int32).reshape(-1, 2)
    pt = cat([r.pt for r, _ in rows], np.float64).reshape(-1, 2)
    n_tr = np.fromiter((len(r.z_dbl) // 3 for r, _ in rows), np.int64, len(rows))
    n_br = np.fromiter((len(r.pt) // 2 for r, _ in rows), np.int64, len(rows))
    n_had = np.fromiter((len(h[5]) for _, h in rows), np.int64, len(rows))
    o_tr, o_br, o_had = offsets(n_tr), offsets(n_br), offsets(n_had)
    lst = lambda off, v: pa.ListArray.from_arrays(off, pa.array(np.ascontiguousarray(v)))  # noqa: E731
    cols = {"z": lst(o_tr, zd[:, 1]), "fprel": lst(o_tr, zd[:, 2]), "mt2": lst(o_tr, zd[:, 0]),
            "id_old": lst(o_tr, zi[:, 0]), "id_new": lst(o_tr, zi[:, 1]),
            "pt2": lst(o_br, pt[:, 0]), "pt_mult": lst(o_br, pt[:, 1])}
    for k, name in enumerate(("px", "py", "pz", "e", "m")):
        cols[name] = lst(o_had, cat([np.asarray(h[k], np.float64) for _, h in rows], np.float64))
    cols["pdg"] = lst(o_had, cat([np.asarray(h[5], np.int32) for _, h in rows], np.int32))
    cols["is_hadron"] = lst(o_had, cat([np.asarray(h[6] if len(h) > 6 else np.ones(len(h[5])), bool)
                                        for _, h in rows], bool))
    # Flavour counters (format 3): 13 per event when recorded, none otherwise.
    flav = [getattr(r, "flav", None) for r, _ in rows]
    n_fl = np.fromiter((0 if f is None else len(f) for f in flav), np.int64, len(rows))
    cols["flav_breaks"] = lst(offsets(n_fl), cat([f for f in flav if f is not None], np.int32))
    # Identified-hadron counts over the whole event record (format 3; pythia.species.SPECIES order).
    spc = [np.asarray(h[7], np.int32) if len(h) > 7 else np.zeros(0, np.int32) for _, h in rows]
    cols["species_counts"] = lst(offsets(np.fromiter((len(s) for s in spc), np.int64, len(rows))),
                                 cat(spc, np.int32))
    csum = np.concatenate([[0], np.cumsum(zd[:, 0] > 0)])   # (reduceat mishandles empty events)
    o = np.asarray(o_tr)
    accepted = csum[o[1:]] - csum[o[:-1]]
    cols["n_attempts"] = pa.array((n_br - accepted).astype(np.int32))
    schema = schema_with_meta(meta)
    return pa.Table.from_arrays([cols[n] for n in schema.names], schema=schema)


def make_meta(base: BaseParams, setup: dict, run_seed, index: int, seed, events: int, failed,
              settings: list, sentinel: dict | None, generator: str = f"fastrsa {__version__}",
              flavour: FlavourBase | None = None) -> dict:
    """The schema metadata of one shard (docs/format.md)."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "generator": generator,
            "pythia_version": pythia_version(), "base": base.to_dict(), "setup": setup,
            "seed": run_seed, "shard": {"index": index, "seed": seed, "events": events, "failed_events": failed},
            "pythia_settings": list(settings), "sentinel": sentinel, "flavour": flavour_meta(flavour),
            "species": list(SPECIES_LABELS)}


def sentinel_meta(base: BaseParams, flavour: FlavourBase | None = None) -> dict:
    out = {"point": sentinel_point(base), "events_checked": N_SENTINEL_EVENTS, "rtol": SENTINEL_RTOL}
    if flavour is not None:
        out["flavour_point"] = sentinel_flavour_point(flavour)
    return out


def shard_meta(base: BaseParams, config: RunConfig, index: int, seed: int, events: int, failed: int,
               generator: str = f"fastrsa {__version__}", settings: list | None = None,
               flavour: FlavourBase | None = None) -> dict:
    """The schema metadata of one shard of a generation run (docs/format.md)."""
    if settings is None:
        settings = pythia_settings(config.base, config.setup, seed)
    return make_meta(base, config.setup.to_dict(), config.seed, index, seed, events, failed, settings,
                     sentinel_meta(base, flavour), generator, flavour)


def collect_events(py, reader, setup, cache: dict, n: int, on_events=None, every: int = 250,
                   where: str | None = None) -> tuple[list, int]:
    """(rows, failed): the next `n` successful events of `py` (next_event), calling `on_events(k)` every
    `every` events (progress). Failed events are counted; with `where`, more than 100 + (events so far) of
    them is a PythiaError naming it (None: no bound here; the dqcd setup's parton source also gives up on an
    event after MAX_HADRONIZATION_TRIES failures, pythia.setups.PartonEvents)."""
    rows, failed, since = [], 0, 0
    while len(rows) < n:
        got = next_event(py, reader, setup, cache)
        if got is None:
            failed += 1
            if where is not None and failed > 100 + len(rows):
                raise PythiaError(f"Pythia {pythia_version()} failed {failed} events in {where}")
            continue
        rows.append(got)
        since += 1
        if on_events is not None and since == every:
            on_events(since)
            since = 0
    if on_events is not None and since:
        on_events(since)
    return rows, failed


class ShardMaker:
    """Per-process state for making shards of one run (see module docstring).

    The sentinel self-check runs with the first shard's settings (it must pass before any shard is
    made); `make(i)` then generates shard i on a fresh Pythia with shard i's settings.
    """

    def __new__(cls, config: RunConfig, first_index: int):
        if cls is ShardMaker and config.setup.name == "dqcd":    # showers hadronized by Pythia: generation/dqcd.py
            from .dqcd import DqcdShardMaker
            cls = DqcdShardMaker
        return super().__new__(cls)

    def __init__(self, config: RunConfig, first_index: int):
        self.config = config
        self.pythia8mc = import_pythia()
        seed = config.shard_seed(first_index)
        run_sentinel(self.pythia8mc, config.base, config.setup, seed)
        self._ready = {first_index: new_pythia(self.pythia8mc, config.base, config.setup, seed)}
        self.base = actual_base(self._ready[first_index])
        self.flavour = actual_flavour_base(self._ready[first_index])
        if config.setup.name == "cmnd" and self.base != config.base:
            raise PythiaError(f"Pythia {pythia_version()} gives another base point in this process "
                              f"({self.base}) than when the run was planned ({config.base}); the "
                              "configuration is not deterministic")
        self._cache = {}

    def make(self, i: int, on_events=None, every: int = 250) -> pa.Table:
        """Shard i as an Arrow table; `on_events(n)` is called every `every` events (progress)."""
        seed = self.config.shard_seed(i)
        settings = pythia_settings(self.config.base, self.config.setup, seed)
        py = self._ready.pop(i, None) or new_pythia(self.pythia8mc, self.config.base, self.config.setup, seed)
        reader = make_reader(py, self.pythia8mc, flavour=self.flavour is not None)
        rows, failed = collect_events(py, reader, self.config.setup, self._cache, self.config.shard_size(i),
                                      on_events, every, where=f"shard {i}")
        return build_table(rows, shard_meta(self.base, self.config, i, seed, len(rows), failed,
                                            settings=settings, flavour=self.flavour))
