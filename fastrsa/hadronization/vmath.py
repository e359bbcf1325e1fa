"""exp and log in float64 that LLVM can vectorize: the elementary functions of the CPU weight kernel.

numba lowers math.exp and math.log to calls into the C library, one value at a time, and PyPI's llvmlite
has no vector math library, so a loop that calls them runs scalar. These two functions are plain
arithmetic on the float's bits (np.float64(x).view(np.int64) compiles to a bit cast), so a numba loop over
them becomes AVX2/AVX-512 code. Both are exact to 2 units in the last place over their domains
(tests/test_vmath.py measures them against numpy on 6e5 arguments each):

    exp(x) = 2^k exp(r),  k = round(x / ln 2),  r = x - k ln 2 (ln 2 split in two so k ln2_hi is exact),
             exp(r) by its Taylor polynomial of degree 13 on |r| <= ln2 / 2 (truncation < 5e-18 relative);
    log(x) = e ln 2 + log(m),  x = m 2^e with m in [sqrt(1/2), sqrt(2)),
             log(m) = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...),  s = (m - 1)/(m + 1),  |s| <= 0.172,
             10 terms of the series (truncation < 3e-17 relative).

log_pair_core(x, y) gives log x and log y from one division (the kernel's log z and log(1 - z)).
Callers compile with error_model="numpy" (a division then needs no zero check, which would stop the
vectorizer). The domains are what the kernel passes, and no special value is handled: exp_core takes
-708 <= x <= log(DBL_MAX) = 709.78, the logs a normal, finite x > 0.
"""
import numpy as np
from numba.extending import register_jitable

LN2_HI = 6.93147180369123816490e-01     # ln 2 to 32 bits: k * LN2_HI is exact for |k| < 2^20
LN2_LO = 1.90821492927058770002e-10     # ln 2 - LN2_HI
INV_LN2 = 1.4426950408889634
ROUND = 6755399441055744.0              # 1.5 * 2^52: (y + ROUND) - ROUND rounds y to an integer
SQRT2 = 1.4142135623730951
TINY = 2.2250738585072014e-308          # smallest normal float64


@register_jitable
def exp_core(xc):
    """e^x for -708 <= x <= log(DBL_MAX) = 709.78 (no special values: for kernels whose arguments are
    bounded)."""
    kf = (xc * INV_LN2 + ROUND) - ROUND
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2^k as 2 * 2^(k-1): k = 1024 (x up to 709.78) has no float64 power of two of its own
    return (p + p) * np.int64((np.int64(kf) + 1022) << 52).view(np.float64)


@register_jitable
def _log_parts(x):
    """x = m 2^e with m in [sqrt(1/2), sqrt(2)) for a normal x > 0: (e, m - 1)."""
    bits = np.float64(x).view(np.int64)
    e = np.float64((bits >> 52) - 1023)
    m = np.int64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000).view(np.float64)     # [1, 2)
    if m > SQRT2:
        m = m * 0.5
        e = e + 1.0
    return e, m - 1.0


@register_jitable
def _log_series(e, s):
    """e ln 2 + 2 atanh(s), |s| <= 0.172."""
    w = s * s
    p = 2.0 / 19.0
    p = p * w + 2.0 / 17.0
    p = p * w + 2.0 / 15.0
    p = p * w + 2.0 / 13.0
    p = p * w + 2.0 / 11.0
    p = p * w + 2.0 / 9.0
    p = p * w + 2.0 / 7.0
    p = p * w + 2.0 / 5.0
    p = p * w + 2.0 / 3.0
    p = p * w + 2.0
    return e * LN2_HI + (e * LN2_LO + s * p)


@register_jitable
def log_core(x):
    """log x for a normal, finite x > 0 (no special values: for kernels whose arguments are such)."""
    e, f = _log_parts(x)
    return _log_series(e, f / (2.0 + f))


@register_jitable
def log_pair_core(x, y):
    """(log x, log y) for normal, finite x, y > 0, with one division for both: s_x = f_x / (2 + f_x) =
    f_x (2 + f_y) / ((2 + f_x)(2 + f_y)), and the same for y (about one ulp more than log_core)."""
    ex, fx = _log_parts(x)
    ey, fy = _log_parts(y)
    tx = 2.0 + fx
    ty = 2.0 + fy
    inv = 1.0 / (tx * ty)
    return _log_series(ex, fx * ty * inv), _log_series(ey, fy * tx * inv)
