"""How a dataset directory is laid out: the one place that spells file names.

    OUT/_fastrsa.parquet     the run manifest (identity of the run, planned number of shards): a
                             zero-row Parquet file of the dataset's schema, the manifest as JSON in
                             its metadata (key `fastrsa_manifest`)
    OUT/part-00000.parquet   shards, one row per event
    OUT/.part-00000.parquet.tmp-PID   a shard being written (renamed when complete)

Parquet readers built on pyarrow (pyarrow.dataset, pandas, awkward) and Spark skip names that begin
with `_` or `.` (the Hive convention of `_SUCCESS` and `_common_metadata`); polars skips nothing but
wants one file extension in a directory, which a zero-row `.parquet` manifest satisfies (it adds no
rows). So every one of them opens OUT as-is. Datasets written before this layout keep their manifest
as JSON in `fastrsa.json`; they are still read and resumed.
"""
from __future__ import annotations

import re
from pathlib import Path

MANIFEST = "_fastrsa.parquet"
MANIFEST_KEY = b"fastrsa_manifest"
LEGACY_MANIFEST = "fastrsa.json"
SHARD_GLOB = "part-*.parquet"
_SHARD_RE = re.compile(r"^part-(\d{5,})\.parquet$")


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def shard_index(path) -> int | None:
    """The shard index of a shard file name, or None when the name is not a shard's."""
    m = _SHARD_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def shards(directory) -> list[Path]:
    """The complete shards of a dataset directory, in index order."""
    found = [(shard_index(p), p) for p in Path(directory).glob(SHARD_GLOB)]
    return [p for i, p in sorted((i, p) for i, p in found if i is not None)]


def manifest_path(directory) -> Path:
    """Where the directory's manifest is (the legacy name when only that exists)."""
    d = Path(directory)
    if not (d / MANIFEST).exists() and (d / LEGACY_MANIFEST).exists():
        return d / LEGACY_MANIFEST
    return d / MANIFEST


class ShardedRun:
    """Shard arithmetic of a run of `events` in shards of `shard_events` (mixed into run configurations)."""

    events: int
    shard_events: int

    @property
    def n_shards(self) -> int:
        return -(-self.events // self.shard_events)

    def shard_size(self, i: int) -> int:
        return min(self.shard_events, self.events - i * self.shard_events)


def read_manifest(path) -> dict:
    """The manifest dict of either layout (JSON file, or the metadata of the zero-row Parquet file)."""
    import json

    import pyarrow.parquet as pq
    p = Path(path)
    if p.suffix == ".json":
        return json.loads(p.read_text())
    return json.loads((pq.read_schema(p).metadata or {})[MANIFEST_KEY])


def temp_name(path: Path, tag: str) -> Path:
    """A hidden sibling name for a file being written (skipped by readers, swept on resume)."""
    return path.with_name(f".{path.name}.tmp-{tag}")


TEMP_GLOB = ".*.tmp-*"
