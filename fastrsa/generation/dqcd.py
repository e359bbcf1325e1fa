"""The dqcd setup: parton showers of `fastrsa.shower` hadronized by stock Pythia, with the RSA records.

Shard i of a run holds the shower events i * shard_events ... (event k's partons are a function of the run
seed, k and Lambda only, docs/shower.md). Each event's colour chain goes to a Pythia with ProcessLevel:all = off
(`pythia.setups.PartonEvents`), reseeded per event with `hadronization_seed(run seed, k)`, so that a moved copy
of the event (`hadronize_moved`) is hadronized with the same random numbers. The trial records are read as for
every other setup and the sentinel checks them against Pythia's in-situ weights on the shard's first events.
The table holds the usual columns plus the parton group of `store.schema.parton_fields` (docs/format.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..errors import DatasetError, ParameterError
from ..params import SHOWER_SPACE, BaseParams
from ..progress import Progress
from ..pythia.records import import_pythia, make_reader
from ..pythia.run import actual_base, new_pythia
from ..pythia.sentinel import N_SENTINEL_EVENTS, run_sentinel
from ..pythia.setups import PartonEvents, make_setup, pythia_settings
from ..shower import DEFAULT_DY, SHOWER_VERSION, ShowerSample
from ..shower import generate as shower_generate
from ..store.dataset import open_dataset
from ..store.layout import read_manifest
from ..store.layout import shards as list_shards
from ..store.schema import META_KEY, PARTON_COMPONENTS, parton_fields
from ..store.writer import prepare_run_dir, write_shard
from .shard import ShardMaker, build_table, collect_events, make_meta, sentinel_meta, shard_meta

DEFAULT_LAMBDA = 0.4
DEFAULT_ORDERS = 3
MAX_ORDERS = 6
#: A moved parton is unphysical when its energy is <= 0 or |E^2 - |p|^2| exceeds this [GeV^2] (|m| > 0.32 GeV,
#: about two pion masses); an event with such a parton is not hadronized but counted and reported. Measured on
#: 4000 events at Lambda = 0.4, third order: 0.5% / 1.6% / 3.3% / 6.1% of the events for shifts +0.025 / +0.05 /
#: +0.075 / +0.1 GeV (with 0.01 GeV^2: 1.1% / 3.7% / 30% / 65%); first order is off shell by construction.
M2_TOLERANCE = 0.1


def shower_params(lam, orders) -> dict:
    """The dqcd setup's shower parameters (checked; one ParameterError naming the field otherwise)."""
    SHOWER_SPACE.check([lam], where="generate", names=("lambda",))
    if isinstance(orders, bool) or not isinstance(orders, (int, np.integer)) or not 0 <= orders <= MAX_ORDERS:
        raise ParameterError(f"orders = {orders!r} must be an integer in 0..{MAX_ORDERS} (Taylor orders in Lambda)")
    return {"lambda": float(lam), "orders": int(orders), "dy": DEFAULT_DY, "shower_version": SHOWER_VERSION}


def run_showers(setup: dict, run_seed: int, first_event: int, n: int) -> ShowerSample:
    """Shower events first_event ... first_event + n - 1 of a dqcd run (setup: the Setup's dict or object)."""
    sh = setup["shower"] if isinstance(setup, dict) else setup.shower
    ecm = setup["energy"] if isinstance(setup, dict) else setup.energy
    return shower_generate(int(n), sh["lambda"], float(ecm), seed=int(run_seed), orders=int(sh["orders"]),
                           dy=float(sh["dy"]), first_event=int(first_event))


def parton_source(s: ShowerSample, run_seed: int, p=None, keep=None) -> PartonEvents:
    """The events of `s` (momenta `p` when given: a moved copy; only the events where `keep` is true) as
    Pythia's parton source."""
    p = (s.p if p is None else p).detach().cpu().numpy()
    off = s.offsets.cpu().numpy()
    events = np.arange(s.first_event, s.first_event + s.n_events, dtype=np.int64)
    pdg = s.pdg.cpu().numpy()
    if keep is not None and not np.all(keep):
        part = np.repeat(np.asarray(keep, bool), np.diff(off))
        lengths = np.diff(off)[keep]
        off = np.concatenate([[0], np.cumsum(lengths)])
        p, pdg, events = p[part], pdg[part], events[keep]
    return PartonEvents(pdg, p, off, events, run_seed)


