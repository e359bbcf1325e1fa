"""`fastrsa generate`: stock Pythia 8 -> a dataset of rejection-sampling histories.

A run is split into shards of a fixed number of events, each with a seed derived from the run seed
and the shard index only, so the data do not depend on the number of jobs and an interrupted run
resumes by generating exactly the shards that are missing. Jobs are processes; each owns the shards
with index = job (mod jobs). A shard reaches its final name only once complete (write to a
temporary name, fsync, rename).
"""
from __future__ import annotations

import io
import json
import math
import multiprocessing as mp
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .dataset import MANIFEST, SHARD_GLOB, atomic_write_bytes
from .errors import DatasetError, FastRSAError, ParameterError, PythiaError
from .format import FORMAT_NAME, FORMAT_VERSION, schema_with_meta
from .params import BaseParams, check_theta, check_z_head
from .pythia_records import import_pythia, make_reader, pythia_version
from .setups import Setup, fill_event, make_setup, run_settings

N_SENTINEL_EVENTS = 20
SENTINEL_RTOL = 1e-12       # measured: reader-based weights equal Pythia's in-situ ones to the last bit
PROGRESS_EVERY = 250        # events between progress messages from a worker


@dataclass(frozen=True)
class RunConfig:
    events: int
    base: BaseParams
    setup: Setup
    seed: int
    shard_events: int

    @property
    def n_shards(self) -> int:
        return math.ceil(self.events / self.shard_events)

    def shard_size(self, i: int) -> int:
        return min(self.shard_events, self.events - i * self.shard_events)

    def shard_seed(self, i: int) -> int:
        # Independent of the job count: resuming with other --jobs gives the same data.
        return int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0] % 900_000_000) + 1

    def identity(self) -> dict:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "events": self.events,
                "shard_events": self.shard_events, "n_shards": self.n_shards, "seed": self.seed,
                "base_requested": {"a": self.base.a, "b": self.base.b, "sigma": self.base.sigma,
                                   "z_head": self.base.z_head},
                "setup": {"name": self.setup.name, "energy": self.setup.energy}}


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def validate_request(events, a, b, sigma, z_head, seed, jobs, shard_events) -> None:
    """Every check that needs no Pythia; raises before anything is written."""
    if not isinstance(events, (int, np.integer)) or events <= 0:
        raise ParameterError(f"events = {events!r} must be a positive integer")
    check_theta(a, b, sigma, where="generate")
    check_z_head(z_head)
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ParameterError(f"seed = {seed!r} must be a non-negative integer")
    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ParameterError(f"jobs = {jobs!r} must be an integer >= 1")
    if shard_events is not None and (not isinstance(shard_events, (int, np.integer)) or shard_events < 1):
        raise ParameterError(f"shard_events = {shard_events!r} must be an integer >= 1")


def prepare_output(out: Path, config: RunConfig) -> list[int]:
    """Create or check OUT; returns the shard indices still to generate. Writes only the manifest."""
    ident = config.identity()
    mpath = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory; choose another output path")
    if out.is_dir() and any(out.iterdir()):
        if not mpath.exists():
            raise DatasetError(f"{out}: is not empty and holds no fastrsa dataset; refusing to write "
                               "into it, choose a new directory")
        have = json.loads(mpath.read_text())
        if have.get("identity") != ident:
            diff = sorted(k for k in set(have.get("identity", {})) | set(ident)
                          if have.get("identity", {}).get(k) != ident.get(k))
            raise DatasetError(f"{out}: holds a different dataset (differs in {', '.join(diff)}); "
                               "choose a new directory or repeat that run's exact options to resume")
        for tmp in out.glob(".part-*.tmp-*"):
            tmp.unlink()        # remains of an interrupted shard; it is redone
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(mpath, json.dumps({"identity": ident, "n_shards": config.n_shards,
                                              "created_by": f"fastrsa {__version__}"},
                                             indent=1, sort_keys=True).encode())
    done = {int(p.name[5:10]) for p in out.glob(SHARD_GLOB)}
    return [i for i in range(config.n_shards) if i not in done]


# --- inside a worker process ------------------------------------------------------------------

def _new_pythia(pythia8mc, config: RunConfig, seed: int, extra=()):
    py = pythia8mc.Pythia("", False)
    for s in run_settings(config.base, config.setup) + [f"Random:seed = {seed}"] + list(extra):
        if not py.readString(s):
            raise PythiaError(f"Pythia {pythia_version()} refused the setting {s!r}")
    if not py.init():
        raise PythiaError(f"Pythia {pythia_version()} failed to initialize for setup "
                          f"{config.setup.name!r}")
    return py


