"""Fitting commands: fit, landscape and bootstrap. The `run_*` functions take values (no argparse
Namespace), so the demo and user scripts call them directly."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..losses import LOSSES
from ..params import SPACE
from .common import add_command, add_overwrite, add_quiet, floats, out_dir, write_json

DEFAULT_OBSERVABLES = "multiplicity,shapes"


def make_problem(base, target, observables=DEFAULT_OBSERVABLES, loss="swd", projections=128, seed=0,
                 device="cpu", data=None, flavour=False, features=False):
    from ..fit import Problem
    return Problem(base, target, observables, loss=loss, n_projections=projections, seed=seed, device=device,
                   data=data, flavour=flavour, features=features)


def wants_flavour(params: str | None) -> bool:
    """True when --params names a flavour parameter (rho, xi, x, y): the fit then works in WEIGHT_SPACE."""
    from ..params import FLAVOUR_PARAMS
    names = {p.name for p in FLAVOUR_PARAMS}
    return any(p.strip() in names for p in (params or "").split(","))


def start_point(start: str | None, problem):
    """'a,b' -> a full point (sigma and any other parameter from the first base), or None."""
    if start is None:
        return None
    a, b = floats(start, 2, "--start")
    return (a, b, *problem.base_points[0][2:])


def problem_info(problem) -> dict:
    if hasattr(problem, "info"):
        return problem.info()
    info = {"bases": [{"path": str(ds.path), "events": len(ds), "a": ds.base.a, "b": ds.base.b,
                       "sigma": ds.base.sigma} for ds in problem.datasets],
            "setup": problem.setup, "observables": problem.names, "loss": problem.loss_kind}
    if problem.target is not None:
        info["target"] = {"path": problem.target.path, "events": len(problem.target)}
    else:
        info["data"] = [{"name": d.name, "path": d.measurement.path, "observable": d.observable,
                         "statistic": d.statistic, "skipped_bins": d.skipped, "source": d.measurement.source}
                        for d in problem.data]
    return info


def data_report(problem, result, out: Path, plots=True, validate_events=0, jobs=1, seed=0, stream=None) -> dict:
    """chi2/ndf against the measurements at the base point, at Pythia's defaults and at the fit (and, with
    validate_events, of events generated directly at the fit); figures per measurement; the profile along
    flat directions. Returns what it writes into result.json under 'data'."""
    from ..fit.measured import evaluate_data
    space = problem.space
    stream = stream or sys.stdout
    ndf = sum(t.n_bins for t in problem.loss.terms) - len(result.free)
    points = {"base": problem.base_points[0], "Pythia default": space.defaults(), "fit": result.theta}
    ev = {k: evaluate_data(problem, th) for k, th in points.items()}
    report = {"ndf": ndf, "points": {k: list(map(float, th)) for k, th in points.items()},
              "chi2": {k: v["chi2"] for k, v in ev.items()}, "terms": {k: v["terms"] for k, v in ev.items()}}
    print("chi2/ndf against the data (ndf = bins - free parameters = " + f"{ndf}): " +
          ", ".join(f"{k} {v['chi2']:.1f}/{ndf}" for k, v in ev.items()), file=stream)
    for d in problem.data:
        print(f"  {d.name}: " + ", ".join(f"{k} {v['terms'][d.name]['chi2']:.1f}" for k, v in ev.items()) +
              f" over {ev['fit']['terms'][d.name]['bins']} bins" +
              (f" (skipped, out of reach of the bases: {', '.join(d.skipped)})" if d.skipped else ""), file=stream)
    if validate_events:
        report["validation"] = validate_at_fit(problem, result, out, validate_events, jobs, seed)
        v = report["validation"]
        print(f"validation: {validate_events} events generated directly at the fit: chi2 {v['chi2']:.1f}/{ndf} "
              f"(reweighted: {ev['fit']['chi2']:.1f}/{ndf})", file=stream)
    if plots:
        from ..plots import plot_measurement
        for k, d in enumerate(problem.data):
            curves = {f"{label} ({space.format_point(points[label], 3)})":
                      (ev[label]["terms"][d.name]["prediction"], ev[label]["terms"][d.name]["sd"]) for label in ev}
            chi2 = {lab: ev[label]["terms"][d.name]["chi2"] for lab, label in zip(curves, ev)}
            plot_measurement(d, curves, out / f"data_{k}_{d.measurement.path.replace('/', '_').replace('@', '_at_')}",
                             chi2)
    flat = [d for d in result.directions() if not d["constrained"]]
    if flat:
        from ..fit.scans import profile
        report["profiles"] = [profile(problem, result, d) for d in flat]
        if plots:
            from ..plots import plot_profile
            for k, prof in enumerate(report["profiles"]):
                plot_profile(prof, out / f"profile_{k}")
    return report


def validate_at_fit(problem, result, out: Path, events: int, jobs: int, seed: int) -> dict:
    """Generate `events` directly at the fitted point with the bases' setup; chi2 of that sample."""
    from ..fit.measured import chi2_of_sample
    from ..generation import generate
    from ..store.hadrons import dataset_hadrons
    setup = problem.datasets[0].meta["setup"]
    space = problem.space
    th = dict(zip(space.names, result.theta))
    common = dict(events=events, z_head=problem.datasets[0].base.z_head, seed=seed + 7919, jobs=jobs, progress=False)
    if setup["name"] == "cmnd" or problem.flavour:
        # the configuration's own settings (a built-in setup's as well, when flavour parameters were fitted:
        # the built-in setups set only a, b and sigma), with the fitted point on top
        point = [f"{space[n].setting} = {th[n]!r}" for n in space.names]
        ds = generate(out / "validation", settings=list(setup["settings"]) + point, **common)
    else:
        ds = generate(out / "validation", a=th["a"], b=th["b"], sigma=th["sigma"], energy=setup["energy"],
                      setup=setup["name"], **common)
    sample = dataset_hadrons(ds)
    return chi2_of_sample(problem.data, sample)


