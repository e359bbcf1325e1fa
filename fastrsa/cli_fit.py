"""Fitting commands: fit, landscape, bootstrap, classifier and the end-to-end demo."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ParameterError

DEFAULT_OBSERVABLES = "multiplicity,shapes"


def _floats(text: str, n: int, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise ParameterError(f"{what}: {text!r}; give {n} comma-separated numbers")
    return vals


def _write_json(path: Path, obj) -> None:
    from .dataset import atomic_write_bytes
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=float) + "\n").encode())


def _out_dir(path) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _problem(args, observables=None):
    from .fit import Problem
    return Problem(args.base, args.target, observables or args.observables, loss=args.loss,
                   n_projections=args.projections, seed=args.seed, device=args.device)


def _start(args, problem):
    if args.start is None:
        return None
    a, b = _floats(args.start, 2, "--start")
    return (a, b, problem.base_points[0][2])


def _problem_info(problem) -> dict:
    return {"bases": [{"path": str(ds.path), "events": len(ds), "a": ds.base.a, "b": ds.base.b,
                       "sigma": ds.base.sigma} for ds in problem.datasets],
            "target": {"path": problem.target.path, "events": len(problem.target)},
            "setup": problem.setup, "observables": problem.names, "loss": problem.loss_kind}


def _fit_plots(problem, result, out: Path, truth=None) -> list[str]:
    from .plots import observable_samples, plot_ellipses, plot_observables
    files = plot_observables(observable_samples(problem, result.theta), out / "observables")
    if len(result.free) == 2 and result.free == ["a", "b"]:
        path = np.array([h["theta"][:2] for h in result.history])
        files += plot_ellipses({"fit (Hessian sandwich)": (result.theta[:2], result.cov)}, out / "ellipse",
                               truth=truth, points={"fit (Hessian sandwich)": path}, title="fit path and ellipses")
    return files


def run_fit(args, problem=None, out=None, stream=None):
    from .fit import fit
    stream = stream or sys.stdout
    problem = problem or _problem(args)
    print(problem.describe(), file=stream)
    result = fit(problem, start=_start(args, problem), params=args.params, steps=args.steps, lr=args.lr,
                 redraw=args.redraw, replicas=args.replicas, seed=args.seed, progress=not args.quiet)
    out = out or _out_dir(args.out)
    doc = {"problem": _problem_info(problem), **result.to_dict()}
    _write_json(out / "result.json", doc)
    print(result.summary(), file=stream)
    best = {h["best_base"] for h in result.history}
    if len(problem.datasets) > 1:
        print("     bases used along the path (largest weight alpha): " +
              ", ".join(str(problem.datasets[b].path) for b in sorted(best)), file=stream)
    files = [] if args.no_plots else _fit_plots(problem, result, out, getattr(args, "truth_point", None))
    print(f"wrote {out / 'result.json'}" + (f" and {len(files)} figures" if files else ""), file=stream)
    return problem, result


def _cmd_fit(args) -> int:
    run_fit(args)
    return 0


def run_landscape(args, problem=None, out=None, result=None, truth=None, stream=None) -> dict:
    from .fit import landscape
    from .plots import plot_diagnostics, plot_landscape
    stream = stream or sys.stdout
    problem = problem or _problem(args)
    a0, a1 = _floats(args.a_range, 2, "--a-range")
    b0, b1 = _floats(args.b_range, 2, "--b-range")
    if args.grid < 2:
        raise ParameterError(f"--grid {args.grid}: need at least 2 points per axis")
    sigma = problem.base_points[0][2] if args.sigma is None else args.sigma
    land = landscape(problem, np.linspace(a0, a1, args.grid), np.linspace(b0, b1, args.grid), sigma,
                     progress=not args.quiet)
    out = out or _out_dir(args.out)
    _write_json(out / "landscape.json", {"problem": _problem_info(problem), **land})
    if result is None and getattr(args, "result", None):
        result = json.loads(Path(args.result).read_text())
    if truth is None and getattr(args, "truth", None):
        truth = _floats(args.truth, 2, "--truth")
    files = []
    if not args.no_plots:
        path = fitted = cov = None
        if result is not None:
            path = [h["theta"][:2] for h in result["history"]]
            if result.get("free") == ["a", "b"]:
                fitted, cov = [result["a"], result["b"]], result["cov"]
        files = plot_landscape(land, out / "landscape", path=path, truth=truth, fitted=fitted, cov=cov)
        files += plot_diagnostics(land, out / "diagnostics")
    i, j = np.unravel_index(np.argmin(land["loss"]), np.shape(land["loss"]))
    print(f"landscape: {args.grid}x{args.grid} points; lowest loss at a = {land['a'][i]:.4f}, "
          f"b = {land['b'][j]:.4f}; N_eff/N from {np.min(land['n_eff_frac']):.3f} to "
          f"{np.max(land['n_eff_frac']):.3f}; wrote {out / 'landscape.json'}"
          + (f" and {len(files)} figures" if files else ""), file=stream)
    return land


def _cmd_landscape(args) -> int:
    run_landscape(args)
    return 0


def _cmd_bootstrap(args) -> int:
    from .fit import CHI2_95_2D, bootstrap, fit
    from .plots import plot_ellipses
    out = _out_dir(args.out)
    sets = args.observables or [DEFAULT_OBSERVABLES]
    results, ellipses, points = [], {}, {}
    for obs in sets:
        problem = _problem(args, obs)
        print(f"observables {','.join(problem.names)}: nominal fit", file=sys.stdout, flush=True)
        nominal = fit(problem, start=_start(args, problem), params=args.params, steps=args.steps, lr=args.lr,
                      replicas=args.replicas, seed=args.seed, progress=not args.quiet)
        print(nominal.summary())
        print(f"  {args.replicas} bootstrap replicas, refitted together", flush=True)
        bs = bootstrap(problem, nominal.theta, params=args.params, replicas=args.replicas, seed=args.seed + 1,
                       iters=args.iters, progress=not args.quiet)
        cov = np.asarray(bs["cov"])
        area = float(math.pi * CHI2_95_2D * math.sqrt(max(np.linalg.det(cov), 0.0))) if cov.shape == (2, 2) else None
        entry = {"observables": problem.names, "nominal": nominal.to_dict(), **bs, "area_95": area}
        results.append(entry)
        err = np.sqrt(np.diag(cov))
        print("  bootstrap: " + ", ".join(f"{n} = {m:.4f} +- {e:.4f}" for n, m, e in zip(bs["free"], bs["mean"], err))
              + (f"; 95% ellipse area {area:.3g}" if area is not None else ""), flush=True)
        label = ",".join(problem.names)
        ellipses[label], points[label] = (bs["mean"], cov), bs["points"]
    _write_json(out / "bootstrap.json", {"problem": _problem_info(problem), "sets": results})
    files = []
    if not args.no_plots and all(r["free"] == ["a", "b"] for r in results):
        truth = _floats(args.truth, 2, "--truth") if args.truth else None
        files = plot_ellipses(ellipses, out / "bootstrap_ellipses", truth=truth, points=points,
                              title=f"bootstrap ({args.replicas} replicas)")
    print(f"wrote {out / 'bootstrap.json'}" + (f" and {len(files)} figures" if files else ""))
    return 0


def _cmd_classifier(args) -> int:
    from .classifier import train_classifier
    clf = train_classifier(args.base, args.target, hidden=args.hidden, epochs=args.epochs, seed=args.seed,
                           progress=not args.quiet)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(out)
    print(f"wrote {out}: held-out accuracy {clf.info['valid_accuracy']:.3f}; use it as "
          f"--observables ...,classifier:{out}")
    return 0


def chi2_two_sample(x, y, min_count: int = 5) -> tuple[float, int, float]:
    """Two-sample chi2 test of integer-valued samples x, y (e.g. multiplicities): bins with fewer than
    `min_count` entries in both samples together are merged into their neighbours. (chi2, ndf, p-value)."""
    import torch
    lo, hi = int(min(x.min(), y.min())), int(max(x.max(), y.max()))
    cx = np.bincount((x - lo).astype(np.int64), minlength=hi - lo + 1).astype(float)
    cy = np.bincount((y - lo).astype(np.int64), minlength=hi - lo + 1).astype(float)
    bx, by, ax_, ay_ = [], [], 0.0, 0.0
    for u, v in zip(cx, cy):
        ax_, ay_ = ax_ + u, ay_ + v
        if ax_ + ay_ >= min_count:
            bx.append(ax_); by.append(ay_); ax_ = ay_ = 0.0
    if ax_ + ay_ > 0 and bx:
        bx[-1] += ax_; by[-1] += ay_
    bx, by = np.array(bx), np.array(by)
    nx, ny = bx.sum(), by.sum()
    chi2 = float(np.sum((bx * math.sqrt(ny / nx) - by * math.sqrt(nx / ny)) ** 2 / (bx + by)))
    ndf = len(bx) - 1
    p = float(torch.special.gammaincc(torch.tensor(ndf / 2, dtype=torch.float64),
                                      torch.tensor(chi2 / 2, dtype=torch.float64)))
    return chi2, ndf, p


def _cmd_demo(args) -> int:
    from .fit import inside_ellipse
    from .generate import generate
    from .observables import compute, load_hadrons
    from .params import PAPER_BASE, PYTHIA_DEFAULT
    from .plots import plot_ellipses
    t0 = time.time()
    out = _out_dir(args.out)
    truth = (PYTHIA_DEFAULT["a"], PYTHIA_DEFAULT["b"])
    say = lambda s: print(s, flush=True)  # noqa: E731
    say(f"[1/5] base sample at (a, b) = ({PAPER_BASE['a']}, {PAPER_BASE['b']}) and pseudo-data at Pythia's "
        f"default ({truth[0]}, {truth[1]}), {args.events} events each")
    gen = dict(events=args.events, jobs=args.jobs, progress=not args.quiet)
    base = generate(out / "base", a=PAPER_BASE["a"], b=PAPER_BASE["b"], seed=args.seed, **gen)
    generate(out / "target", a=truth[0], b=truth[1], seed=args.seed + 1000, **gen)
    say(f"[2/5] fit a and b: sliced Wasserstein ({args.projections} projections) on multiplicity and event shapes")
    args.base, args.target, args.observables, args.loss = [str(base.path)], str(out / "target"), DEFAULT_OBSERVABLES, "swd"
    args.params, args.start, args.redraw, args.truth_point = "a,b", None, False, truth
    problem, result = run_fit(args, out=out)
    ok, chi2 = inside_ellipse(truth, result.theta[:2], result.cov)
    say(f"      truth ({truth[0]}, {truth[1]}) is {'inside' if ok else 'OUTSIDE'} the 95% ellipse "
        f"(chi2 = {chi2:.2f} for 2 dof; 5.99 is the 95% boundary)")
    say("[3/5] loss landscape and reweighting diagnostics around the fit")
    a, b = result.theta[:2]
    err = result.errors()
    wa, wb = max(6 * err["a"], 0.06), max(6 * err["b"], 0.1)
    args.a_range = f"{max(a - wa, 0.05)},{a + wa}"
    args.b_range = f"{max(b - wb, 0.1)},{b + wb}"
    args.sigma = None
    run_landscape(args, problem=problem, out=out, result=result.to_dict(), truth=truth)
    say(f"[4/5] validation: {args.events} events generated directly at the fitted point")
    val = generate(out / "validation", a=result.theta[0], b=result.theta[1], sigma=result.theta[2],
                   seed=args.seed + 2000, **{**gen, "progress": False})
    mult_val = compute(load_hadrons(val.path), ["multiplicity"])["multiplicity"].values
    mult_tgt = problem.target_obs["multiplicity"].values
    chi2v, ndf, pval = chi2_two_sample(mult_val, mult_tgt)
    say(f"      multiplicity, fitted point vs pseudo-data: chi2 = {chi2v:.1f} for {ndf} dof, p = {pval:.3f}")
    say("[5/5] figures")
    if not args.no_plots:
        plot_ellipses({"fit (Hessian sandwich)": (result.theta[:2], result.cov)}, out / "ellipse", truth=truth,
                      points={"fit (Hessian sandwich)": [h["theta"][:2] for h in result.history]},
                      title="demo fit: path, 68% and 95% ellipses")
    summary = {"truth": {"a": truth[0], "b": truth[1]}, "fit": {"a": a, "b": b, "cov": result.cov},
               "truth_in_95": ok, "truth_chi2": chi2,
               "validation": {"observable": "multiplicity", "chi2": chi2v, "ndf": ndf, "p_value": pval},
               "seconds": time.time() - t0}
    _write_json(out / "demo.json", summary)
    say(f"done in {time.time() - t0:.0f} s: a = {a:.4f} +- {err['a']:.4f}, b = {b:.4f} +- {err['b']:.4f} "
        f"(truth {truth[0]}, {truth[1]}); results and figures in {out}/")
    return 0


def _common(p, base_required=True, many_observables=False):
    p.add_argument("--base", action="append", required=base_required, default=None,
                   help="base dataset (repeat for several; the fit uses the ones that cover each point)")
    p.add_argument("--target", required=True, help="target: a dataset, or Parquet with hadron columns")
    if many_observables:
        p.add_argument("--observables", action="append", default=None,
                       help=f"comma-separated observables (default {DEFAULT_OBSERVABLES}); repeat to compare sets")
    else:
        p.add_argument("--observables", default=DEFAULT_OBSERVABLES,
                       help="comma-separated: multiplicity, charged_multiplicity, thrust, sphericity, pt, "
                            "rapidity, x, classifier:PATH; shorthands shapes, spectra "
                            f"(default {DEFAULT_OBSERVABLES})")
    p.add_argument("--loss", default="swd", help="swd (sliced Wasserstein, default), w1, chi2")
    p.add_argument("--projections", type=int, default=128, help="swd: random projections (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of projections and bootstrap replicas")
    p.add_argument("--device", default="cpu", help="torch device of the weights (cpu, cuda)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--no-plots", action="store_true", help="write JSON only")


def _fit_args(p):
    p.add_argument("--params", default="a,b", help="parameters to fit, of a,b,sigma (default a,b)")
    p.add_argument("--start", default=None, help="start point a,b (default: the first base point)")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    p.add_argument("--lr", type=float, default=0.01, help="AdamW learning rate (default 0.01)")
    p.add_argument("--replicas", type=int, default=64,
                   help="bootstrap replicas of the gradient for the covariance (default 64)")


def add_commands(sub) -> None:
    f = sub.add_parser("fit", help="fit a, b (and sigma) to a target by gradient descent on reweighted bases")
    _common(f)
    _fit_args(f)
    f.add_argument("--redraw", action="store_true", help="swd: re-draw the projections every step")
    f.add_argument("--out", required=True, help="directory for result.json and figures")
    f.set_defaults(func=_cmd_fit)

    land = sub.add_parser("landscape", help="loss, gradient, mean weight and N_eff/N on an (a, b) grid")
    _common(land)
    land.add_argument("--a-range", default="0.5,0.9", help="lo,hi of a (default 0.5,0.9)")
    land.add_argument("--b-range", default="0.7,1.2", help="lo,hi of b (default 0.7,1.2)")
    land.add_argument("--grid", type=int, default=15, help="points per axis (default 15)")
    land.add_argument("--sigma", type=float, default=None, help="sigma_pT (default: the base's)")
    land.add_argument("--result", default=None, help="a fit's result.json: draw its path and ellipses")
    land.add_argument("--truth", default=None, help="a,b to mark (e.g. the pseudo-data's point)")
    land.add_argument("--out", required=True)
    land.set_defaults(func=_cmd_landscape)

    bs = sub.add_parser("bootstrap", help="confidence ellipses from refitted bootstrap replicas")
    _common(bs, many_observables=True)
    _fit_args(bs)
    bs.set_defaults(replicas=32)
    bs.add_argument("--iters", type=int, default=15, help="Newton iterations per replica (default 15)")
    bs.add_argument("--truth", default=None, help="a,b to mark")
    bs.add_argument("--out", required=True)
    bs.set_defaults(func=_cmd_bootstrap)

    c = sub.add_parser("classifier", help="train a DeepSets classifier (base vs target) to use as an observable")
    c.add_argument("--base", required=True, help="base dataset (label 0)")
    c.add_argument("--target", required=True, help="target sample (label 1)")
    c.add_argument("--out", required=True, help="model file (e.g. model.pt)")
    c.add_argument("--epochs", type=int, default=10)
    c.add_argument("--hidden", type=int, default=64)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_classifier)

    d = sub.add_parser("demo", help="the whole story on built-in defaults: generate, fit, uncertainty, figures")
    d.add_argument("--out", default="fastrsa-demo", help="output directory (default fastrsa-demo)")
    d.add_argument("--events", type=int, default=20000, help="events per sample (default 20000)")
    d.add_argument("--jobs", type=int, default=2, help="generation processes (default 2)")
    d.add_argument("--steps", type=int, default=80, help="optimizer steps (default 80)")
    d.add_argument("--lr", type=float, default=0.01)
    d.add_argument("--replicas", type=int, default=64)
    d.add_argument("--projections", type=int, default=128)
    d.add_argument("--grid", type=int, default=11, help="landscape points per axis (default 11)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--device", default="cpu")
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--no-plots", action="store_true")
    d.set_defaults(func=_cmd_demo)
