"""One shard: a pure function of (run configuration, shard index) -> Arrow table.

`ShardMaker` holds what is costly to make once per process (an initialized Pythia, its record reader,
the self-checked base point); `make(i)` reseeds it with shard i's seed and returns the shard's table.
The local process pool calls it, and so can any other executor: the data depend only on the run seed
and the shard index.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import __version__
from ..errors import PythiaError
from ..params import BaseParams
from ..pythia.records import import_pythia, make_reader, pythia_version
from ..pythia.run import actual_base, new_pythia, next_event
from ..pythia.sentinel import N_SENTINEL_EVENTS, SENTINEL_RTOL, run_sentinel, sentinel_point
from ..store.schema import FORMAT_NAME, FORMAT_VERSION, schema_with_meta
from .plan import RunConfig


def build_table(rows: list, meta: dict) -> pa.Table:
    """rows: list of (Records, hadrons); builds the Arrow table of one shard without padding."""
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
    csum = np.concatenate([[0], np.cumsum(zd[:, 0] > 0)])   # (reduceat mishandles empty events)
    o = np.asarray(o_tr)
    accepted = csum[o[1:]] - csum[o[:-1]]
    cols["n_attempts"] = pa.array((n_br - accepted).astype(np.int32))
    schema = schema_with_meta(meta)
    return pa.Table.from_arrays([cols[n] for n in schema.names], schema=schema)


def shard_meta(base: BaseParams, config: RunConfig, index: int, seed: int, events: int, failed: int,
               generator: str = f"fastrsa {__version__}") -> dict:
    """The schema metadata of one shard (docs/format.md)."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "generator": generator,
            "pythia_version": pythia_version(), "base": base.to_dict(), "setup": config.setup.to_dict(),
            "seed": config.seed, "shard": {"index": index, "seed": seed, "events": events, "failed_events": failed},
            "sentinel": {"point": sentinel_point(base), "events_checked": N_SENTINEL_EVENTS,
                         "rtol": SENTINEL_RTOL}}


class ShardMaker:
    """Per-process state for making shards of one run (see module docstring).

    The first shard's seed initializes Pythia and the sentinel self-check (which must pass before any
    shard is made); `make(i)` then reseeds and generates shard i.
    """

    def __init__(self, config: RunConfig, first_index: int):
        self.config = config
        self.pythia8mc = import_pythia()
        seed = config.shard_seed(first_index)
        run_sentinel(self.pythia8mc, config.base, config.setup, seed)
        self.py = new_pythia(self.pythia8mc, config.base, config.setup, seed)
        self.reader = make_reader(self.py, self.pythia8mc)
        self.base = actual_base(self.py)
        self._cache = {}

    def make(self, i: int, on_events=None, every: int = 250) -> pa.Table:
        """Shard i as an Arrow table; `on_events(n)` is called every `every` events (progress)."""
        seed = self.config.shard_seed(i)
        self.py.rndm.init(seed)
        rows, failed, since = [], 0, 0
        while len(rows) < self.config.shard_size(i):
            got = next_event(self.py, self.reader, self.config.setup, self._cache)
            if got is None:
                failed += 1
                if failed > 100 + len(rows):
                    raise PythiaError(f"Pythia {pythia_version()} failed {failed} events in shard {i}")
                continue
            rows.append(got)
            since += 1
            if on_events is not None and since == every:
                on_events(since)
                since = 0
        if on_events is not None and since:
            on_events(since)
        return build_table(rows, shard_meta(self.base, self.config, i, seed, len(rows), failed))