def actual_base(py, requested: BaseParams) -> BaseParams:
    """The base parameters as this Pythia has them (masses and extras from Pythia itself)."""
    s = py.settings
    return BaseParams(a=s.parm("StringZ:aLund"), b=s.parm("StringZ:bLund"), sigma=s.parm("StringPT:sigma"),
                      z_head=s.parm("VariationFrag:zHead"), r_fact_c=s.parm("StringZ:rFactC"),
                      r_fact_b=s.parm("StringZ:rFactB"), r_fact_h=s.parm("StringZ:rFactH"),
                      a_extra_squark=s.parm("StringZ:aExtraSQuark"),
                      a_extra_diquark=s.parm("StringZ:aExtraDiquark"),
                      use_old_aextra=bool(s.flag("StringZ:useOldAExtra")),
                      m_c=py.particleData.m0(4), m_b=py.particleData.m0(5))


def sentinel_point(base: BaseParams) -> dict:
    """A variation away from the base in every reweightable parameter."""
    return {"aLund": base.a + 0.1, "bLund": base.b * 1.2, "rFactC": base.r_fact_c * 0.9,
            "rFactB": base.r_fact_b * 1.1, "ptSigma": base.sigma * 0.9}


def _hadrons(event) -> tuple:
    px, py_, pz, e, m, pdg = [], [], [], [], [], []
    for j in range(event.size()):
        p = event[j]
        if p.isFinal() and p.isHadron():
            px.append(p.px()); py_.append(p.py()); pz.append(p.pz())
            e.append(p.e()); m.append(p.m()); pdg.append(p.id())
    return px, py_, pz, e, m, pdg


def next_event(py, reader, setup: Setup, cache: dict):
    """Generate one event; returns (Records, hadrons) or None when Pythia failed it."""
    fill_event(py, setup, cache)
    if not py.next():
        return None
    return reader.read(), _hadrons(py.event)


def run_sentinel(pythia8mc, config: RunConfig, seed: int, n_events: int = N_SENTINEL_EVENTS) -> list:
    """Prove the record reader on this process: weights recomputed from the records it reads must
    equal Pythia's in-situ weights for a sentinel variation. Returns the records it checked.

    A separate Pythia carries the in-situ variation (it costs ~40% of the generation time, so the
    production instance runs without it); it has the first shard's seed and, since in-situ weights
    draw no random numbers, generates exactly that shard's first events.
    """
    sp = sentinel_point(config.base)
    group = " ".join(f"frag:{k}={v!r}" for k, v in sp.items())
    py = _new_pythia(pythia8mc, config, seed, extra=[f"VariationFrag:List = {{fastrsaSentinel {group}}}"])
    reader = make_reader(py, pythia8mc)
    base = actual_base(py, config.base)
    kv = pythia8mc.KinematicVariations(base.a, base.b, base.r_fact_c, base.r_fact_b, base.sigma, base.z_head)
    cache, checked = {}, []
    while len(checked) < n_events:
        got = next_event(py, reader, config.setup, cache)
        if got is None:
            continue
        rec = got[0]
        info = py.infoPython()
        insitu = info.weightValueByIndex(info.numberOfWeights() - 1)
        recomputed = kv.weight(sp["aLund"], sp["bLund"], sp["rFactC"], sp["rFactB"], sp["ptSigma"],
                               rec.z_int.tolist(), rec.z_dbl.tolist(), rec.pt.tolist())
        if not (len(rec.z_dbl) > 0 and math.isclose(recomputed, insitu, rel_tol=SENTINEL_RTOL, abs_tol=0.0)):
            raise PythiaError(
                f"Pythia {pythia_version()}: records read from memory do not reproduce Pythia's in-situ "
                f"weight (event {len(checked)}: {recomputed!r} vs {insitu!r}, {len(rec.z_dbl) // 3} "
                f"trials); this build's layout is not that of Pythia 8.317 - install pythia8mc==8.317.2")
        checked.append(rec)
    return checked


def _build_table(rows: list, meta: dict) -> pa.Table:
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


