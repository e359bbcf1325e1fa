"""Flavour parameters (rho, xi, x, y): Pythia's flavour records, their reference weight, the weight op
over any subset of the seven parameters, and the refusals."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import fastrsa
from fastrsa import DatasetError, ParameterError, PythiaError
from fastrsa.hadronization.batch import TrialBatch
from fastrsa.hadronization.reference import (
    dataset_flavour_weights,
    dataset_weights,
    flavour_event_weight,
    flavour_ratios,
)
from fastrsa.params import FlavourBase

# The ee setup has Pythia's default popcorn on: its PopcornWarning is tested once, below.
pytestmark = pytest.mark.filterwarnings("ignore::fastrsa.hadronization.weights.PopcornWarning")

ALL = ("a", "b", "sigma", "rho", "xi", "x", "y")
# Every point varies all four flavour parameters; the last two vary all seven together.
POINTS = [{"rho": 0.26, "xi": 0.1, "x": 0.8, "y": 0.04},
          {"a": 0.6, "b": 0.9, "sigma": 0.3, "rho": 0.18, "xi": 0.065, "x": 0.95, "y": 0.02},
          {"a": 0.75, "b": 1.1, "sigma": 0.36, "rho": 0.3, "xi": 0.12, "x": 0.7, "y": 0.06}]


@pytest.fixture(scope="module")
def flav_ee(tmp_path_factory):
    from fastrsa.testing import insitu_flavour_run
    ds, insitu, post = insitu_flavour_run(tmp_path_factory.mktemp("flav_ee") / "ds", POINTS, events=30)
    return ds, insitu, post


def _full(ds, p):
    fb = ds.to_torch().flavour
    base = {"a": ds.base.a, "b": ds.base.b, "sigma": ds.base.sigma, "rho": fb.rho, "xi": fb.xi, "x": fb.x, "y": fb.y}
    return [p.get(n, base[n]) for n in ALL]


def _batch(ds, n, device):
    fv = ds.flat(groups=("trials", "breaks", "flavour"))
    to, bo = fv.offsets["trials"][:n + 1], fv.offsets["breaks"][:n + 1]
    counts = fv["flav_breaks"].reshape(-1, 13)[:n]
    return TrialBatch.from_arrays(ds.base, to, fv["z"][:to[-1]], fv["fprel"][:to[-1]], fv["mt2"][:to[-1]],
                                  fv["id_old"][:to[-1]], fv["id_new"][:to[-1]], bo, fv["pt2"][:bo[-1]],
                                  device=device.torch_device, flav_counts=counts,
                                  flavour=FlavourBase.from_dict(ds.meta["flavour"]["base"]))


def test_records_reproduce_pythias_insitu_weights(flav_ee):
    """Pythia's own post-hoc tools (KinematicVariations x FlavorVariations) on the records we read and
    stored equal its in-situ weights: the reader and the stored column are right."""
    ds, insitu, post = flav_ee
    assert ds.format_version == 3 and ds.meta["flavour"]["counters"] == 13
    counts = ds.flat(groups=("flavour",))["flav_breaks"].reshape(-1, 13)
    assert counts.shape == (30, 13) and counts[:, 3].sum() > 0 and counts[:, 2].sum() > 0   # diquarks, s quarks
    np.testing.assert_allclose(post, insitu, rtol=1e-10)
    assert not np.allclose(insitu, 1.0)


def test_reference_equals_pythia(flav_ee):
    """The float64 reference (StringFlav's construction, linear space) times the z/pT reference equals
    Pythia's in-situ weights for every event at every point."""
    ds, insitu, _ = flav_ee
    for k, p in enumerate(POINTS):
        th = _full(ds, p)
        ref = dataset_weights(ds, th[:3]) * dataset_flavour_weights(ds, th[3:])
        np.testing.assert_allclose(ref, insitu[k], rtol=1e-10)


def test_derived_ratios_equal_pythias():
    import pythia8mc

    from fastrsa.hadronization.flavmath import derived
    fv = pythia8mc.FlavorVariations(0.081, 0.217, 0.915, 0.0275)
    rng = np.random.default_rng(3)
    for rho, xi, x, y in rng.uniform(0.01, 1.0, (20, 4)):
        want = fv.parms(xi, rho, x, y)
        np.testing.assert_allclose(flavour_ratios(rho, xi, x, y), want, rtol=1e-12)
        c1, c2 = FlavourBase().cg_ratios()
        np.testing.assert_allclose(derived(rho * x, y, c1, c2), [want[i] for i in (0, 1, 2, 3, 4)], rtol=1e-12)
    # One counter at a time: each of the 13 factors equals FlavorVariations' (its 14th counter is unused).
    q = fv.parms(0.1, 0.25, 0.8, 0.04)
    for k in range(13):
        e = [0] * 14
        e[k] = 2
        ours = flavour_event_weight((0.25, 0.1, 0.8, 0.04), FlavourBase(), e[:13])
        assert ours == pytest.approx(fv.weight(q, e), rel=1e-13)


def test_weight_op_equals_pythia(flav_ee, device):
    ds, insitu, _ = flav_ee
    n = 4 if device.name == "cudasim" else 30
    batch = _batch(ds, n, device)
    th = torch.tensor([_full(ds, p) for p in POINTS], dtype=torch.float64, device=device.torch_device)
    lw = fastrsa.lund_log_weights(batch, th, backend=device.backend)          # all seven columns
    np.testing.assert_allclose(np.exp(lw.cpu().numpy()), insitu[:, :n], rtol=1e-10)
    # A subset in any order: the flavour-only point through its four columns, the others at the base.
    sub = torch.tensor([[POINTS[0][k] for k in ("y", "x", "rho", "xi")]], dtype=torch.float64,
                       device=device.torch_device)
    lw0 = fastrsa.lund_log_weights(batch, sub, names="y,x,rho,xi", backend=device.backend)
    np.testing.assert_allclose(np.exp(lw0[0].cpu().numpy()), insitu[0, :n], rtol=1e-10)
    # The base gives exactly 0.
    base = torch.tensor(_full(ds, {}), dtype=torch.float64, device=device.torch_device)
    assert torch.all(fastrsa.lund_log_weights(batch, base, backend=device.backend) == 0)


def test_gradcheck_seven_parameters(flav_ee, device):
    ds = flav_ee[0]
    sim = device.name == "cudasim"      # every simulated kernel call costs ~0.5 s: one point, two events
    batch = _batch(ds, 2 if sim else 20, device)
    f = lambda t: fastrsa.lund_log_weights(batch, t, names=ALL, backend=device.backend)  # noqa: E731
    for point in [POINTS[1]] if sim else POINTS[1:]:
        th = torch.tensor(_full(ds, point), dtype=torch.float64, device=device.torch_device, requires_grad=True)
        assert torch.autograd.gradcheck(f, (th,), eps=1e-7, atol=1e-6, rtol=1e-5)
    # The per-event Jacobian (no autograd) is the same derivative.
    _, jac = fastrsa.hadronization.weights.log_weights_and_jacobian(batch, th.detach()[None], device.backend, ALL)
    auto = torch.autograd.functional.jacobian(lambda t: f(t).sum(), th.detach())
    torch.testing.assert_close(jac[0].sum(0), auto, rtol=1e-12, atol=1e-12)


def test_gradient_matches_finite_differences_of_pythias_weights(flav_ee):
    """d log w / d(rho, xi, x, y) against central differences of pythia8mc.FlavorVariations' weights."""
    import pythia8mc
    ds = flav_ee[0]
    counts = ds.flat(groups=("flavour",))["flav_breaks"].reshape(-1, 13)
    fb = FlavourBase.from_dict(ds.meta["flavour"]["base"])
    fv = pythia8mc.FlavorVariations(fb.xi, fb.rho, fb.x, fb.y)
    p = POINTS[0]
    batch = ds.to_torch()
    th = torch.tensor([p["rho"], p["xi"], p["x"], p["y"]], dtype=torch.float64, requires_grad=True)
    lw = fastrsa.lund_log_weights(batch, th, names="rho,xi,x,y")
    grads = [torch.autograd.grad(lw[i], th, retain_graph=True)[0].numpy() for i in range(len(counts))]

    def log_pythia(i, q):
        return np.log(fv.weight(fv.parms(q["xi"], q["rho"], q["x"], q["y"]), counts[i].tolist() + [0]))

    for j, name in enumerate(("rho", "xi", "x", "y")):
        h = 1e-6 * p[name]
        for i in range(len(counts)):
            fd = (log_pythia(i, dict(p, **{name: p[name] + h})) - log_pythia(i, dict(p, **{name: p[name] - h}))) / (2 * h)
            assert grads[i][j] == pytest.approx(fd, rel=1e-5, abs=1e-6), (name, i)


def test_datasets_without_flavour_records_refuse_flavour_parameters(flav_ee, tmp_path, string_ds):
    """A format-2 dataset opens and reweights in (a, b, sigma); a flavour parameter is one clear error.
    So is the string setup (no s quarks, no diquarks: no flavour records)."""
    from fastrsa.store.schema import META_KEY
    ds = flav_ee[0]
    table = pq.read_table(ds.shards[0]).drop_columns(["flav_breaks", "species_counts"])
    meta = dict(ds.meta, format_version=2)
    meta.pop("flavour")
    (tmp_path / "v2").mkdir()
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}),
                   tmp_path / "v2" / "part-00000.parquet")
    old = fastrsa.open_dataset(tmp_path / "v2")
    batch = old.to_torch()
    lw = fastrsa.lund_log_weights(batch, torch.tensor([0.6, 0.9, 0.3], dtype=torch.float64))
    torch.testing.assert_close(lw, fastrsa.lund_log_weights(ds.to_torch(), torch.tensor([0.6, 0.9, 0.3],
                                                                                         dtype=torch.float64)))
    with pytest.raises(DatasetError, match=r"format version 2 has no flavour records, so rho, xi, x, y cannot"):
        fastrsa.lund_log_weights(batch, torch.tensor([0.6, 0.25], dtype=torch.float64), names="a,rho")
    from fastrsa.observables import compute
    from fastrsa.store.hadrons import HadronSample
    with pytest.raises(DatasetError, match="no identified-hadron counts"):
        compute(HadronSample.from_flat(old.flat(), old.meta, old.path), "K_over_pi")
    with pytest.raises(DatasetError, match="made without flavour records"):
        fastrsa.lund_log_weights(string_ds.to_torch(), torch.tensor([0.25], dtype=torch.float64), names="rho")
    with pytest.raises(ParameterError, match=r"rho = 0.0 outside the model \(0 < rho <= 1; StringFlav:probStoUD"):
        fastrsa.lund_log_weights(ds.to_torch(), torch.tensor([0.0], dtype=torch.float64), names="rho")
    with pytest.raises(ParameterError, match="names: \\['kappa'\\]; choose from a, b, sigma, rho, xi, x, y"):
        fastrsa.lund_log_weights(ds.to_torch(), torch.tensor([0.3], dtype=torch.float64), names="kappa")


