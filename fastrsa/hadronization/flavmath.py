"""The flavour-weight math of Pythia 8.317 (WeightsFragmentation::flavWeight), the single source shared by
the CPU and GPU kernels (numba `register_jitable`).

Pythia counts, per event, 13 kinds of flavour choice at its string breaks (`flavBreaks`, see
docs/weights.md for the list). A flavour weight is a product over the kinds of a per-kind factor raised to
the event's count, so

    log w(theta) = sum_k n_k L_k(theta),   L_k = log factor_k(theta) - log factor_k(base),

and one table L [13] with its Jacobian dL [13, 4] per parameter point serves every event (the events only
enter through their integer counts). The factors use the four primary parameters (rho, xi, x, y) and five
derived diquark ratios of Pythia's StringFlav (its q -> B Bbar case), which depend on rho and x only
through R = rho x and on y through Y1 = 3 c1 y and Y2 = 6 c2 y, with c1, c2 the ratios of the baryon
SU(6) weight maxima (from StringFlav:decupletSup; both 1 and 4/3 at Pythia's default):

    d0 = (2 R (1 + Y1) + R^2 Y2) / ((1 + Y1)(1 + R) + Y2)    s/u of the popcorn quark
    d1 = 2 R (1 + Y1) / (1 + Y1 + Y2)                         s/u of the vertex quark (light popcorn)
    d2 = R Y2 / (1 + Y1)                                      s/u of the vertex quark (strange popcorn)
    d3 = Y2 / (1 + Y1 + Y2)                                   same-flavour light diquark ratio
    d6 = Y1                                                   spin 1 / spin 0 of ud

The theta columns of this engine are (rho, xi, x, y) (fastrsa.params.FLAVOUR_PARAMS).
"""
import math

from numba.extending import register_jitable

N_FLAV = 13                     # Pythia 8.317's flavBreaks entries (FlavorVariations pads to 14 with a 0)
FLAV_COLUMNS = ("rho", "xi", "x", "y")
F_RHO, F_XI, F_X, F_Y = 0, 1, 2, 3


@register_jitable
def derived(R, y, c1, c2):
    """(d0, d1, d2, d3, d6) of the module docstring."""
    y1 = 3.0 * c1 * y
    y2 = 6.0 * c2 * y
    p = 1.0 + y1
    den = p + y2
    return ((2.0 * R * p + R * R * y2) / (p * (1.0 + R) + y2), 2.0 * R * p / den, R * y2 / p, y2 / den, y1)


@register_jitable
def derived_grad(R, y, c1, c2):
    """Partial derivatives of the derived ratios: (d0/dR, d0/dy, d1/dR, d1/dy, d2/dR, d2/dy, d3/dy, d6/dy)
    (d3 and d6 do not depend on R)."""
    y1 = 3.0 * c1 * y
    y2 = 6.0 * c2 * y
    p = 1.0 + y1
    den = p + y2
    num0 = 2.0 * R * p + R * R * y2
    m0 = p * (1.0 + R) + y2
    n_r = 2.0 * p + 2.0 * R * y2
    n_y = 6.0 * c1 * R + 6.0 * c2 * R * R
    m_r = p
    m_y = 3.0 * c1 * (1.0 + R) + 6.0 * c2
    d0r = (n_r * m0 - num0 * m_r) / (m0 * m0)
    d0y = (n_y * m0 - num0 * m_y) / (m0 * m0)
    d1r = 2.0 * p / den
    d1y = -12.0 * c2 * R / (den * den)
    d2r = y2 / p
    d2y = 6.0 * c2 * R / (p * p)
    d3y = 6.0 * c2 / (den * den)
    d6y = 3.0 * c1
    return d0r, d0y, d1r, d1y, d2r, d2y, d3y, d6y


@register_jitable
def _put(L, dL, k, val, g_rho, g_xi, g_x, g_y):
    L[k] = val
    dL[k, F_RHO] = g_rho
    dL[k, F_XI] = g_xi
    dL[k, F_X] = g_x
    dL[k, F_Y] = g_y


@register_jitable
def flavour_table(rho, xi, x, y, b_rho, b_xi, b_x, b_y, c1, c2, L, dL):
    """Fill L [13] with log factor_k(theta) - log factor_k(base) and dL [13, 4] with its derivatives in
    (rho, xi, x, y), in Pythia's order of the flavBreaks counters:

    0 every choice that could have given a diquark: (1 + xi)^-1        7 strange popcorn: (2 + d2)^-1
    1 every quark-pair break: (2 + rho)^-1                             8 ... with a strange vertex quark: d2
    2 ... that made s sbar: rho                                        9 light popcorn, same-flavour vertex: d3
    3 every diquark break: xi (2 + d0)^-1                             10 light popcorn, other light vertex: 1 - d3
    4 ... with a strange popcorn quark: d0                            11 popcorn and vertex flavours differ: (1 + d6)^-1
    5 light popcorn: (2 + d1)^-1                                      12 ... and the diquark has spin 1: d6
    6 ... with a strange vertex quark: d1
    """
    R = rho * x
    bR = b_rho * b_x
    d0, d1, d2, d3, d6 = derived(R, y, c1, c2)
    e0, e1, e2, e3, e6 = derived(bR, b_y, c1, c2)
    d0r, d0y, d1r, d1y, d2r, d2y, d3y, d6y = derived_grad(R, y, c1, c2)
    # d/drho = x d/dR, d/dx = rho d/dR
    _put(L, dL, 0, math.log1p(b_xi) - math.log1p(xi), 0.0, -1.0 / (1.0 + xi), 0.0, 0.0)
    _put(L, dL, 1, math.log(2.0 + b_rho) - math.log(2.0 + rho), -1.0 / (2.0 + rho), 0.0, 0.0, 0.0)
    _put(L, dL, 2, math.log(rho) - math.log(b_rho), 1.0 / rho, 0.0, 0.0, 0.0)
    s = -1.0 / (2.0 + d0)
    _put(L, dL, 3, math.log(xi) - math.log(b_xi) + math.log(2.0 + e0) - math.log(2.0 + d0),
         s * d0r * x, 1.0 / xi, s * d0r * rho, s * d0y)
    s = 1.0 / d0
    _put(L, dL, 4, math.log(d0) - math.log(e0), s * d0r * x, 0.0, s * d0r * rho, s * d0y)
    s = -1.0 / (2.0 + d1)
    _put(L, dL, 5, math.log(2.0 + e1) - math.log(2.0 + d1), s * d1r * x, 0.0, s * d1r * rho, s * d1y)
    s = 1.0 / d1
    _put(L, dL, 6, math.log(d1) - math.log(e1), s * d1r * x, 0.0, s * d1r * rho, s * d1y)
    s = -1.0 / (2.0 + d2)
    _put(L, dL, 7, math.log(2.0 + e2) - math.log(2.0 + d2), s * d2r * x, 0.0, s * d2r * rho, s * d2y)
    s = 1.0 / d2
    _put(L, dL, 8, math.log(d2) - math.log(e2), s * d2r * x, 0.0, s * d2r * rho, s * d2y)
    _put(L, dL, 9, math.log(d3) - math.log(e3), 0.0, 0.0, 0.0, d3y / d3)
    _put(L, dL, 10, math.log1p(-d3) - math.log1p(-e3), 0.0, 0.0, 0.0, -d3y / (1.0 - d3))
    _put(L, dL, 11, math.log1p(e6) - math.log1p(d6), 0.0, 0.0, 0.0, -d6y / (1.0 + d6))
    _put(L, dL, 12, math.log(d6) - math.log(e6), 0.0, 0.0, 0.0, d6y / d6)
