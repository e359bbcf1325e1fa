"""Connecting to a Dask cluster (the optional extra `fastrsa[dask]`): the `--dask` value, the Client's
lifetime, and per-worker state.

    local        a LocalCluster on this machine, one single-threaded worker process per core
    local:N      the same with N worker processes
    tcp://H:P    the scheduler of an existing cluster (started by `dask scheduler`, dask-jobqueue on
                 SLURM/PBS, dask-kubernetes, ...); tls://H:P likewise

A LocalCluster lives exactly as long as the `dask_client` block that made it: it is closed on return,
on an error and on Ctrl-C, and its workers end themselves when this process is killed outright (a
watchdog on the driver's pid). A scheduler given by address belongs to whoever started it; only the
connection is closed.
"""
from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager

from .errors import DependencyError, ParameterError

INSTALL = "pip install 'fastrsa[dask]'"
_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+(:\d+)?/?$")


def require_dask(what: str = "--dask"):
    """The `distributed` module, or one line saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise DependencyError(f"{what}: Dask is not installed; install it with {INSTALL}") from None
    return distributed


def parse_spec(spec) -> tuple[str, int | str | None]:
    """('local', N or None) or ('address', 'tcp://host:port') from a --dask value; raises on anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"--dask {spec!r}: give local, local:N (N worker processes on this machine) or a "
                             "scheduler address tcp://HOST:PORT")
    s = spec.strip()
    if s == "local":
        return "local", None
    if s.startswith("local:"):
        n = s[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise ParameterError(f"--dask {spec!r}: the number of local workers must be an integer >= 1, "
                                 "e.g. local:4")
        return "local", int(n)
    if _ADDRESS.match(s):
        return "address", s.rstrip("/")
    raise ParameterError(f"--dask {spec!r}: give local, local:N (N worker processes on this machine) or a "
                         "scheduler address tcp://HOST:PORT")


def local_workers(n: int | None) -> int:
    """Workers of `local` / `local:N`: N, or one per core the process may use."""
    if n is not None:
        return n
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _watch_driver(pid: int, every: float = 0.5) -> None:
    """Runs in a worker of a LocalCluster: the worker exits once the driver process `pid` is gone (killed
    with SIGKILL, so that nothing closed the cluster); it never outlives the run that started it."""
    def watch():
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            time.sleep(every)
    if not getattr(_watch_driver, "started", False):
        _watch_driver.started = True
        threading.Thread(target=watch, daemon=True, name="fastrsa-driver-watch").start()


class _DriverWatch:
    """A worker plugin (duck-typed: Dask calls setup(worker)) that starts `_watch_driver` in each worker,
    including workers a nanny restarts later."""

    name = "fastrsa-driver-watch"

    def __init__(self, pid: int):
        self.pid = pid

    def setup(self, worker=None):
        _watch_driver(self.pid)


@contextmanager
def dask_client(spec):
    """A `distributed.Client` for a --dask value (see the module docstring); an existing Client passes
    through untouched (the caller owns it)."""
    distributed = require_dask()
    if isinstance(spec, distributed.Client):
        yield spec
        return
    kind, arg = parse_spec(spec)
    import logging
    cluster = client = None
    try:
        if kind == "local":
            cluster = distributed.LocalCluster(n_workers=local_workers(arg), threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.CRITICAL)
            client = distributed.Client(cluster)
            client.register_plugin(_as_worker_plugin(distributed, os.getpid()))
        else:
            try:
                client = distributed.Client(arg, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ParameterError(f"--dask {arg}: no Dask scheduler answers there ({type(exc).__name__}); "
                                     "start one (dask scheduler) or check the address") from None
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _as_worker_plugin(distributed, pid: int):
    class DriverWatch(_DriverWatch, distributed.WorkerPlugin):
        pass
    return DriverWatch(pid)


def worker_addresses(client) -> list[str]:
    """The addresses of the workers the scheduler knows now, sorted."""
    import inspect
    kw = {"n_workers": -1} if "n_workers" in inspect.signature(client.scheduler_info).parameters else {}
    return sorted(client.scheduler_info(**kw)["workers"])