def with_partons(table: pa.Table, s: ShowerSample, seeds, p=None, keep=None, log_weight=None) -> pa.Table:
    """The shard table with the parton column group appended (its metadata kept)."""
    keep = np.ones(s.n_events, bool) if keep is None else np.asarray(keep, bool)
    off = s.offsets.cpu().numpy()
    part = np.repeat(keep, np.diff(off))
    o32 = pa.array(np.concatenate([[0], np.cumsum(np.diff(off)[keep])]).astype(np.int32))
    lst = lambda v: pa.ListArray.from_arrays(o32, pa.array(np.ascontiguousarray(v)))  # noqa: E731
    moved = log_weight is not None
    orders = 0 if moved else s.orders
    P = (s.p if p is None else p).detach().cpu().numpy()[part]
    cols = {f"parton_{c}": lst(P[:, j]) for j, c in enumerate(PARTON_COMPONENTS)}
    for c in ("pdg", "generation", "level"):
        cols[f"parton_{c}"] = lst(getattr(s, c).cpu().numpy()[part].astype(np.int32))
    for k in range(1, orders + 1):
        ck = s.coeffs[k - 1].cpu().numpy()[part]
        cols.update({f"parton_d{k}_{c}": lst(ck[:, j]) for j, c in enumerate(PARTON_COMPONENTS)})
        cols[f"parton_dlograte_{k}"] = pa.array(s.log_rate_derivs[:, k - 1].cpu().numpy()[keep])
    cols["parton_log_rate"] = pa.array(s.log_rate.cpu().numpy()[keep].astype(np.float64))
    if moved:
        cols["parton_log_weight"] = pa.array(np.asarray(log_weight, np.float64)[keep])
    cols["parton_topology"] = pa.array(s.topology.cpu().numpy()[keep].astype(np.int64))
    cols["parton_event"] = pa.array(np.arange(s.first_event, s.first_event + s.n_events, dtype=np.int64)[keep])
    cols["hadronization_seed"] = pa.array(np.asarray(seeds, np.int64))
    fields = parton_fields(orders, moved=moved)
    schema = pa.schema(list(table.schema) + fields, metadata=table.schema.metadata)
    return pa.Table.from_arrays(list(table.columns) + [cols[f.name] for f in fields], schema=schema)


def _hadronize(py, reader, setup, src: PartonEvents, where: str, on_events=None, every=250) -> list:
    """Every event of `src`, hadronized. A failure retries the same partons with the next seed
    (PartonEvents.done): no event is skipped; an event that fails MAX_HADRONIZATION_TRIES times, or more than
    100 + (events so far) failures in all (collect_events, as for every setup), is a PythiaError naming it.
    The failures are counted in `src.failed` (the shard's `failed_events`)."""
    return collect_events(py, reader, setup, {"partons": src}, len(src), on_events, every, where=where)[0]


class DqcdShardMaker(ShardMaker):
    """ShardMaker of the dqcd setup (`ShardMaker(config, i)` returns one for a dqcd run)."""

    def __init__(self, config, first_index: int):
        import torch
        torch.set_num_threads(1)        # one process per job; the shower of a shard is small
        self.config = config
        self.pythia8mc = import_pythia()
        seed = config.shard_seed(first_index)
        s = run_showers(config.setup, config.seed, first_index * config.shard_events, 2 * N_SENTINEL_EVENTS)
        run_sentinel(self.pythia8mc, config.base, config.setup, seed, cache={"partons": parton_source(s, config.seed)})
        self._ready = {first_index: new_pythia(self.pythia8mc, config.base, config.setup, seed)}
        self.base = actual_base(self._ready[first_index])
        self._cache = {}

    def make(self, i: int, on_events=None, every: int = 250) -> pa.Table:
        cfg = self.config
        seed = cfg.shard_seed(i)
        settings = pythia_settings(cfg.base, cfg.setup, seed)
        py = self._ready.pop(i, None) or new_pythia(self.pythia8mc, cfg.base, cfg.setup, seed)
        s = run_showers(cfg.setup, cfg.seed, i * cfg.shard_events, cfg.shard_size(i))
        src = parton_source(s, cfg.seed)
        rows = _hadronize(py, make_reader(py, self.pythia8mc), cfg.setup, src, f"shard {i}", on_events, every)
        table = build_table(rows, shard_meta(self.base, cfg, i, seed, len(rows), src.failed, settings=settings))
        return with_partons(table, s, src.seeds)


