"""numba CPU kernels: parallel over events (prange), compiled once and cached on disk."""
import math

from numba import njit, prange

from ..lund import base_log_f, pt_log_weight, trial_from_records


@njit(parallel=True, cache=True)
def base_terms(z, mt2, fprel, cls, table, a, b, log_zhead, out_lfb, out_lfB):
    """Per trial, once per dataset: lfb = log f_B(z) and lfB = log F_B = lfb - log(fPrel zHead)."""
    for t in prange(z.shape[0]):
        c = cls[t]
        lf = base_log_f(a, b, table[c, 0], table[c, 1], table[c, 2], z[t], mt2[t])
        out_lfb[t] = lf
        out_lfB[t] = lf - math.log(fprel[t]) - log_zhead


@njit(parallel=True, cache=True)
def event_log_weights(offsets, z, mt2, cls, lfb, lfB, table, n_breaks, sum_pt2, theta, sigma_base,
                      log_zhead, out_lw, out_grad, out_capped):
    """out_lw[k, i] = log w_i(theta_k); out_grad[k, i] = d/d(a, b, sigma); out_capped[k, i] = trials
    of event i whose ratio Pythia caps at zHead (not covered by the base sampling)."""
    n_events = offsets.shape[0] - 1
    for i in prange(n_events):
        t0 = offsets[i]
        t1 = offsets[i + 1]
        for k in range(theta.shape[0]):
            a = theta[k, 0]
            b = theta[k, 1]
            lw = 0.0
            ga = 0.0
            gb = 0.0
            nc = 0
            for t in range(t0, t1):
                w, da, db, cp = trial_from_records(a, b, table, cls[t], z[t], mt2[t], lfb[t], lfB[t], log_zhead)
                lw += w
                ga += da
                gb += db
                nc += cp
            pw, gs = pt_log_weight(theta[k, 2], sigma_base, n_breaks[i], sum_pt2[i])
            out_lw[k, i] = lw + pw
            out_grad[k, i, 0] = ga
            out_grad[k, i, 1] = gb
            out_grad[k, i, 2] = gs
            out_capped[k, i] = nc


@njit(parallel=True, cache=True)
def pt_sums(offsets, pt2, out_n, out_sum):
    """Per event: number of pT records and the sum of their dimensionless pT2."""
    for i in prange(offsets.shape[0] - 1):
        s = 0.0
        for t in range(offsets[i], offsets[i + 1]):
            s += pt2[t]
        out_n[i] = offsets[i + 1] - offsets[i]
        out_sum[i] = s
