"""Fits to measured histograms: the chi2 against an independent numpy reference, closure on
pseudo-measurements, degenerate directions, the CLI, and one clear line for bad input."""
import json
import math

import numpy as np
import pytest
import torch

from fastrsa.cli import main
from fastrsa.errors import DatasetError, ParameterError
from fastrsa.fit import Problem, fit, inside_ellipse
from fastrsa.fit.measured import DataTarget, MeasuredChi2, pseudo_measurement
from fastrsa.fit.scans import profile
from fastrsa.measurements import Measurement, write_csv
from fastrsa.observables import compute
from fastrsa.store import load_hadrons


def _reference_chi2(x, p, m: Measurement, statistic, cov=None):
    """Plain numpy, bin by bin: prediction, its variance (delta method for the normalized weights), chi2."""
    p = p / p.sum()
    s, var, d, keep = [], [], [], []
    if statistic == "mean":
        mean = np.sum(p * x)
        s, var = [mean], [np.sum(p ** 2 * (x - mean) ** 2)]
        d, keep = list(m.values), [0]
    else:
        for k in range(m.n):
            inb = (x >= m.lo[k]) & (x < m.hi[k])
            if not inb.any():
                continue
            f = p[inb].sum()
            v = np.sum(p ** 2 * (inb - f) ** 2)
            w = m.hi[k] - m.lo[k] if statistic == "density" else 1.0
            s.append(f / w)
            var.append(v / w ** 2)
            d.append(m.values[k])
            keep.append(k)
    s, var, d = map(np.asarray, (s, var, d))
    C = (np.diag(((m.err_minus + m.err_plus) / 2) ** 2) if cov is None else cov)[np.ix_(keep, keep)]
    r = s - d
    return float(r @ np.linalg.solve(C + np.diag(var), r)), s


def _check_gradients(term, p):
    """The prediction (s, var s) and chi2(s, var) are gradchecked; the loss's gradient is that of chi2 with
    var s held at its value (a constant, see fit.measured), which differs from the full derivative."""
    w = torch.from_numpy(p).requires_grad_(True)

    def norm(w):
        return w / w.sum(-1, keepdim=True)
    assert torch.autograd.gradcheck(lambda w: term.prediction(norm(w)), (w,))
    s0, v0 = (t.detach().requires_grad_(True) for t in term.prediction(norm(w)))
    assert torch.autograd.gradcheck(term.chi2, (s0, v0))
    g, = torch.autograd.grad(term(norm(w)).sum(), w)
    g_fixed, = torch.autograd.grad(term.chi2(term.prediction(norm(w))[0], v0.detach()).sum(), w)
    g_full, = torch.autograd.grad(term.chi2(*term.prediction(norm(w))).sum(), w)
    torch.testing.assert_close(g, g_fixed, rtol=1e-12, atol=0)
    assert not torch.allclose(g, g_full, rtol=1e-6, atol=0)


@pytest.mark.parametrize("statistic", ["density", "fraction", "mean"])
def test_chi2_equals_a_numpy_reference_and_is_differentiable(statistic):
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 0.2, 400)
    lo = np.array([0.0, 0.1, 0.3, 0.45, 0.6, 0.8, 1.5])
    hi = np.array([0.1, 0.3, 0.45, 0.6, 0.8, 1.0, 2.0])          # the last bin is empty: skipped
    n = 1 if statistic == "mean" else len(lo)
    m = Measurement("test/h", lo[:n], hi[:n] if n > 1 else np.array([2.0]), rng.uniform(0.2, 2, n),
                    rng.uniform(0.01, 0.1, n), rng.uniform(0.01, 0.1, n))
    target = DataTarget(m, "x", statistic)
    term = MeasuredChi2(target, x)
    p = rng.uniform(0.5, 1.5, (3, 400))
    got = term(torch.from_numpy(p / p.sum(-1, keepdims=True)))
    for k in range(3):
        ref, _ = _reference_chi2(x, p[k], m, statistic)
        assert float(got[k]) == pytest.approx(ref, rel=1e-12)
    if statistic != "mean":
        assert target.skipped == ["1.5-2"]
        # A full covariance goes through the general solve and equals the reference too.
        A = rng.normal(size=(n, n)) * 0.02
        cov = np.diag(((m.err_minus + m.err_plus) / 2) ** 2) + A @ A.T
        term_c = MeasuredChi2(DataTarget(m.with_covariance(cov), "x", statistic), x)
        assert not term_c.diagonal
        ref, _ = _reference_chi2(x, p[0], m, statistic, cov)
        assert float(term_c(torch.from_numpy(p[:1] / p[0].sum()))[0]) == pytest.approx(ref, rel=1e-10)
    _check_gradients(term, p[:1])


