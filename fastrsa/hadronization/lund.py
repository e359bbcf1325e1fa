"""The Lund fragmentation math per trial: the single source shared by the CPU and GPU kernels.

Every function is `numba.extending.register_jitable`, so it compiles into numba CPU code and into
numba-cuda device code alike (and runs as plain Python in the CUDA simulator).

Conventions follow Pythia 8.317 (StringZ::zLundMax/initFunc, WeightsFragmentation::zWeight):
    f(z) = exp( A ln((1-z)/(1-zMax)) + B (1/zMax - 1/z) + C ln(zMax/z) ),  f(zMax) = 1,
with A = a + aExtra(flavour), B = b mT2, C = c0(flavour) + kc(flavour) b, the exponent clamped to
[-EXPMAX, EXPMAX], and the A term dropped when A < AFROMZERO. Derivatives include the parameter
dependence of zMax: away from Pythia's special cases it drops out (envelope theorem: zMax is the
stationary point of the exponent); the special cases (a ~ 0, a ~ c, zMax ~ 1 at large B) use
zMax formulas that are not stationary points, and their dzMax/dparam terms are kept.
"""
import math

from numba.extending import register_jitable

# Columns of the kernels' theta [K, 3]; fastrsa.params.SPACE maps parameter names to them.
KERNEL_COLUMNS = ("a", "b", "sigma")
COL_A, COL_B, COL_SIGMA = 0, 1, 2

AFROMZERO = 0.02    # Pythia StringZ::AFROMZERO
AFROMC = 0.01       # Pythia StringZ::AFROMC
EXPMAX = 50.0       # Pythia StringZ::EXPMAX


@register_jitable
def zmax_and_grad(A, B, C):
    """Pythia's zMax(A, B, C) and its partial derivatives (dA, dB, dC)."""
    if A < AFROMZERO:
        if C > B:
            return B / C, 0.0, 1.0 / C, -B / (C * C)
        return 1.0, 0.0, 0.0, 0.0
    if abs(A - C) < AFROMC:
        s = B + C
        return B / s, 0.0, C / (s * s), -B / (s * s)
    d = C - A
    bc = B - C
    root = math.sqrt(bc * bc + 4.0 * A * B)
    num = B + C - root
    zm = 0.5 * num / d
    # d(root): dA = 2B/root, dB = (B - C + 2A)/root, dC = -(B - C)/root
    gA = 0.5 * ((-2.0 * B / root) * d + num) / (d * d)
    gB = 0.5 * (1.0 - (bc + 2.0 * A) / root) / d
    gC = 0.5 * ((1.0 + bc / root) * d - num) / (d * d)
    if zm > 0.9999 and B > 100.0:
        alt = 1.0 - A / B
        if alt < zm:
            return alt, -1.0 / B, A / (B * B), 0.0
    return zm, gA, gB, gC


@register_jitable
def log_f_and_grad(A, B, C, z, lnz, ln1mz):
    """log f(z) for shape (A, B, C) and its derivatives (dA, dB, dC), zMax dependence included.

    lnz = log(z), ln1mz = log(1 - z) are passed in so that callers can reuse them across points.
    """
    zm, zA, zB, zC = zmax_and_grad(A, B, C)
    a_on = A >= AFROMZERO
    lnzm = math.log(zm)
    e = B * (1.0 / zm - 1.0 / z) + C * (lnzm - lnz)
    dA = 0.0
    # d(exponent)/d(zMax); zero at a true maximum, kept for the special cases.
    dzm = -B / (zm * zm) + C / zm
    if a_on:
        if zm < 1.0:
            ln1mzm = math.log1p(-zm)
            e += A * (ln1mz - ln1mzm)
            dA = ln1mz - ln1mzm
            dzm += A / (1.0 - zm)
        else:
            # zMax = 1 only occurs with the a term off in Pythia; guard against log(0).
            e += A * ln1mz
            dA = ln1mz
    dB = 1.0 / zm - 1.0 / z
    dC = lnzm - lnz
    dA += dzm * zA
    dB += dzm * zB
    dC += dzm * zC
    if e > EXPMAX:
        return EXPMAX, 0.0, 0.0, 0.0
    if e < -EXPMAX:
        return -EXPMAX, 0.0, 0.0, 0.0
    return e, dA, dB, dC


