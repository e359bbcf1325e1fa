"""Shard integrity: every shard proves what it is, and the manifest remembers what each one was.

A shard names itself in its own metadata (`shard.index`, `shard.events`, the run `seed`), and the
manifest records, per shard, the sha256 of the file and of its metadata (`shards` in the manifest,
docs/format.md). Shards are also written with Parquet page checksums (CRC32 per data page).

Three levels of checking, each a superset of the one before:
- open (`check_footer`, on every `open_dataset`): footers only, no data read. The shard's index, row
  count and run identity must agree with its file name, the manifest's plan and the other shards, and
  its metadata with the digest recorded at writing. This catches a duplicated, zero-row or swapped-in
  shard and metadata edited after the fact (a changed zHead or base point changes every weight).
- resume (`check_for_resume`): also the file's sha256 against the manifest; a shard written but not yet
  recorded (its writer was killed between the rename and the manifest update) is decoded in full, with
  page checksums, and then recorded.
- verify (`verify`, `fastrsa info --verify`): every shard's sha256 and a full decode with page checksums.
Each failure is one DatasetError naming the shard and the fix.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DatasetError
from .layout import json_object, manifest_path, read_manifest, shard_index, shards
from .schema import META_KEY  # the key of fastrsa's shard metadata (every fastrsa format uses it)
from .writer import write_manifest

_CHUNK = 1 << 22


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def meta_sha256(schema_metadata: dict | None) -> str:
    """Digest of a shard's whole schema metadata (every key, sorted)."""
    h = hashlib.sha256()
    for k, v in sorted((schema_metadata or {}).items()):
        h.update(len(k).to_bytes(8, "little") + k + len(v).to_bytes(8, "little") + v)
    return h.hexdigest()


def shard_entry(data: bytes, schema_metadata: dict | None, rows: int) -> dict:
    """What the manifest records about one shard, from the bytes written."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "meta_sha256": meta_sha256(schema_metadata),
            "rows": int(rows), "bytes": len(data)}


def record(out, entries: dict) -> None:
    """Add {index: entry} to the manifest's `shards` (one atomic rewrite of the manifest)."""
    if not entries:
        return
    mpath = manifest_path(out)
    manifest = read_manifest(mpath)
    have = dict(manifest.get("shards") or {})
    have.update({str(int(i)): e for i, e in entries.items()})
    manifest["shards"] = dict(sorted(have.items(), key=lambda kv: int(kv[0])))
    write_manifest(Path(out), manifest)


def planned_rows(manifest: dict | None, index: int) -> int | None:
    """The number of events shard `index` must hold by the run's plan (None when the plan does not say)."""
    if not manifest:
        return None
    ident = manifest.get("identity") or {}
    events, per = ident.get("events"), ident.get("shard_events")
    if isinstance(events, int) and isinstance(per, int) and per > 0:
        return max(0, min(per, events - index * per))
    return None


def _shard_meta(schema_metadata: dict | None, path) -> dict:
    raw = (schema_metadata or {}).get(META_KEY)
    if raw is None:
        raise DatasetError(f"{path}: not a fastrsa shard (no '{META_KEY.decode()}' schema metadata); remove it "
                           "from the dataset directory")
    return json_object(raw, f"{path}: its fastrsa metadata",
                       "edited or corrupt; delete the shard and rerun the generation command to regenerate it")


