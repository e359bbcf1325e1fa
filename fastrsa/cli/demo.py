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


def _cmd_demo(args) -> int:
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
    d.add_argument("--out", default="fastrsa-demo", metavar="DIR",
                   help="output directory (a rerun replaces its results; its datasets are reused)")
    d.add_argument("--events", type=int, default=20000, help="events per sample")
    d.add_argument("--jobs", type=int, default=2, help="generation processes")
    d.add_argument("--steps", type=int, default=80, help="optimizer (AdamW) steps")
    d.add_argument("--lr", type=float, default=0.01, help="AdamW learning rate (cosine decay to lr/20)")
    d.add_argument("--replicas", type=int, default=64, help="bootstrap replicas of the gradient (covariance)")
    d.add_argument("--projections", type=int, default=128, help="swd: number of random projections")
    d.add_argument("--grid", type=int, default=11, help="landscape points per axis")
    d.add_argument("--seed", type=int, default=1, help="seed of generation, projections and replicas")
    d.add_argument("--device", default="cpu", help="torch device of the weights: cpu or cuda")
    add_quiet(d)
    d.add_argument("--no-plots", action="store_true", help="write JSON only, no figures")
    d.set_defaults(func=_cmd_demo)