def test_layout_check_catches_a_wrong_offset():
    from fastrsa.pythia import records
    p8 = records.import_pythia()
    records.verify_fragmentation_layout(p8)
    with pytest.raises(PythiaError, match="flavBreaks, zIntBreaks not at the expected offsets"):
        records.verify_fragmentation_layout(p8, (records.WF_ZINT, records.WF_FLAV, records.WF_ZDBL, records.WF_PT))


def test_sentinel_proves_the_flavour_records(monkeypatch):
    """The start-up self-check varies the flavour parameters too: permuted counters are caught."""
    from fastrsa.params import BaseParams
    from fastrsa.pythia import records, sentinel
    from fastrsa.pythia.setups import make_setup
    p8 = records.import_pythia()
    base = BaseParams(a=0.68, b=0.98, sigma=0.335)
    checked = sentinel.run_sentinel(p8, base, make_setup("ee"), seed=5, n_events=3)
    assert all(r.flav is not None and len(r.flav) == 13 for r in checked)
    read = records.CtypesRecordReader.read

    def permuted(self):
        rec = read(self)
        if rec.flav is not None:
            rec.flav = rec.flav[::-1].copy()
        return rec

    monkeypatch.setattr(records.CtypesRecordReader, "read", permuted)
    with pytest.raises(PythiaError, match="do not reproduce Pythia's in-situ weight"):
        sentinel.run_sentinel(p8, base, make_setup("ee"), seed=5, n_events=3)


