"""The fitting commands on tiny datasets: what they write, and one clear line for bad input."""
import json

import pytest

from fastrsa.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from fastrsa.generation import generate
    d = tmp_path_factory.mktemp("tiny")
    generate(d / "base", events=600, seed=31, jobs=1, progress=False)
    generate(d / "target", events=600, a=0.68, b=0.98, seed=32, jobs=1, progress=False)
    generate(d / "ee", events=30, setup="ee", seed=33, jobs=1, progress=False)
    return d


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_fit_writes_result_and_figures(tiny, tmp_path, capsys):
    rc, out, err = run(capsys, "fit", "--base", tiny / "base", "--target", tiny / "target", "--steps", 8,
                       "--replicas", 8, "--out", tmp_path / "fit", "--quiet")
    assert rc == 0, err
    res = json.loads((tmp_path / "fit" / "result.json").read_text())
    assert {"a", "b", "sigma", "cov", "history", "diagnostics"} <= set(res)
    assert len(res["history"]) == 9 and len(res["cov"]) == 2
    assert res["problem"]["observables"] == ["multiplicity", "thrust", "sphericity"]
    assert "fit: a = " in out and "+-" in out
    # each phase's time and the peak memory so far, in the order they ran (issue 13: recorded per phase)
    ph = res["phases"]
    assert list(ph) == ["observables", "weights", "loss", "steps", "covariance"]
    assert all(r["seconds"] > 0 for r in ph.values())
    peaks = [r["peak_rss_gb"] for r in ph.values()]
    assert peaks == sorted(peaks) and 0.1 < peaks[0] < 100
    assert "time: observables " in out and "8 steps " in out and f"peak memory {peaks[-1]:.1f} GB" in out
    for f in ("observables", "ellipse"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "fit" / f"{f}.{ext}").stat().st_size > 1000


def test_fit_with_spectra_and_chi2(tiny, tmp_path, capsys):
    rc, out, err = run(capsys, "fit", "--base", tiny / "base", "--target", tiny / "target", "--steps", 3,
                       "--observables", "multiplicity,spectra", "--loss", "chi2", "--params", "a,b,sigma",
                       "--replicas", 8, "--out", tmp_path / "f2", "--quiet", "--no-plots")
    assert rc == 0, err
    res = json.loads((tmp_path / "f2" / "result.json").read_text())
    assert res["free"] == ["a", "b", "sigma"] and len(res["cov"]) == 3
    assert not list((tmp_path / "f2").glob("*.png"))


def test_landscape_with_result_overlay(tiny, tmp_path, capsys):
    rc, _, err = run(capsys, "fit", "--base", tiny / "base", "--target", tiny / "target", "--steps", 2,
                     "--replicas", 4, "--out", tmp_path / "fit", "--quiet", "--no-plots")
    assert rc == 0, err
    rc, out, err = run(capsys, "landscape", "--base", tiny / "base", "--target", tiny / "target", "--grid", 3,
                       "--result", tmp_path / "fit" / "result.json", "--truth", "0.68,0.98",
                       "--out", tmp_path / "land", "--quiet")
    assert rc == 0, err
    land = json.loads((tmp_path / "land" / "landscape.json").read_text())
    assert len(land["loss"]) == 3 and len(land["n_eff_frac"][0]) == 3
    assert (tmp_path / "land" / "landscape.pdf").exists() and (tmp_path / "land" / "diagnostics.png").exists()
    assert "lowest loss at" in out


