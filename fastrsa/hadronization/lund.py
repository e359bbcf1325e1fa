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
def shape_constants(A, B, C):
    """What log f(z) needs of shape (A, B, C) beyond z itself, computed once per z sampling (every trial
    of one hadron shares A, B, C): zMax, 1/zMax, log zMax, log(1 - zMax) (0 when unused), the derivative
    of the exponent in zMax (zero at a true maximum), and dzMax/d(A, B, C)."""
    zm, zA, zB, zC = zmax_and_grad(A, B, C)
    lnzm = math.log(zm)
    dzm = -B / (zm * zm) + C / zm
    ln1mzm = 0.0
    if A >= AFROMZERO and zm < 1.0:
        ln1mzm = math.log1p(-zm)
        dzm += A / (1.0 - zm)
    return zm, 1.0 / zm, lnzm, ln1mzm, dzm, zA, zB, zC


@register_jitable
def log_f_coeffs(A, B, C):
    """log f(z) of shape (A, B, C) as a linear form in z's own 1/z, log z and log(1 - z), for kernels that
    evaluate many z of one z sampling at once (before the clamp at +-EXPMAX):
        log f(z) = e0 + eI / z + eL log z + eM log(1 - z),
        d log f / dA = gA0 + gAM log(1 - z),  d/dB = gB0 - 1/z,  d/dC = gC0 - log z,
    the same terms as log_f_given, zMax dependence included. Returns (e0, eI, eL, eM, gA0, gAM, gB0, gC0)."""
    zm, izm, lnzm, ln1mzm, dzm, zA, zB, zC = shape_constants(A, B, C)
    aon = 1.0 if A >= AFROMZERO else 0.0        # ln1mzm is 0 where zMax = 1 (see shape_constants)
    e0 = B * izm + C * lnzm - aon * A * ln1mzm
    return e0, -B, -C, aon * A, dzm * zA - aon * ln1mzm, aon, izm + dzm * zB, lnzm + dzm * zC


@register_jitable
def log_f_given(A, B, C, zm, izm, lnzm, ln1mzm, dzm, zA, zB, zC, iz, lnz, ln1mz):
    """log f(z) and d/d(A, B, C) from shape_constants(A, B, C) and z's own iz = 1/z, log z, log(1 - z)."""
    e = B * (izm - iz) + C * (lnzm - lnz)
    dA = 0.0
    if A >= AFROMZERO:
        if zm < 1.0:
            e += A * (ln1mz - ln1mzm)
            dA = ln1mz - ln1mzm
        else:
            # zMax = 1 only occurs with the a term off in Pythia; guard against log(0).
            e += A * ln1mz
            dA = ln1mz
    dB = izm - iz
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
def log_f_and_grad(A, B, C, z, lnz, ln1mz):
    """log f(z) for shape (A, B, C) and its derivatives (dA, dB, dC), zMax dependence included.

    lnz = log(z), ln1mz = log(1 - z) are passed in so that callers can reuse them across points.
    """
    zm, izm, lnzm, ln1mzm, dzm, zA, zB, zC = shape_constants(A, B, C)
    return log_f_given(A, B, C, zm, izm, lnzm, ln1mzm, dzm, zA, zB, zC, 1.0 / z, lnz, ln1mz)


@register_jitable
def trial_log_ratio(d, ga, gb, q, log_zhead):
    """One trial's log-weight from its log-ratio d = log f_theta(z) - log f_B(z) and dd/d(a, b).

    Pythia's weight: r = min(f_theta(z) / f_B(z), zHead); accepted trial (q < 0): r; rejected trial:
    (1 - F_B r) / (1 - F_B) = 1 - q (r - 1) = R with the odds q = F_B / (1 - F_B), F_B = f_B(z) / (fPrel
    zHead); its gradient factor is -F_theta / (1 - F_theta) = -q r / R. Exactly 1 at the base (r = 1); -inf
    where R <= 0 (F_theta >= 1). The CPU kernel evaluates the same formula vectorized (kernels/cpu.py).
    Returns (logw, dlogw/da, dlogw/db, capped) where capped = 1 when the ratio hit zHead (the new point is
    not covered by the base sampling there).
    """
    capped = 0
    if d > log_zhead:
        d = log_zhead
        ga = 0.0
        gb = 0.0
        capped = 1
    if q < 0.0:
        return d, ga, gb, capped
    r = math.exp(d)
    R = 1.0 - q * (r - 1.0)
    if R <= 0.0:
        return -math.inf, 0.0, 0.0, capped
    s = -(q * r) / R
    return math.log(R), s * ga, s * gb, capped


@register_jitable
def sampling_coeffs(a, b, at_base, a_off, c0, kc, m, b0, bI, bL, bM):
    """Once per z sampling, at theta = (a, b): the linear form of log f_theta (log_f_coeffs of A = a + a_off,
    B = b m, C = c0 + kc b; at the base point, at_base, the base's own coefficients b0..bM, so that every
    ratio there is exactly 1), its differences from the base's form, and the constant terms of d log f/d(a, b).
    Returns (e0, eI, eL, eM, d0, dI, dL, dM, gA0, gAM, gB0) for trial_terms; d log f / db = m d/dB + kc d/dC
    = gB0 - m/z - kc log z."""
    e0, eI, eL, eM, gA0, gAM, gB0, gC0 = log_f_coeffs(a + a_off, b * m, c0 + kc * b)
    if at_base:
        e0 = b0
        eI = bI
        eL = bL
        eM = bM
    return e0, eI, eL, eM, e0 - b0, eI - bI, eL - bL, eM - bM, gA0, gAM, m * gB0 + kc * gC0


@register_jitable
def trial_terms(iz, lnz, ln1mz, e0, eI, eL, eM, b0, bI, bL, bM, d0, dI, dL, dM, gA0, gAM, gB0, m, kc, base_clamps):
    """One trial's log-ratio d = log f_theta(z) - log f_B(z) and d/d(a, b) of log f_theta, from z's own
    iz = 1/z, log z, log(1 - z) and its z sampling's sampling_coeffs: log f_theta = e0 + eI/z + eL log z +
    eM log(1 - z), log f_B the same with b0..bM, each clamped to +-EXPMAX (a clamped log f has no gradient).
    d is formed from the differences d0..dM (exactly 0 at the base point) unless either side is clamped;
    the base's clamp is tested only where base_clamps (the sampling's flag, set once per dataset) says it
    can occur. The CPU kernel runs this over a sampling's trials in whole vectors, a CUDA lane over every
    32nd trial of its event: one formula on both."""
    e = e0 + eI * iz + eL * lnz + eM * ln1mz
    eb = b0 + bI * iz + bL * lnz + bM * ln1mz
    d = d0 + dI * iz + dL * lnz + dM * ln1mz
    clamp = (e > EXPMAX) | (e < -EXPMAX)
    clampb = base_clamps & ((eb > EXPMAX) | (eb < -EXPMAX))
    ec = (EXPMAX if e > 0.0 else -EXPMAX) if clamp else e
    ebc = (EXPMAX if eb > 0.0 else -EXPMAX) if clampb else eb
    dd = ec - ebc if (clamp | clampb) else d
    ga = 0.0 if clamp else gA0 + gAM * ln1mz
    gb = 0.0 if clamp else gB0 - m * iz - kc * lnz
    return dd, ga, gb


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
