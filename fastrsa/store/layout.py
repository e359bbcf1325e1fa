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


def json_object(raw: bytes, what: str, fix: str) -> dict:
    """`raw` parsed as a JSON object, or one DatasetError '{what} is not valid JSON / is a JSON list ...; {fix}'."""
    import json

    from ..errors import DatasetError
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise DatasetError(f"{what} is not valid JSON ({exc}); {fix}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{what} is a JSON {type(obj).__name__}, not an object; {fix}")
    return obj


def read_manifest(path) -> dict:
    """The manifest dict of either layout (JSON file, or the metadata of the zero-row Parquet file),
    checked for shape: an object with an `identity` object, `n_shards` an integer or null, and `shards`
    (when present) an object. Anything else is one DatasetError naming the field."""

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..errors import DatasetError
    p = Path(path)
    fix = "it was edited or damaged; restore it, or generate the dataset again into a new directory"
    try:
        raw = p.read_bytes() if p.suffix == ".json" else (pq.read_schema(p).metadata or {}).get(MANIFEST_KEY)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{p}: the dataset manifest cannot be read ({str(exc).splitlines()[0]}); {fix}") from None
    if raw is None:
        raise DatasetError(f"{p}: the dataset manifest holds no '{MANIFEST_KEY.decode()}' metadata; {fix}")
    m = json_object(raw, f"{p}: the dataset manifest", fix)
    checks = (("identity", isinstance(m.get("identity"), dict), "an object"),
              ("n_shards", m.get("n_shards") is None or (type(m.get("n_shards")) is int and m["n_shards"] >= 0),
               "a non-negative integer or null"),
              ("shards", m.get("shards") is None or isinstance(m.get("shards"), dict), "an object"))
    for field, ok, what in checks:
        if not ok:
            raise DatasetError(f"{p}: manifest field '{field}' = {m.get(field)!r} must be {what}; {fix}")
    return m


def temp_name(path: Path, tag: str) -> Path:
    """A hidden sibling name for a file being written (skipped by readers, swept on resume)."""
    return path.with_name(f".{path.name}.tmp-{tag}")


TEMP_GLOB = ".*.tmp-*"
