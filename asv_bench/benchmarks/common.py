"""Shared fixtures for the benchmarks: one pion-string dataset generated once per machine."""
import os
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("FASTRSA_BENCH_DIR", Path(tempfile.gettempdir()) / "fastrsa-bench"))


def string_dataset(events: int, target: bool = False):
    """The base (the RSA paper's point, seed 5) or, with `target`, pseudo-data at Pythia's default (seed 6)."""
    from fastrsa import open_dataset
    from fastrsa.generation import generate
    out = CACHE / (f"string-target-{events}" if target else f"string-{events}")
    from fastrsa.store.layout import manifest_path
    if manifest_path(out).exists():
        ds = open_dataset(out)
        if ds.complete:
            return ds
    if target:
        return generate(out, events=events, a=0.68, b=0.98, seed=6, jobs=2, progress=False)
    return generate(out, events=events, seed=5, jobs=2, progress=False)


def ee_dataset(events: int):
    """e+e- -> Z events at Pythia's defaults, with flavour records (format 3)."""
    from fastrsa import open_dataset
    from fastrsa.generation import generate
    out = CACHE / f"ee-{events}"
    if (out / "_fastrsa.parquet").exists() or (out / "fastrsa.json").exists():
        ds = open_dataset(out)
        if ds.complete and ds.format_version >= 3:
            return ds
    return generate(out, events=events, setup="ee", a=0.68, b=0.98, sigma=0.335, seed=5, jobs=2, progress=False)


def tile_batch(batch, copies: int):
    """`copies` copies of a TrialBatch's events, one after another, as one batch on the same device: a large
    batch with the sample's own trials, so the same work per trial, without generating it (the GPU
    benchmark's 1e6 events from the 20k-event dataset). Event j of copy c weighs what event j weighs."""
    import dataclasses

    import torch
    T, H = batch.n_trials, batch.h_m.shape[0]

    def rep(x):
        return x.repeat((copies,) + (1,) * (x.dim() - 1))

    def shifted(x, step):           # an index array per copy, shifted by copy * step
        return torch.cat([x + c * step for c in range(copies)])

    return dataclasses.replace(
        batch, z=rep(batch.z), qB=rep(batch.qB), h_m=rep(batch.h_m), h_cls=rep(batch.h_cls),
        h_base=rep(batch.h_base), n_breaks=rep(batch.n_breaks), sum_pt2=rep(batch.sum_pt2),
        hadron=shifted(batch.hadron, H),
        offsets=torch.cat([shifted(batch.offsets[:-1], T), batch.offsets[-1:] + (copies - 1) * T]),
        h_start=torch.cat([shifted(batch.h_start[:-1], T), batch.h_start[-1:] + (copies - 1) * T]),
        flav=None if batch.flav is None else rep(batch.flav), feat=None if batch.feat is None else rep(batch.feat))
