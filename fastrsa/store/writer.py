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


def write_shard(out: Path, index: int, table: pa.Table) -> dict:
    """Write one shard (zstd Parquet with page checksums) atomically; returns what the manifest records
    about it (sha256 of the file and of its metadata, rows, bytes: store/integrity.py)."""
    from .integrity import shard_entry
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_page_checksum=True)
    data = buf.getvalue()
    atomic_write_bytes(Path(out) / shard_name(index), data)
    return shard_entry(data, table.schema.metadata, table.num_rows)


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


def prepare_run_dir(out: Path, identity: dict, n_shards: int, created_by: str) -> list[int]:
    """Create OUT with its manifest, or check that it holds the same run (its identity); sweep the
    remains of interrupted writes. Returns the shard indices still missing. Writes only the manifest."""
    from ..errors import DatasetError
    from .layout import TEMP_GLOB, read_manifest, shard_index, shards
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory; choose another output path")
    if out.is_dir() and any(out.iterdir()):
        mpath = manifest_path(out)
        if not mpath.exists():
            raise DatasetError(f"{out}: is not empty and holds no fastrsa dataset; refusing to write "
                               "into it, choose a new directory")
        have = read_manifest(mpath)["identity"]
        if have != identity:
            diff = sorted(k for k in set(have) | set(identity) if have.get(k) != identity.get(k))
            raise DatasetError(f"{out}: holds a different dataset (differs in {', '.join(diff)}); "
                               "choose a new directory or repeat that run's exact options to resume")
        for tmp in out.glob(TEMP_GLOB):
            tmp.unlink()        # remains of an interrupted shard; it is redone
        from .integrity import check_for_resume
        check_for_resume(out)   # every complete shard is what the run wrote (checksums, identity)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, {"identity": identity, "n_shards": n_shards, "created_by": created_by})
    done = {shard_index(p) for p in shards(out)}
    return [i for i in range(n_shards) if i not in done]
