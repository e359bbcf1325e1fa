"""fastrsa's vectorizable exp and log (hadronization/vmath.py) against numpy, in numba as the kernels run
them (error_model="numpy", FMA contraction on): within a few units in the last place everywhere, special
values as in C."""
import math

import numpy as np
from numba import njit

from fastrsa.hadronization.vmath import exp_core, log_core, log_pair_core, vexp, vlog


@njit(error_model="numpy", fastmath={"contract"})
def _apply(x, which):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        if which == 0:
            out[i] = vexp(x[i])
        elif which == 1:
            out[i] = vlog(x[i])
        elif which == 2:
            out[i] = exp_core(x[i])
        elif which == 3:
            out[i] = log_core(x[i])
        elif which == 4:
            out[i] = log_pair_core(x[i], x[x.shape[0] - 1 - i])[0]     # paired with another argument
        else:
            out[i] = log_pair_core(x[x.shape[0] - 1 - i], x[i])[1]
    return out


EPS = np.finfo(np.float64).eps


def test_exp_within_two_ulp_and_special_values():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-708, 709.78, 300_000), rng.uniform(-1, 1, 300_000),
                        rng.uniform(-1e-9, 1e-9, 1000), [0.0, -0.0, 1e-300, 0.5 * math.log(2), -0.5 * math.log(2),
                                                         700.0, -700.0, 709.5, 709.782712893384]])
    ref = np.exp(x)
    for which in (0, 2):
        got = _apply(x, which)
        assert np.max(np.abs(got - ref) / ref) <= 2 * EPS
    assert _apply(np.zeros(1), 0)[0] == 1.0                     # exactly: the base point's ratio
    special = np.array([-800.0, -np.inf, 800.0, np.inf, np.nan])
    got = _apply(special, 0)
    assert got[0] == 0.0 and got[1] == 0.0 and got[2] == np.inf and got[3] == np.inf and np.isnan(got[4])


def test_log_within_two_ulp_and_special_values():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(0, 1, 300_000), np.exp(rng.uniform(-700, 700, 300_000)),
                        1 - rng.uniform(0, 1e-6, 1000), 1 + rng.uniform(0, 1e-6, 1000),
                        [math.sqrt(2), math.sqrt(0.5), 2.0, 0.5, 1 - 2**-53, 2.2250738585072014e-308]])
    ref = np.log(x)
    for which in (1, 3, 4, 5):
        got = _apply(x, which)
        # absolute error within 2 ulp of the larger of |log x| and 1 (what the kernels' sums need)
        assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)) <= 2 * EPS
    assert _apply(np.ones(1), 1)[0] == 0.0                      # exactly: the base point's ratio
    special = np.array([0.0, -1.0, np.inf, np.nan, 5e-324, 1e-310])
    got = _apply(special, 1)
    assert got[0] == -np.inf and np.isnan(got[1]) and got[2] == np.inf and np.isnan(got[3])
    np.testing.assert_allclose(got[4:], np.log(special[4:]), rtol=2 * EPS)   # subnormals
