import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastrsa import DatasetError, open_dataset
from fastrsa.generation.shard import build_table as _build_table
from fastrsa.params import BaseParams
from fastrsa.pythia.records import Records
from fastrsa.store.schema import FORMAT_VERSION, META_KEY, SCHEMA
from fastrsa.store.writer import write_shard


def _meta(**over):
    m = {"format": "fastrsa-rsa-history", "format_version": FORMAT_VERSION, "generator": "test",
         "pythia_version": "8.317.2", "base": BaseParams().to_dict(), "setup": {"name": "string"}, "seed": 1}
    m.update(over)
    return m


def _random_rows(rng, n):
    rows = []
    for _ in range(n):
        nt, nb, nh = rng.integers(1, 50), rng.integers(1, 10), rng.integers(0, 20)
        mt2 = rng.uniform(0.1, 2, nt) * rng.choice([-1, 1], nt)
        zd = np.stack([mt2, rng.uniform(0.01, 0.99, nt), rng.uniform(0.1, 1, nt)], 1).ravel()
        zi = rng.integers(-3, 4, 2 * nt).astype(np.int32)
        pt = np.stack([rng.exponential(1, nb), np.ones(nb)], 1).ravel()
        had = tuple(list(rng.normal(size=nh)) for _ in range(5)) + (list(rng.integers(-300, 300, nh)),)
        rows.append((Records(zi, zd, pt), had))
    return rows


def test_schema_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rows = _random_rows(rng, 57)
    write_shard(tmp_path, 0, _build_table(rows[:30], _meta()))
    write_shard(tmp_path, 1, _build_table(rows[30:], _meta()))
    ds = open_dataset(tmp_path)
    assert len(ds) == 57
    assert ds.meta["base"] == BaseParams().to_dict()
    fv = ds.flat()
    # Every event's lists come back unchanged, in order, with int64 offsets and no padding.
    assert fv.offsets["trials"].dtype == np.int64
    for i, (rec, had) in enumerate(rows):
        s, e = fv.offsets["trials"][i:i + 2]
        zd = rec.z_dbl.reshape(-1, 3)
        np.testing.assert_array_equal(fv["mt2"][s:e], zd[:, 0])
        np.testing.assert_array_equal(fv["z"][s:e], zd[:, 1])
        np.testing.assert_array_equal(fv["fprel"][s:e], zd[:, 2])
        np.testing.assert_array_equal(fv["id_new"][s:e], rec.z_int.reshape(-1, 2)[:, 1])
        s, e = fv.offsets["breaks"][i:i + 2]
        np.testing.assert_array_equal(fv["pt2"][s:e], rec.pt.reshape(-1, 2)[:, 0])
        s, e = fv.offsets["hadrons"][i:i + 2]
        np.testing.assert_array_equal(fv["px"][s:e], had[0])
        np.testing.assert_array_equal(fv["pdg"][s:e], had[5])
    assert fv.offsets["trials"][-1] == sum(len(r.z_dbl) // 3 for r, _ in rows)
    # Plain pyarrow reads it too, and record batches cover every event.
    assert pq.read_table(tmp_path / "part-00000.parquet").num_rows == 30
    assert sum(b.num_rows for b in ds.iter_batches(batch_size=7)) == 57


def test_flat_values_are_views(tmp_path):
    rows = _random_rows(np.random.default_rng(1), 5)
    write_shard(tmp_path, 0, _build_table(rows, _meta()))
    fv = open_dataset(tmp_path).flat()
    assert not fv["z"].flags.owndata


def test_missing_columns_rejected(tmp_path):
    rows = _random_rows(np.random.default_rng(2), 3)
    table = _build_table(rows, _meta()).drop_columns(["fprel"])
    pq.write_table(table, tmp_path / "part-00000.parquet")
    with pytest.raises(DatasetError, match="missing columns.*fprel"):
        open_dataset(tmp_path)


def test_newer_format_rejected(tmp_path):
    rows = _random_rows(np.random.default_rng(3), 3)
    write_shard(tmp_path, 0, _build_table(rows, _meta(format_version=FORMAT_VERSION + 1)))
    with pytest.raises(DatasetError, match="newer than this fastrsa reads"):
        open_dataset(tmp_path)


def test_not_a_dataset(tmp_path):
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "part-00000.parquet")
    with pytest.raises(DatasetError, match="not a fastrsa dataset"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "nope")


def test_schema_metadata_is_json():
    from fastrsa.store.schema import schema_with_meta
    s = schema_with_meta(_meta())
    assert json.loads(s.metadata[META_KEY])["format_version"] == FORMAT_VERSION
    assert s.names == SCHEMA.names


def test_plain_parquet_readers_open_the_directory(string_ds):
    """The directory as `fastrsa generate` wrote it opens in pyarrow.dataset, pandas, polars and awkward
    (the manifest's leading underscore makes them skip it), with every event and column."""
    import awkward as ak
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as pads

    from fastrsa.store.layout import MANIFEST
    d = string_ds.path
    assert (d / MANIFEST).exists() and MANIFEST.startswith("_")
    ref = string_ds.table()
    t = pads.dataset(d, format="parquet").to_table()
    assert t.num_rows == len(string_ds) == 400 and set(t.column_names) == set(ref.column_names)
    assert t.select(ref.column_names).equals(ref)
    assert pq.read_table(d).num_rows == 400
    df = pd.read_parquet(d)
    assert len(df) == 400 and np.array_equal(np.concatenate(df["z"].to_numpy()), ref.column("z").combine_chunks().values)
    pf = pl.read_parquet(d)
    assert pf.height == 400 and pf["n_attempts"].to_list() == ref.column("n_attempts").to_pylist()
    arr = ak.from_parquet(d)
    assert len(arr) == 400 and ak.to_list(arr["pdg"][7]) == ref.column("pdg")[7].as_py()


def test_old_directories_with_the_legacy_manifest_still_open_and_resume(tmp_path, string_ds):
    """Datasets written before the rename keep 'fastrsa.json'; they open, and generate resumes them."""
    import shutil

    from fastrsa.generation import generate
    from fastrsa.store.layout import LEGACY_MANIFEST, MANIFEST, read_manifest
    old = tmp_path / "old"
    shutil.copytree(string_ds.path, old)
    (old / LEGACY_MANIFEST).write_text(json.dumps(read_manifest(old / MANIFEST)))
    (old / MANIFEST).unlink()
    last = sorted(old.glob("part-*.parquet"))[-1]
    last.unlink()
    ds = open_dataset(old)
    assert not ds.complete and len(ds) == 300 and ds.manifest["n_shards"] == 4
    ds = generate(old, events=400, jobs=2, seed=3, shard_events=100, progress=False)
    assert ds.complete and ds.table().equals(string_ds.table())
    assert not (old / MANIFEST).exists() and json.loads((old / LEGACY_MANIFEST).read_text())["n_shards"] == 4
