"""Shard integrity (issue 15): every damaged, duplicated, swapped, emptied or edited shard and every malformed
manifest or metadata is refused in one line naming the file, by open_dataset, by a resume and by
`fastrsa info --verify`; nothing is silently accepted."""
import json
import shutil

import pyarrow.parquet as pq
import pytest

import fastrsa
from fastrsa.cli import main
from fastrsa.errors import DatasetError
from fastrsa.generation import generate
from fastrsa.store.dataset import open_dataset
from fastrsa.store.layout import MANIFEST, MANIFEST_KEY, read_manifest, shard_name
from fastrsa.store.schema import META_KEY

ARGS = dict(events=40, shard_events=10, seed=5, progress=False)
CLI_ARGS = ["--events", "40", "--shard-events", "10", "--seed", "5", "--quiet"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    d = tmp_path_factory.mktemp("integrity") / "ds"
    generate(d, **ARGS)
    return d


@pytest.fixture
def ds(clean, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(clean, d)
    return d


def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def _rewrite_meta(path, edit):
    t = pq.read_table(path)
    md = dict(t.schema.metadata)
    md[META_KEY] = edit(md[META_KEY])
    pq.write_table(t.replace_schema_metadata(md), path, compression="zstd")


def test_manifest_records_every_shard(clean):
    m = read_manifest(clean / MANIFEST)
    assert sorted(m["shards"], key=int) == ["0", "1", "2", "3"]
    assert all(e["rows"] == 10 and len(e["sha256"]) == 64 for e in m["shards"].values())
    assert main(["info", str(clean), "--verify"]) == 0


def test_flipped_bytes_are_found(ds, capsys):
    p = ds / shard_name(2)
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0xFF                # inside a data page
    p.write_bytes(bytes(data))
    assert main(["info", str(ds), "--verify"]) == 2
    _one_line(capsys, shard_name(2), "checksum")
    with pytest.raises(DatasetError, match=shard_name(2)):   # the API: one error, not a ZSTD traceback
        open_dataset(ds).to_torch()
    assert main(["generate", str(ds), *CLI_ARGS]) == 2         # a resume checks the shards it keeps
    _one_line(capsys, shard_name(2), "checksum")


def test_unrecorded_shard_is_decoded_in_full(ds, capsys):
    """A shard whose checksum never reached the manifest (its writer was killed after the rename) is decoded
    with page checksums on resume; damage there is found too, and an intact one is then recorded."""
    m = read_manifest(ds / MANIFEST)
    del m["shards"]["1"]
    from fastrsa.store.writer import write_manifest
    write_manifest(ds, m)
    assert main(["generate", str(ds), *CLI_ARGS]) == 0
    assert "1" in read_manifest(ds / MANIFEST)["shards"]
    write_manifest(ds, m)
    p = ds / shard_name(1)
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0xFF
    p.write_bytes(bytes(data))
    assert main(["generate", str(ds), *CLI_ARGS]) == 2
    _one_line(capsys, shard_name(1), "decode")


def test_duplicated_shard_is_refused(ds, capsys):
    (ds / shard_name(3)).unlink()
    shutil.copy(ds / shard_name(0), ds / shard_name(3))     # cp part-00000 part-00003
    with pytest.raises(DatasetError, match="holds shard 0 of its run, not shard 3"):
        open_dataset(ds)
    assert main(["generate", str(ds), *CLI_ARGS]) == 2
    _one_line(capsys, shard_name(3), "not shard 3")


def test_zero_row_shard_is_refused(ds, capsys):
    p = ds / shard_name(1)
    t = pq.read_table(p)
    meta = json.loads(t.schema.metadata[META_KEY])
    meta["shard"]["events"] = 0
    empty = t.slice(0, 0).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    pq.write_table(empty, p)
    with pytest.raises(DatasetError, match="holds 0 events, but shard 1 of this run has 10"):
        open_dataset(ds)
    assert main(["info", str(ds)]) == 2
    _one_line(capsys, shard_name(1), "0 events")


def test_shard_of_a_run_with_another_shard_size_is_refused(ds, tmp_path, capsys):
    other = tmp_path / "other"
    generate(other, events=40, shard_events=20, seed=5, progress=False)
    shutil.copy(other / shard_name(1), ds / shard_name(1))
    assert main(["info", str(ds)]) == 2
    _one_line(capsys, shard_name(1), "20 events")


@pytest.mark.parametrize("edit", [lambda m: m.replace(b'"z_head": 10.0', b'"z_head": 20.0'),
                                  lambda m: m.replace(b'"a": 0.72', b'"a": 0.75')], ids=["zhead", "base-a"])
def test_edited_metadata_is_refused(ds, capsys, edit):
    _rewrite_meta(ds / shard_name(2), edit)
    with pytest.raises(DatasetError, match="metadata changed after it was written"):
        open_dataset(ds)
    assert main(["fit", "--base", str(ds), "--target", str(ds), "--out", str(ds.parent / "f"), "--steps", "1"]) == 2
    _one_line(capsys, shard_name(2), "metadata changed")


@pytest.mark.parametrize("raw,field", [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON list"),
                                       (b'{"identity": {}, "n_shards": "4"}', "'n_shards'"),
                                       (b'{"n_shards": 4}', "'identity'")])
def test_malformed_manifest(ds, capsys, raw, field):
    pq.write_table(pq.read_schema(ds / MANIFEST).empty_table().replace_schema_metadata({MANIFEST_KEY: raw}),
                   ds / MANIFEST)
    assert main(["info", str(ds)]) == 2
    _one_line(capsys, MANIFEST, field)
    assert main(["generate", str(ds), *CLI_ARGS]) == 2
    _one_line(capsys, MANIFEST, field)


@pytest.mark.parametrize("edit,field", [
    (lambda m: b"{oops", "not valid JSON"),
    (lambda m: b"[]", "JSON list"),
    (lambda m: m.replace(b'"format_version": 3', b'"format_version": "1"'), "'format_version' = '1' must be an integer"),
    (lambda m: m.replace(b'"z_head": 10.0', b'"z_head": "10"'), "'base.z_head'"),
    (lambda m: m.replace(b'"base": {', b'"bose": {'), "'base' is missing"),
    (lambda m: m.replace(b'"setup": {', b'"setup": [0], "x": {'), "'setup'"),
])
def test_malformed_shard_metadata(tmp_path, clean, capsys, edit, field):
    """Without a manifest (a shard opened on its own) the metadata's own shape is still checked."""
    p = tmp_path / shard_name(0)
    shutil.copy(clean / shard_name(0), p)
    _rewrite_meta(p, edit)
    assert main(["info", str(p)]) == 2
    _one_line(capsys, field)


def test_empty_shard_alone(tmp_path, clean, capsys):
    """A shard with no events, opened on its own: info says so, and reweighting refuses in one line."""
    p = tmp_path / shard_name(0)
    t = pq.read_table(clean / shard_name(0))
    meta = json.loads(t.schema.metadata[META_KEY])
    meta["shard"]["events"] = 0
    pq.write_table(t.slice(0, 0).replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), p)
    assert main(["info", str(p)]) == 0
    assert "holds no events" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="holds no events"):
        fastrsa.open_dataset(p).to_torch()


def test_reading_the_next_shard_meanwhile_gives_the_same_batch(clean):
    """The loader reads shard k + 1 in a background thread while it processes shard k (Dataset.iter_flat's
    prefetch): the same views in the same order, and the same TrialBatch to the bit, as reading in turn.
    (A damaged shard read in the background is still one DatasetError naming it: test_flipped_bytes_are_found.)"""
    import numpy as np
    import torch

    from fastrsa.hadronization.batch import TrialBatch
    ds = open_dataset(clean)
    assert len(ds.shards) == 4
    ahead, in_turn = list(ds.iter_flat(prefetch=True)), list(ds.iter_flat())
    assert len(ahead) == len(in_turn) == 4
    for a, b in zip(ahead, in_turn):
        assert a.values.keys() == b.values.keys() and all(np.array_equal(a[k], b[k]) for k in a.values)
        assert all(np.array_equal(a.offsets[g], b.offsets[g]) for g in b.offsets)
    a, b = TrialBatch.from_dataset(ds, prefetch=True), TrialBatch.from_dataset(ds, prefetch=False)
    fields = [k for k, v in vars(b).items() if isinstance(v, torch.Tensor)]
    assert {"z", "qB", "hadron", "h_base", "offsets"} <= set(fields)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in fields)