def fit_plots(problem, result, out: Path, truth=None) -> list[str]:
    from ..plots import observable_samples, plot_ellipses, plot_observables
    files = plot_observables(observable_samples(problem, result.theta), out / "observables")
    if len(result.free) == 2 and result.free == ["a", "b"]:
        path = np.array([h["theta"][:2] for h in result.history])
        files += plot_ellipses({"fit (Hessian sandwich)": (result.theta[:2], result.cov)}, out / "ellipse",
                               truth=truth, points={"fit (Hessian sandwich)": path}, title="fit path and ellipses")
    return files


def run_fit(problem, out: Path, *, start=None, params="a,b", steps=100, lr=0.01, redraw=False, replicas=64,
            seed=0, progress=True, plots=True, truth=None, stream=None):
    """Fit, write result.json (and figures) into `out`, print the summary; returns the FitResult."""
    from ..fit import fit
    stream = stream or sys.stdout
    print(problem.describe(), file=stream)
    result = fit(problem, start=start, params=params, steps=steps, lr=lr, redraw=redraw, replicas=replicas,
                 seed=seed, progress=progress)
    write_json(out / "result.json", {"problem": problem_info(problem), **result.to_dict()})
    print(result.summary(), file=stream)
    best = {h["best_base"] for h in result.history}
    if len(problem.datasets) > 1:
        print("     bases used along the path (largest weight alpha): " +
              ", ".join(str(problem.datasets[b].path) for b in sorted(best)), file=stream)
    files = fit_plots(problem, result, out, truth) if plots else []
    print(f"wrote {out / 'result.json'}" + (f" and {len(files)} figures" if files else ""), file=stream)
    return result