def test_classifier_and_bootstrap(tiny, tmp_path, capsys):
    model = tmp_path / "clf.pt"
    rc, out, err = run(capsys, "classifier", "--base", tiny / "base", "--target", tiny / "target",
                       "--epochs", 2, "--out", model, "--quiet")
    assert rc == 0, err
    assert model.exists() and "held-out accuracy" in out
    rc, out, err = run(capsys, "bootstrap", "--base", tiny / "base", "--target", tiny / "target",
                       "--observables", "multiplicity", "--observables", f"multiplicity,shapes,classifier:{model}",
                       "--steps", 5, "--replicas", 4, "--iters", 10, "--out", tmp_path / "bs", "--quiet")
    assert rc == 0, err
    bs = json.loads((tmp_path / "bs" / "bootstrap.json").read_text())
    assert [s["observables"] for s in bs["sets"]] == [["multiplicity"],
                                                       ["multiplicity", "thrust", "sphericity", f"classifier:{model}"]]
    assert all(len(s["points"]) == 4 and s["area_95"] > 0 for s in bs["sets"])
    assert (tmp_path / "bs" / "bootstrap_ellipses.png").exists()


def test_demo_runs_end_to_end(tmp_path, capsys):
    rc, out, err = run(capsys, "demo", "--out", tmp_path / "demo", "--events", 800, "--steps", 15,
                       "--replicas", 8, "--grid", 2, "--quiet")
    assert rc == 0, err
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert {"truth_in_95", "validation", "fit"} <= set(summary)
    assert 0.0 <= summary["validation"]["p_value"] <= 1.0
    for f in ("landscape", "diagnostics", "observables", "ellipse"):
        assert (tmp_path / "demo" / f"{f}.png").exists()
    assert "done in" in out


@pytest.mark.parametrize("argv, message", [
    (["--observables", "multiplicity,thrsut"], "'thrsut' does not exist"),
    (["--loss", "mse"], "loss = 'mse'"),
    (["--start", "0.0,0.2"], "do not cover this point"),
    (["--start", "0.05,4.0"], "b = 4.0 outside the model (0.2 <= b <= 2"),
    (["--params", "a,q"], "params"),
    (["--observables", "classifier:nowhere.pt"], "nowhere.pt does not exist"),
    (["--device", "foo"], "device = 'foo'"),
    (["--replicas", "1"], "--replicas 1: must be at least 2"),
    (["--replicas", "0"], "--replicas 0: must be at least 2"),
] + ([] if __import__("torch").cuda.is_available() else [(["--device", "cuda"], "no usable CUDA")]))
def test_fit_bad_input(tiny, tmp_path, capsys, argv, message):
    rc, _, err = run(capsys, "fit", "--base", tiny / "base", "--target", tiny / "target", "--out", tmp_path / "x",
                     "--quiet", *argv)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x" / "result.json").exists()


def test_base_and_target_from_different_setups(tiny, tmp_path, capsys):
    rc, _, err = run(capsys, "fit", "--base", tiny / "base", "--target", tiny / "ee", "--out", tmp_path / "x")
    assert rc == 2 and "same process and energy" in err


def test_target_without_needed_columns(tiny, tmp_path, capsys):
    import pyarrow.parquet as pq
    t = pq.read_table(next((tiny / "target").glob("part-*.parquet")))
    pq.write_table(t.drop_columns(["pdg", "pz"]), tmp_path / "t.parquet")
    rc, _, err = run(capsys, "fit", "--base", tiny / "base", "--target", tmp_path / "t.parquet",
                     "--out", tmp_path / "x")
    assert rc == 2 and "missing columns ['pz', 'pdg']" in err


@pytest.mark.parametrize("argv, message", [
    (["--iters", "0"], "--iters 0"),
    (["--replicas", "1"], "--replicas 1"),
])
def test_bootstrap_bad_settings_fail_before_any_work(tiny, tmp_path, capsys, argv, message):
    rc, out, err = run(capsys, "bootstrap", "--base", tiny / "base", "--target", tiny / "target",
                       "--out", tmp_path / "bs", "--quiet", *argv)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert "nominal fit" not in out


def test_landscape_bad_result_file_fails_before_the_grid(tiny, tmp_path, capsys):
    (tmp_path / "r.json").write_text("[1, 2]")
    rc, out, err = run(capsys, "landscape", "--base", tiny / "base", "--target", tiny / "target",
                       "--result", tmp_path / "r.json", "--out", tmp_path / "land", "--quiet")
    assert rc == 2 and "--result" in err and err.count("\n") == 1, err
    assert not (tmp_path / "land" / "landscape.json").exists()


