"""Flavour parameters end to end on e+e- -> Z (91.2 GeV), Pythia's defaults (Monash) as the base:

1. closure: the base reweighted to rho, xi = 1.2 x default reproduces a sample generated there
   (per-event K/pi, p/pi and identified multiplicities; chi2 p-values, and the unweighted base for contrast);
2. a fit of (a, b, sigma, rho, xi) to the means of the generated sample (pseudo-data) recovers the truth
   within its 95% region;
3. the same fit to ALEPH 1996 d44 (identified-hadron mean multiplicities) and the mean charged multiplicity:
   where it lands, next to the defaults, with chi2 before and after.

python examples/flavour_closure_and_fit.py OUTDIR [--events 15000] [--jobs 2]
(writes OUTDIR/flavour_results.json; the datasets stay in OUTDIR and are reused)
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from scipy import optimize, stats

import fastrsa
from fastrsa.fit.stats import chi2_weighted_vs_sample
from fastrsa.generation import generate
from fastrsa.measurements import D44_SPECIES, load
from fastrsa.observables import compute
from fastrsa.store.hadrons import HadronSample

EE = ["Beams:idA = 11", "Beams:idB = -11", "Beams:eCM = 91.2", "PDF:lepton = off", "WeakSingleBoson:ffbar2gmZ = on",
      "23:onMode = off", "23:onIfAny = 1 2 3 4 5"]
DEFAULT_FLAV = {"rho": 0.217, "xi": 0.081}
TRUTH = {"a": 0.68, "b": 0.98, "sigma": 0.335, "rho": 0.217 * 1.2, "xi": 0.081 * 1.2}
FIT = ("a", "b", "sigma", "rho", "xi")
CLOSURE_OBS = ("K_over_pi", "p_over_pi", "n_pi", "n_K", "n_p", "n_K0", "n_Lambda", "n_phi", "n_Xi",
               "charged_multiplicity_all")
# d44 label -> our observable (charge conjugates included on both sides)
D44_OBS = {"pi0": "n_pi0", "eta": "n_eta", "eta'(958)": "n_etaprime", "K0 (K0S+K0L)": "n_K0", "rho0(770)": "n_rho0",
           "omega(782)": "n_omega", "phi(1020)": "n_phi", "K*(892)+-": "n_Kstar_pm", "K*(892)0 + cc": "n_Kstar0",
           "Lambda + cc": "n_Lambda", "Sigma0 + cc": "n_Sigma0", "Xi- + cc": "n_Xi",
           "Sigma(1385)+- + cc": "n_Sigma1385", "Xi(1530)0 + cc": "n_Xi1530", "Omega- + cc": "n_Omega"}
NCH = (20.91, 0.222)       # d44-x01-y01 = d19-x01-y01: <n_ch>
PSEUDO_OBS = ("charged_multiplicity_all", "n_pi", "n_K", "n_p", "n_K0", "n_Lambda", "n_pi0", "n_eta", "n_rho0",
              "n_omega", "n_phi", "n_Kstar_pm", "n_Kstar0", "n_Xi", "n_Sigma1385")


def observables(ds, names):
    h = HadronSample.from_flat(ds.flat(), ds.meta, ds.path)
    return {k: v.values for k, v in compute(h, names).items()}


def weighted_means(lw, obs):
    """Self-normalized weighted means [n_obs] (torch, differentiable) and their MC variances (numpy)."""
    w = torch.softmax(lw, 0)
    m = torch.stack([(w * o).sum() for o in obs])
    wn = w.detach().numpy()
    var = np.array([np.sum(wn ** 2 * (o.numpy() - mi) ** 2) for o, mi in zip(obs, m.detach().numpy())])
    return m, var


def fit(batch, obs, target, target_cov, start, names=FIT):
    """chi2 = d^T C^-1 d of weighted means to target values, C = the target's covariance plus the MC
    covariance of the weighted means (at the start point; the observables of one event are correlated).
    Returns (theta, chi2 at start, chi2 at fit, covariance of theta)."""
    obs_t = [torch.as_tensor(o, dtype=torch.float64) for o in obs]
    tgt = torch.as_tensor(target, dtype=torch.float64)
    th0 = torch.tensor(start, dtype=torch.float64)
    w0 = torch.softmax(fastrsa.lund_log_weights(batch, th0, names=names), 0).numpy()
    o = np.stack([np.asarray(x, np.float64) for x in obs], 1)
    dev = o - w0 @ o
    c_mc = (dev * (w0 ** 2)[:, None]).T @ dev
    cinv = torch.as_tensor(np.linalg.inv(np.asarray(target_cov) + c_mc))

    def chi2_of(th, _unused=None):
        lw = fastrsa.lund_log_weights(batch, th, names=names)
        m, _ = weighted_means(lw, obs_t)
        d = m - tgt
        return d @ cinv @ d

    var0 = None
    lo = [fastrsa.params.WEIGHT_SPACE[n].floor for n in names]
    hi = [fastrsa.params.WEIGHT_SPACE[n].upper for n in names]

    def fg(x):
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        c = chi2_of(t, var0)
        c.backward()
        return float(c.detach()), t.grad.numpy().copy()

    res = optimize.minimize(fg, np.array(start), jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)))
    # Hessian: central differences of the analytic gradient (the weight op is differentiable once).
    n = len(start)
    hess = np.empty((n, n))
    for j in range(n):
        h = 1e-4 * max(abs(res.x[j]), 1e-2)
        xp, xm = res.x.copy(), res.x.copy()
        xp[j] += h
        xm[j] -= h
        hess[:, j] = (fg(xp)[1] - fg(xm)[1]) / (2 * h)
    hess = 0.5 * (hess + hess.T)
    cov = 2.0 * np.linalg.inv(hess)
    fit.chi2_at = lambda x: float(chi2_of(torch.tensor(x, dtype=torch.float64)).detach())
    return res.x, float(chi2_of(th0, var0).detach()), float(res.fun), cov


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--events", type=int, default=15000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="'KEY = VALUE'",
                    help="a Pythia setting for both samples (e.g. 'StringFlav:popcornRate = 0')")
    args = ap.parse_args()
    out = Path(args.out)
    ee = EE + list(args.set)
    base = generate(out / "base", events=args.events, settings=ee, seed=101, jobs=args.jobs, progress=False)
    tgt = generate(out / "target", events=args.events, seed=202, jobs=args.jobs, progress=False,
                   settings=ee + [f"StringFlav:probStoUD = {TRUTH['rho']!r}", f"StringFlav:probQQtoQ = {TRUTH['xi']!r}"])
    results = {"settings": ee}
    batch = base.to_torch()
    fb = batch.flavour
    print(f"base: {len(base)} events at a={base.base.a}, b={base.base.b}, sigma={base.base.sigma}, {fb}")
    results.update({"events": [len(base), len(tgt)], "truth": TRUTH})

    # 1. closure
    th = torch.tensor([TRUTH["rho"], TRUTH["xi"]], dtype=torch.float64)
    lw = fastrsa.lund_log_weights(batch, th, names="rho,xi")
    w = torch.exp(lw).numpy()
    ob, ot = observables(base, CLOSURE_OBS), observables(tgt, CLOSURE_OBS)
    mean_w, err_w = float(w.mean()), float(w.std() / math.sqrt(len(w)))
    neff = float(w.sum() ** 2 / (w ** 2).sum() / len(w))
    closure = {"mean_weight": [mean_w, err_w], "n_eff_over_n": neff, "observables": {}}
    print(f"closure: mean weight {mean_w:.4f} +- {err_w:.4f}, N_eff/N = {neff:.3f}")
    for name in CLOSURE_OBS:
        c, d, p = chi2_weighted_vs_sample(ob[name], w, ot[name])
        c0, d0, p0 = chi2_weighted_vs_sample(ob[name], np.ones_like(w), ot[name])
        mb, mt = np.average(ob[name], weights=w), ot[name].mean()
        closure["observables"][name] = {"chi2": c, "dof": d, "p": p, "p_unweighted": p0, "mean_reweighted": mb,
                                        "mean_target": mt, "mean_base": float(ob[name].mean())}
        print(f"  {name:26s} chi2/dof = {c:6.1f}/{d:2d}  p = {p:.3f}   (unweighted base: p = {p0:.2g})   "
              f"mean {ob[name].mean():.4f} -> {mb:.4f} vs {mt:.4f}")
    results["closure"] = closure

    # 2. pseudo-data fit of (a, b, sigma, rho, xi) to the target's means
    obs_b = observables(base, PSEUDO_OBS)
    obs_t = observables(tgt, PSEUDO_OBS)
    ot_m = np.stack([obs_t[n] for n in PSEUDO_OBS], 1)
    target = ot_m.mean(0)
    tcov = np.cov(ot_m.T) / len(ot_m)
    start = [base.base.a, base.base.b, base.base.sigma, fb.rho, fb.xi]
    xf, c_start, c_fit, cov = fit(batch, [obs_b[n] for n in PSEUDO_OBS], target, tcov, start)
    truth = np.array([TRUTH[n] for n in FIT])
    d = xf - truth
    dchi2 = float(d @ np.linalg.pinv(cov) @ d)
    dchi2_lr = fit.chi2_at(truth) - c_fit          # the likelihood-ratio region (no quadratic approximation)
    lim = float(stats.chi2.ppf(0.95, len(FIT)))
    print(f"pseudo-data fit: chi2 {c_start:.1f} -> {c_fit:.1f} ({len(PSEUDO_OBS)} means)")
    for n, v, e, t in zip(FIT, xf, np.sqrt(np.diag(cov)), truth):
        print(f"  {n:6s} = {v:.4f} +- {e:.4f}   truth {t:.4f}")
    print(f"  truth inside the 95% region: Hessian ellipse {dchi2:.2f} < {lim:.2f}: {dchi2 < lim}; "
          f"chi2(truth) - chi2(fit) = {dchi2_lr:.2f} < {lim:.2f}: {dchi2_lr < lim}")
    results["pseudo_data_fit"] = {"observables": list(PSEUDO_OBS), "fit": dict(zip(FIT, xf.tolist())),
                                  "errors": dict(zip(FIT, np.sqrt(np.diag(cov)).tolist())), "chi2_start": c_start,
                                  "chi2_fit": c_fit, "delta_chi2_truth_ellipse": dchi2,
                                  "delta_chi2_truth_likelihood_ratio": dchi2_lr, "limit_95": lim,
                                  "inside_95_ellipse": dchi2 < lim, "inside_95_likelihood_ratio": dchi2_lr < lim}

    # 3. ALEPH 1996 d44 + <n_ch>
    m = load("ALEPH_1996_S3486095/d44")
    labels = [D44_SPECIES[k][0] for k in sorted(D44_SPECIES) if k >= 2]
    names = [D44_OBS[lab] for lab in labels] + ["charged_multiplicity_all"]
    vals = list(m.values) + [NCH[0]]
    errs = list(0.5 * (np.asarray(m.err_plus) + np.asarray(m.err_minus))) + [NCH[1]]
    obs_b = observables(base, names)
    xd, c0, c1, covd = fit(batch, [obs_b[n] for n in names], np.array(vals), np.diag(np.square(errs)), start)
    print(f"ALEPH d44 + <n_ch> fit ({len(vals)} numbers): chi2 at Monash {c0:.1f} -> {c1:.1f} at the fit")
    for n, v, e, s in zip(FIT, xd, np.sqrt(np.diag(covd)), start):
        print(f"  {n:6s} = {v:.4f} +- {e:.4f}   (Monash {s:.4f})")
    th = torch.tensor(xd, dtype=torch.float64)
    lwd = fastrsa.lund_log_weights(batch, th, names=FIT)
    wd = torch.exp(lwd).numpy()
    print(f"  N_eff/N at the fit: {wd.sum() ** 2 / (wd ** 2).sum() / len(wd):.3f}")
    per = {}
    for n, lab, v, e in zip(names, labels + ["<n_ch>"], vals, errs):
        per[lab] = {"data": v, "err": e, "monash": float(obs_b[n].mean()), "fit": float(np.average(obs_b[n], weights=wd))}
        print(f"    {lab:20s} data {v:8.4f} +- {e:.4f}   Monash {per[lab]['monash']:8.4f}   fit {per[lab]['fit']:8.4f}")
    results["d44_fit"] = {"fit": dict(zip(FIT, xd.tolist())), "errors": dict(zip(FIT, np.sqrt(np.diag(covd)).tolist())),
                          "monash": dict(zip(FIT, start)), "chi2_monash": c0, "chi2_fit": c1, "n_data": len(vals),
                          "per_species": per}
    (out / "flavour_results.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