def run_landscape(problem, out: Path, *, a_range, b_range, grid=15, sigma=None, result=None, truth=None,
                  progress=True, plots=True, stream=None) -> dict:
    """Loss landscape on a grid over a_range x b_range (each (lo, hi)), written to landscape.json."""
    from ..fit import landscape
    stream = stream or sys.stdout
    if grid < 2:
        raise ParameterError(f"--grid {grid}: need at least 2 points per axis")
    sigma = problem.base_points[0][SPACE.index("sigma")] if sigma is None else sigma
    land = landscape(problem, np.linspace(*a_range, grid), np.linspace(*b_range, grid), sigma, progress=progress)
    write_json(out / "landscape.json", {"problem": problem_info(problem), **land})
    files = []
    if plots:
        from ..plots import plot_diagnostics, plot_landscape
        path = fitted = cov = None
        if result is not None:
            path = [h["theta"][:2] for h in result["history"]]
            if result.get("free") == ["a", "b"]:
                fitted, cov = [result["a"], result["b"]], result["cov"]
        files = plot_landscape(land, out / "landscape", path=path, truth=truth, fitted=fitted, cov=cov)
        files += plot_diagnostics(land, out / "diagnostics")
    i, j = np.unravel_index(np.argmin(land["loss"]), np.shape(land["loss"]))
    print(f"landscape: {grid}x{grid} points; lowest loss at a = {land['a'][i]:.4f}, "
          f"b = {land['b'][j]:.4f}; N_eff/N from {np.min(land['n_eff_frac']):.3f} to "
          f"{np.max(land['n_eff_frac']):.3f}; wrote {out / 'landscape.json'}"
          + (f" and {len(files)} figures" if files else ""), file=stream)
    return land


