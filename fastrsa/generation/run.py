"""`fastrsa generate`: stock Pythia 8 -> a dataset of rejection-sampling histories (plan, then make
the missing shards with the local pool)."""
from __future__ import annotations

from pathlib import Path

from ..params import BaseParams
from ..pythia.records import import_pythia
from ..pythia.setups import make_setup
from ..store.dataset import Dataset, open_dataset
from .plan import RunConfig, default_shard_events, prepare_output, validate_request
from .pool import run_jobs


def generate(out, events: int = 10000, a: float = 0.72, b: float = 0.88, sigma: float = 0.335,
             z_head: float = 10.0, energy: float | None = None, seed: int = 1, jobs: int = 1,
             setup: str = "string", shard_events: int | None = None, progress: bool = True) -> Dataset:
    """Generate (or resume) a dataset in directory `out`; returns the opened Dataset."""
    validate_request(events, a, b, sigma, z_head, seed, jobs, shard_events)
    st = make_setup(setup, energy)
    import_pythia()             # fail here, before anything is written, when Pythia is unusable
    if shard_events is None:
        shard_events = default_shard_events(events, jobs)
    config = RunConfig(int(events), BaseParams(a=a, b=b, sigma=sigma, z_head=z_head), st, int(seed),
                       int(shard_events))
    out = Path(out)
    todo = prepare_output(out, config)
    done_events = sum(config.shard_size(i) for i in range(config.n_shards)) - \
        sum(config.shard_size(i) for i in todo)
    if todo:
        run_jobs(out, config, todo, jobs, progress, done_events)
    return open_dataset(out)
