"""Reading datasets: `open_dataset(path)` -> Dataset (len, .meta, record batches, flat numpy view)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DatasetError
from ..params import BaseParams
from .integrity import check_footer
from .layout import SHARD_GLOB, manifest_path, read_manifest
from .layout import shards as list_shards
from .schema import COLUMNS, LIST_GROUPS, columns_of_version, read_meta


@dataclass
class FlatView:
    """Flat numpy arrays plus int64 offsets (Arrow's list layout), one offsets array per group.

    ``values[name]`` holds every event's entries of column ``name`` back to back; event i owns
    ``values[name][offsets[group][i]:offsets[group][i+1]]`` with group in {"trials", "breaks",
    "hadrons"} ("hadrons": every final-state particle in format 2, with the bool mask ``is_hadron``;
    final-state hadrons only and no ``is_hadron`` in format 1). ``n_attempts`` is per event. Values
    are views of the Arrow buffers (no copy), except the bool ``is_hadron`` (Arrow packs bits).
    """

    values: dict
    offsets: dict
    n_attempts: np.ndarray

    def __len__(self) -> int:
        return len(self.n_attempts)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]


class Dataset:
    """A directory of Parquet shards written by one `fastrsa generate` run."""

    def __init__(self, path: Path, meta: dict, shards: list[Path], manifest: dict | None, rows=None):
        self.path = path
        self.meta = meta
        self.shards = shards
        self.manifest = manifest
        self._rows = list(rows) if rows is not None else [pq.ParquetFile(s).metadata.num_rows for s in shards]

    def __len__(self) -> int:
        return int(sum(self._rows))

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, events={len(self)}, shards={len(self.shards)})"

    @property
    def format_version(self) -> int:
        return int(self.meta["format_version"])

    @property
    def final_state_complete(self) -> bool:
        """True when the particle columns hold every final-state particle (format >= 2); format 1
        stored only the final-state hadrons."""
        return self.format_version >= 2

    @property
    def base(self) -> BaseParams:
        """The base point the records were sampled at."""
        return BaseParams.from_dict(self.meta["base"])

    @property
    def complete(self) -> bool:
        """True when every shard the generation run planned has been written."""
        if self.manifest is None:
            return True
        return len(self.shards) == self.manifest["n_shards"]

    def iter_batches(self, batch_size: int = 65536, columns=None) -> Iterator[pa.RecordBatch]:
        """Record batches over all shards in order (plain pyarrow; no fastrsa types)."""
        for shard in self.shards:
            try:
                yield from pq.ParquetFile(shard, page_checksum_verification=True).iter_batches(
                    batch_size=batch_size, columns=columns)
            except (pa.ArrowException, OSError) as exc:
                raise DatasetError(f"{shard}: its data do not decode ({str(exc).splitlines()[0]}); run 'fastrsa "
                                   "info --verify' on the dataset") from None

    __iter__ = iter_batches

    def table(self, columns=None) -> pa.Table:
        tables = [_read(s, columns) for s in self.shards]
        if not tables:
            raise DatasetError(f"{self.path}: no shards")
        return pa.concat_tables(tables).combine_chunks()

    def flat(self, groups=None) -> FlatView:
        """Flat numpy arrays + int64 offsets for the column groups asked for (see FlatView); by default
        trials, breaks, hadrons and (format 3) the identified-hadron counts, group "species"."""
        if groups is None:
            groups = ("trials", "breaks", "hadrons") + (("species",) if self.format_version >= 3 else ())
        return self._flat_of(self.table(columns=self._columns(groups)), groups)

    def _flat_of(self, table: pa.Table, groups) -> FlatView:
        have = set(columns_of_version(self.format_version))
        table = table.combine_chunks() if any(c.num_chunks > 1 for c in table.columns) else table
        values, offsets = {}, {}
        for g in groups:
            for name in (c for c in LIST_GROUPS[g] if c in have):
                arr = table.column(name).chunks[0] if table.num_rows else pa.array([], table.schema.field(name).type)
                off = np.asarray(arr.offsets).astype(np.int64)
                if g in offsets:
                    if not np.array_equal(off, offsets[g]):
                        raise DatasetError(f"{self.path}: column {name!r} has other list lengths than "
                                           f"the rest of the {g} columns; the dataset is corrupt")
                else:
                    offsets[g] = off
                bits = pa.types.is_boolean(arr.type.value_type)
                flat = arr.values.to_numpy(zero_copy_only=not bits)
                # A sliced list array starts its values at offsets[0]; keep offsets relative to values.
                values[name] = flat[off[0]:off[-1]] if len(off) else flat
            offsets[g] = offsets[g] - offsets[g][0]
        n_att = table.column("n_attempts").to_numpy()
        return FlatView(values, offsets, np.ascontiguousarray(n_att))

    def n_trials(self) -> int:
        """An upper bound of the number of trials, from the Parquet footers alone (exact unless events
        without trials exist: Parquet stores an empty list as one slot)."""
        total = 0
        for shard in self.shards:
            md = pq.ParquetFile(shard).metadata
            col = next(j for j in range(md.num_columns) if md.schema.column(j).path.split(".")[0] == "z")
            total += sum(md.row_group(r).column(col).num_values for r in range(md.num_row_groups))
        return int(total)

    def iter_flat(self, groups=("trials", "breaks", "hadrons"), prefetch: bool = False) -> Iterator[FlatView]:
        """One FlatView per shard, in order, reading only the columns of `groups`: what a job that
        consumes the dataset shard by shard holds at a time. With `prefetch`, the next shard is read and
        decoded in a background thread while the caller works on this one (pyarrow releases the GIL), so
        two shards' columns are held at a time."""
        cols = self._columns(groups)
        if not prefetch or len(self.shards) < 2:
            for shard in self.shards:
                yield self._flat_of(_read(shard, cols), groups)
            return
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_read, self.shards[0], cols)
            for k in range(len(self.shards)):
                table = pending.result()
                if k + 1 < len(self.shards):
                    pending = pool.submit(_read, self.shards[k + 1], cols)
                yield self._flat_of(table, groups)
                del table

    def _columns(self, groups) -> list:
        have = set(columns_of_version(self.format_version))
        return [c for g in groups for c in LIST_GROUPS[g] if c in have] + ["n_attempts"]

    def to_torch(self, device="cpu", features: bool = False):
        """The records as torch tensors on `device`, ready for `fastrsa.lund_log_weights`; `features`: also
        precompute per-trial features (24 more bytes per trial: TrialBatch.with_features; docs/weights.md
        says when that is faster)."""
        from ..hadronization.batch import (
            TrialBatch,  # the one upward reach: a convenience for users
        )
        batch = TrialBatch.from_dataset(self, device=device)
        return batch.with_features() if features else batch


