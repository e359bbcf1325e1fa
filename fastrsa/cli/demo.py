"""The demo command: the whole story on built-in defaults (generate, fit, uncertainty, landscape,
validation by direct generation, figures)."""
from __future__ import annotations

import json
import time

from .common import add_command, add_quiet, out_dir, write_json
from .fitting import DEFAULT_OBSERVABLES, data_report, make_problem, run_fit, run_landscape


def run_demo(out, events=20000, jobs=2, steps=80, lr=0.01, replicas=64, projections=128, grid=11, seed=1,
             device="cpu", progress=True, plots=True) -> dict:
    """Base at the RSA paper's point, pseudo-data at Pythia's default; fit a, b; check the fit."""
    from ..fit import inside_ellipse
    from ..fit.stats import chi2_two_sample
    from ..generation import generate
    from ..observables import compute
    from ..params import PAPER_BASE, PYTHIA_DEFAULT
    from ..store.hadrons import load_hadrons
    t0 = time.time()
    out = out_dir(out, "demo", overwrite=True)     # the demo replaces its own results (datasets resume)
    truth = (PYTHIA_DEFAULT["a"], PYTHIA_DEFAULT["b"])
    say = lambda s: print(s, flush=True)  # noqa: E731
    say(f"[1/5] base sample at (a, b) = ({PAPER_BASE['a']}, {PAPER_BASE['b']}) and pseudo-data at Pythia's "
        f"default ({truth[0]}, {truth[1]}), {events} events each")
    gen = dict(events=events, jobs=jobs, progress=progress)
    base = generate(out / "base", a=PAPER_BASE["a"], b=PAPER_BASE["b"], seed=seed, **gen)
    generate(out / "target", a=truth[0], b=truth[1], seed=seed + 1000, **gen)
    say(f"[2/5] fit a and b: sliced Wasserstein ({projections} projections) on multiplicity and event shapes")
    problem = make_problem([str(base.path)], str(out / "target"), DEFAULT_OBSERVABLES, "swd", projections, seed,
                           device)
    result = run_fit(problem, out, params="a,b", steps=steps, lr=lr, replicas=replicas, seed=seed,
                     progress=progress, plots=plots, truth=truth)
    ok, chi2 = inside_ellipse(truth, result.theta[:2], result.cov)
    say(f"      truth ({truth[0]}, {truth[1]}) is {'inside' if ok else 'OUTSIDE'} the 95% ellipse "
        f"(chi2 = {chi2:.2f} for 2 dof; 5.99 is the 95% boundary)")
    say("[3/5] loss landscape and reweighting diagnostics around the fit")
    a, b = result.theta[:2]
    err = result.errors()
    wa, wb = max(6 * err["a"], 0.06), max(6 * err["b"], 0.1)
    run_landscape(problem, out, a_range=(max(a - wa, 0.05), a + wa), b_range=(max(b - wb, 0.1), b + wb), grid=grid,
                  result=result.to_dict(), truth=truth, progress=progress, plots=plots)
    say(f"[4/5] validation: {events} events generated directly at the fitted point")
    val = generate(out / "validation", a=result.theta[0], b=result.theta[1], sigma=result.theta[2],
                   seed=seed + 2000, **{**gen, "progress": False})
    mult_val = compute(load_hadrons(val.path), ["multiplicity"])["multiplicity"].values
    mult_tgt = problem.target_obs["multiplicity"].values
    chi2v, ndf, pval = chi2_two_sample(mult_val, mult_tgt)
    say(f"      multiplicity, fitted point vs pseudo-data: chi2 = {chi2v:.1f} for {ndf} dof, p = {pval:.3f}")
    say("[5/5] figures")
    if plots:
        from ..plots import plot_ellipses
        plot_ellipses({"fit (Hessian sandwich)": (result.theta[:2], result.cov)}, out / "ellipse", truth=truth,
                      points={"fit (Hessian sandwich)": [h["theta"][:2] for h in result.history]},
                      title="demo fit: path, 68% and 95% ellipses")
    summary = {"truth": {"a": truth[0], "b": truth[1]}, "fit": {"a": a, "b": b, "cov": result.cov},
               "truth_in_95": ok, "truth_chi2": chi2,
               "validation": {"observable": "multiplicity", "chi2": chi2v, "ndf": ndf, "p_value": pval},
               "seconds": time.time() - t0}
    write_json(out / "demo.json", summary)
    say(f"done in {time.time() - t0:.0f} s: a = {a:.4f} +- {err['a']:.4f}, b = {b:.4f} +- {err['b']:.4f} "
        f"(truth {truth[0]}, {truth[1]}); results and figures in {out}/")
    return summary


