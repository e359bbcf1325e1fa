import os

# Without a GPU, run the CUDA kernel under numba's simulator so GPU code is tested in CI.
# This must happen before numba.cuda is imported anywhere.
if "NUMBA_ENABLE_CUDASIM" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402

from fastrsa.testing import devices  # noqa: E402


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devs = devices()
        metafunc.parametrize("device", devs, ids=[d.name for d in devs])


@pytest.fixture(scope="session")
def string_ds(tmp_path_factory):
    """A few hundred pion-string events from `fastrsa generate` (two jobs, several shards)."""
    from fastrsa.generation import generate
    return generate(tmp_path_factory.mktemp("string") / "ds", events=400, jobs=2, seed=3,
                    shard_events=100, progress=False)


@pytest.fixture(scope="session")
def insitu_string(tmp_path_factory):
    from fastrsa.testing import insitu_run
    points = [(0.68, 0.98, 0.335), (0.5, 0.6, 0.3), (1.0, 1.4, 0.4), (0.3, 1.2, 0.36)]
    ds, insitu, kv = insitu_run(tmp_path_factory.mktemp("insitu_string"), points, events=300)
    return ds, points, insitu, kv


@pytest.fixture(scope="session")
def insitu_ee(tmp_path_factory):
    from fastrsa.testing import insitu_run
    points = [(0.68, 0.98, 0.335), (0.6, 0.8, 0.3), (0.9, 1.2, 0.37)]
    ds, insitu, kv = insitu_run(tmp_path_factory.mktemp("insitu_ee"), points, events=120, setup="ee",
                                base={"a": 0.68, "b": 0.98, "sigma": 0.335})
    return ds, points, insitu, kv


@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    """A base at the RSA paper's point and pseudo-data at Pythia's default, 3000 events each."""
    from fastrsa.generation import generate
    d = tmp_path_factory.mktemp("pair")
    base = generate(d / "base", events=3000, a=0.72, b=0.88, seed=21, jobs=2, progress=False)
    target = generate(d / "target", events=3000, a=0.68, b=0.98, seed=22, jobs=2, progress=False)
    return base, target
