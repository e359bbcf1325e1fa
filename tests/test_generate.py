import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fastrsa import DatasetError, ParameterError, PythiaError, open_dataset
from fastrsa.cli import main


def test_records_consistent_with_pythia(string_ds):
    ds = string_ds
    assert len(ds) == 400 and len(ds.shards) == 4 and ds.complete
    fv = ds.flat()
    z = fv["z"]
    assert np.all((z > 0) & (z < 1))
    n = len(fv)
    acc = np.add.reduceat((fv["mt2"] > 0).astype(np.int64), fv.offsets["trials"][:-1])
    hadrons = np.diff(fv.offsets["hadrons"])
    breaks = np.diff(fv.offsets["breaks"])
    one = fv.n_attempts == 1
    assert one.sum() > 0.6 * n and (~one).sum() > 0      # ~18% of events redo an attempt
    # Every hadron of a one-attempt event comes from an accepted z, but the last two (the join).
    np.testing.assert_array_equal(acc[one], hadrons[one] - 2)
    # Discarded attempts only add accepted trials; the stored n_attempts is breaks - accepted.
    assert np.all(acc >= hadrons - 2)
    np.testing.assert_array_equal(fv.n_attempts, breaks - acc)
    assert np.all(fv.n_attempts >= 1)
    # Pions only, momentum conserved per event (u-ubar at 50 GeV per quark).
    assert set(np.unique(np.abs(fv["pdg"]))) <= {111, 211}
    esum = np.add.reduceat(fv["e"], fv.offsets["hadrons"][:-1])
    np.testing.assert_allclose(esum, 100.0, rtol=1e-9)
    assert ds.meta["base"]["a"] == 0.72 and ds.meta["base"]["z_head"] == 10.0


def test_sentinel_passes_and_catches_a_wrong_layout(monkeypatch):
    from fastrsa.params import BaseParams
    from fastrsa.pythia import records as pr
    from fastrsa.pythia.sentinel import run_sentinel
    from fastrsa.pythia.setups import make_setup
    p8 = pr.import_pythia()
    base, setup = BaseParams(), make_setup("string")
    assert len(run_sentinel(p8, base, setup, seed=5, n_events=5)) == 5
    # Point the reader at the pT vector instead of the z doubles: the sentinel must stop the run.
    monkeypatch.setattr(pr, "WF_ZDBL", pr.WF_PT)
    with pytest.raises(PythiaError, match="8.317"):
        run_sentinel(p8, base, setup, seed=5, n_events=5)


def test_layout_check_rejects_other_offsets(monkeypatch):
    from fastrsa.pythia import records as pr
    p8 = pr.import_pythia()
    pr.verify_layout(p8)
    monkeypatch.setattr(pr, "WC_WEIGHTS_MERGING", 600)
    with pytest.raises(PythiaError, match="layout"):
        pr.verify_layout(p8)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastrsa.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_resume_after_kill(tmp_path):
    out = tmp_path / "ds"
    args = ["generate", str(out), "--events", "1200", "--shard-events", "60", "--seed", "11", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "fastrsa.cli", *args], start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted(out.glob("part-*.parquet"))
    assert 2 <= len(first) < 20, "kill came too late to test resuming"
    for f in first:  # nothing with a final name is ever half written
        assert pq.read_metadata(f).num_rows == 60
    before = {f.name: f.stat().st_mtime_ns for f in first}
    assert main(args) == 0          # the resume and the reference run in this process: two fewer interpreters
    ds = open_dataset(out)
    assert len(ds) == 1200 and ds.complete and not list(out.glob(".part-*"))
    for f in first:  # finished shards were kept, not redone
        assert (out / f.name).stat().st_mtime_ns == before[f.name]
    # The resumed dataset equals an uninterrupted run with the same seed (in one process: that shards do
    # not depend on --jobs is test_default_shards_do_not_depend_on_jobs).
    ref = tmp_path / "ref"
    assert main(["generate", str(ref), "--events", "1200", "--shard-events", "60", "--seed", "11", "--quiet"]) == 0
    a, b = open_dataset(out).table(), open_dataset(ref).table()
    assert a.drop_columns([]).equals(b)


