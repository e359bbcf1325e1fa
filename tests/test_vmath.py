"""fastrsa's vectorizable exp and log (hadronization/vmath.py) against numpy, in numba as the kernels run
them (error_model="numpy", FMA contraction on): within 2 units in the last place over their domains, and
exact where the base point needs it (exp 0 = 1, log 1 = 0)."""
import math

import numpy as np
from numba import njit

from fastrsa.hadronization.vmath import exp_core, log_core, log_pair_core


@njit(error_model="numpy", fastmath={"contract"})
def _apply(x, which):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        if which == 0:
            out[i] = exp_core(x[i])
        elif which == 1:
            out[i] = log_core(x[i])
        elif which == 2:
            out[i] = log_pair_core(x[i], x[x.shape[0] - 1 - i])[0]     # paired with another argument
        else:
            out[i] = log_pair_core(x[x.shape[0] - 1 - i], x[i])[1]
    return out


EPS = np.finfo(np.float64).eps


def test_exp_within_two_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-708, 709.78, 300_000), rng.uniform(-1, 1, 300_000),
                        rng.uniform(-1e-9, 1e-9, 1000), [0.0, -0.0, 1e-300, 0.5 * math.log(2), -0.5 * math.log(2),
                                                         700.0, -700.0, -708.0, 709.5, 709.782712893384]])
    ref = np.exp(x)
    assert np.max(np.abs(_apply(x, 0) - ref) / ref) <= 2 * EPS
    assert _apply(np.zeros(1), 0)[0] == 1.0                     # exactly: the base point's ratio


def test_log_within_two_ulp():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(0, 1, 300_000), np.exp(rng.uniform(-700, 700, 300_000)),
                        1 - rng.uniform(0, 1e-6, 1000), 1 + rng.uniform(0, 1e-6, 1000),
                        [math.sqrt(2), math.sqrt(0.5), 2.0, 0.5, 1 - 2**-53, 2.2250738585072014e-308, 1.7e308]])
    ref = np.log(x)
    for which in (1, 2, 3):
        got = _apply(x, which)
        # absolute error within 2 ulp of the larger of |log x| and 1 (what the kernels' sums need)
        assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)) <= 2 * EPS
        assert _apply(np.ones(1), which)[0] == 0.0              # exactly: the base point's ratio