def test_means_statistic_equals_a_numpy_reference_and_is_differentiable():
    """'means' (a table of single numbers, each bin the mean of its own observable, as ALEPH d44): per bin
    s_b = sum_i p_i x_ib and var s_b = sum_i p_i^2 (x_ib - s_b)^2, against plain numpy."""
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.poisson(lam, 300) for lam in (9.0, 0.3, 2.0)]).astype(float)
    m = Measurement("test/means", np.arange(3) - 0.5, np.arange(3) + 0.5, np.array([9.5, 0.28, 2.1]),
                    np.array([0.3, 0.02, 0.1]), np.array([0.3, 0.04, 0.1]))
    target = DataTarget(m, "n_a,n_b,n_c", "means")
    assert target.observables == ("n_a", "n_b", "n_c") and target.label == "n_a,n_b,n_c"
    term = MeasuredChi2(target, x)
    p = rng.uniform(0.5, 1.5, (3, 300))
    got = term(torch.from_numpy(p / p.sum(-1, keepdims=True)))
    for k in range(3):
        q = p[k] / p[k].sum()
        ref = 0.0
        for b in range(3):
            mean = np.sum(q * x[:, b])
            var = np.sum(q ** 2 * (x[:, b] - mean) ** 2)
            ref += (mean - m.values[b]) ** 2 / (((m.err_minus[b] + m.err_plus[b]) / 2) ** 2 + var)
        assert float(got[k]) == pytest.approx(ref, rel=1e-12)
    _check_gradients(term, p[:1])
    with pytest.raises(ParameterError, match="one observable per bin"):
        DataTarget(m, "n_a,n_b", "means")
    with pytest.raises(ParameterError, match="only with 'means'"):
        DataTarget(m, "n_a,n_b,n_c", "density")


def test_a_sample_against_its_own_pseudo_measurement_has_chi2_zero():
    rng = np.random.default_rng(4)
    x = rng.poisson(12, 500).astype(float)
    m = pseudo_measurement(x, np.arange(-0.5, 40.5), "fraction")
    term = MeasuredChi2(DataTarget(m, "multiplicity", "fraction"), x)
    assert float(term(torch.full((1, 500), 1 / 500, dtype=torch.float64))[0]) == pytest.approx(0.0, abs=1e-20)
    # ... and the pseudo-measurement's errors are the prediction's own standard deviations.
    s, var = term.prediction(torch.full((1, 500), 1 / 500, dtype=torch.float64))
    used = m.values > 0
    np.testing.assert_allclose(var[0].sqrt().numpy(), m.err_plus[used], rtol=1e-12)


@pytest.fixture(scope="module")
def pseudo(pair, tmp_path_factory):
    """Pseudo-measurements of the target sample (generated at (0.68, 0.98), a point the fit never sees)."""
    obs = compute(load_hadrons(pair[1].path), ["multiplicity", "thrust"])
    t = obs["thrust"].values
    mult = pseudo_measurement(obs["multiplicity"].values, np.arange(4.5, 40.5), "fraction", path="pseudo/mult")
    thrust = pseudo_measurement(t, np.quantile(t, np.linspace(0, 1, 16)), "density", path="pseudo/thrust")
    mean = pseudo_measurement(obs["multiplicity"].values, None, "mean", path="pseudo/mean")
    d = tmp_path_factory.mktemp("pseudo")
    write_csv(mult, d / "mult.csv")
    return {"mult": mult, "thrust": thrust, "mean": mean, "dir": d}


