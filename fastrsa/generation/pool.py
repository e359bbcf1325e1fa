"""The local executor: shards spread over worker processes, with progress and interrupt handling.

Jobs are processes; each owns the shards with index = job (mod jobs) and makes them with the pure
shard function (`ShardMaker.make`), writing each atomically.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path

from ..errors import DatasetError, FastRSAError, PythiaError
from ..progress import Progress
from ..store.integrity import record
from ..store.layout import shards as list_shards
from ..store.writer import write_shard
from .plan import RunConfig, max_jobs
from .shard import ShardMaker


def _die_with(parent: int, every: float = 0.5) -> None:
    """Workers die with their parent (SIGKILL, SIGTERM, a crash). On Linux the kernel kills the worker the
    moment its parent dies (prctl PR_SET_PDEATHSIG); everywhere, a watchdog thread ends a worker that finds
    itself re-parented, before it writes another shard."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)      # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:                      # the parent died before the request took effect
            os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _worker(job: int, config: RunConfig, out: str, indices: list, q, parent: int) -> None:
    if hasattr(signal, "pthread_sigmask"):      # started with SIGINT blocked (run_jobs): take Ctrl-C again
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    _die_with(parent)
    try:
        if not indices:
            q.put(("done", job))
            return
        maker = ShardMaker(config, indices[0])
        for i in indices:
            table = maker.make(i, on_events=lambda n: q.put(("progress", n)))
            q.put(("shard", (i, write_shard(Path(out), i, table))))
        q.put(("done", job))
    except FastRSAError as exc:
        q.put(("error", str(exc)))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a crash in a worker is reported, not swallowed
        q.put(("error", f"worker {job} crashed: {type(exc).__name__}: {exc}"))


RECORD_EVERY = 2.0      # seconds between manifest updates with the checksums of new shards


def _drain(q, written: dict) -> None:
    """Collect the shard reports still queued once the workers have stopped."""
    while True:
        try:
            kind, val = q.get_nowait()
        except (queue.Empty, OSError, ValueError, EOFError):
            return
        if kind == "shard":
            written[val[0]] = val[1]


def run_jobs(out: Path, config: RunConfig, todo: list, jobs: int, progress: bool, done_events: int) -> None:
    """Make the shards `todo` of `config` in `jobs` processes, writing them into `out`."""
    ctx = mp.get_context("spawn")       # a fresh interpreter per job: no forked Pythia state
    q = ctx.Queue()
    jobs = min(jobs, len(todo), max_jobs())
    procs = [ctx.Process(target=_worker, args=(j, config, str(out), todo[j::jobs], q, os.getpid()), daemon=True)
             for j in range(jobs)]
    bar = Progress(config.events, done_events) if progress else None
    finished, error, started = 0, None, []
    written, last_record = {}, time.monotonic()     # checksums not yet in the manifest
    try:
        for p in procs:
            # SIGINT is blocked while a job starts: in this process a Ctrl-C then arrives once the job is in
            # `started` (and is terminated with the rest below); the child inherits the mask, so it cannot
            # die of it half-way through reading its pickled arguments (an EOFError traceback), and
            # unblocks it as soon as it runs (_worker)
            blocking = hasattr(signal, "pthread_sigmask")
            old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT]) if blocking else None
            try:
                p.start()
                started.append(p)
            finally:
                if blocking:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
        while finished < jobs and error is None:
            try:
                kind, val = q.get(timeout=1.0)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    error = "a generation job died unexpectedly (killed or out of memory); rerun to resume"
                continue
            if kind == "progress" and bar:
                bar.update(val)
            elif kind == "shard":
                written[val[0]] = val[1]
                if time.monotonic() - last_record > RECORD_EVERY:
                    record(out, written)
                    written, last_record = {}, time.monotonic()
            elif kind == "done":
                finished += 1
            elif kind == "error":
                error = val
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        if error is not None:
            for p in started:
                if p.is_alive():
                    p.terminate()
        for p in started:
            p.join()
        _drain(q, written)
        try:
            record(out, written)    # a shard not recorded here is verified in full on resume
        except (KeyboardInterrupt, OSError):
            pass
        if bar:
            bar.close()
    if error == "interrupted":
        n = len(list_shards(out))
        raise KeyboardInterrupt(f"interrupted: {n} of {config.n_shards} shards are complete in {out}; "
                                "rerun the same command to resume")
    if error is not None:
        raise PythiaError(error) if "Pythia" in error else DatasetError(error)
