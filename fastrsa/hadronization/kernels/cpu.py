"""numba CPU kernels: parallel over blocks of events (prange), vectorized over trials (AVX2/AVX-512
through LLVM, with fastrsa's vectorizable exp and log: hadronization/vmath.py), compiled once and cached on
disk.

numba keys its on-disk cache on this file alone, not on the modules whose functions it inlines
(lund.py, flavmath.py), so an edit there would leave a stale compiled kernel. `_drop_stale_cache` keeps
a digest of those sources beside the cache and removes the cache files when it changes."""
import hashlib
import math
import os
from pathlib import Path

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

_INLINED = ("lund.py", "flavmath.py", "vmath.py")


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
from ..lund import (
    COL_A,
    COL_B,
    COL_SIGMA,
    EXPMAX,
    log_f_coeffs,
    log_f_given,
    pt_log_weight,
    sampling_coeffs,
    shape_constants,
    trial_terms,
)
from ..vmath import TINY, exp_core, log_core, log_pair_core

BLOCK = 8       # events per parallel iteration: their trials' logs are computed in one vector loop
PAD = 4         # a z sampling's terms are written in whole vectors of up to 4 (AVX2) lanes


@njit(fastmath={"reassoc"}, cache=True)
def _radd(x, y):
    """x + y that LLVM may reassociate: lets it vectorize a sum over trials (the sum's order changes, by
    rounding only; nothing else in the kernels is reassociated)."""
    return x + y