LEP_DATA = ("thrust", "nch_distribution", "one_minus_thrust_charged", "mean_nch")


def run_lep_demo(out, events=20000, jobs=2, steps=60, lr=0.01, seed=1, device="cpu", progress=True,
                 plots=True, validate=True) -> dict:
    """e+e- -> Z -> hadrons at 91.2 GeV from a base at Pythia's defaults; fit (a, b, sigma) to the shipped
    ALEPH thrust, charged-multiplicity, 1-T (charged) and mean n_ch measurements; report chi2/ndf at the
    base, at Pythia's defaults and at the fit, and check the fit by generating there directly."""
    from ..generation import generate
    from ..params import PYTHIA_DEFAULT
    t0 = time.time()
    out = out_dir(out, "demo", overwrite=True)
    say = lambda s: print(s, flush=True)  # noqa: E731
    base_point = (PYTHIA_DEFAULT["a"], PYTHIA_DEFAULT["b"] * 0.9, PYTHIA_DEFAULT["sigma"])
    say(f"[1/3] base sample: e+e- -> hadrons at 91.2 GeV, {events} events at (a, b, sigma) = {base_point} "
        "(decays on, every final-state particle stored)")
    base = generate(out / "base", events=events, a=base_point[0], b=base_point[1], sigma=base_point[2],
                    setup="ee", seed=seed, jobs=jobs, progress=progress)
    say("[2/3] fit a, b and sigma to ALEPH at the Z pole: " + ", ".join(LEP_DATA))
    problem = make_problem([str(base.path)], None, device=device, data=list(LEP_DATA))
    result = run_fit(problem, out, params="a,b,sigma", steps=steps, lr=lr, seed=seed, progress=progress,
                     plots=False)
    say("[3/3] chi2 against the data" + (f", and {events} events generated directly at the fit" if validate else ""))
    report = data_report(problem, result, out, plots=plots, validate_events=events if validate else 0, jobs=jobs,
                         seed=seed)
    doc = json.loads((out / "result.json").read_text())
    write_json(out / "result.json", {**doc, "data": report})
    summary = {"fit": dict(zip(("a", "b", "sigma"), result.theta)), "errors": result.errors(),
               "chi2": report["chi2"], "ndf": report["ndf"], "validation": report.get("validation"),
               "seconds": time.time() - t0}
    write_json(out / "lep.json", summary)
    say(f"done in {time.time() - t0:.0f} s; results and figures in {out}/")
    return summary


SHOWER_DATA = ("thrust", "nch_distribution")


def _sample_chi2(targets: dict, path, weights_col: str | None = None) -> dict:
    """Per measurement: (prediction s, sd, chi2, bins) of one dataset over every bin of the measurement (weighted
    by exp(weights_col) when given); chi2 = sum (s - d)^2 / (err_d^2 + sd^2), the data's symmetrized error."""
    import numpy as np

    from ..fit.measured import pseudo_measurement
    from ..observables import compute
    from ..store.dataset import open_dataset
    from ..store.hadrons import load_hadrons
    h = load_hadrons(path)
    w = None if weights_col is None else np.exp(open_dataset(path).table(columns=[weights_col]).column(0).to_numpy())
    out = {}
    for key, t in targets.items():
        m = t.measurement
        x = compute(h, [t.observable])[t.observable].values
        pm = pseudo_measurement(x, np.append(m.lo, m.hi[-1]), t.statistic, weights=w)
        s, sd = pm.values, pm.err_plus
        err = 0.5 * (m.err_minus + m.err_plus)
        chi2 = float(np.sum((s - m.values) ** 2 / (err ** 2 + sd ** 2)))
        out[key] = (s, sd, chi2, m.n)
    return out