def write_shard(out: Path, index: int, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(out / shard_name(index), buf.getvalue())


def _worker(job: int, config: RunConfig, out: str, shards: list, q) -> None:
    try:
        pythia8mc = import_pythia()
        if not shards:
            q.put(("done", job))
            return
        first_seed = config.shard_seed(shards[0])
        run_sentinel(pythia8mc, config, first_seed)
        py = _new_pythia(pythia8mc, config, first_seed)
        reader = make_reader(py, pythia8mc)
        base = actual_base(py, config.base)
        cache = {}
        for i in shards:
            seed = config.shard_seed(i)
            py.rndm.init(seed)
            rows, failed, since = [], 0, 0
            while len(rows) < config.shard_size(i):
                got = next_event(py, reader, config.setup, cache)
                if got is None:
                    failed += 1
                    if failed > 100 + len(rows):
                        raise PythiaError(f"Pythia {pythia_version()} failed {failed} events in shard {i}")
                    continue
                rows.append(got)
                since += 1
                if since == PROGRESS_EVERY:
                    q.put(("progress", since))
                    since = 0
            meta = shard_meta(base, config, i, seed, len(rows), failed)
            write_shard(Path(out), i, _build_table(rows, meta))
            q.put(("progress", since))
            q.put(("shard", i))
        q.put(("done", job))
    except FastRSAError as exc:
        q.put(("error", str(exc)))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a crash in a worker is reported, not swallowed
        q.put(("error", f"worker {job} crashed: {type(exc).__name__}: {exc}"))


class Progress:
    """A one-line progress bar on stderr (events, events/s, time left); plain lines when not a tty."""

    def __init__(self, total: int, done: int, stream=None):
        self.total, self.done, self.start_done = total, done, done
        self.t0 = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0

    def update(self, n: int, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 10.0):
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "--:--:--"
        frac = self.done / self.total
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        line = f"[{bar}] {self.done}/{self.total} events  {rate:,.0f} ev/s  left {eta}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.update(0, force=True)
        if self.tty:
            self.stream.write("\n")


def generate(out, events: int = 10000, a: float = 0.72, b: float = 0.88, sigma: float = 0.335,
             z_head: float = 10.0, energy: float | None = None, seed: int = 1, jobs: int = 1,
             setup: str = "string", shard_events: int | None = None, progress: bool = True):
    """Generate (or resume) a dataset in directory `out`; returns the opened Dataset."""
    from .dataset import open_dataset

    validate_request(events, a, b, sigma, z_head, seed, jobs, shard_events)
    st = make_setup(setup, energy)
    import_pythia()             # fail here, before anything is written, when Pythia is unusable
    if shard_events is None:
        shard_events = max(1, min(10000, math.ceil(events / (4 * jobs))))
    config = RunConfig(int(events), BaseParams(a=a, b=b, sigma=sigma, z_head=z_head), st, int(seed),
                       int(shard_events))
    out = Path(out)
    todo = prepare_output(out, config)
    done_events = sum(config.shard_size(i) for i in range(config.n_shards)) - \
        sum(config.shard_size(i) for i in todo)
    if todo:
        _run_jobs(out, config, todo, jobs, progress, done_events)
    return open_dataset(out)


def _run_jobs(out: Path, config: RunConfig, todo: list, jobs: int, progress: bool, done_events: int):
    ctx = mp.get_context("spawn")       # a fresh interpreter per job: no forked Pythia state
    q = ctx.Queue()
    jobs = min(jobs, len(todo))
    procs = [ctx.Process(target=_worker, args=(j, config, str(out), todo[j::jobs], q), daemon=True)
             for j in range(jobs)]
    bar = Progress(config.events, done_events) if progress else None
    finished, error = 0, None
    try:
        for p in procs:
            p.start()
        while finished < jobs and error is None:
            try:
                kind, val = q.get(timeout=1.0)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    error = "a generation job died unexpectedly (killed or out of memory); rerun to resume"
                continue
            if kind == "progress" and bar:
                bar.update(val)
            elif kind == "done":
                finished += 1
            elif kind == "error":
                error = val
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        if error is not None:
            for p in procs:
                if p.is_alive():
                    p.terminate()
        for p in procs:
            p.join()
        if bar:
            bar.close()
    if error == "interrupted":
        n = len(list(out.glob(SHARD_GLOB)))
        raise KeyboardInterrupt(f"interrupted: {n} of {config.n_shards} shards are complete in {out}; "
                                "rerun the same command to resume")
    if error is not None:
        raise PythiaError(error) if "Pythia" in error else DatasetError(error)
