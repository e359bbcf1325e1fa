"""The Dask executor of a generation run: one task per shard, on any `distributed` cluster.

The task is the same pure shard function the local pool runs (`ShardMaker.make(i)`, then
`store.writer.write_shard`, which writes atomically), so a shard's bytes depend only on the run's
configuration and the shard index: a Dask run writes the same files as a local run. Each worker
process keeps one ShardMaker per run (the sentinel self-check runs once per worker and run).

A worker that dies mid-shard leaves at most a hidden temporary file; the scheduler gives its task to
another worker, and the temporaries of dead workers are swept when the run ends (and on resume).
Progress (events, events/s, time left) follows the futures as shards complete.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from ..errors import DatasetError, FastRSAError, PythiaError
from ..progress import Progress
from ..store.integrity import record
from ..store.layout import TEMP_GLOB, shard_index, shard_name
from ..store.layout import shards as list_shards
from ..store.writer import write_shard
from .plan import RunConfig
from .shard import ShardMaker
from .url_store import UrlDir, is_url

RECORD_EVERY = 2.0      # seconds between manifest updates with the checksums of new shards (as the pool)
_local = threading.local()      # per worker thread: (run key, ShardMaker)


def _maker(config: RunConfig, first_index: int) -> ShardMaker:
    key = json.dumps(config.identity(), sort_keys=True)
    held = getattr(_local, "maker", None)
    if held is None or held[0] != key:
        _local.maker = held = (key, ShardMaker(config, first_index))
    return held[1]


def make_shard(config: RunConfig, out: str, i: int) -> tuple[int, int, dict]:
    """The task of shard i: make it and write it atomically into directory `out` (a path every worker
    reaches, or an fsspec URL). Returns (i, events written, the manifest's entry for the shard)."""
    table = _maker(config, i).make(i)
    if is_url(out):
        entry = UrlDir(out).write_shard(i, table)
    else:
        entry = write_shard(Path(out), i, table)
    return i, table.num_rows, entry


def run_dask(out: Path, config: RunConfig, todo: list, client, progress: bool, done_events: int) -> None:
    """Make the shards `todo` of `config` as tasks of the cluster behind `client`, writing into `out`."""
    from dask.base import tokenize
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    remote = UrlDir(str(out)) if is_url(out) else None
    out = out if remote is not None else Path(out).resolve()
    # A fresh key per run: a key the client still holds from an earlier run (a shard since deleted, now to be
    # redone) would hand back that run's finished result instead of making the shard again.
    token = f"{tokenize(config.identity(), str(out))}-{uuid.uuid4().hex[:8]}"
    futures = [client.submit(make_shard, config, str(out), i, key=f"fastrsa-shard-{token}-{i}", pure=False)
               for i in todo]
    bar = Progress(config.events, done_events) if progress else None
    error = None
    written, last_record = {}, time.monotonic()     # checksums not yet in the manifest
    save = remote.record if remote is not None else (lambda entries: record(out, entries))
    try:
        for fut in as_completed(futures):
            try:
                i, n, entry = fut.result()
            except KilledWorker:
                error = ("a shard's task killed every worker that ran it (out of memory?); the complete shards "
                         "are kept: rerun to resume")
                break
            except FutureCancelledError:
                error = "the cluster cancelled a shard's task; rerun to resume"
                break
            except FastRSAError as exc:
                error = exc
                break
            except Exception as exc:      # a crash on a worker is reported, not swallowed
                error = f"a generation task crashed: {type(exc).__name__}: {exc}"
                break
            written[i] = entry
            if time.monotonic() - last_record > RECORD_EVERY:
                save(written)
                written, last_record = {}, time.monotonic()
            if bar:
                bar.update(n)
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        try:
            save(written)           # a shard not recorded here is verified in full on resume
        except (KeyboardInterrupt, OSError):
            pass
        if bar:
            bar.close()
    if error is None:                       # temporaries of workers that died mid-shard (their shards were redone)
        if remote is not None:
            remote.sweep()
        else:
            for tmp in out.glob(TEMP_GLOB):
                tmp.unlink(missing_ok=True)
        have = set(remote.shard_indices() if remote is not None else (shard_index(p) for p in list_shards(out)))
        unseen = [i for i in todo if i not in have]
        if unseen:
            raise DatasetError(f"{out}: the workers wrote {len(unseen)} shards this machine cannot see (e.g. "
                               f"{shard_name(unseen[0])}); give an output path on a filesystem the workers share with "
                               "this machine, or a URL both reach")
    if error == "interrupted":
        n = len(remote.shard_indices() if remote is not None else list_shards(out))
        raise KeyboardInterrupt(f"interrupted: {n} of {config.n_shards} shards are complete in {out}; "
                                "rerun the same command to resume")
    if isinstance(error, FastRSAError):
        raise error
    if error is not None:
        raise PythiaError(error) if "Pythia" in error else DatasetError(error)