def test_every_command_and_option_is_documented():
    """Each subcommand has a summary, a description and an example; each option a help text, and a
    default shown in --help is the parser's true default."""
    import argparse

    from fastrsa.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {c.dest: c.help for c in sub._choices_actions}
    assert set(summaries) == set(sub.choices) and len(sub.choices) >= 7
    for name, p in sub.choices.items():
        assert summaries[name] and p.description and "example:\n  fastrsa " + name in p.epilog, name
        text = p.format_help()
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            assert a.help and len(a.help) > 8, (name, a.dest)
            if not a.required and a.default not in (None, False):
                assert f"(default: {a.default})" in " ".join(text.split()), (name, a.dest)
    bs = sub.choices["bootstrap"]
    assert next(a for a in bs._actions if a.dest == "replicas").default == 32
    assert "Levenberg-Marquardt" in bs.format_help() and "Newton" not in bs.format_help()


def test_target_weights_are_numbers_and_may_be_huge(tiny, tmp_path, capsys):
    """A 'weight' column of strings is one clear line; weights of 1e308 on every event (whose sum overflows)
    give exactly the unweighted fit's loss."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from fastrsa.fit import Problem
    t = pq.read_table(next((tiny / "target").glob("part-*.parquet")))
    pq.write_table(t.append_column("weight", pa.array(["1"] * t.num_rows)), tmp_path / "s.parquet")
    rc, _, err = run(capsys, "fit", "--base", tiny / "base", "--target", tmp_path / "s.parquet", "--out", tmp_path / "x")
    assert rc == 2 and "column 'weight' has type string" in err and err.count("\n") == 1, err
    pq.write_table(t.append_column("weight", pa.array([1e308] * t.num_rows)), tmp_path / "h.parquet")
    pq.write_table(t, tmp_path / "u.parquet")
    theta = torch.tensor([[0.7, 0.9, 0.335]], dtype=torch.float64)
    for loss in ("swd", "chi2"):
        huge = Problem([tiny / "base"], tmp_path / "h.parquet", "multiplicity,thrust", loss=loss).loss_and_grad(theta)
        plain = Problem([tiny / "base"], tmp_path / "u.parquet", "multiplicity,thrust", loss=loss).loss_and_grad(theta)
        assert torch.isfinite(huge.loss).all()
        assert torch.allclose(huge.loss, plain.loss, rtol=1e-12) and torch.allclose(huge.grad, plain.grad, rtol=1e-12)


def test_out_with_older_results_is_refused_or_replaced_whole(tiny, tmp_path, capsys):
    args = ["fit", "--base", tiny / "base", "--target", tiny / "target", "--steps", 2, "--replicas", 4,
            "--out", tmp_path / "f", "--quiet"]
    assert run(capsys, *args)[0] == 0
    assert (tmp_path / "f" / "observables.png").exists()
    rc, out, err = run(capsys, *args, "--no-plots")
    assert rc == 2 and "holds results of an earlier 'fit' (ellipse.pdf, ellipse.png, observables.pdf, ...)" in err
    rc, out, err = run(capsys, *args, "--no-plots", "--overwrite")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["result.json"]    # no stale figure left


def test_interrupt_leaves_no_empty_output_and_says_so(tiny, tmp_path, capsys, monkeypatch):
    import fastrsa.fit as fit_pkg

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(fit_pkg, "bootstrap", interrupted)
    monkeypatch.setattr(fit_pkg, "fit", interrupted)
    rc, out, err = run(capsys, "bootstrap", "--base", tiny / "base", "--target", tiny / "target",
                       "--out", tmp_path / "bs", "--quiet")
    assert rc == 130 and err.strip() == "fastrsa bootstrap: interrupted"
    assert not (tmp_path / "bs").exists()
