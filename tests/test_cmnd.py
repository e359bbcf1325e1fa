"""Your own Pythia: `fastrsa generate --cmnd/--set`, replayable `pythia_settings`, the Recorder, and
format 2 (every final-state particle + is_hadron) next to format 1."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from fastrsa import DatasetError, PythiaError, open_dataset
from fastrsa.cli import main

EE40 = """! e+e- -> gamma*/Z -> hadrons at 40 GeV, Pythia's defaults otherwise
Beams:idA = 11
Beams:idB = -11
Beams:eCM = 40.           ! not the Z pole

# the process
PDF:lepton = off
WeakSingleBoson:ffbar2gmZ = on
23:onMode = off
23:onIfAny = 1 2 3 4 5
Main:numberOfEvents = 1000
"""
EE40_LINES = [ln.strip() for ln in EE40.splitlines() if ln.strip() and ln.strip()[0].isalnum()]


@pytest.fixture(scope="module")
def ee40(tmp_path_factory):
    from fastrsa.generation import generate
    d = tmp_path_factory.mktemp("ee40")
    (d / "ee40.cmnd").write_text(EE40)
    return generate(d / "ds", events=50, shard_events=25, seed=4, cmnd=d / "ee40.cmnd", progress=False)


def _replay(settings, n, setup_name="cmnd", energy=None):
    """A fresh Pythia with `settings` in order, then init; its first n events (records, particles)."""
    from fastrsa.pythia.records import import_pythia, make_reader
    from fastrsa.pythia.run import next_event
    from fastrsa.pythia.setups import Setup
    p8 = import_pythia()
    py = p8.Pythia("", False)
    for s in settings:
        assert py.readString(s), s
    assert py.init()
    reader, cache, rows = make_reader(py, p8), {}, []
    setup = Setup(setup_name, energy or 0.0, "")
    while len(rows) < n:
        got = next_event(py, reader, setup, cache)
        if got is not None:
            rows.append(got)
    return rows


def _assert_rows_equal(table, rows):
    for i, (rec, part) in enumerate(rows):
        zd = rec.z_dbl.reshape(-1, 3)
        assert np.array_equal(table.column("z")[i].values.to_numpy(), zd[:, 1])
        assert np.array_equal(table.column("mt2")[i].values.to_numpy(), zd[:, 0])
        assert np.array_equal(table.column("id_new")[i].values.to_numpy(), rec.z_int.reshape(-1, 2)[:, 1])
        assert np.array_equal(table.column("pt2")[i].values.to_numpy(), rec.pt.reshape(-1, 2)[:, 0])
        for k, name in enumerate(("px", "py", "pz", "e", "m", "pdg", "is_hadron")):
            assert table.column(name)[i].as_py() == list(part[k]), (i, name)


def test_cmnd_at_40_gev_passes_its_sentinel_and_stores_every_final_state_particle(ee40):
    from fastrsa.observables import compute
    from fastrsa.store.hadrons import HadronSample, load_hadrons
    ds = ee40
    assert len(ds) == 50 and ds.complete and ds.format_version == 3 and ds.final_state_complete
    m = ds.meta
    assert m["setup"]["name"] == "cmnd" and m["setup"]["energy"] == 40.0
    assert m["setup"]["settings"] == EE40_LINES
    assert m["setup"]["process"]["beams"] == [11, -11] and "WeakSingleBoson:ffbar2gmZ = on" in m["setup"]["description"]
    assert m["base"]["a"] == 0.68 and m["base"]["b"] == 0.98      # read back from Pythia: its defaults
    assert m["sentinel"]["events_checked"] == 20
    assert m["pythia_settings"][:len(EE40_LINES)] == EE40_LINES
    assert m["pythia_settings"][-1] == f"Random:seed = {m['shard']['seed']}"
    assert "VariationFrag:z = on" in m["pythia_settings"]
    fv = ds.flat()
    pdg, had = fv["pdg"], fv["is_hadron"]
    assert np.any(pdg == 22) and not had[pdg == 22].any()           # photons from pi0 decays
    assert had.any() and had.dtype == bool
    h = HadronSample.from_flat(fv, ds.meta, ds.path)
    assert h.final_state_complete and len(h.px) > len(h.hadrons().px)
    per_event = np.add.reduceat(had.astype(np.int64), fv.offsets["hadrons"][:-1])
    assert np.array_equal(compute(h, ["multiplicity"])["multiplicity"].values, per_event)
    assert np.array_equal(compute(load_hadrons(ds.path), ["multiplicity"])["multiplicity"].values, per_event)
    # Hadron-level observables carry the hadrons' offsets.
    obs = compute(h, ["pt"])["pt"]
    assert len(obs.values) == had.sum() and obs.offsets[-1] == had.sum()
    # A thrust of the hadrons, not of the photons and leptons.
    t_h = compute(h.hadrons(), ["thrust"])["thrust"].values
    assert np.array_equal(compute(h, ["thrust"])["thrust"].values, t_h)


def test_replaying_pythia_settings_reproduces_a_shard(ee40, string_ds):
    # cmnd: the second shard, on a fresh Pythia from its recorded settings, bit for bit.
    shard = pq.read_table(ee40.shards[1])
    meta = json.loads(shard.schema.metadata[b"fastrsa"])
    _assert_rows_equal(shard, _replay(meta["pythia_settings"], shard.num_rows))
    # The built-in string setup (its events are filled by hand: fill_event, as the docs say).
    shard = pq.read_table(string_ds.shards[2])
    meta = json.loads(shard.schema.metadata[b"fastrsa"])
    _assert_rows_equal(shard, _replay(meta["pythia_settings"], 30, "string", meta["setup"]["energy"]))


@pytest.mark.parametrize("args,needle", [
    (["--set", "StringZ:useNonstandardC = on"], "StringZ:useNonstandardC = on is refused"),
    (["--set", "StringZ:deriveLundPars = 1"], "StringZ:deriveLundPars = 1 is refused"),
    (["--set", "HadronLevel:all = off"], "HadronLevel:all = off is refused"),
    (["--set", "VariationFrag:zHead = 3"], "'VariationFrag:zHead = 3' is refused"),
    (["--set", "Random:seed = 5"], "'Random:seed = 5' is refused"),
    (["--set", "StringZ:aLund = abc"], "--set #1: Pythia 8.317.2 refused the setting 'StringZ:aLund = abc'"),
    (["--set", "StringZ:aLund = 0.6", "--set", "Foo:bar = 1"], "--set #2: Pythia 8.317.2 refused the setting"),
    (["--a", "0.6"], "a = 0.6 cannot be combined with cmnd"),
    (["--energy", "30"], "energy = 30.0 cannot be combined with cmnd"),
    (["--setup", "ee"], "setup = 'ee' cannot be combined"),
])
def test_broken_configurations_are_refused_with_one_line_and_nothing_written(tmp_path, capsys, args, needle):
    cmnd = tmp_path / "ee40.cmnd"
    cmnd.write_text(EE40)
    out = tmp_path / "never"
    assert main(["generate", str(out), "--cmnd", str(cmnd), "--events", "5", "--quiet", *args]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if "note:" not in ln]
    assert len(err) == 1 and needle in err[0], err
    assert not out.exists()


def test_a_bad_line_in_the_file_is_named_by_its_line_number(tmp_path, capsys):
    cmnd = tmp_path / "bad.cmnd"
    cmnd.write_text(EE40 + "StringZ:aLund = 0.6\nStringZ:bLund 0,9,1\n")
    assert main(["generate", str(tmp_path / "never"), "--cmnd", str(cmnd), "--events", "5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "note: " in err[0] and "Main:numberOfEvents" in err[0]
    assert len(err) == 2 and f"{cmnd}:13: Pythia 8.317.2 refused the setting 'StringZ:bLund 0,9,1'" in err[1]
    assert not (tmp_path / "never").exists()


def test_the_sentinel_names_the_setting_to_blame():
    """Were a setting that breaks the weights let through (probe_cmnd alone skips the line checks that
    `generate` makes), the self-check stops the run naming it."""
    from fastrsa.generation.run import cmnd_settings
    from fastrsa.pythia import records
    from fastrsa.pythia.run import probe_cmnd
    from fastrsa.pythia.sentinel import run_sentinel
    p8 = records.import_pythia()
    lines = cmnd_settings(None, EE40_LINES + ["StringZ:deriveLundPars = 1"])
    setup, base = probe_cmnd(p8, lines, 10.0, 5, "")
    with pytest.raises(PythiaError, match=r"changed fragmentation setting\(s\) StringZ:deriveLundPars = 1"):
        run_sentinel(p8, base, setup, seed=5, n_events=5)


def _user_pythia(seed):
    from fastrsa.pythia.records import import_pythia
    p8 = import_pythia()
    py = p8.Pythia("", False)
    for s in EE40_LINES + ["Print:quiet = on", "VariationFrag:z = on", "VariationFrag:pT = on", "VariationFrag:flav = on",
                           "VariationFrag:zHead = 10.0", "Random:setSeed = on", f"Random:seed = {seed}"]:
        assert py.readString(s)
    assert py.init()
    return py


def test_recorder_writes_what_generate_writes(ee40, tmp_path):
    import fastrsa
    ref = pq.read_table(ee40.shards[0])
    ref_meta = json.loads(ref.schema.metadata[b"fastrsa"])
    py = _user_pythia(ref_meta["shard"]["seed"])
    with fastrsa.Recorder(py, tmp_path / "rec", shard_events=25) as rec:
        while len(rec) < 25:
            if py.next():
                rec.append()
    ds = open_dataset(tmp_path / "rec")
    assert ds.complete and len(ds) == 25 and len(ds.shards) == 1
    got = ds.table()
    assert got.column_names == ref.column_names
    for name in ref.column_names:
        assert got.column(name).equals(ref.column(name)), name
    # Metadata: equal but for the fields that legitimately differ between the two writers.
    differ = {"generator", "setup", "seed", "shard", "pythia_settings", "sentinel"}
    meta = ds.meta
    assert {k: v for k, v in meta.items() if k not in differ} == \
           {k: v for k, v in ref_meta.items() if k not in differ}
    assert meta["base"] == ref_meta["base"] and meta["format_version"] == 3 and meta["flavour"] == ref_meta["flavour"]
    assert meta["setup"]["energy"] == 40.0 and meta["shard"]["seed"] == ref_meta["shard"]["seed"]
    assert meta["sentinel"] is None and meta["seed"] == ref_meta["shard"]["seed"]
    # What the Recorder reads back from Pythia (its read history) replays to the same events too.
    _assert_rows_equal(got, _replay(meta["pythia_settings"], 5))


def test_recorder_keeps_only_complete_shards_on_an_exception(tmp_path):
    import fastrsa
    py = _user_pythia(3)
    out = tmp_path / "rec"
    with pytest.raises(RuntimeError, match="user's loop failed"):
        with fastrsa.Recorder(py, out, shard_events=10) as rec:
            while True:
                if py.next():
                    rec.append()
                if len(rec) == 25:
                    raise RuntimeError("user's loop failed")
    assert sorted(p.name for p in out.iterdir()) == ["_fastrsa.parquet", "part-00000.parquet", "part-00001.parquet"]
    ds = open_dataset(out)
    assert len(ds) == 20 and not ds.complete
    # A Pythia without the record switches, and a used directory, are refused.
    p8 = py.__class__
    bare = p8("", False)
    bare.readString("Print:quiet = on")
    with pytest.raises(PythiaError, match="VariationFrag:z is off"):
        fastrsa.Recorder(bare, tmp_path / "x")
    with pytest.raises(DatasetError, match="not an empty directory"):
        fastrsa.Recorder(py, out)


def _rows_with_photons(rng, n):
    from fastrsa.pythia.records import Records
    rows = []
    for _ in range(n):
        nt, nb, nh = rng.integers(1, 30), rng.integers(1, 8), rng.integers(3, 15)
        zd = np.stack([rng.uniform(0.1, 2, nt) * rng.choice([-1, 1], nt), rng.uniform(0.01, 0.99, nt),
                       rng.uniform(0.1, 1, nt)], 1).ravel()
        pt = np.stack([rng.exponential(1, nb), np.ones(nb)], 1).ravel()
        p = rng.normal(size=(nh, 3))
        e = np.linalg.norm(p, axis=1) + 0.2
        pdg = rng.choice([211, -211, 111, 22, 11], nh)
        rows.append((Records(rng.integers(-3, 4, 2 * nt).astype(np.int32), zd, pt),
                     (list(p[:, 0]), list(p[:, 1]), list(p[:, 2]), list(e), [0.1] * nh, list(pdg),
                      [int(abs(c)) > 100 for c in pdg])))
    return rows


def test_format_1_datasets_still_open_and_give_the_same_hadron_observables(tmp_path):
    """A format-1 shard (the old column set: hadrons only, no is_hadron) opens, and its hadron
    observables equal those of the format-2 shard holding the same hadrons plus photons and leptons."""
    from fastrsa.generation.shard import build_table
    from fastrsa.observables import compute
    from fastrsa.params import BaseParams
    from fastrsa.store.hadrons import HadronSample, load_hadrons
    from fastrsa.store.schema import META_KEY
    from fastrsa.store.writer import write_shard
    rows = _rows_with_photons(np.random.default_rng(5), 40)
    meta = {"format": "fastrsa-rsa-history", "format_version": 2, "generator": "test", "pythia_version": "8.317.2",
            "base": BaseParams().to_dict(), "setup": {"name": "ee", "energy": 91.2}, "seed": 1}
    (tmp_path / "v2").mkdir()
    write_shard(tmp_path / "v2", 0, build_table(rows, meta))
    only_hadrons = [(r, tuple([v for v, k in zip(col, p[6]) if k] for col in p[:6])) for r, p in rows]
    v1 = build_table(only_hadrons, meta).drop_columns(["is_hadron"])
    v1 = v1.replace_schema_metadata({META_KEY: json.dumps(dict(meta, format_version=1)).encode()})
    (tmp_path / "v1").mkdir()
    pq.write_table(v1, tmp_path / "v1" / "part-00000.parquet")
    ds1, ds2 = open_dataset(tmp_path / "v1"), open_dataset(tmp_path / "v2")
    assert ds1.format_version == 1 and not ds1.final_state_complete and ds2.final_state_complete
    h1 = HadronSample.from_flat(ds1.flat(), ds1.meta, ds1.path)
    h2 = HadronSample.from_flat(ds2.flat(), ds2.meta, ds2.path)
    assert h1.is_hadron is None and not h1.final_state_complete and h1.hadrons() is h1
    assert h2.final_state_complete and len(h2.px) > len(h1.px)
    np.testing.assert_array_equal(h2.hadrons().offsets, h1.offsets)
    names = ["multiplicity", "charged_multiplicity", "thrust", "sphericity", "pt", "rapidity", "x"]
    for via in (lambda p: HadronSample.from_flat(open_dataset(p).flat(), open_dataset(p).meta, p), load_hadrons):
        o1, o2 = compute(via(tmp_path / "v1"), names), compute(via(tmp_path / "v2"), names)
        for n in names:
            np.testing.assert_array_equal(o1[n].values, o2[n].values, err_msg=n)
    assert not load_hadrons(tmp_path / "v1").final_state_complete
    # A format-1 directory is read, but not resumed into format 2.
    from fastrsa.store.writer import write_manifest
    write_manifest(tmp_path / "v1", {"identity": {"format_version": 1}, "n_shards": 1})
    with pytest.raises(DatasetError, match="format version 1"):
        from fastrsa.generation import generate
        generate(tmp_path / "v1", events=5, progress=False)


def test_recorder_killed_inside_the_loop_leaves_only_complete_shards(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "rec"
    script = tmp_path / "loop.py"
    script.write_text(f"""
