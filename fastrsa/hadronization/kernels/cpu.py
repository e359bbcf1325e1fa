"""numba CPU kernels: parallel over events (prange), compiled once and cached on disk.

numba keys its on-disk cache on this file alone, not on the modules whose functions it inlines
(lund.py, flavmath.py), so an edit there would leave a stale compiled kernel. `_drop_stale_cache` keeps
a digest of those sources beside the cache and removes the cache files when it changes."""
import hashlib
import math
import os
from pathlib import Path

from numba import njit, prange

_INLINED = ("lund.py", "flavmath.py")


def _drop_stale_cache() -> None:
    here = Path(__file__)
    digest = hashlib.sha256(b"".join((here.parent.parent / f).read_bytes() for f in _INLINED)).hexdigest()
    dirs = [here.parent / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        dirs.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    for d in dirs:
        stamp = d / f"{here.stem}.inlined-sources.sha256"
        try:
            if stamp.exists() and stamp.read_text() == digest:
                continue
            for f in d.rglob(f"{here.stem}.*.nb[ic]"):
                f.unlink(missing_ok=True)
            if d.is_dir():
                stamp.write_text(digest)
        except OSError:         # a read-only install: numba then caches elsewhere or not at all
            pass


_drop_stale_cache()

from ..flavmath import F_RHO, F_X, F_XI, F_Y, flavour_table
from ..lund import COL_A, COL_B, COL_SIGMA, base_log_f, pt_log_weight, strided_trial_sums


@njit(parallel=True, cache=True)
def base_terms(z, mt2, fprel, cls, table, a, b, log_zhead, out_lfb, out_lfB):
    """Per trial, once per dataset: lfb = log f_B(z) and lfB = log F_B = lfb - log(fPrel zHead)."""
    for t in prange(z.shape[0]):
        c = cls[t]
        lf = base_log_f(a, b, table[c, 0], table[c, 1], table[c, 2], z[t], mt2[t])
        out_lfb[t] = lf
        out_lfB[t] = lf - math.log(fprel[t]) - log_zhead


@njit(parallel=True, cache=True)
def event_log_weights(offsets, z, lfB, feat, hadron, h_m, h_cls, table, n_breaks, sum_pt2, theta, a_base, b_base,
                      sigma_base, log_zhead, out_lw, out_grad, out_capped):
    """out_lw[k, i] = log w_i(theta_k); out_grad[k, i] = d/d(a, b, sigma); out_capped[k, i] = trials
    of event i whose ratio Pythia caps at zHead (not covered by the base sampling)."""
    n_events = offsets.shape[0] - 1
    for i in prange(n_events):
        t0 = offsets[i]
        t1 = offsets[i + 1]
        for k in range(theta.shape[0]):
            lw, ga, gb, nc = strided_trial_sums(theta[k, COL_A], theta[k, COL_B], a_base, b_base, table, h_m,
                                                h_cls, hadron, z, lfB, feat, log_zhead, t0, t1, 1)
            pw, gs = pt_log_weight(theta[k, COL_SIGMA], sigma_base, n_breaks[i], sum_pt2[i])
            out_lw[k, i] = lw + pw
            out_grad[k, i, COL_A] = ga
            out_grad[k, i, COL_B] = gb
            out_grad[k, i, COL_SIGMA] = gs
            out_capped[k, i] = nc


@njit(parallel=True, cache=True)
def trial_features(z, lfB, out):
    """Per trial, once: 1/z, log z, log(1 - z) and, for a rejected trial (lfB <= 0), log(1 - F_B); the very
    expressions the kernel evaluates without them (lund.strided_trial_sums), so results agree to the bit."""
    for t in prange(z.shape[0]):
        zt = z[t]
        out[t, 0] = 1.0 / zt
        out[t, 1] = math.log(zt)
        out[t, 2] = math.log1p(-zt)
        out[t, 3] = math.log1p(-math.exp(lfB[t])) if lfB[t] <= 0.0 else 0.0


@njit(parallel=True, cache=True)
def pt_sums(offsets, pt2, out_n, out_sum):
    """Per event: number of pT records and the sum of their dimensionless pT2."""
    for i in prange(offsets.shape[0] - 1):
        s = 0.0
        for t in range(offsets[i], offsets[i + 1]):
            s += pt2[t]
        out_n[i] = offsets[i + 1] - offsets[i]
        out_sum[i] = s


@njit(cache=True)
def flavour_tables(theta, base, cg, out_L, out_dL):
    """Per flavour point k (theta [K, 4] = rho, xi, x, y): the log factor of each of Pythia's 13 flavour
    counters relative to `base` (out_L [K, 13]) and its Jacobian (out_dL [K, 13, 4]). An event's flavour
    log-weight is then its counts dotted with out_L[k] (fastrsa.hadronization.flavmath)."""
    for k in range(theta.shape[0]):
        flavour_table(theta[k, F_RHO], theta[k, F_XI], theta[k, F_X], theta[k, F_Y], base[F_RHO], base[F_XI],
                      base[F_X], base[F_Y], cg[0], cg[1], out_L[k], out_dL[k])
