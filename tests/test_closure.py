"""Statistical closure: a base sample reweighted to theta reproduces a sample generated at theta.

Observables are physical ones (hadron multiplicities, fragmentation attempts, transverse momenta).
The number of trials is not among them: Pythia's proposal (fPrel, zDiv) depends on the parameters, so
the trial count at theta differs from the reweighted one by construction (checked below).

Threshold: each chi2 test must give p > 0.001 (fixed seeds, so the outcome is reproducible), and the
mean weight must be 1 within 3.3 standard errors (two-sided p ~ 0.001).
"""
import numpy as np
import pytest
import torch
from scipy import stats

import fastrsa
from fastrsa.generation import generate

THETA = (0.68, 0.98, 0.30)   # Pythia's default a, b; a narrower pT width than the base


def _chi2_weighted_vs_unweighted(x_w, w, x_u, min_count=10):
    """Chi2 of a weighted histogram against an unweighted one (both normalized), integer bins merged
    from the edges until each holds >= min_count unweighted entries."""
    lo, hi = int(min(x_w.min(), x_u.min())), int(max(x_w.max(), x_u.max()))
    edges = np.arange(lo, hi + 2) - 0.5
    cu, _ = np.histogram(x_u, edges)
    # merge bins so each has enough entries
    groups, acc, start = [], 0, 0
    for i, c in enumerate(cu):
        acc += c
        if acc >= min_count:
            groups.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(cu):
        groups[-1] = (groups[-1][0], len(cu))
    new_edges = np.array([edges[g[0]] for g in groups] + [edges[-1]])
    U, _ = np.histogram(x_u, new_edges)
    W, _ = np.histogram(x_w, new_edges, weights=w)
    W2, _ = np.histogram(x_w, new_edges, weights=w * w)
    nu, sw = U.sum(), w.sum()
    chi2 = np.sum((W / sw - U / nu) ** 2 / (W2 / sw ** 2 + U / nu ** 2))
    dof = len(U) - 1
    return chi2, dof, stats.chi2.sf(chi2, dof)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    d = tmp_path_factory.mktemp("closure")
    base = generate(d / "base", events=6000, seed=101, jobs=2, progress=False)
    direct = generate(d / "direct", events=6000, a=THETA[0], b=THETA[1], sigma=THETA[2], seed=202, jobs=2,
                      progress=False)
    return base, direct


def test_reweighted_base_reproduces_direct_sample(samples):
    base, direct = samples
    lw = fastrsa.lund_log_weights(base.to_torch(), torch.tensor(THETA, dtype=torch.float64))
    w = torch.exp(lw).numpy()
    fb, fd = base.flat(), direct.flat()
    mean, err, n_eff = fastrsa.summarize_log_weights(lw)
    assert abs(mean - 1) < 3.3 * err, (mean, err)
    assert n_eff / len(base) > 0.3
    for name, xb, xd in [
        ("multiplicity", np.diff(fb.offsets["hadrons"]), np.diff(fd.offsets["hadrons"])),
        ("charged", np.add.reduceat((fb["pdg"] != 111).astype(int), fb.offsets["hadrons"][:-1]),
         np.add.reduceat((fd["pdg"] != 111).astype(int), fd.offsets["hadrons"][:-1])),
        ("attempts", fb.n_attempts, fd.n_attempts),
        ("mean pT / 20 MeV", _mean_pt_bins(fb), _mean_pt_bins(fd)),
    ]:
        chi2, dof, p = _chi2_weighted_vs_unweighted(xb, w, xd)
        assert p > 1e-3, f"{name}: chi2 = {chi2:.1f} / {dof}, p = {p:.2g}"


def _mean_pt_bins(fv):
    pt = np.hypot(fv["px"], fv["py"])
    n = np.diff(fv.offsets["hadrons"])
    return (np.add.reduceat(pt, fv.offsets["hadrons"][:-1]) / n // 0.02).astype(int)


def test_closure_test_can_fail(samples):
    """The same test rejects the unweighted base sample (it has power), and the trial count does
    not close (Pythia's proposal depends on theta)."""
    base, direct = samples
    fb, fd = base.flat(), direct.flat()
    _, _, p = _chi2_weighted_vs_unweighted(_mean_pt_bins(fb), np.ones(len(base)), _mean_pt_bins(fd))
    assert p < 1e-3
    lw = fastrsa.lund_log_weights(base.to_torch(), torch.tensor(THETA, dtype=torch.float64))
    _, _, p = _chi2_weighted_vs_unweighted(np.diff(fb.offsets["trials"]) // 20, torch.exp(lw).numpy(),
                                           np.diff(fd.offsets["trials"]) // 20)
    assert p < 1e-3
