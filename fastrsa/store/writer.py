"""Writing datasets: every file appears under its final name complete, or not at all."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .layout import LEGACY_MANIFEST, MANIFEST_KEY, manifest_path, shard_name, temp_name
from .schema import SCHEMA


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a hidden temporary name, fsync, rename: readers never see a partial file."""
    path = Path(path)
    tmp = temp_name(path, str(os.getpid()))
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_shard(out: Path, index: int, table: pa.Table) -> Path:
    """Write one shard (zstd Parquet) atomically; returns its path."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    path = Path(out) / shard_name(index)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_manifest(out: Path, manifest: dict) -> Path:
    """The run manifest: a zero-row Parquet file of the dataset's schema with the manifest in its
    metadata (see layout.py; a directory of the legacy layout keeps its JSON manifest)."""
    path = manifest_path(out)
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    if path.name == LEGACY_MANIFEST:
        atomic_write_bytes(path, text)
        return path
    buf = io.BytesIO()
    pq.write_table(SCHEMA.empty_table().replace_schema_metadata({MANIFEST_KEY: text}), buf)
    atomic_write_bytes(path, buf.getvalue())
    return path