# ---- moved samples at hadron level -------------------------------------------------------------------------

def unphysical(p, offsets, tol: float = M2_TOLERANCE) -> tuple:
    """Per event: (negative_energy, off_shell) booleans of moved partons p [n_partons, 4] (see M2_TOLERANCE)."""
    p = np.asarray(p, np.float64)
    off = np.asarray(offsets, np.int64)
    m2 = p[:, 3] ** 2 - (p[:, :3] ** 2).sum(1)
    ev = np.repeat(np.arange(len(off) - 1), np.diff(off))
    neg = np.bincount(ev, p[:, 3] <= 0.0, minlength=len(off) - 1) > 0
    shell = np.bincount(ev, np.abs(m2) > tol, minlength=len(off) - 1) > 0
    return neg, shell


def read_showers(path) -> tuple:
    """(ShowerSample, hadronization seeds, log weights or None) of one dqcd shard file (the parton group)."""
    from ..shower.dataset import open_shower
    t = pq.read_table(path, columns=["hadronization_seed"])
    s, extra = open_shower(path, with_extra=True)
    return s, t.column("hadronization_seed").to_numpy(), extra.get("log_weight")


def _meta(path) -> dict:
    return json.loads((pq.read_schema(path).metadata or {})[META_KEY])


def hadronize_moved(base, out, delta: float, order: int, progress: bool = True,
                    m2_tolerance: float = M2_TOLERANCE) -> dict:
    """Hadronize the events of the dqcd dataset `base` moved by `delta` [GeV] in Lambda at Taylor `order`
    (p + sum_k c_k delta^k, docs/shower.md) into the dataset `out`, shard by shard, with each event's own
    hadronization seed: the hadronization noise of a moved event is that of its base event. Events with an
    unphysical moved parton (`unphysical`) are not hadronized: they are counted, listed in each shard's
    metadata (`moved.unphysical`) and in the returned report, and left out of `out`. Every event in `out` has
    `parton_log_weight` = ln P(structure | Lambda + delta) / P(structure | Lambda) (Taylor, all stored orders),
    the weight that makes the moved sample one at Lambda + delta. Resumable; returns the report."""
    ds = open_dataset(base)
    meta = ds.meta
    if meta.get("setup", {}).get("name") != "dqcd":
        raise DatasetError(f"base = {str(base)!r} is not a dqcd dataset (setup {meta.get('setup', {}).get('name')!r});"
                           " make one with 'fastrsa generate OUT --setup dqcd'")
    sh = meta["setup"]["shower"]
    if "moved" in sh:
        raise DatasetError(f"base = {str(base)!r} is itself a moved sample; move the original dqcd dataset")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= sh["orders"]:
        raise ParameterError(f"order = {order!r} must be an integer in 0..{sh['orders']} (the base's stored orders)")
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not np.isfinite(delta):
        raise ParameterError(f"delta = {delta!r} must be a finite shift of Lambda in GeV")
    SHOWER_SPACE.check([sh["lambda"] + delta], where="move", names=("lambda",))
    if isinstance(m2_tolerance, bool) or not isinstance(m2_tolerance, (int, float)) or not m2_tolerance > 0:
        raise ParameterError(f"m2_tolerance = {m2_tolerance!r} must be a positive number [GeV^2]")
    moved = {"delta": float(delta), "order": int(order), "lambda": sh["lambda"] + float(delta),
             "m2_tolerance": float(m2_tolerance)}
    setup = make_setup("dqcd", meta["setup"]["energy"], shower={**sh, "moved": moved})
    identity = {"format": meta["format"], "format_version": meta["format_version"], "moved": moved,
                "base_identity": (read_manifest(ds.path / "_fastrsa.parquet").get("identity")
                                  if ds.manifest is not None else None) or {"seed": meta["seed"], "setup": sh}}
    out = Path(out)
    todo = prepare_run_dir(out, identity, len(ds.shards), f"fastrsa {__version__} (moved)")
    p8 = import_pythia()
    b = meta["base"]
    base_params = BaseParams(a=b["a"], b=b["b"], sigma=b["sigma"], z_head=b["z_head"], r_fact_c=b["r_fact_c"],
                             r_fact_b=b["r_fact_b"])
    bar = Progress(len(ds), 0) if progress else None
    checked = False
    try:
        for i, f in enumerate(ds.shards):
            if i not in todo:
                if bar:
                    bar.update(pq.ParquetFile(f).metadata.num_rows)
                continue
            s, seeds, _ = read_showers(f)
            p = s.moved(float(delta), int(order))
            neg, shell = unphysical(p.numpy(), s.offsets.numpy(), float(m2_tolerance))
            keep = ~(neg | shell)
            src = parton_source(s, meta["seed"], p=p, keep=keep)
            shard_seed = _meta(f)["shard"]["seed"]
            if not checked:         # the self-check on this process, with the first moved events
                n_s = min(len(src), 2 * N_SENTINEL_EVENTS)
                run_sentinel(p8, base_params, setup, shard_seed, n_events=min(N_SENTINEL_EVENTS, n_s),
                             cache={"partons": PartonEvents(src.pdg, src.p, src.offsets[:n_s + 1], src.events[:n_s],
                                                            src.run_seed)})
                checked = True
            py = new_pythia(p8, base_params, setup, shard_seed)
            rows = _hadronize(py, make_reader(py, p8), setup, src, f"moved shard {i}", bar.update if bar else None)
            rep = {"count": int((~keep).sum()), "negative_energy": int(neg.sum()), "off_shell": int(shell.sum()),
                   "events": [int(e) for e in np.arange(s.first_event, s.first_event + s.n_events)[~keep]]}
            m = make_meta(actual_base(py), setup.to_dict(), meta["seed"], i, shard_seed,
                          len(rows), src.failed, pythia_settings(base_params, setup, shard_seed),
                          sentinel_meta(base_params)) | {"unphysical": rep}
            if bar and rep["count"]:
                bar.update(rep["count"])
            table = build_table(rows, m)
            write_shard(out, i, with_partons(table, s, src.seeds, p=p, keep=keep,
                                             log_weight=s.log_weight(float(delta)).numpy()))
    finally:
        if bar:
            bar.close()
    return moved_report(out)


def moved_report(path) -> dict:
    """Totals of a moved dataset: events hadronized, unphysical events (negative energy, off shell) and
    their indices, failed hadronizations (each retried with the next seed), the shift and order."""
    files = list_shards(path)
    if not files:
        raise DatasetError(f"{path}: holds no shards of a moved sample")
    metas = [_meta(f) for f in files]
    un = [m["unphysical"] for m in metas]
    sh = metas[0]["setup"]["shower"]
    total = sum(m["shard"]["events"] for m in metas) + sum(u["count"] for u in un)
    return {**sh["moved"], "base_lambda": sh["lambda"], "events": total,
            "hadronized": sum(m["shard"]["events"] for m in metas),
            "failed_hadronizations": sum(m["shard"]["failed_events"] for m in metas),
            "unphysical": sum(u["count"] for u in un), "negative_energy": sum(u["negative_energy"] for u in un),
            "off_shell": sum(u["off_shell"] for u in un), "unphysical_events": [e for u in un for e in u["events"]]}
