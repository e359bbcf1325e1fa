"""A generation run's plan: its configuration, per-shard sizes and seeds, input checks, and the
output directory's manifest (which makes an interrupted run resumable and refuses a foreign one).

A run is split into shards of a fixed number of events, each with a seed derived from the run seed
and the shard index only, so the data do not depend on the number of jobs and an interrupted run
resumes by generating exactly the shards that are missing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DatasetError, ParameterError
from ..params import SPACE, BaseParams, check_z_head
from ..pythia.setups import Setup
from ..store.layout import ShardedRun, manifest_path, read_manifest
from ..store.schema import FORMAT_NAME, FORMAT_VERSION
from ..store.writer import prepare_run_dir


@dataclass(frozen=True)
class RunConfig(ShardedRun):
    events: int
    base: BaseParams
    setup: Setup
    seed: int
    shard_events: int

    def shard_seed(self, i: int) -> int:
        # Independent of the job count: resuming with other --jobs gives the same data.
        return int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0] % 900_000_000) + 1

    def identity(self) -> dict:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "events": self.events,
                "shard_events": self.shard_events, "n_shards": self.n_shards, "seed": self.seed,
                "base_requested": {"a": self.base.a, "b": self.base.b, "sigma": self.base.sigma,
                                   "z_head": self.base.z_head},
                "setup": {"name": self.setup.name, "energy": self.setup.energy}
                | ({"settings": list(self.setup.settings)} if self.setup.name == "cmnd" else {})
                | ({"shower": dict(self.setup.shower)} if self.setup.name == "dqcd" else {})}


MAX_SHARD_EVENTS = 10000
MAX_SHARDS = 100_000        # a run's plan (and its resume bookkeeping) stays small
DEFAULT_SHARDS = 8          # the default split: enough shards for 8 jobs, never dependent on --jobs


def default_shard_events(events: int) -> int:
    """Events per shard when not given: a function of `events` alone (never of --jobs), so the data of
    a run depend only on (events, shard size, seed, setup) and resume with any --jobs."""
    return max(1, min(MAX_SHARD_EVENTS, math.ceil(events / DEFAULT_SHARDS)))


def max_jobs() -> int:
    """At most one job per core: more processes than cores make nothing faster and cost memory."""
    import os
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def validate_request(events, a, b, sigma, z_head, seed, jobs, shard_events) -> None:
    """Every check that needs no Pythia; raises before anything is written."""
    if not isinstance(events, (int, np.integer)) or events <= 0:
        raise ParameterError(f"events = {events!r} must be a positive integer")
    if (a, b, sigma) != (None, None, None):     # None: a cmnd configuration gives them to Pythia
        SPACE.check((a, b, sigma), where="generate", names=("a", "b", "sigma"))
    check_z_head(z_head)
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ParameterError(f"seed = {seed!r} must be a non-negative integer")
    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ParameterError(f"jobs = {jobs!r} must be an integer >= 1")
    if shard_events is not None and (not isinstance(shard_events, (int, np.integer)) or shard_events < 1):
        raise ParameterError(f"shard_events = {shard_events!r} must be an integer >= 1")
    per_shard = default_shard_events(events) if shard_events is None else shard_events
    if -(-events // per_shard) > MAX_SHARDS:
        raise ParameterError(f"events = {events} in shards of {per_shard} makes {-(-events // per_shard)} shards, "
                             f"more than {MAX_SHARDS} in one run: raise shard_events (--shard-events) or split "
                             "the run into several datasets")


def prepare_output(out: Path, config: RunConfig) -> list[int]:
    """Create or check OUT; returns the shard indices still to generate. Writes only the manifest."""
    mpath = manifest_path(out)
    if out.is_dir() and mpath.exists():
        old_version = read_manifest(mpath).get("identity", {}).get("format_version")
        if isinstance(old_version, int) and old_version < FORMAT_VERSION:
            raise DatasetError(f"{out}: holds a dataset of format version {old_version}, written by an older "
                               f"fastrsa; it opens and reads, but cannot be resumed in format {FORMAT_VERSION}: "
                               "generate into a new directory")
    return prepare_run_dir(out, config.identity(), config.n_shards, f"fastrsa {__version__}")
