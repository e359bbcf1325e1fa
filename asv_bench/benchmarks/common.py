"""Shared fixtures for the benchmarks: one pion-string dataset generated once per machine."""
import os
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("FASTRSA_BENCH_DIR", Path(tempfile.gettempdir()) / "fastrsa-bench"))


def string_dataset(events: int):
    from fastrsa import open_dataset
    from fastrsa.generation import generate
    out = CACHE / f"string-{events}"
    from fastrsa.store.layout import manifest_path
    if manifest_path(out).exists():
        ds = open_dataset(out)
        if ds.complete:
            return ds
    return generate(out, events=events, seed=5, jobs=2, progress=False)
