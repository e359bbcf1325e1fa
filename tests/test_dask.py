"""Generation and fitting on a Dask cluster: a LocalCluster of 2 worker processes, started and stopped here."""
import os
import signal
import sys
import threading
import time

import pytest

from fastrsa.cli import main
from fastrsa.generation import generate

distributed = pytest.importorskip("distributed")   # part of the test extra; skipped only outside it

RUN = dict(events=240, shard_events=40, seed=7, progress=False)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=50)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("local") / "ds", jobs=1, **RUN)


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_dask_generation_is_byte_identical(client, local_run, tmp_path):
    ds = generate(f"file://{tmp_path / 'ds'}", dask=client, **RUN)
    assert ds.complete and len(ds) == RUN["events"]
    mine, ref = _files(tmp_path / "ds"), _files(local_run.path)
    assert sorted(mine) == sorted(ref) and len(mine) == 7        # 6 shards + the manifest, nothing hidden
    for name in ref:
        assert mine[name] == ref[name], name


def test_a_worker_killed_mid_shard_loses_nothing(client, local_run, tmp_path):
    pids = client.run(os.getpid)
    killed = {}

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            done = list((tmp_path / "ds").glob("part-*.parquet"))
            if done and busy:                   # one worker is past its first shard and inside another
                w = sorted(busy)[0]
                os.kill(pids[w], signal.SIGKILL)
                killed["worker"], killed["pid"], killed["keys"] = w, pids[w], list(busy[w])
                return
            time.sleep(0.01)

    t = threading.Thread(target=killer)
    t.start()
    ds = generate(tmp_path / "ds", dask=client, **RUN)
    t.join()
    assert killed, "no worker was killed: the test did not test anything"
    # The scheduler lost a task that was processing on the killed worker, and ran it again.
    story = [s for k in killed["keys"] for s in client.story(k) if s[0] == "scheduler"]
    assert any(s[2:4] == ("processing", "released") for s in story), story
    assert ds.complete and len(ds) == RUN["events"]
    mine, ref = _files(tmp_path / "ds"), _files(local_run.path)
    assert sorted(mine) == sorted(ref)      # no partial or temporary file left behind
    for name in ref:
        assert mine[name] == ref[name], name
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    assert killed["pid"] not in client.run(os.getpid).values()


def test_dask_option_errors(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ds"
    assert main(["generate", str(out), "--events", "10", "--dask", "locl:2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--dask 'locl:2'" in err and "tcp://HOST:PORT" in err
    assert main(["generate", str(out), "--events", "10", "--dask", "local:2", "--jobs", "2"]) == 2
    assert "jobs = 2" in capsys.readouterr().err
    assert main(["generate", "s3://bucket/ds", "--events", "10", "--dask", "local"]) == 2
    assert "shared mount" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)       # as if Dask were not installed
    assert main(["generate", str(out), "--events", "10", "--dask", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'fastrsa[dask]'" in err
    assert not out.exists()


def test_without_dask_everything_else_works(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    ds = generate(tmp_path / "ds", events=20, shard_events=10, seed=1, progress=False)
    assert len(ds) == 20 and ds.complete