def _read_result(path) -> dict:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        doc["history"][0]["theta"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise ParameterError(f"--result {p}: not a readable result.json of 'fastrsa fit'") from None
    return doc


def _problem(args, observables=None):
    data = getattr(args, "data", None)
    if (args.target is None) == (not data):
        raise ParameterError("--target or --data: give a target sample or measurements to fit (one of the two)")
    return make_problem(args.base, args.target, observables or args.observables, args.loss, args.projections,
                        args.seed, args.device, data=data, flavour=wants_flavour(getattr(args, "params", None)),
                        features=getattr(args, "trial_features", False))


def _check_counts(args) -> None:
    """Counts checked before anything is read or computed."""
    for name in ("steps", "replicas", "projections", "validate_events", "iters", "grid"):
        v = getattr(args, name, None)
        low = {"replicas": 2, "projections": 1, "iters": 1, "grid": 2}.get(name, 0)
        if v is not None and v < low:
            raise ParameterError(f"--{name.replace('_', '-')} {v}: must be at least {low}")


def _cmd_fit_shower(args, out) -> int:
    """--params lambda: move a shower base in Lambda (fastrsa.fit.shower)."""
    from ..fit.shower import ShowerProblem
    if len(args.base) != 1 or args.target is None or args.data:
        raise ParameterError("--params lambda: give one shower --base and one shower --target (no --data yet)")
    observables = "thrust" if args.observables == DEFAULT_OBSERVABLES else args.observables
    problem = ShowerProblem(args.base[0], args.target, observables, order=args.order, device=args.device)
    run_fit(problem, out, start=None if args.start is None else (floats(args.start, 1, "--start")[0],),
            params="lambda", steps=args.steps, lr=args.lr, replicas=args.replicas, seed=args.seed,
            progress=not args.quiet, plots=False)
    return 0


def _cmd_fit_joint(args, out) -> int:
    """--params lambda,a,b[,sigma] on a dqcd base: Lambda by moving, (a, b, sigma) by RSA weights (fit/joint.py)."""
    from ..fit.joint import DEFAULT_CELLS, DEFAULT_STEP, JointProblem, joint_summary
    if len(args.base) != 1 or (args.target is None) == (not args.data):
        raise ParameterError("--params lambda,...: give one dqcd --base and either a --target sample or --data "
                             "measurements")
    observables = "thrust_all,charged_multiplicity_all" if args.observables == DEFAULT_OBSERVABLES else args.observables
    problem = JointProblem(args.base[0], args.target, observables, loss=args.loss, work=out / "moved", data=args.data,
                           step=DEFAULT_STEP if args.lambda_step is None else args.lambda_step,
                           cells=DEFAULT_CELLS if args.lambda_cells is None else args.lambda_cells,
                           order=3 if args.order is None else args.order, n_projections=args.projections,
                           seed=args.seed, device=args.device, progress=not args.quiet,
                           interpolation=args.lambda_interpolation)
    start = None
    if args.start is not None:
        start = floats(args.start, len(problem.space), "--start (lambda,a,b,sigma)")
    result = run_fit(problem, out, start=start, params=args.params, steps=args.steps, lr=args.lr,
                     replicas=args.replicas, seed=args.seed, progress=not args.quiet, plots=False)
    doc = json.loads((out / "result.json").read_text())
    extra = joint_summary(result)
    if args.data:
        from ..fit.measured import evaluate_data
        ev = {"base": evaluate_data(problem, problem.base_points[0]), "fit": evaluate_data(problem, result.theta)}
        extra["data"] = {"chi2": {k: v["chi2"] for k, v in ev.items()}, "bins": ev["fit"]["bins"],
                         "terms": {k: v["terms"] for k, v in ev.items()}}
        print("chi2 against the data (" + f"{ev['fit']['bins']} bins): base {ev['base']['chi2']:.1f}, "
              f"fit {ev['fit']['chi2']:.1f}")
    write_json(out / "result.json", {**doc, **extra})
    files = []
    if not args.no_plots:
        from ..plots import plot_joint_correlation
        files = plot_joint_correlation(doc | extra, out / "correlation")
    print(f"correlation of the free parameters: {extra['correlation_matrix']}" + (f"; wrote {len(files)} figures"
                                                                                  if files else ""))
    return 0


def _cmd_fit(args) -> int:
    _check_counts(args)
    if args.validate_events and not args.data:
        raise ParameterError("--validate-events: only with --data (a fit to measurements)")
    lam = "lambda" in [p.strip() for p in args.params.split(",")]
    if lam and args.validate_events:
        raise ParameterError("--validate-events: not with --params lambda (the joint fit); generate at the fitted "
                             "point with 'fastrsa generate --setup dqcd' instead")
    out = out_dir(args.out, "fit", args.overwrite)
    if lam:
        from ..shower.dataset import is_shower_dataset
        if len(args.base) == 1 and not is_shower_dataset(args.base[0]):
            return _cmd_fit_joint(args, out)
        return _cmd_fit_shower(args, out)
    if args.dask:
        if wants_flavour(args.params):
            raise ParameterError("--params: flavour parameters are not fitted on a Dask cluster yet; leave out --dask")
        return _cmd_fit_dask(args, out)
    problem = _problem(args)
    result = run_fit(problem, out, start=start_point(args.start, problem), params=args.params, steps=args.steps,
                     lr=args.lr, redraw=args.redraw, replicas=args.replicas, seed=args.seed,
                     progress=not args.quiet, plots=not args.no_plots and not problem.data)
    if problem.data:
        report = data_report(problem, result, out, plots=not args.no_plots, validate_events=args.validate_events,
                             jobs=args.jobs, seed=args.seed)
        doc = json.loads((out / "result.json").read_text())
        write_json(out / "result.json", {**doc, "data": report})
    return 0


def _check_dask_args(args) -> None:
    """What a fit on a Dask cluster supports, checked before the cluster is started."""
    from ..cluster import parse_spec, require_dask
    from ..fit.distributed import SUPPORTED_LOSSES
    require_dask()
    parse_spec(args.dask)
    if args.loss not in SUPPORTED_LOSSES:
        raise ParameterError(f"--loss {args.loss}: not available with --dask (it projects all events together); use "
                             "--loss chi2 (exact) or --loss w1 (on a grid of target quantiles, --w1-grid)")
    if args.w1_grid < 2:
        raise ParameterError(f"--w1-grid {args.w1_grid}: must be at least 2 (default 1000)")
    if getattr(args, "data", None) or args.target is None:
        raise ParameterError("--dask: needs a target sample (--target); fit measurements (--data) without --dask")
    if getattr(args, "validate_events", 0):
        raise ParameterError("--validate-events: only without --dask (it goes with --data)")


def _dask_problem(args, client):
    from ..fit.distributed import DistributedProblem
    return DistributedProblem(args.base, args.target, client, args.observables, args.loss, device=args.device,
                              grid=args.w1_grid)


def _cmd_fit_dask(args, out) -> int:
    """fit --dask: the bases' events stay on the workers; per step only per-bin sums come back."""
    from ..cluster import dask_client
    _check_dask_args(args)
    if "lambda" in [p.strip() for p in args.params.split(",")]:
        raise ParameterError("--params lambda: the shower fit runs in one process; leave out --dask")
    with dask_client(args.dask) as client:
        problem = _dask_problem(args, client)
        try:
            run_fit(problem, out, start=start_point(args.start, problem), params=args.params, steps=args.steps,
                    lr=args.lr, replicas=args.replicas, seed=args.seed, progress=not args.quiet, plots=False)
            t, w = problem.traffic, len(problem.workers)
            print(f"dask: {w} workers; per point and worker {t['sent'] / t['points'] / w:.0f} bytes out, "
                  f"{t['received'] / t['points'] / w:.0f} bytes back (independent of the number of events)")
        finally:
            problem.close()
    return 0


def _cmd_landscape(args) -> int:
    _check_counts(args)
    a_range = floats(args.a_range, 2, "--a-range")
    b_range = floats(args.b_range, 2, "--b-range")
    result = _read_result(args.result) if args.result else None
    truth = floats(args.truth, 2, "--truth") if args.truth else None
    if args.grid < 2:
        raise ParameterError(f"--grid {args.grid}: need at least 2 points per axis")
    if args.dask:
        _check_dask_args(args)
    out = out_dir(args.out, "landscape", args.overwrite)
    if args.dask:
        from ..cluster import dask_client
        with dask_client(args.dask) as client:
            problem = _dask_problem(args, client)
            try:
                run_landscape(problem, out, a_range=a_range, b_range=b_range, grid=args.grid, sigma=args.sigma,
                              result=result, truth=truth, progress=not args.quiet, plots=not args.no_plots)
            finally:
                problem.close()
        return 0
    problem = _problem(args)
    run_landscape(problem, out, a_range=a_range, b_range=b_range, grid=args.grid, sigma=args.sigma,
                  result=result, truth=truth, progress=not args.quiet, plots=not args.no_plots)
    return 0


def _cmd_bootstrap(args) -> int:
    from ..fit import CHI2_95_2D, bootstrap, fit
    from ..plots import plot_ellipses
    _check_counts(args)
    truth = floats(args.truth, 2, "--truth") if args.truth else None
    out = out_dir(args.out, "bootstrap", args.overwrite)
    sets = args.observables or [DEFAULT_OBSERVABLES]
    results, ellipses, points = [], {}, {}
    for obs in sets:
        problem = _problem(args, obs)
        print(f"observables {','.join(problem.names)}: nominal fit", file=sys.stdout, flush=True)
        nominal = fit(problem, start=start_point(args.start, problem), params=args.params, steps=args.steps,
                      lr=args.lr, replicas=args.replicas, seed=args.seed, progress=not args.quiet)
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
    write_json(out / "bootstrap.json", {"problem": problem_info(problem), "sets": results})
    files = []
    if not args.no_plots and all(r["free"] == ["a", "b"] for r in results):
        files = plot_ellipses(ellipses, out / "bootstrap_ellipses", truth=truth, points=points,
                              title=f"bootstrap ({args.replicas} replicas)")
    print(f"wrote {out / 'bootstrap.json'}" + (f" and {len(files)} figures" if files else ""))
    return 0


def _common(p, many_observables=False):
    p.add_argument("--base", action="append", required=True, default=None, metavar="DATASET",
                   help="base dataset from 'fastrsa generate' (repeat for several; each point uses the bases "
                        "that cover it)")
    p.add_argument("--target", default=None, metavar="PATH",
                   help="target: a dataset, or Parquet with per-event hadron lists and fastrsa setup metadata "
                        "(or fit measurements with --data)")
    obs_help = ("comma-separated observables: " + ", ".join(_observable_names()) +
                "; shorthands shapes, spectra")
    if many_observables:
        p.add_argument("--observables", action="append", default=None,
                       help=obs_help + f"; repeat to compare sets (default: {DEFAULT_OBSERVABLES})")
    else:
        p.add_argument("--observables", default=DEFAULT_OBSERVABLES, help=obs_help)
    p.add_argument("--loss", default="swd", metavar="|".join(LOSSES),
                   help="; ".join(f"{k}: {v.description}" for k, v in LOSSES.items()))
    p.add_argument("--projections", type=int, default=128, help="swd: number of random projections")
    p.add_argument("--seed", type=int, default=0, help="seed of the swd projections and bootstrap replicas")
    p.add_argument("--device", default="cpu", help="torch device of the weights: cpu or cuda")
    p.add_argument("--trial-features", action="store_true",
                   help="precompute 1/z, log z, log(1-z) per trial (24 more bytes per trial): the same weights; "
                        "faster only where memory is fast and arithmetic slow (docs/weights.md)")
    add_quiet(p)
    p.add_argument("--no-plots", action="store_true", help="write JSON only, no figures")


def _observable_names() -> list[str]:
    from ..observables.registry import OBSERVABLES, PREFIXES
    return list(OBSERVABLES) + [s.example for s in PREFIXES.values()]


def _fit_args(p, replicas: int):
    p.add_argument("--params", default="a,b",
                   help=f"parameters to fit, comma-separated, of {','.join(SPACE.names)} and, on bases with flavour "
                        "records (--setup ee or --cmnd), rho,xi,x,y; or lambda (a shower "
                        "dataset from 'fastrsa shower' as --base and --target, events moved in Lambda); or "
                        "lambda,a,b[,sigma] (a dqcd --base from 'fastrsa generate --setup dqcd': the joint fit, "
                        "docs/shower.md)")
    p.add_argument("--start", default=None, metavar="A,B",
                   help="start point a,b (default: the first base's point); the other parameters stay at the base's")
    p.add_argument("--steps", type=int, default=100, help="optimizer (AdamW) steps")
    p.add_argument("--lr", type=float, default=0.01,
                   help="AdamW learning rate [parameter units per step], decaying by a cosine to lr/20")
    p.add_argument("--replicas", type=int, default=replicas,
                   help="bootstrap replicas (of the loss gradient for the sandwich covariance)")


def _dask_arg(p, command: str) -> None:
    p.add_argument("--dask", default=None, metavar="local[:N]|tcp://HOST:PORT",
                   help=f"{command} with the bases' events held by the workers of a Dask cluster (local, local:N or a "
                        "scheduler's address); each step brings back only per-bin sums. --loss chi2 (exact) or w1 "
                        "(on a grid, --w1-grid); " + ("no figures; " if command == "fit" else "") +
                        "needs pip install 'fastrsa[dask]' (docs/distributed.md)")
    p.add_argument("--w1-grid", type=int, default=1000, metavar="G",
                   help="--dask --loss w1: the CDFs are compared at G+1 target quantiles and G+1 equidistant points "
                        "(every integer for integer-valued observables, then exact); measured error in docs/distributed.md")


def register(sub) -> None:
    f = add_command(sub, "fit", "fit a, b (and sigma) to a target by gradient descent on reweighted bases",
                    "fastrsa fit --base base --target target --observables multiplicity,shapes --out fit",
                    "Writes result.json (point, covariance, path with diagnostics) and figures into --out.")
    _common(f)
    _fit_args(f, replicas=64)
    f.add_argument("--redraw", action="store_true", help="swd: re-draw the projections every step")
    f.add_argument("--data", action="append", default=None, metavar="NAME",
                   help="a measurement to fit instead of --target (repeat for several), e.g. "
                        "ALEPH_2004_S5765862/d54-x01-y01, a key of the shipped LEP set (thrust, nch_distribution, "
                        "one_minus_thrust_charged, mean_nch), FILE.yoda:/REF/ANA/d01-x01-y01=OBSERVABLE:STATISTIC; "
                        "see docs/measurements.md")
    f.add_argument("--validate-events", type=int, default=0, metavar="N",
                   help="with --data: also generate N events directly at the fitted point and report their chi2")
    f.add_argument("--jobs", type=int, default=1, help="generation processes for --validate-events")
    f.add_argument("--order", type=int, default=None,
                   help="--params lambda: Taylor order used to move the showers (default: every order stored; "
                        "joint fit: 3)")
    f.add_argument("--lambda-step", type=float, default=None,
                   help="joint fit: spacing of the grid of moved, re-hadronized samples in Lambda [GeV] (default 0.025)")
    f.add_argument("--lambda-cells", type=int, default=None,
                   help="joint fit: number of grid cells above the base's Lambda (default 4)")
    f.add_argument("--lambda-interpolation", choices=("regression", "quadratic", "piecewise"), default="quadratic",
                   help="joint fit: how the grid samples' distributions are interpolated in Lambda (docs/shower.md)")
    _dask_arg(f, "fit")
    f.add_argument("--out", required=True, metavar="DIR", help="directory for result.json and figures")
    add_overwrite(f)
    f.set_defaults(func=_cmd_fit)

    land = add_command(sub, "landscape", "loss, gradient, mean weight and N_eff/N on an (a, b) grid",
                       "fastrsa landscape --base base --target target --grid 15 --result fit/result.json --out land")
    _common(land)
    land.add_argument("--a-range", default="0.5,0.9", metavar="LO,HI", help="range of a")
    land.add_argument("--b-range", default="0.7,1.2", metavar="LO,HI", help="range of b [GeV^-2]")
    land.add_argument("--grid", type=int, default=15, help="points per axis")
    land.add_argument("--sigma", type=float, default=None, help="sigma_pT [GeV] (default: the first base's)")
    land.add_argument("--result", default=None, metavar="JSON", help="a fit's result.json: draw its path and ellipses")
    land.add_argument("--truth", default=None, metavar="A,B", help="a point to mark (e.g. the pseudo-data's)")
    _dask_arg(land, "landscape")
    land.add_argument("--out", required=True, metavar="DIR", help="directory for landscape.json and figures")
    add_overwrite(land)
    land.set_defaults(func=_cmd_landscape)

    bs = add_command(sub, "bootstrap", "confidence ellipses from refitted bootstrap replicas",
                     "fastrsa bootstrap --base base --target target --observables multiplicity "
                     "--observables multiplicity,shapes --out bs",
                     "Each --observables set gets a nominal fit and R replicas (Poisson(1) multiplicities of "
                     "base and target events), refitted together by Levenberg-Marquardt steps.")
    _common(bs, many_observables=True)
    _fit_args(bs, replicas=32)
    bs.add_argument("--iters", type=int, default=15, help="Levenberg-Marquardt iterations per replica")
    bs.add_argument("--truth", default=None, metavar="A,B", help="a point to mark")
    bs.add_argument("--out", required=True, metavar="DIR", help="directory for bootstrap.json and figures")
    add_overwrite(bs)
    bs.set_defaults(func=_cmd_bootstrap)
