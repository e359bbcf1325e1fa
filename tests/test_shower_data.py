"""EventMover in fastrsa: shower datasets (`fastrsa shower`), moved vs control samples, the Lambda fit
by moving events, and the event displays."""
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fastrsa.cli import main
from fastrsa.shower import generate, thrust
from fastrsa.shower.dataset import open_shower


@pytest.fixture(scope="module")
def showers(tmp_path_factory):
    d = tmp_path_factory.mktemp("showers")
    assert main(["shower", str(d / "base"), "--events", "1200", "--shard-events", "400", "--seed", "3",
                 "--jobs", "2", "--quiet"]) == 0
    assert main(["shower", str(d / "target"), "--events", "1200", "--lambda", "0.45", "--seed", "11",
                 "--quiet"]) == 0
    return d


def test_a_shower_dataset_holds_the_generated_events_and_resumes(showers, tmp_path, capsys):
    s = open_shower(showers / "base")
    g = generate(1200, 0.4, seed=3, orders=3)
    assert s.n_events == 1200 and torch.equal(s.topology, g.topology) and torch.equal(s.pdg, g.pdg)
    torch.testing.assert_close(s.p, g.p, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s.log_rate_derivs, g.log_rate_derivs, rtol=1e-9, atol=1e-12)
    scale = g.coeffs.abs().amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(s.coeffs / scale, g.coeffs / scale, rtol=0, atol=1e-10)
    # Momentum conservation survives the round trip, and every column is a plain Parquet list.
    tot = torch.zeros(1200, 4, dtype=torch.float64).index_add(0, s.event_index, s.p)
    assert torch.allclose(tot, torch.tensor([0.0, 0.0, 0.0, 91.2], dtype=torch.float64).expand(1200, 4), atol=1e-9)
    assert {"px", "pdg", "d3_e", "dlograte_1", "topology"} <= set(pq.read_table(showers / "base").column_names)
    # Resume: a lost shard is regenerated identically (events depend on the seed and their index only).
    import shutil
    shutil.copytree(showers / "base", tmp_path / "b")
    ref = pq.read_table(tmp_path / "b" / "part-00001.parquet")
    (tmp_path / "b" / "part-00001.parquet").unlink()
    assert main(["shower", str(tmp_path / "b"), "--events", "1200", "--shard-events", "400", "--seed", "3",
                 "--quiet"]) == 0
    assert pq.read_table(tmp_path / "b" / "part-00001.parquet").equals(ref)
    capsys.readouterr()
    assert main(["info", str(showers / "base")]) == 0
    assert "parton showers" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [(["--lambda", "-0.4"], "lambda = -0.4 outside the model"),
                                           (["--orders", "9"], "orders = 9"), (["--events", "0"], "events = 0"),
                                           (["--ecm", "0.5"], "ecm = 0.5")])
def test_bad_shower_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    assert main(["shower", str(tmp_path / "x"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()


def test_moved_thrust_histogram_agrees_with_the_control_sample():
    """Upward shift 0.4 -> 0.45 at third order, with the log-rate weights: the moved sample's parton-level
    thrust histogram agrees with the control sample (same random numbers, generated at 0.45) within
    statistics: chi2 p > 0.001 (the two samples share their random numbers, so this is conservative)."""
    from scipy.stats import chi2 as chi2_dist
    base = generate(3000, 0.4, seed=5, orders=3)
    ctrl = generate(3000, 0.45, seed=5, orders=0)
    moved = base.moved(0.05, 3)
    w = torch.exp(base.log_weight(0.05, 3))
    tm, tc = thrust(moved, base.offsets).numpy(), thrust(ctrl.p, ctrl.offsets).numpy()
    edges = np.quantile(tc, np.linspace(0, 1, 21))
    edges[0], edges[-1] = -np.inf, np.inf
    wm = w.numpy() * len(tm) / w.sum().item()
    hm, _ = np.histogram(tm, edges, weights=wm)
    hm2, _ = np.histogram(tm, edges, weights=wm ** 2)
    hc, _ = np.histogram(tc, edges)
    chi2 = float(np.sum((hm - hc) ** 2 / (hm2 + hc)))
    p = chi2_dist.sf(chi2, len(hc) - 1)
    assert p > 0.001, (chi2, p)


def test_lambda_fit_recovers_a_lambda_it_never_saw(showers, tmp_path, capsys):
    """One base at 0.4, pseudo-data generated at 0.45 with other seeds: the fitted Lambda is within its 95%
    interval (sandwich covariance; seeded)."""
    rc = main(["fit", "--base", str(showers / "base"), "--target", str(showers / "target"), "--params", "lambda",
               "--observables", "thrust,c_parameter", "--steps", "25", "--replicas", "16",
               "--out", str(tmp_path / "fit"), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    res = json.loads((tmp_path / "fit" / "result.json").read_text())
    lam, err_lam = res["lambda"], res["errors"]["lambda"]
    assert 0 < err_lam < 0.1 and abs(lam - 0.45) < 1.96 * err_lam, (lam, err_lam)
    assert res["problem"]["base"]["lambda"] == 0.4 and "fit: lambda = " in out
    assert math.isfinite(res["diagnostics"]["n_eff_frac"])


def test_event_displays(showers, tmp_path, capsys):
    assert main(["shower-plot", "--base", str(showers / "base"), "--delta", "0.05", "--events", "3",
                 "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "event_displays.png").stat().st_size > 10000
