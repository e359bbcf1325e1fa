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