def test_chi2_fit_to_pseudo_measurements_recovers_the_point(pair, pseudo):
    problem = Problem([pair[0].path], data=[DataTarget(pseudo["mult"], "multiplicity", "fraction"),
                                            DataTarget(pseudo["thrust"], "thrust", "density")])
    res = fit(problem, steps=60, progress=False)
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    assert all(d["constrained"] for d in res.directions())
    ok, chi2 = inside_ellipse([0.68, 0.98], res.theta[:2], res.cov)
    # Seeded; the truth is inside the 95% ellipse (chi2 < 5.99 for 2 dof), p = exp(-chi2/2) stated on failure.
    assert ok, f"truth outside the 95% ellipse: chi2 = {chi2:.2f}, p = {math.exp(-chi2 / 2):.3g}"
    # chi2 = 2 H^-1 is the covariance of a chi2 fit: no bootstrap of the (absent) target events.
    np.testing.assert_allclose(res.cov, 2 * np.linalg.inv(res.hessian), rtol=1e-12)


def test_the_degenerate_case_reports_one_constrained_combination(pair, pseudo):
    """One number (the mean multiplicity) for two parameters: one combination is fixed, one is flat; the
    profile along the flat one stays within Delta chi2 = 1 where the bases still cover it."""
    problem = Problem([pair[0].path], data=[DataTarget(pseudo["mean"], "multiplicity", "mean")])
    res = fit(problem, steps=60, progress=False)
    dirs = res.directions()
    assert [d["constrained"] for d in dirs] == [True, False]
    assert dirs[0]["error"] < 0.05 and dirs[1]["error"] > 0.25
    text = res.summary()
    assert "the data constrain 1 of 2 combinations" in text and "+-" not in text.split("\n")[0]
    prof = profile(problem, res, dirs[1], n=7, span=0.1)
    cover = np.asarray(prof["n_eff_frac"]) > 0.5
    assert cover.sum() >= 3 and np.ptp(np.asarray(prof["loss"])[cover]) < 1.0
    # Along the constrained combination the chi2 rises by more than 1 within a few of its errors.
    steep = profile(problem, res, dirs[0], n=5, span=4 * dirs[0]["error"])
    assert max(steep["loss"]) - min(steep["loss"]) > 1.0


def test_cli_fit_to_a_measurement_file(pair, pseudo, tmp_path, capsys):
    rc = main(["fit", "--base", str(pair[0].path), "--data", f"{pseudo['dir'] / 'mult.csv'}=multiplicity:fraction",
               "--steps", "30", "--validate-events", "300", "--out", str(tmp_path / "f"), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    res = json.loads((tmp_path / "f" / "result.json").read_text())
    data = res["data"]
    assert set(data["chi2"]) == {"base", "Pythia default", "fit"} and data["ndf"] > 10
    assert data["chi2"]["fit"] < data["chi2"]["base"]
    assert data["validation"]["chi2"] > 0 and len(data["validation"]["terms"]) == 1
    assert "chi2/ndf against the data" in out and "validation: 300 events" in out
    assert any((tmp_path / "f").glob("data_0_*.png"))


@pytest.mark.parametrize("argv, message", [
    (["--data", "ALEPH_2099_NOPE/d01-x01-y01"], "ALEPH_2099_NOPE"),
    (["--data", "thrust"], "measured in e+e- -> hadrons at 91.2 GeV"),
    (["--data", "thrust", "--target", "TARGET"], "one of the two"),
    ([], "one of the two"),
])
def test_cli_data_bad_input(pair, tmp_path, capsys, argv, message):
    argv = [str(pair[1].path) if a == "TARGET" else a for a in argv]
    rc = main(["fit", "--base", str(pair[0].path), *argv, "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x" / "result.json").exists()


def test_lep_observables_refuse_a_hadrons_only_sample(string_ds, tmp_path):
    """A sample holding only hadron lists (a target file without 'is_hadron', or a format-1 dataset) cannot
    give ALEPH's n_ch or thrust of all particles: one clear error, not a silently different observable."""
    import pyarrow.parquet as pq
    t = pq.read_table(string_ds.shards[0], columns=["px", "py", "pz", "e", "pdg"])
    pq.write_table(t.replace_schema_metadata(pq.read_schema(string_ds.shards[0]).metadata), tmp_path / "h.parquet")
    h = load_hadrons(tmp_path / "h.parquet")
    for name in ("charged_multiplicity_all", "thrust_all", "one_minus_thrust_charged"):
        with pytest.raises(DatasetError, match="needs every final-state particle"):
            compute(h, [name])
    with pytest.raises(ParameterError, match="a mean needs one bin"):
        DataTarget(pseudo_measurement(np.arange(10.0), [0, 5, 10], "density"), "x", "mean")
