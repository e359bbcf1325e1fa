"""Fault injection (issue 15): generation killed at random moments (the parent by SIGKILL, SIGTERM or SIGINT,
or one worker by SIGKILL), over seeded trials. After each kill no process of the run is left; after the
resume the dataset is byte-identical to a clean run's."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from fastrsa.generation import generate
from fastrsa.store.layout import MANIFEST, read_manifest

EVENTS, SHARD, SEED = 480, 40, 21
ARGS = ["--events", str(EVENTS), "--shard-events", str(SHARD), "--seed", str(SEED), "--jobs", "2", "--quiet"]


def _session(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid` (the CLI is started as a session leader)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if rest[0] != "Z" and int(rest[3]) == sid:
            out.append(int(d))
    return out


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
            if int(rest[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            continue
    return out


METHODS = ("parent SIGKILL", "parent SIGTERM", "parent SIGINT", "worker SIGKILL")


def _kill_at_random(out, rng: random.Random, how: str) -> str:
    proc = subprocess.Popen([sys.executable, "-m", "fastrsa.cli", "generate", str(out), *ARGS],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # A random moment: after a random number of complete shards (0: during start-up), plus a random delay.
    after, deadline = rng.randint(0, 4), time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(out.glob("part-*.parquet"))) < after:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.1) if after else rng.uniform(0.2, 2.0))
    target = proc.pid
    if how.startswith("worker"):
        kids = _children(proc.pid)
        target = rng.choice(kids) if kids else proc.pid
    try:
        os.kill(target, getattr(signal, how.split()[1]))
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=60)
    finally:
        proc.stderr.close()
    at_exit = len(list(out.glob("part-*.parquet"))) if out.exists() else 0
    deadline = time.time() + 3     # workers notice a dead parent within 0.5 s
    while _session(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    left = _session(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{how}: processes {left} outlived the run"
    now = len(list(out.glob("part-*.parquet"))) if out.exists() else 0
    assert now == at_exit, f"{how}: {now - at_exit} shards were written after the run's parent had ended"
    return how


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults") / "clean"
    generate(d, events=EVENTS, shard_events=SHARD, seed=SEED, progress=False)
    return d


@pytest.mark.parametrize("trial", range(2))     # 2 x 2 kills: each of the 4 ways once
def test_random_kills_then_resume(tmp_path, clean, trial):
    rng = random.Random(1000 + trial)
    out = tmp_path / "ds"
    for k in range(2):
        how = _kill_at_random(out, rng, METHODS[(2 * trial + k) % len(METHODS)])
        print(how, len(list(out.glob("part-*.parquet"))) if out.exists() else "no directory")
    generate(out, events=EVENTS, shard_events=SHARD, seed=SEED, jobs=2, progress=False)     # the resume
    names = sorted(p.name for p in clean.glob("part-*.parquet"))
    assert sorted(p.name for p in out.glob("part-*.parquet")) == names
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    for n in names:
        assert (out / n).read_bytes() == (clean / n).read_bytes(), n
    assert read_manifest(out / MANIFEST)["shards"] == read_manifest(clean / MANIFEST)["shards"]
