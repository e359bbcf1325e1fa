"""A dataset directory behind an fsspec URL (s3://, gs://, abfs://, ... where fsspec and the
protocol's package are configured on the driver and every worker): the same layout, manifest and shard
bytes as a local directory (store/layout.py, store/writer.py), written through fsspec.

A shard is uploaded under a hidden temporary name and then moved to its final name: on an object store
the move is a server-side copy, which makes the object visible only when complete, so a reader or a
resumed run never sees part of a shard. Temporaries left by killed workers are swept on resume and at
the end of a run.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from ..errors import DatasetError, ParameterError
from ..store.layout import MANIFEST, read_manifest, shard_index, shard_name
from ..store.writer import write_manifest


def is_url(out) -> bool:
    """True for an fsspec URL other than file:// (which names a local path)."""
    text = str(out)
    return "://" in text and not text.startswith("file://")


class UrlDir:
    """One dataset directory at an fsspec URL."""

    def __init__(self, url: str):
        try:
            import fsspec
        except ImportError:
            raise ParameterError(f"out = {url!r}: writing to a URL needs fsspec: pip install 'fastrsa[dask]'") from None
        self.url = url.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise ParameterError(f"out = {url!r}: fsspec cannot open this URL ({exc}); install the protocol's "
                                 "package (s3fs for s3://, gcsfs for gs://) or write to a shared path") from None
        self.root = self.root.rstrip("/")

    def _names(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]

    def shard_indices(self) -> list[int]:
        """Indices of the complete shards."""
        return sorted(i for i in (shard_index(n) for n in self._names()) if i is not None)

    def sweep(self) -> None:
        """Remove the temporaries of interrupted writes."""
        for n in self._names():
            if n.startswith(".") and ".tmp-" in n:
                self.fs.rm(f"{self.root}/{n}")

    def write_bytes(self, name: str, data: bytes) -> None:
        """`data` under `name`, appearing complete or not at all (a temporary name, then a move)."""
        tmp = f"{self.root}/.{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, f"{self.root}/{name}")

    def write_shard(self, index: int, table) -> dict:
        """The shard's bytes exactly as store.writer.write_shard writes them to a local directory; returns
        its manifest entry (checksums)."""
        with tempfile.TemporaryDirectory() as d:
            from ..store.writer import write_shard
            entry = write_shard(Path(d), index, table)
            self.write_bytes(shard_name(index), (Path(d) / shard_name(index)).read_bytes())
        return entry

    def _edit_manifest(self, edit) -> None:
        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / MANIFEST
            local.write_bytes(self.fs.cat_file(f"{self.root}/{MANIFEST}"))
            edit(Path(d))
            self.write_bytes(MANIFEST, local.read_bytes())

    def record(self, entries: dict) -> None:
        """Add the shards' checksums to the manifest, as store.integrity.record does locally."""
        if entries:
            from ..store.integrity import record
            self._edit_manifest(lambda d: record(d, entries))

    def prepare(self, identity: dict, n_shards: int, created_by: str) -> list[int]:
        """As store.writer.prepare_run_dir: create the manifest or check the run's identity, sweep
        temporaries; returns the shard indices still missing."""
        names = self._names()
        if MANIFEST in names:
            with tempfile.TemporaryDirectory() as d:
                local = Path(d) / MANIFEST
                local.write_bytes(self.fs.cat_file(f"{self.root}/{MANIFEST}"))
                have = read_manifest(local).get("identity", {})
            if have != identity:
                diff = sorted(k for k in set(have) | set(identity) if have.get(k) != identity.get(k))
                raise DatasetError(f"{self.url}: holds a different dataset (differs in {', '.join(diff)}); "
                                   "choose a new location or repeat that run's exact options to resume")
            self.sweep()
        elif names:
            raise DatasetError(f"{self.url}: is not empty and holds no fastrsa dataset; refusing to write into it, "
                               "choose a new location")
        else:
            with tempfile.TemporaryDirectory() as d:
                path = write_manifest(Path(d), {"identity": identity, "n_shards": n_shards, "created_by": created_by})
                data = path.read_bytes()
            self.write_bytes(MANIFEST, data)
        done = set(self.shard_indices())
        return [i for i in range(n_shards) if i not in done]