import fastrsa
from fastrsa.pythia.records import import_pythia
p8 = import_pythia()
py = p8.Pythia("", False)
for s in {EE40_LINES!r} + ["Print:quiet = on", "VariationFrag:z = on", "VariationFrag:pT = on"]:
    py.readString(s)
py.init()
rec = fastrsa.Recorder(py, {str(out)!r}, shard_events=5)
while True:
    if py.next():
        rec.append()
""")
    from pathlib import Path

    import fastrsa
    root = str(Path(fastrsa.__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ, PYTHONPATH=root),
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 3:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = sorted(out.glob("part-*.parquet"))
    assert len(shards) >= 3
    for f in shards:        # nothing under a final name is half written
        assert pq.read_metadata(f).num_rows == 5
    ds = open_dataset(out)
    assert len(ds) == 5 * len(shards) and not ds.complete


def test_a_fit_to_measurements_validates_on_the_users_own_configuration(ee40, tmp_path, capsys):
    """With a --cmnd base, --validate-events regenerates at the fitted point from the user's own settings
    with the fitted (a, b, sigma) applied on top."""
    from fastrsa.fit.measured import pseudo_measurement
    from fastrsa.measurements import write_csv
    from fastrsa.observables import compute
    from fastrsa.store import load_hadrons
    n = compute(load_hadrons(ee40.path), ["charged_multiplicity_all"])["charged_multiplicity_all"].values
    write_csv(pseudo_measurement(n, np.arange(-1.0, 61.0, 4.0), "fraction"), tmp_path / "nch.csv")
    rc = main(["fit", "--base", str(ee40.path), "--data", f"{tmp_path / 'nch.csv'}=charged_multiplicity_all:fraction",
               "--steps", "2", "--validate-events", "30", "--out", str(tmp_path / "f"), "--quiet", "--no-plots"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    res = json.loads((tmp_path / "f" / "result.json").read_text())
    assert res["data"]["validation"]["chi2"] > 0
    v = open_dataset(tmp_path / "f" / "validation")
    assert v.meta["setup"]["name"] == "cmnd" and v.base.a == pytest.approx(res["a"], rel=1e-12)
    assert v.meta["setup"]["energy"] == pytest.approx(40.0)