def check_footer(path, metadata: pq.FileMetaData, manifest: dict | None, meta: dict | None = None) -> dict:
    """The open-time checks of one shard (see module docstring); returns its fastrsa metadata dict (`meta`:
    already parsed from the same footer by the caller)."""
    path = Path(path)
    fix = "delete it and rerun the generation command to regenerate it"
    schema_md = metadata.schema.to_arrow_schema().metadata
    meta = _shard_meta(schema_md, path) if meta is None else meta
    index, rows = shard_index(path), metadata.num_rows
    sh = meta.get("shard")
    if index is not None and isinstance(sh, dict):
        if sh.get("index") != index:
            raise DatasetError(f"{path}: holds shard {sh.get('index')!r} of its run, not shard {index} (a copied "
                               f"or renamed file); {fix}")
        if sh.get("events") != rows:
            raise DatasetError(f"{path}: holds {rows} events but its metadata says {sh.get('events')!r} "
                               f"(truncated or replaced); {fix}")
    if manifest is None or index is None:
        return meta
    want = planned_rows(manifest, index)
    if want is not None and rows != want:
        raise DatasetError(f"{path}: holds {rows} events, but shard {index} of this run has {want} (a shard of "
                           f"another run, or an empty one); {fix}")
    ident = manifest.get("identity") or {}
    if "seed" in ident and "seed" in meta and meta["seed"] != ident["seed"]:
        raise DatasetError(f"{path}: written with run seed {meta['seed']!r}, the manifest's run has seed "
                           f"{ident['seed']!r} (a shard of another run); {fix}")
    entry = (manifest.get("shards") or {}).get(str(index))
    if isinstance(entry, dict):
        if entry.get("meta_sha256") != meta_sha256(schema_md):
            raise DatasetError(f"{path}: its metadata changed after it was written (base point, zHead or seed "
                               f"edited: every weight would change); {fix}")
        if entry.get("rows") != rows:
            raise DatasetError(f"{path}: holds {rows} events, {entry.get('rows')!r} were written; {fix}")
    return meta


def decode(path) -> pa.Table:
    """Read every page of a shard, verifying the Parquet page checksums; one DatasetError when it fails."""
    try:
        return pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"{path}: its data do not decode ({msg}); delete it and rerun the generation "
                           "command to regenerate it") from None


def check_shard(path, manifest: dict | None, full: bool) -> dict | None:
    """Footer checks, then the recorded sha256; `full` also decodes every page. Returns the manifest entry
    to record when the shard had none (it was decoded in full to earn it), else None."""
    path = Path(path)
    md = _footer(path)
    check_footer(path, md, manifest)
    index = shard_index(path)
    entry = ((manifest or {}).get("shards") or {}).get(str(index)) if index is not None else None
    if isinstance(entry, dict) and "sha256" in entry:
        if file_sha256(path) != entry["sha256"]:
            raise DatasetError(f"{path}: its checksum differs from the one recorded when it was written "
                               "(corrupted or replaced); delete it and rerun the generation command to "
                               "regenerate it")
        if full:
            decode(path)
        return None
    decode(path)
    data = path.read_bytes()
    return shard_entry(data, md.schema.to_arrow_schema().metadata, md.num_rows)


def _footer(path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}); delete it and "
                           "rerun the generation command to regenerate it") from None


def check_for_resume(out) -> None:
    """Check every complete shard of a run directory before resuming it; record the unrecorded ones."""
    mpath = manifest_path(out)
    manifest = read_manifest(mpath) if mpath.exists() else None
    new = {}
    for p in shards(out):
        e = check_shard(p, manifest, full=False)
        if e is not None:
            new[shard_index(p)] = e
    if manifest is not None and new:
        record(out, new)


def verify(path) -> int:
    """Full verification of a dataset directory (see module docstring); returns the number of shards
    checked. Shards without a recorded checksum (datasets written before checksums) are decoded in full."""
    p = Path(path)
    if not p.is_dir():
        decode(p)
        return 1
    mpath = manifest_path(p)
    manifest = read_manifest(mpath) if mpath.exists() else None
    found = shards(p)
    for s in found:
        check_shard(s, manifest, full=True)
    if manifest is not None and isinstance(manifest.get("n_shards"), int):
        have = {shard_index(s) for s in found}
        missing = [i for i in range(manifest["n_shards"]) if i not in have]
        if missing:
            raise DatasetError(f"{p}: shard {missing[0]} of {manifest['n_shards']} is missing ({len(missing)} in "
                               "all); rerun the generation command to resume")
    return len(found)