def _used(t, v) -> tuple:
    """(s, sd) restricted to the bins a fit used (those not in t.skipped)."""
    import numpy as np
    m = t.measurement
    used = np.array([f"{lo:g}-{hi:g}" not in set(t.skipped) for lo, hi in zip(m.lo, m.hi)])
    return v[0][used], v[1][used]


def run_shower_demo(out, events=3000, jobs=2, steps=60, lr=0.01, seed=1, device="cpu", progress=True,
                    plots=True) -> dict:
    """The joint story on the dqcd setup (docs/shower.md): showers hadronized by Pythia at Lambda = 0.3, 0.4, 0.5,
    compared with ALEPH; events of the 0.4 sample moved to 0.3, 0.45, 0.5 at orders 1-3 against their control
    samples (EventMover Fig. 3); the joint fit of (Lambda, a, b) to ALEPH thrust and charged multiplicity from the
    0.3 sample (grid 0.3-0.4 GeV), checked by generating at the fitted point."""
    from ..fit.joint import JointProblem, joint_summary
    from ..fit.measured import parse_data
    from ..generation import generate
    from ..generation.dqcd import hadronize_moved
    t0 = time.time()
    out = out_dir(out, "demo", overwrite=True)
    say = lambda s: print(s, flush=True)  # noqa: E731
    ab = {"a": 0.72, "b": 0.88}
    lams = {0.3: "lam0.30", 0.4: "base", 0.45: "lam0.45", 0.5: "lam0.50"}
    say(f"[1/4] dqcd samples (fastrsa.shower + Pythia hadronization, decays on), {events} events each at Lambda = "
        f"{', '.join(map(str, lams))} GeV, (a, b) = ({ab['a']}, {ab['b']}), one run seed (controls of each other)")
    for lam, name in lams.items():
        generate(out / name, events=events, setup="dqcd", lam=lam, orders=3 if lam in (0.3, 0.4) else 0, seed=seed,
                 jobs=jobs, progress=progress, **ab)
    shifts = (-0.1, 0.05, 0.1)
    say(f"[2/4] the 0.4 sample moved by {shifts} GeV at orders 1, 2, 3, hadronized with each event's own seed")
    moved = {}
    for d in shifts:
        for order in (1, 2, 3):
            moved[(d, order)] = hadronize_moved(out / "base", out / f"moved{d:+.2f}_o{order}", d, order,
                                                progress=False)
    targets = {k: parse_data(k) for k in SHOWER_DATA}     # every bin (nothing skipped) for the comparisons
    chi2 = {}
    pred = {}
    for lam, name in lams.items():
        pred[f"Lambda {lam}"] = _sample_chi2(targets, out / name)
    for (d, order), rep in moved.items():
        pred[f"moved {d:+.2f} o{order}"] = _sample_chi2(targets, out / f"moved{d:+.2f}_o{order}", "parton_log_weight")
    for label, v in pred.items():
        chi2[label] = {k: {"chi2": c, "ndf": nb} for k, (_, _, c, nb) in v.items()}
    for label in ("Lambda 0.3", "Lambda 0.4", "Lambda 0.5"):
        say(f"      {label}: " + ", ".join(f"{k} chi2/ndf = {c['chi2']:.0f}/{c['ndf']}" for k, c in chi2[label].items()))
    for (d, order), rep in moved.items():
        if order == 3:
            lab = f"moved {d:+.2f} o3"
            say(f"      moved to {0.4 + d:.2f} (order 3, {rep['unphysical']} of {rep['events']} events unphysical): "
                + ", ".join(f"{k} chi2/ndf = {c['chi2']:.0f}/{c['ndf']}" for k, c in chi2[lab].items()))
    files = []
    if plots:
        from ..plots import plot_moved_vs_data
        ctrl = {-0.1: "Lambda 0.3", 0.05: "Lambda 0.45", 0.1: "Lambda 0.5"}
        for k, t in targets.items():
            top = {lab: pred[lab][k][:2] for lab in ("Lambda 0.4", "Lambda 0.3", "Lambda 0.5")}
            top.update({f"moved {d:+.2f} o3": pred[f"moved {d:+.2f} o3"][k][:2] for d in shifts})
            ratios = {o: {f"to {0.4 + d:.2f}": (pred[f"moved {d:+.2f} o{o}"][k][0], pred[ctrl[d]][k][0])
                          for d in shifts} for o in (1, 2, 3)}
            files += plot_moved_vs_data(t, top, ratios, out / f"fig3_{k}",
                                        {lab: chi2[lab][k]["chi2"] for lab in top})
    say("[3/4] joint fit of (Lambda, a, b) to ALEPH thrust and charged multiplicity: base at Lambda = 0.3 (the data "
        "prefer low Lambda), grid of moved samples 0.3-0.4 GeV")
    problem = JointProblem(out / "lam0.30", data=list(SHOWER_DATA), work=out / "grid", device=device,
                           progress=False)
    result = run_fit(problem, out, params="lambda,a,b", steps=steps, lr=lr, seed=seed, progress=progress,
                     plots=False)
    doc = json.loads((out / "result.json").read_text())
    extra = joint_summary(result)
    write_json(out / "result.json", {**doc, **extra})
    lam, a, b = result.theta[:3]
    say(f"[4/4] {events} events generated directly at the fitted point ({lam:.4f}, {a:.4f}, {b:.4f})")
    generate(out / "at_fit", events=events, setup="dqcd", lam=round(lam, 6), a=round(a, 6), b=round(b, 6),
             orders=0, seed=seed + 1, jobs=jobs, progress=progress)
    at_fit = _sample_chi2(targets, out / "at_fit")
    from ..fit.measured import evaluate_data
    fitted = evaluate_data(problem, result.theta)
    if plots:
        from ..plots import plot_joint_correlation, plot_measurement
        files += plot_joint_correlation({**doc, **extra}, out / "correlation")
        for k, t in zip(SHOWER_DATA, problem.data):       # the bins the fit used
            curves = {"base (0.3, 0.72, 0.88)": _used(t, pred["Lambda 0.3"][k]),
                      "fit (moved + reweighted)": (fitted["terms"][t.name]["prediction"],
                                                   fitted["terms"][t.name]["sd"]),
                      "generated at the fit": _used(t, at_fit[k])}
            files += plot_measurement(t, curves, out / f"fit_{k}",
                                      {"base (0.3, 0.72, 0.88)": pred["Lambda 0.3"][k][2],
                                       "fit (moved + reweighted)": fitted["terms"][t.name]["chi2"],
                                       "generated at the fit": at_fit[k][2]})
    err = result.errors()
    summary = {"chi2_vs_data": chi2, "moved": {f"{d:+.2f} o{o}": r for (d, o), r in moved.items()},
               "fit": {"lambda": lam, "a": a, "b": b, "errors": err, "cov": result.cov,
                       "correlation": extra["correlation_matrix"], "chi2": fitted["chi2"], "bins": fitted["bins"],
                       "per_measurement": {k: v["chi2"] for k, v in fitted["terms"].items()}},
               "at_fit": {k: {"chi2": c, "ndf": nb} for k, (_, _, c, nb) in at_fit.items()},
               "files": files, "seconds": time.time() - t0}
    write_json(out / "shower.json", summary)
    say(f"      fit: Lambda = {lam:.4f} +- {err.get('lambda', float('nan')):.4f}, a = {a:.4f} +- "
        f"{err.get('a', float('nan')):.4f}, b = {b:.4f} +- {err.get('b', float('nan')):.4f}; chi2 (reweighted) = "
        f"{fitted['chi2']:.0f} / {fitted['bins']}; generated at the fit: "
        + ", ".join(f"{k} {c:.0f}/{nb}" for k, (_, _, c, nb) in at_fit.items()))
    say(f"done in {time.time() - t0:.0f} s; results and figures in {out}/")
    return summary


