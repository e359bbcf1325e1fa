"""The dqcd setup: fastrsa.shower partons hadronized by stock Pythia, with the RSA records (generation/dqcd.py).

One module-scoped base run (two shards, two jobs) serves every test; each claim is checked against an
independent Pythia run or against the base events themselves."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import fastrsa
from fastrsa.errors import DatasetError, ParameterError
from fastrsa.store.schema import META_KEY

POINTS = [(0.68, 0.98, 0.335), (0.5, 0.7, 0.3), (0.9, 1.2, 0.37)]


@pytest.fixture(scope="module")
def dqcd(tmp_path_factory):
    from fastrsa.generation import generate
    d = tmp_path_factory.mktemp("dqcd")
    return generate(d / "base", events=80, setup="dqcd", lam=0.4, seed=11, jobs=2, shard_events=40,
                    progress=False)


def _insitu(ds, shard: int, points):
    """Replay one shard of `ds` on a fresh Pythia with in-situ variations: the stored partons and per-event
    hadronization seeds, the shard's stored settings. Returns (in-situ weights [K, n], final states)."""
    from fastrsa.pythia.records import import_pythia, make_reader
    from fastrsa.pythia.run import apply_settings, next_event
    from fastrsa.pythia.setups import PartonEvents, make_setup
    from fastrsa.shower.dataset import open_shower
    p8 = import_pythia()
    f = ds.shards[shard]
    meta = json.loads(pq.read_schema(f).metadata[META_KEY])
    groups = ", ".join(f"p{k} frag:aLund={a!r} frag:bLund={b!r} frag:ptSigma={s!r}" for k, (a, b, s) in enumerate(points))
    py = p8.Pythia("", False)
    apply_settings(py, meta["pythia_settings"] + [f"VariationFrag:List = {{{groups}}}"])
    assert py.init()
    reader = make_reader(py, p8)
    s, extra = open_shower(f, with_extra=True)
    src = PartonEvents(s.pdg.numpy(), s.p.numpy(), s.offsets.numpy(), extra["event"], meta["seed"])
    setup = make_setup("dqcd", meta["setup"]["energy"], shower=meta["setup"]["shower"])
    info = py.infoPython()
    names = [info.weightNameByIndex(i) for i in range(info.numberOfWeights())]
    idx = [names.index(f"p{k}") for k in range(len(points))]
    w, states, cache = [], [], {"partons": src}
    while len(states) < s.n_events:
        got = next_event(py, reader, setup, cache)
        if got is None:
            continue
        states.append(got[1])
        w.append([py.infoPython().weightValueByIndex(i) for i in idx])
    seeds = pq.read_table(f, columns=["hadronization_seed"]).column(0).to_numpy()
    np.testing.assert_array_equal(src.seeds, seeds)
    return np.array(w).T, states


def test_dqcd_records_reproduce_pythia_insitu_weights(dqcd):
    assert dqcd.meta["setup"]["name"] == "dqcd" and len(dqcd) == 80 and len(dqcd.shards) == 2
    lw = fastrsa.lund_log_weights(dqcd.to_torch(), torch.tensor(POINTS, dtype=torch.float64)).numpy()
    first = 0
    for shard in range(2):
        insitu, states = _insitu(dqcd, shard, POINTS)
        n = insitu.shape[1]
        np.testing.assert_allclose(np.exp(lw[:, first:first + n]), insitu, rtol=1e-10)
        assert np.all(np.abs(np.log(insitu)) > 1e-6)        # away from the base: the weights are not all 1
        # the stored hadrons are the replayed final state, particle by particle
        t = pq.read_table(dqcd.shards[shard], columns=["px", "pdg"])
        for i in (0, n - 1):
            np.testing.assert_array_equal(t.column("pdg")[i].values.to_numpy(), states[i][5])
            np.testing.assert_array_equal(t.column("px")[i].values.to_numpy(), states[i][0])
        first += n
    # the base point weighs 1 exactly
    base = dqcd.base
    assert np.all(fastrsa.lund_log_weights(dqcd.to_torch(), torch.tensor([base.a, base.b, base.sigma],
                                                                          dtype=torch.float64)).numpy() == 0.0)


def test_dqcd_dataset_holds_partons_beside_hadrons(dqcd):
    from fastrsa.shower import generate
    from fastrsa.shower.dataset import open_shower
    s = open_shower(dqcd.path)
    direct = generate(80, 0.4, seed=11, orders=3)      # the same shower events, straight from the shower
    # (other batch sizes round differently: ~1e-12 in p, ~1e-10 GeV in the third-order coefficients)
    assert s.orders == 3 and s.lam == 0.4 and s.n_events == 80
    torch.testing.assert_close(s.p, direct.p, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.coeffs, direct.coeffs, rtol=1e-9, atol=1e-8)
    torch.testing.assert_close(s.log_rate_derivs, direct.log_rate_derivs, rtol=1e-12, atol=1e-12)
    assert torch.equal(s.topology, direct.topology) and torch.equal(s.pdg, direct.pdg)
    # hadronization conserves the partons' four-momentum (decays on: every final-state particle kept)
    fv = dqcd.flat(groups=("hadrons",))
    off = fv.offsets["hadrons"]
    e = np.add.reduceat(fv["e"], off[:-1])
    pz = np.add.reduceat(fv["pz"], off[:-1])
    np.testing.assert_allclose(e, 91.2, rtol=1e-9)
    np.testing.assert_allclose(pz, 0.0, atol=1e-8)
    assert not fv["is_hadron"].all()          # decays on: photons from pi0 etc.
    from fastrsa.cli.generate import info_text
    assert "dqcd" in info_text(dqcd)


def test_dqcd_refuses_bad_input(tmp_path):
    from fastrsa.generation import generate
    with pytest.raises(ParameterError, match="lambda"):
        generate(tmp_path / "x", events=10, setup="dqcd", lam=-1.0, progress=False)
    with pytest.raises(ParameterError, match="orders"):
        generate(tmp_path / "x", events=10, setup="dqcd", orders=9, progress=False)
    with pytest.raises(ParameterError, match="dqcd"):
        generate(tmp_path / "x", events=10, setup="ee", lam=0.4, progress=False)
    assert not (tmp_path / "x").exists()


def test_moved_requires_a_dqcd_base(string_ds, tmp_path):
    from fastrsa.generation.dqcd import hadronize_moved
    with pytest.raises(DatasetError, match="dqcd"):
        hadronize_moved(string_ds.path, tmp_path / "m", 0.05, 3, progress=False)