def test_identified_counts_and_ratios(flav_ee):
    """Species counts run over the whole record; stable ones (pi+-, K+-, p) equal the final-state counts."""
    from fastrsa.observables import compute
    from fastrsa.store.hadrons import HadronSample
    ds = flav_ee[0]
    h = HadronSample.from_flat(ds.flat(), ds.meta, ds.path)
    assert h.species is not None and h.species.shape == (30, len(h.species_labels))
    obs = {k: v.values for k, v in compute(h, "identified,flavour_ratios").items()}
    ev = np.repeat(np.arange(30), np.diff(h.offsets))
    for name, pid in (("n_pi", 211), ("n_K", 321), ("n_p", 2212)):
        np.testing.assert_array_equal(obs[name], np.bincount(ev[np.abs(h.pdg) == pid], minlength=30))
    np.testing.assert_allclose(obs["K_over_pi"], obs["n_K"] / obs["n_pi"])
    assert obs["n_K0"].sum() > 0 and obs["n_Lambda"].sum() > 0 and obs["n_pi0"].sum() > obs["n_pi"].sum() / 3
    assert not np.any(np.isin(np.abs(h.pdg), [310, 3122, 111]))      # decayed: only the record counts them
    from fastrsa.store.hadrons import load_hadrons
    target = load_hadrons(ds.path)          # a target sample carries the counts too
    np.testing.assert_array_equal(compute(target, "n_K")["n_K"].values, obs["n_K"])