@pytest.mark.parametrize("opt,value,field", [("--a", "-0.1", "a = -0.1"), ("--b", "0", "b = 0.0"),
                                             ("--sigma", "-1", "sigma = -1.0"), ("--zhead", "0.5", "zhead"),
                                             ("--events", "0", "events = 0"), ("--jobs", "0", "jobs = 0"),
                                             ("--a", "nan", "a = nan")])
def test_bad_parameters(tmp_path, capsys, opt, value, field):
    out = tmp_path / "never"
    assert main(["generate", str(out), opt, value, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not out.exists()


def test_output_holds_another_dataset(string_ds, tmp_path, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in string_ds.path.iterdir()}
    assert main(["generate", str(string_ds.path), "--events", "400", "--a", "0.5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a different dataset" in err and "base_requested" in err
    assert {p.name: p.stat().st_mtime_ns for p in string_ds.path.iterdir()} == before
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    assert main(["generate", str(junk), "--events", "10", "--quiet"]) == 2
    assert "holds no fastrsa dataset" in capsys.readouterr().err
    assert sorted(p.name for p in junk.iterdir()) == ["notes.txt"]


def test_missing_or_wrong_pythia(tmp_path, monkeypatch):
    from fastrsa.pythia import records as pr
    monkeypatch.setitem(sys.modules, "pythia8mc", None)
    with pytest.raises(PythiaError, match="pythia8mc is not installed.*pip install"):
        pr.import_pythia()
    monkeypatch.undo()
    monkeypatch.setattr(pr.metadata, "version", lambda name: "8.318.0")
    with pytest.raises(PythiaError, match="8.318.0 is not supported"):
        pr.import_pythia()
    from fastrsa.generation import generate
    with pytest.raises(PythiaError):
        generate(tmp_path / "x", events=5, progress=False)
    assert not (tmp_path / "x").exists()


def test_info(string_ds, capsys):
    assert main(["info", str(string_ds.path)]) == 0
    out = capsys.readouterr().out
    assert "events       400" in out and "bytes per trial" in out and "z_head=10.0" in out


def test_info_on_bad_dataset(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "no such dataset" in capsys.readouterr().err


def test_generate_validates_in_python():
    from fastrsa.generation import validate_request
    with pytest.raises(ParameterError, match="events"):
        validate_request(-5, 0.7, 0.9, 0.3, 10, 1, 1, None)
    with pytest.raises(DatasetError):
        open_dataset("/nonexistent/fastrsa")


def _children(pid: int) -> set:
    """Direct children of a process (Linux /proc)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out |= {int(c) for c in text}
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_workers_die_with_their_parent(tmp_path, sig):
    """SIGTERM (e.g. from `timeout`) to the generate process alone used to leave its workers running as
    orphans that kept writing shards. (SIGKILL of the parent: tests/test_faults.py, among random kills.)"""
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "fastrsa.cli", "generate", str(out), "--events", "20000",
                             "--shard-events", "200", "--jobs", "2", "--quiet"], start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("part-*.parquet")):
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2, workers
    os.kill(proc.pid, sig)                 # the parent only, not its process group
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.1)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and "zombie" not in Path(f"/proc/{w}/status").read_text().lower()]
    try:
        assert not alive, f"orphaned workers {alive}"
    finally:
        for w in alive:
            os.kill(w, signal.SIGKILL)
    n = len(list(out.glob("part-*.parquet")))
    time.sleep(1.0)
    assert len(list(out.glob("part-*.parquet"))) == n and n < 100


def test_a_failed_start_leaves_nothing(tmp_path, capsys):
    """e+e- at 1.5 GeV fails Pythia's initialization inside the workers: the manifest it had written used to
    stay and refuse the corrected rerun as 'a different dataset'."""
    out = tmp_path / "ee"
    assert main(["generate", str(out), "--setup", "ee", "--energy", "1.5", "--events", "20", "--quiet"]) == 2
    assert "failed to initialize" in capsys.readouterr().err
    assert not out.exists()
    assert main(["generate", str(out), "--setup", "ee", "--events", "20", "--quiet"]) == 0


def test_default_shards_do_not_depend_on_jobs(tmp_path, capsys):
    """The default shard size is a function of --events alone: 1 and 2 jobs give the same tables, and a
    run resumes with another --jobs (issue 15: 4 x 100 shards with one job, 8 x 50 with two)."""
    args = ["--events", "48", "--seed", "7", "--quiet"]
    assert main(["generate", str(tmp_path / "one"), *args, "--jobs", "1"]) == 0
    one = open_dataset(tmp_path / "one")
    assert len(one.shards) == 8
    two = tmp_path / "two"
    assert main(["generate", str(two), *args, "--jobs", "2"]) == 0
    assert open_dataset(two).table().equals(one.table())
    for f in sorted(two.glob("part-*.parquet"))[::3]:
        f.unlink()
    assert main(["generate", str(two), *args, "--jobs", "1"]) == 0, capsys.readouterr().err
    assert open_dataset(two).table().equals(one.table())


def test_run_size_is_checked_before_allocating(tmp_path, capsys):
    out = tmp_path / "huge"
    assert main(["generate", str(out), "--events", "1000000000000", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shards" in err[0] and "--shard-events" in err[0]
    assert not out.exists()


def test_interrupt_while_workers_start(tmp_path, monkeypatch, capsys):
    """Ctrl-C between two workers' starts: the started worker is stopped and joined, the never-started one
    is not joined (once 'AssertionError: can only join a started process'), and the message is one line."""
    import multiprocessing.context as mpc

    from fastrsa.generation import pool
    real, calls = mpc.SpawnProcess.start, []

    def start(self):
        calls.append(self)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(mpc.SpawnProcess, "start", start)
    monkeypatch.setattr(pool, "max_jobs", lambda: 2)
    assert main(["generate", str(tmp_path / "ds"), "--events", "40", "--jobs", "2", "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0], err
    assert len(calls) == 2 and not calls[0].is_alive()


def test_interrupt_while_pythia_imports(monkeypatch):
    """Ctrl-C while the pythia8mc extension loads is an interrupt, not 'pythia8mc is not installed'."""
    import builtins

    from fastrsa.pythia import records as pr
    real = builtins.__import__

    def imp(name, *a, **k):
        if name == "pythia8mc":
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise ImportError("interrupted while loading") from None
        return real(name, *a, **k)

    monkeypatch.delitem(sys.modules, "pythia8mc", raising=False)
    monkeypatch.setattr(builtins, "__import__", imp)
    with pytest.raises(KeyboardInterrupt):
        pr.import_pythia()


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_ctrl_c_at_start(tmp_path, delay):
    """SIGINT while the libraries still load or Pythia starts: one line, no traceback, nothing written
    (issue 15: once an empty message, a false 'pythia8mc is not installed', or a traceback)."""
    out = tmp_path / "ds"
    p = subprocess.Popen([sys.executable, "-m", "fastrsa.cli", "generate", str(out), "--events", "4000", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    lines = err.strip().splitlines()
    # 130, or -2 where a library ran the interrupted code through PyRun (CPython then re-raises SIGINT at exit)
    assert p.returncode in (130, -signal.SIGINT), err
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err
    assert not out.exists() or not list(out.glob("part-*.parquet"))


def test_low_string_energy_with_trial_less_events(tmp_path):
    """At 1.01-1.2 GeV per quark some events have no z trial at all; the sentinel checks them instead of
    reporting a false layout error (issue 15), and their weights (pT part only) equal the float64 reference."""
    import torch

    import fastrsa
    from fastrsa.generation import generate
    ds = generate(tmp_path / "low", events=40, energy=1.1, seed=3, progress=False)
    batch = ds.to_torch()
    n_trials = np.diff(ds.flat(groups=("trials",)).offsets["trials"])
    assert (n_trials == 0).any() and (n_trials > 0).any()
    from fastrsa.hadronization.reference import dataset_weights
    theta = (0.6, 1.0, 0.3)
    lw = fastrsa.lund_log_weights(batch, torch.tensor(theta, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(np.exp(lw), dataset_weights(ds, theta), rtol=1e-10)


def test_jobs_are_capped_at_the_cores(tmp_path, monkeypatch):
    """--jobs 1000 once started one process per shard (1.9 GB for 16 events); at most one per core now."""
    import multiprocessing.context as mpc

    from fastrsa.generation import generate, pool
    real, calls = mpc.SpawnProcess.start, []

    def start(self):
        calls.append(self)
        real(self)

    monkeypatch.setattr(mpc.SpawnProcess, "start", start)
    monkeypatch.setattr(pool, "max_jobs", lambda: 2)
    ds = generate(tmp_path / "ds", events=16, shard_events=1, jobs=1000, progress=False)
    assert len(ds) == 16 and len(calls) == 2