def open_dataset(path) -> Dataset:
    """Open a dataset directory written by `fastrsa generate` (or one Parquet shard of it)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such dataset; create one with 'fastrsa generate {p}'")
    if p.is_file():
        shards, manifest = [p], None
    else:
        shards = list_shards(p)
        mpath = manifest_path(p)
        manifest = read_manifest(mpath) if mpath.exists() else None
        if not shards:
            raise DatasetError(f"{p}: holds no shards ({SHARD_GLOB}); generate into it with "
                               f"'fastrsa generate {p}'")
    meta, footers = None, []
    for s in shards:
        try:
            md = pq.read_metadata(s)
            schema = md.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"{s}: not a readable Parquet file ({str(exc).splitlines()[0]}); delete it and "
                               "resume the generation run") from None
        m = read_meta(schema, str(s))
        check_footer(s, md, manifest, m)    # index, rows, run and metadata digest (store/integrity.py)
        footers.append(md.num_rows)
        if meta is None:
            meta = m
        elif _run_identity(m) != _run_identity(meta):
            raise DatasetError(f"{s}: written by another generation run than {shards[0].name}; "
                               "a dataset directory holds one run")
    return Dataset(p, meta, shards, manifest, footers)


def _read(shard: Path, columns) -> pa.Table:
    """One shard's columns, with Parquet page checksums verified: damage is one line naming the shard."""
    try:
        return pq.read_table(shard, columns=columns, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(f"{shard}: its data do not decode ({str(exc).splitlines()[0]}); run 'fastrsa info "
                           "--verify' on the dataset, delete the damaged shards and rerun the generation command "
                           "to regenerate them") from None


def _run_identity(meta: dict) -> tuple:
    """What every shard of one run shares (the shard's own seed differs)."""
    return (json.dumps(meta.get("base"), sort_keys=True), json.dumps(meta.get("setup"), sort_keys=True),
            meta.get("seed"), meta.get("pythia_version"), meta.get("format_version"))


__all__ = ["Dataset", "FlatView", "open_dataset", "COLUMNS"]