def test_reweight_command(flav_ee, tmp_path, capsys):
    import pyarrow.parquet as pq

    from fastrsa.cli import main
    ds, insitu, _ = flav_ee
    out = tmp_path / "w.parquet"
    p1, p2 = POINTS[1], POINTS[0]
    args = ["reweight", str(ds.path), "--point", ",".join(f"{k}={v}" for k, v in p1.items()),
            "--point", ",".join(f"{k}={v}" for k, v in p2.items()), "--out", str(out)]
    assert main(args) == 0
    t = pq.read_table(out)
    meta = json.loads(t.schema.metadata[b"fastrsa_reweight"])
    assert t.column_names == ["logw_0", "logw_1"] and t.num_rows == len(ds)
    assert meta["points"][0] == {k: p1[k] for k in ALL} and meta["points"][1]["a"] == ds.base.a
    np.testing.assert_allclose(np.exp(t.column("logw_0").to_numpy()), insitu[1], rtol=1e-10)
    np.testing.assert_allclose(np.exp(t.column("logw_1").to_numpy()), insitu[0], rtol=1e-10)
    capsys.readouterr()
    assert main(args) == 2      # exists
    assert main(["reweight", str(ds.path), "--point", "a=0.7,rho", "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "'rho' is not NAME=VALUE" in err[1]


def test_popcorn_samples_warn(flav_ee):
    """Pythia's flavour weights do not close with popcorn baryon production on (its default): a warning
    says so once; a base made with popcornRate = 0 does not warn."""
    import dataclasses
    import warnings

    from fastrsa.hadronization.weights import PopcornWarning
    ds = flav_ee[0]
    batch = ds.to_torch()
    assert batch.flavour.popcorn_rate == 0.5
    th = torch.tensor([0.25], dtype=torch.float64)
    with pytest.warns(PopcornWarning, match="popcornRate = 0"):
        fastrsa.lund_log_weights(batch, th, names="rho")
    batch.flavour = dataclasses.replace(batch.flavour, popcorn_rate=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastrsa.lund_log_weights(batch, th, names="rho")


def test_fit_in_flavour_parameters(flav_ee):
    """`Problem(..., flavour=True)` / `fastrsa fit --params ...,rho,xi`: theta holds all seven weight parameters,
    the loss gradient in rho and xi equals finite differences of the loss (its variances frozen), and a fit of rho against the base
    sample itself (loss minimum exactly at the base) returns to the base's rho from 20% above it (the CLI:
    the next test)."""
    from fastrsa.fit import Problem, fit
    from fastrsa.testing import frozen_variance_loss
    ds = flav_ee[0]
    problem = Problem([ds.path], ds.path, "n_K,n_p,multiplicity", loss="chi2", flavour=True)
    base = np.array(problem.base_points[0])
    assert problem.space.names == ALL and len(base) == 7
    th = base.copy()
    th[3] *= 1.2                                                     # rho
    th[4] *= 0.9                                                     # xi
    ev = problem.loss_and_grad(torch.tensor(th[None]))
    frozen = frozen_variance_loss(problem, th[None])        # the chi2 whose derivative the gradient is
    for j in (3, 4):
        h = 1e-6 * th[j]
        up, dn = th.copy(), th.copy()
        up[j] += h
        dn[j] -= h
        with torch.no_grad():
            fd = (frozen(torch.tensor(up[None])) - frozen(torch.tensor(dn[None]))) / (2 * h)
        assert float(ev.grad[0, j]) == pytest.approx(float(fd[0]), rel=1e-5, abs=1e-9)
    start = base.copy()
    start[3] *= 1.2
    res = fit(problem, start=start, params="rho", steps=60, lr=0.005, replicas=4, progress=False)
    assert abs(res.theta[3] - base[3]) < 0.25 * abs(start[3] - base[3])


def test_fit_flavour_to_the_shipped_identified_hadron_table(flav_ee, tmp_path, capsys):
    """`fastrsa fit --data ALEPH_1996_S3486095/d44 --params ...,rho,xi`: the table of means goes through the CLI,
    the report's points are 7-parameter points (Pythia's default flavour values), the figure is drawn, and the
    events generated at the fitted point carry the fitted rho and xi."""
    from fastrsa.cli import main
    from fastrsa.params import WEIGHT_SPACE
    from fastrsa.store.dataset import open_dataset
    ds = flav_ee[0]
    out = tmp_path / "d44"
    assert main(["fit", "--base", str(ds.path), "--data", "ALEPH_1996_S3486095/d44", "--data",
                 "ALEPH_1996_S3486095/d19-x01-y01", "--params", "rho,xi", "--steps", "3", "--replicas", "4",
                 "--validate-events", "20", "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    doc = json.loads((out / "result.json").read_text())
    assert doc["free"] == ["rho", "xi"] and doc["a"] == ds.base.a and "y" in doc
    data = doc["data"]
    assert data["points"]["Pythia default"] == pytest.approx(list(WEIGHT_SPACE.defaults()))
    assert data["ndf"] == 15 + 1 - 2 and data["terms"]["fit"]["ALEPH_1996_S3486095/d44"]["bins"] == 15
    assert [d["observable"] for d in doc["problem"]["data"]][0][:2] == ["n_pi0", "n_eta"]
    assert (out / "data_0_ALEPH_1996_S3486095_d44.png").exists()
    settings = open_dataset(out / "validation").meta["setup"]["settings"]
    assert f"StringFlav:probStoUD = {doc['rho']!r}" in settings and f"StringFlav:probQQtoQ = {doc['xi']!r}" in settings
    capsys.readouterr()


def test_flavour_fit_refuses_bases_without_flavour_records(string_ds, tmp_path, capsys):
    from fastrsa.cli import main
    assert main(["fit", "--base", str(string_ds.path), "--target", str(string_ds.path), "--params", "a,rho",
                 "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "flavour records" in err[0] and "--setup ee" in err[0]