@register_jitable
def _sampling_terms(j0, j1, iz, lnz, ln1mz, e0, eI, eL, eM, b0, bI, bL, bM, d0, dI, dL, dM, gA0, gAM, gB0, m, kc,
                    base_clamps, dd, ga, gb):
    """Per trial j0 <= j < j1 of one z sampling: lund.trial_terms (the log-ratio d = log f_theta - log f_B and
    d/d(a, b) of log f_theta, from the sampling's lund.sampling_coeffs) into dd, ga, gb. Runs in whole
    vectors past j1: the next sampling overwrites what it writes there (the block's last sampling writes
    into the scratch's padding, which nothing reads)."""
    for j in range(j0, j0 + ((j1 - j0 + PAD - 1) // PAD) * PAD):
        u = np.uint64(j)            # an unsigned index: no wraparound select, so the loads stay contiguous
        dd[u], ga[u], gb[u] = trial_terms(iz[u], lnz[u], ln1mz[u], e0, eI, eL, eM, b0, bI, bL, bM, d0, dI, dL, dM,
                                          gA0, gAM, gB0, m, kc, base_clamps)


@register_jitable
def _event_sums(j0, j1, dd, ga, gb, qB, tb, log_zhead):
    """Sum over one event's trials j0 <= j < j1 of Pythia's log-ratio and d/d(a, b), and the number of
    capped trials (lund.trial_log_ratio in vector form), from _sampling_terms' d and gradients: d capped
    at log zHead; a rejected trial: R = 1 - q_B (e^d - 1), log-weight log R, gradient factor
    -q_B e^d / R, exactly 1 and 0 at the base point; -inf where R <= 0 (F_theta >= 1)."""
    sw = 0.0
    sa = 0.0
    sb = 0.0
    sc = 0.0
    for j in range(j0, j1):
        u = np.uint64(j)
        d = dd[u]
        gA = ga[u]
        gB = gb[u]
        cap = d > log_zhead
        d = log_zhead if cap else d
        gA = 0.0 if cap else gA
        gB = 0.0 if cap else gB
        q = qB[np.uint64(tb) + u]
        r = exp_core(d)             # -2 EXPMAX <= d <= log zHead
        R = 1.0 - q * (r - 1.0)
        s = -(q * r) / R
        lw = log_core(max(R, TINY))
        ok = R > 0.0
        a = q < 0.0                 # accepted
        w = d if a else (lw if ok else -math.inf)
        gA = gA if a else (s * gA if ok else 0.0)
        gB = gB if a else (s * gB if ok else 0.0)
        sw = _radd(sw, w)
        sa = _radd(sa, gA)
        sb = _radd(sb, gB)
        sc = _radd(sc, 1.0 if cap else 0.0)
    return sw, sa, sb, sc


@njit(error_model="numpy", fastmath={"contract"}, cache=True)
def _fill_compact(z, t0, n, iz, lnz, ln1mz):
    """Trials t0..t0+n-1's 1/z, log z, log(1 - z), one loop per output (so that each vectorizes)."""
    for j in range(n):
        iz[j] = 1.0 / z[np.uint64(t0 + j)]
    for j in range(n):          # 0 < z < 1, checked on load; 1 - z >= 2^-53
        x = z[np.uint64(t0 + j)]
        lnz[j], ln1mz[j] = log_pair_core(x, 1.0 - x)


@njit(error_model="numpy", cache=True)
def _fill_features(feat, t0, n, iz, lnz, ln1mz):
    for j in range(n):
        iz[j] = feat[np.uint64(t0 + j), 0]
    for j in range(n):
        lnz[j] = feat[np.uint64(t0 + j), 1]
    for j in range(n):
        ln1mz[j] = feat[np.uint64(t0 + j), 2]


@register_jitable
def _odds_of(lfB):
    """F_B / (1 - F_B) = 1 / expm1(-lfB) for lfB < 0 (accurate however close F_B is to 1); -1 otherwise."""
    return 1.0 / math.expm1(-lfB) if lfB < 0.0 else -1.0


@njit(parallel=True, cache=True, error_model="numpy", fastmath={"contract"})
def sampling_base_coeffs(h_m, h_cls, table, a_base, b_base, out):
    """Per z sampling, once per dataset: out[h, :4] = the coefficients (b0, bI, bL, bM) of log f_B(z) at the
    base point (lund.log_f_coeffs, compiled as the kernel compiles it: at the base point the kernel uses
    these very coefficients, so that every ratio there is exactly 1)."""
    for h in prange(h_m.shape[0]):
        c = h_cls[h]
        kc = table[c, 2]
        b0, bI, bL, bM, _, _, _, _ = log_f_coeffs(a_base + table[c, 0], b_base * h_m[h], table[c, 1] + kc * b_base)
        out[h, 0] = b0
        out[h, 1] = bI
        out[h, 2] = bL
        out[h, 3] = bM


@njit(parallel=True, cache=True)
def sampling_base(z, mt2, fprel, first, h_m, h_cls, table, a, b, log_zhead, out_q, out_flag):
    """Once per dataset, per z sampling h (trials first[h] .. first[h + 1] - 1): per trial out_q = -1 for
    an accepted trial (mt2 > 0), else the odds of the rejected trial, _odds_of(log F_B) with log F_B =
    log f_B(z) - log(fPrel zHead); and out_flag[h] = 1 if some trial has |log f_B(z)| > EXPMAX - 1, else 0
    (h_base[h, 4]: the CPU kernel tests the base's clamp only where it is set).
    log f_B here is Pythia's per-trial form (lund.log_f_given, clamped at +-EXPMAX), with zMax once per
    sampling: the odds amplify log F_B's rounding by 1 / (1 - F_B), and this form rounds as Pythia's does
    and as the reference does (no contracted multiply-adds here: the same bits as when zMax was recomputed
    per trial). Returns how many rejected trials have no valid odds (F_B >= 1, or so close to 1 that the
    odds are infinite): the loader refuses those."""
    bad = 0
    for h in prange(h_m.shape[0]):
        c = h_cls[h]
        kc = table[c, 2]
        A, B, C = a + table[c, 0], b * h_m[h], table[c, 1] + kc * b
        zm, izm, lnzm, ln1mzm, dzm, zA, zB, zC = shape_constants(A, B, C)
        clamps = False
        for t in range(first[h], first[h + 1]):
            x = z[t]
            lf = log_f_given(A, B, C, zm, izm, lnzm, ln1mzm, dzm, zA, zB, zC, 1.0 / x, math.log(x),
                             math.log1p(-x))[0]
            clamps |= abs(lf) > EXPMAX - 1.0       # (lf is clamped) a margin of 1: no rounding comes near it
            q = -1.0
            if mt2[t] < 0.0:
                q = _odds_of(lf - math.log(fprel[t]) - log_zhead)
                if not (q >= 0.0 and q < math.inf):
                    bad += 1
            out_q[t] = q
        out_flag[h] = 1 if clamps else 0
    return bad


@njit(parallel=True, cache=True, error_model="numpy", fastmath={"contract"})
def event_log_weights(offsets, z, qB, feat, hadron, h_start, h_m, h_cls, h_base, table, n_breaks, sum_pt2, theta,
                      a_base, b_base, sigma_base, log_zhead, out_lw, out_grad, out_capped):
    """out_lw[k, i] = log w_i(theta_k); out_grad[k, i] = d/d(a, b, sigma); out_capped[k, i] = trials
    of event i whose ratio Pythia caps at zHead (not covered by the base sampling).

    Per block of BLOCK events: their trials' 1/z, log z, log(1 - z) once (or from `feat`); then per point
    theta_k, first per z sampling h of the block (hadron[first trial] .. hadron[last trial], trials
    h_start[h] .. h_start[h + 1] - 1) the shape at theta (lund.sampling_coeffs; at the base: h_base, computed
    once per batch by sampling_base_coeffs) and each trial's log-ratio and gradient of log f
    (lund.trial_terms, vectorized by _sampling_terms into the block's scratch), then per event the sum over
    all of its trials (_event_sums). The CUDA kernel evaluates the same lund functions, a trial at a time."""
    n_events = offsets.shape[0] - 1
    has_feat = feat.shape[0] > 0
    for blk in prange((n_events + BLOCK - 1) // BLOCK):
        i0 = blk * BLOCK
        i1 = min(i0 + BLOCK, n_events)
        tb = offsets[i0]
        n = offsets[i1] - tb
        iz = np.empty(n + PAD)
        lnz = np.empty(n + PAD)
        ln1mz = np.empty(n + PAD)
        dd = np.empty(n + PAD)
        ga = np.empty(n + PAD)
        gb = np.empty(n + PAD)
        if has_feat:
            _fill_features(feat, tb, n, iz, lnz, ln1mz)
        else:
            _fill_compact(z, tb, n, iz, lnz, ln1mz)
        for j in range(n, n + PAD):         # padding: an accepted trial at z = 1/2, never summed
            iz[j] = 2.0
            lnz[j] = -0.6931471805599453
            ln1mz[j] = -0.6931471805599453
        h0 = hadron[tb] if n > 0 else 0             # the block's z samplings
        h1 = hadron[tb + n - 1] + 1 if n > 0 else 0
        for k in range(theta.shape[0]):
            a = theta[k, COL_A]
            b = theta[k, COL_B]
            at_base = a == a_base and b == b_base
            for h in range(h0, h1):
                c = h_cls[h]
                m = h_m[h]
                kc = table[c, 2]
                b0, bI, bL, bM = h_base[h, 0], h_base[h, 1], h_base[h, 2], h_base[h, 3]
                e0, eI, eL, eM, d0, dI, dL, dM, gA0, gAM, gB0 = sampling_coeffs(a, b, at_base, table[c, 0],
                                                                                table[c, 1], kc, m, b0, bI, bL, bM)
                _sampling_terms(h_start[h] - tb, h_start[h + 1] - tb, iz, lnz, ln1mz, e0, eI, eL, eM, b0, bI, bL, bM,
                                d0, dI, dL, dM, gA0, gAM, gB0, m, kc, h_base[h, 4] != 0.0, dd, ga, gb)
            for i in range(i0, i1):
                lw, ga_i, gb_i, nc = _event_sums(offsets[i] - tb, offsets[i + 1] - tb, dd, ga, gb, qB, tb, log_zhead)
                pw, gs = pt_log_weight(theta[k, COL_SIGMA], sigma_base, n_breaks[i], sum_pt2[i])
                out_lw[k, i] = lw + pw
                out_grad[k, i, COL_A] = ga_i
                out_grad[k, i, COL_B] = gb_i
                out_grad[k, i, COL_SIGMA] = gs
                out_capped[k, i] = int(nc)


@njit(parallel=True, cache=True)
def trial_features(z, out):
    """Per trial, once: out[t] = 1/z, log z, log(1 - z), computed by the kernel's own _fill_compact, so the
    kernel's results with these features equal its results without them to the bit."""
    T = z.shape[0]
    chunk = 4096
    for c in prange((T + chunk - 1) // chunk):
        t0 = c * chunk
        n = min(chunk, T - t0)
        buf = np.empty((3, n))
        _fill_compact(z, t0, n, buf[0], buf[1], buf[2])
        for j in range(n):
            for k in range(3):
                out[t0 + j, k] = buf[k, j]


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