def _cmd_demo(args) -> int:
    if args.shower:
        run_shower_demo(args.out if args.out != "fastrsa-demo" else "fastrsa-shower",
                        events=3000 if args.events is None else args.events, jobs=args.jobs,
                        steps=60 if args.steps is None else args.steps, lr=args.lr, seed=args.seed,
                        device=args.device, progress=not args.quiet, plots=not args.no_plots)
        return 0
    args.events = 20000 if args.events is None else args.events
    args.steps = 80 if args.steps is None else args.steps
    if args.lep:
        run_lep_demo(args.out if args.out != "fastrsa-demo" else "fastrsa-lep", events=args.events, jobs=args.jobs,
                     steps=args.steps, lr=args.lr, seed=args.seed, device=args.device, progress=not args.quiet,
                     plots=not args.no_plots)
        return 0
    run_demo(args.out, events=args.events, jobs=args.jobs, steps=args.steps, lr=args.lr, replicas=args.replicas,
             projections=args.projections, grid=args.grid, seed=args.seed, device=args.device,
             progress=not args.quiet, plots=not args.no_plots)
    return 0


def register(sub) -> None:
    d = add_command(sub, "demo", "the whole story on built-in defaults: generate, fit, uncertainty, figures",
                    "fastrsa demo --out fastrsa-demo",
                    "Generates a base at (a, b) = (0.72, 0.88) and pseudo-data at Pythia's default (0.68, 0.98), "
                    "fits a and b,\nchecks the truth against the 95% ellipse and the fitted point against events "
                    "generated there.")
    d.add_argument("--lep", action="store_true",
                   help="the LEP demo instead: e+e- at 91.2 GeV, fit a, b, sigma to the shipped ALEPH measurements "
                        "(docs/lep.md); --out defaults to fastrsa-lep")
    d.add_argument("--shower", action="store_true",
                   help="the shower demo instead: fastrsa.shower + Pythia hadronization (dqcd) against ALEPH, moved "
                        "samples, and the joint fit of (Lambda, a, b) (docs/shower.md); --out defaults to "
                        "fastrsa-shower")
    d.add_argument("--out", default="fastrsa-demo", metavar="DIR",
                   help="output directory (a rerun replaces its results; its datasets are reused)")
    d.add_argument("--events", type=int, default=None, help="events per sample (default 20000; --shower: 3000)")
    d.add_argument("--jobs", type=int, default=2, help="generation processes")
    d.add_argument("--steps", type=int, default=None, help="optimizer (AdamW) steps (default 80; --shower: 60)")
    d.add_argument("--lr", type=float, default=0.01, help="AdamW learning rate (cosine decay to lr/20)")
    d.add_argument("--replicas", type=int, default=64, help="bootstrap replicas of the gradient (covariance)")
    d.add_argument("--projections", type=int, default=128, help="swd: number of random projections")
    d.add_argument("--grid", type=int, default=11, help="landscape points per axis")
    d.add_argument("--seed", type=int, default=1, help="seed of generation, projections and replicas")
    d.add_argument("--device", default="cpu", help="torch device of the weights: cpu or cuda")
    add_quiet(d)
    d.add_argument("--no-plots", action="store_true", help="write JSON only, no figures")
    d.set_defaults(func=_cmd_demo)