@register_jitable
def trial_log_weight(a, b, a_off, c0, kc, z, mt2, lfb, lfB, lrb, log_zhead):
    """One trial's log-weight at (a, b) relative to the base, and d/da, d/db.

    Pythia's weight: r = min(f_theta(z) / f_B(z), zHead); accepted trial (mt2 > 0): r;
    rejected trial: (1 - F_B r) / (1 - F_B) with F_B = f_B(z) / (fPrel zHead).
    Inputs: flavour shifts a_off, c0, kc; base terms lfb = log f_B(z), lfB = log F_B,
    lrb = log(1 - F_B). Returns (logw, dlogw/da, dlogw/db, capped) where capped = 1 when the ratio
    hit zHead (the new point is not covered by the base sampling there).
    """
    accepted = mt2 > 0.0
    m = mt2 if accepted else -mt2
    A = a + a_off
    B = b * m
    C = c0 + kc * b
    lnz = math.log(z)
    ln1mz = math.log1p(-z)
    lf, fA, fB, fC = log_f_and_grad(A, B, C, z, lnz, ln1mz)
    d = lf - lfb
    ga = fA
    gb = fB * m + fC * kc
    capped = 0
    if d > log_zhead:
        d = log_zhead
        ga = 0.0
        gb = 0.0
        capped = 1
    if accepted:
        return d, ga, gb, capped
    fn = math.exp(lfB + d)     # F_theta as Pythia evaluates it: F_B * r (exactly F_B at the base)
    if fn >= 1.0:
        return -math.inf, 0.0, 0.0, capped
    s = -fn / (1.0 - fn)
    return math.log1p(-fn) - lrb, s * ga, s * gb, capped


@register_jitable
def trial_from_records(a, b, table, c, z, mt2, lfb, lfB, log_zhead):
    """trial_log_weight for one trial as the kernels hold it: flavour class c indexes `table`
    (a_off, c0, kc); log(1 - F_B) is derived from lfB here (rejected trials only) rather than stored,
    which saves the kernels 8 bytes of reads per trial."""
    lrb = 0.0
    if mt2 < 0.0:
        lrb = math.log1p(-math.exp(lfB))
    return trial_log_weight(a, b, table[c, 0], table[c, 1], table[c, 2], z, mt2, lfb, lfB, lrb, log_zhead)


@register_jitable
def strided_trial_sums(a, b, table, cls, z, mt2, lfb, lfB, log_zhead, t, t1, stride):
    """Sum of trial_from_records over trials t, t + stride, ... < t1 of one event: (log w, d/da,
    d/db, capped count). The CPU kernel walks an event with stride 1, a CUDA lane with the warp size."""
    lw = 0.0
    ga = 0.0
    gb = 0.0
    nc = 0
    while t < t1:
        w, da, db, cp = trial_from_records(a, b, table, cls[t], z[t], mt2[t], lfb[t], lfB[t], log_zhead)
        lw += w
        ga += da
        gb += db
        nc += cp
        t += stride
    return lw, ga, gb, nc


@register_jitable
def pt_log_weight(sigma, sigma_base, n_breaks, sum_pt2):
    """Sum over an event's breaks of Pythia's pTWeight, in log, and its d/dsigma.

    Per break with dimensionless Gaussian pT2 (any width multiplier cancels in the ratio):
    w = r^2 exp(-pT2 (r^2 - 1) / 2), r = sigma_B / sigma.
    """
    r = sigma_base / sigma
    r2 = r * r
    lw = 2.0 * n_breaks * math.log(r) - 0.5 * (r2 - 1.0) * sum_pt2
    dlw = (-2.0 * n_breaks + sum_pt2 * r2) / sigma
    return lw, dlw


@register_jitable
def base_log_f(a, b, a_off, c0, kc, z, mt2):
    """log f_B(z) at the base point (no gradient): used once per dataset."""
    m = mt2 if mt2 > 0.0 else -mt2
    lf, _, _, _ = log_f_and_grad(a + a_off, b * m, c0 + kc * b, z, math.log(z), math.log1p(-z))
    return lf
