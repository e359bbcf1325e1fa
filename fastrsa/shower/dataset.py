"""Shower datasets: `fastrsa shower OUT` writes moved-shower samples with the conventions of `fastrsa
generate` (a manifest, shards written atomically, resume, a progress bar, bad input refused with nothing
written); `open_shower` reads one back as a ShowerSample.

One row per event (docs/shower.md, "Dataset"):
    px, py, pz, e            list<float64>  partons in colour-chain order (quark, gluons, antiquark) [GeV]
    pdg                      list<int32>
    generation, level        list<int32>    per parton: the gluon's generation in the grove (-1 for the quarks)
                                            and its kappa level (kappa = 2 level dy)
    d{k}_px ... d{k}_e       list<float64>  Taylor coefficients d^k p / dLambda^k / k!, k = 1..orders
    dlograte_{k}             float64        d^k ln(rate) / dLambda^k, k = 1..orders
    log_rate                 float64        ln P(discrete structure | Lambda) of the Lambda-dependent columns
    topology                 int64          identifier of the event's discrete structure
    event                    int64          the event's index in the run (its random numbers derive from it)
Shard i holds events [i * shard_events, ...): an event depends only on (seed, its index, Lambda, sqrt(s)), so
the data depend neither on --jobs nor on how the run was interrupted.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..errors import DatasetError, ParameterError
from ..params import SHOWER_SPACE
from ..progress import Progress
from ..store.integrity import check_footer, decode, record
from ..store.layout import ShardedRun, manifest_path, read_manifest
from ..store.layout import shards as list_shards
from ..store.writer import prepare_run_dir, write_shard
from .sample import SHOWER_VERSION, ShowerSample, generate

FORMAT_NAME = "fastrsa-shower"
FORMAT_VERSION = 1
META_KEY = b"fastrsa"
COMPONENTS = ("px", "py", "pz", "e")
MAX_ORDERS = 6
DEFAULT_SHARD_EVENTS = 5000     # fixed: the data never depend on --jobs


def schema(orders: int, meta: dict | None = None) -> pa.Schema:
    fields = [pa.field(c, pa.list_(pa.float64()), nullable=False) for c in COMPONENTS]
    fields += [pa.field(c, pa.list_(pa.int32()), nullable=False) for c in ("pdg", "generation", "level")]
    for k in range(1, orders + 1):
        fields += [pa.field(f"d{k}_{c}", pa.list_(pa.float64()), nullable=False) for c in COMPONENTS]
    fields += [pa.field(f"dlograte_{k}", pa.float64(), nullable=False) for k in range(1, orders + 1)]
    fields += [pa.field("log_rate", pa.float64(), nullable=False), pa.field("topology", pa.int64(), nullable=False),
               pa.field("event", pa.int64(), nullable=False)]
    s = pa.schema(fields)
    return s.with_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()}) if meta is not None else s


@dataclass(frozen=True)
class ShowerRun(ShardedRun):
    events: int
    lam: float
    ecm: float
    orders: int
    seed: int
    shard_events: int

    def identity(self) -> dict:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "events": self.events,
                "lambda": self.lam, "ecm": self.ecm, "orders": self.orders, "seed": self.seed,
                "shard_events": self.shard_events, "shower_version": SHOWER_VERSION}


def validate(events, lam, ecm, orders, seed, jobs, shard_events) -> ShowerRun:
    """Every check before anything is written; one ParameterError naming the field otherwise."""
    for name, v, ok, rule in (("events", events, isinstance(events, int) and events > 0, "a positive integer"),
                              ("orders", orders, isinstance(orders, int) and 0 <= orders <= MAX_ORDERS,
                               f"an integer in 0..{MAX_ORDERS}"),
                              ("seed", seed, isinstance(seed, int) and 0 <= seed < 2 ** 63, "an integer >= 0"),
                              ("jobs", jobs, isinstance(jobs, int) and jobs >= 1, "an integer >= 1"),
                              ("shard_events", shard_events, shard_events is None or
                               (isinstance(shard_events, int) and shard_events >= 1), "an integer >= 1")):
        if isinstance(v, bool) or not ok:
            raise ParameterError(f"{name} = {v!r} must be {rule}")
    SHOWER_SPACE.check([lam], where="shower")
    if not (isinstance(ecm, (int, float)) and math.isfinite(ecm) and ecm > 4 * lam):
        raise ParameterError(f"ecm = {ecm!r} must be a finite energy in GeV well above Lambda (e.g. 91.2)")
    return ShowerRun(int(events), float(lam), float(ecm), int(orders), int(seed),
                     int(shard_events or DEFAULT_SHARD_EVENTS))


def shard_table(s: ShowerSample, run: ShowerRun, index: int) -> pa.Table:
    off = s.offsets.cpu().numpy()
    o32 = pa.array(off.astype(np.int32))
    lst = lambda v: pa.ListArray.from_arrays(o32, pa.array(np.ascontiguousarray(v)))  # noqa: E731
    p = s.p.cpu().numpy()
    cols = {c: lst(p[:, j]) for j, c in enumerate(COMPONENTS)}
    for c in ("pdg", "generation", "level"):
        cols[c] = lst(getattr(s, c).cpu().numpy().astype(np.int32))
    cols["log_rate"] = pa.array(s.log_rate.cpu().numpy().astype(np.float64))
    for k in range(1, run.orders + 1):
        ck = s.coeffs[k - 1].cpu().numpy()
        cols.update({f"d{k}_{c}": lst(ck[:, j]) for j, c in enumerate(COMPONENTS)})
        cols[f"dlograte_{k}"] = pa.array(s.log_rate_derivs[:, k - 1].cpu().numpy())
    cols["topology"] = pa.array(s.topology.cpu().numpy().astype(np.int64))
    cols["event"] = pa.array(np.arange(s.first_event, s.first_event + s.n_events, dtype=np.int64))
    meta = {**run.identity(), "dy": s.dy, "setup": {"name": "dqcd-partons", "energy": run.ecm},
            "shard": {"index": index, "first_event": s.first_event, "events": s.n_events}}
    sch = schema(run.orders, meta)
    return pa.Table.from_arrays([cols[n] for n in sch.names], schema=sch)


def generate_shower(out, events: int = 10000, lam: float = 0.4, ecm: float = 91.2, orders: int = 3, seed: int = 0,
                    jobs: int = 1, shard_events: int | None = None, progress: bool = True, device="cpu") -> Path:
    """Generate (or resume) a shower dataset in `out` (see the module docstring). `jobs` is the number of
    torch threads: the shower is batched over events in torch, so one process uses them all."""
    run = validate(events, lam, ecm, orders, seed, jobs, shard_events)
    out = Path(out)
    todo = prepare_run_dir(out, run.identity(), run.n_shards, f"fastrsa {SHOWER_VERSION}")
    done = [i for i in range(run.n_shards) if i not in todo]
    threads = torch.get_num_threads()
    torch.set_num_threads(jobs)
    bar = Progress(run.events, sum(run.shard_size(i) for i in done)) if progress else None
    try:
        for i in todo:
            s = generate(run.shard_size(i), run.lam, run.ecm, run.seed, run.orders, device=device,
                         first_event=i * run.shard_events)
            record(out, {i: write_shard(out, i, shard_table(s, run, i))})
            if bar:
                bar.update(s.n_events)
    except KeyboardInterrupt:
        n = len(list_shards(out))
        raise KeyboardInterrupt(f"interrupted: {n} of {run.n_shards} shards are complete in {out}; rerun the "
                                "same command to resume") from None
    finally:
        torch.set_num_threads(threads)
        if bar:
            bar.close()
    return out


def is_shower_dataset(path) -> bool:
    p = Path(path)
    files = [p] if p.is_file() else list_shards(p)
    if not files:
        return False
    try:
        meta = json.loads((pq.read_schema(files[0]).metadata or {}).get(META_KEY, b"{}"))
    except (pa.ArrowInvalid, OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


def _shower_meta(meta: dict) -> dict | None:
    """(prefix, lambda, ecm, orders, seed, dy, version) of a shower dataset's or a dqcd hadron dataset's shard
    metadata (the dqcd parton group: docs/format.md); None for anything else."""
    if meta.get("format") == FORMAT_NAME:
        return {"prefix": "", "lambda": meta.get("lambda"), "ecm": meta.get("ecm"), "orders": meta.get("orders"),
                "seed": meta.get("seed"), "dy": meta.get("dy", 0.0), "shower_version": meta.get("shower_version")}
    setup = meta.get("setup") or {}
    if meta.get("format") == "fastrsa-rsa-history" and setup.get("name") == "dqcd":
        sh = setup["shower"]
        moved = sh.get("moved")
        return {"prefix": "parton_", "lambda": moved["lambda"] if moved else sh["lambda"], "ecm": setup["energy"],
                "orders": 0 if moved else sh["orders"], "seed": meta.get("seed"), "dy": sh["dy"],
                "shower_version": sh["shower_version"], "moved": moved}
    return None


def open_shower(path, device="cpu", with_extra: bool = False):
    """A shower dataset as one ShowerSample (all shards, in event order). Also reads the parton group of a
    dqcd hadron dataset (`fastrsa generate --setup dqcd`, or a moved sample: its moved partons, orders 0).
    with_extra: also return a dict with `event` (indices) and, for a moved sample, `log_weight`."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such dataset; create one with 'fastrsa shower {p}'")
    files = list_shards(p) if p.is_dir() else [p]
    if not files:
        raise DatasetError(f"{p}: holds no shards; generate into it with 'fastrsa shower {p}'")
    manifest = read_manifest(manifest_path(p)) if p.is_dir() and manifest_path(p).exists() else None
    metas, tables = [], []
    for f in files:
        raw = check_footer(f, pq.read_metadata(f), manifest)     # identity, rows, metadata digest
        meta = _shower_meta(raw)
        if meta is None:
            raise DatasetError(f"{f}: not a shower dataset (format {raw.get('format')!r}); make one with "
                               "'fastrsa shower' or 'fastrsa generate --setup dqcd'")
        if meta["prefix"] == "" and raw.get("format_version", 0) > FORMAT_VERSION:
            raise DatasetError(f"{f}: shower format {raw.get('format_version')} is newer than this fastrsa reads")
        metas.append(meta)
        pre = meta["prefix"]
        t = decode(f)
        tables.append(t.select([c for c in t.column_names if c.startswith(pre)]) if pre else t)
    m0 = metas[0]
    pre = m0["prefix"]
    keys = ("lambda", "ecm", "orders", "seed", "shower_version")
    for f, m in zip(files, metas):
        if any(m.get(k) != m0.get(k) for k in keys):
            raise DatasetError(f"{f}: written by another shower run than {files[0].name}; a directory holds one run")
    if p.is_dir() and manifest_path(p).exists():
        n_planned = manifest["n_shards"]
        if len(files) != n_planned:
            raise DatasetError(f"{p}: incomplete ({len(files)} of {n_planned} shards); finish it with the same "
                               "command (it resumes)")
    t = pa.concat_tables(tables).combine_chunks()
    n = t.num_rows
    orders = int(m0["orders"])
    col = lambda c: t.column(pre + c)  # noqa: E731
    off = np.asarray(col("px").chunks[0].offsets).astype(np.int64) if n else np.zeros(1, np.int64)
    flat = lambda c: torch.from_numpy(col(c).chunks[0].values.to_numpy().astype(np.float64)[off[0]:off[-1]])  # noqa: E731
    P = torch.stack([flat(c) for c in COMPONENTS], 1)
    coeffs = torch.stack([torch.stack([flat(f"d{k}_{c}") for c in COMPONENTS], 1) for k in range(1, orders + 1)]) \
        if orders else torch.zeros((0, P.shape[0], 4), dtype=torch.float64)
    lr = torch.stack([torch.from_numpy(col(f"dlograte_{k}").to_numpy().copy()) for k in range(1, orders + 1)], 1) \
        if orders else torch.zeros((n, 0), dtype=torch.float64)
    ints = lambda c: torch.from_numpy(col(c).chunks[0].values.to_numpy().astype(np.int64)[off[0]:off[-1]])  # noqa: E731
    events = col("event").to_numpy()
    s = ShowerSample(p=P, pdg=ints("pdg"), offsets=torch.from_numpy(off - off[0]), coeffs=coeffs, log_rate_derivs=lr,
                     topology=torch.from_numpy(col("topology").to_numpy().copy()), generation=ints("generation"),
                     level=ints("level"), log_rate=torch.from_numpy(col("log_rate").to_numpy().copy()),
                     lam=float(m0["lambda"]), ecm=float(m0["ecm"]), seed=int(m0["seed"]), orders=orders,
                     dy=float(m0.get("dy") or 0.0), first_event=int(events[0]) if n else 0,
                     version=m0["shower_version"])
    s = _to(s, device)
    if not with_extra:
        return s
    extra = {"event": events.copy()}
    if pre + "log_weight" in t.column_names:
        extra["log_weight"] = col("log_weight").to_numpy().copy()
    return s, extra


def _to(s: ShowerSample, device) -> ShowerSample:
    import dataclasses
    dev = torch.device(device)
    return dataclasses.replace(s, **{f: getattr(s, f).to(dev) for f in ("p", "pdg", "offsets", "coeffs",
                                                                         "log_rate_derivs", "topology",
                                                                         "generation", "level", "log_rate")})


def as_shower_sample(x, device="cpu") -> ShowerSample:
    """A ShowerSample as it is (moved to `device`), or a shower dataset path opened."""
    return _to(x, device) if isinstance(x, ShowerSample) else open_shower(x, device)
