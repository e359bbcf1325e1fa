"""The sliced Wasserstein loss's inner sums on the CPU, fused (numba): no [rows, directions, events]
intermediate, and the gradient from one forward and one backward sweep per direction.

For one row r (a parameter point or a bootstrap replica) of signed masses m (the simulated weights, then
minus the target weights, each normalized) and direction p with the events' sorted order o_p and the gaps
du_p between consecutive sorted projections,

    S_rp = sum_{k=0}^{M-2} |c_k| du_pk,            c_k = sum_{i<=k} m_{o_p(i)}      (cumulative mass),
    dS_rp / dm_{o_p(i)} = sum_{k=i}^{M-2} sign(c_k) du_pk,                            (sign(0) = 0)

the same sums as torch's cumsum, abs and sum (losses._swd_chunk), equal to rounding (tested at 1e-12
relative). `swd_mean` returns L_r = (1/P) sum_p S_rp [R] and, when asked, G_r = dL_r / dm [R, M], made in
the same sweeps while the direction's data are in cache. Each thread keeps its own gradient row (threads x M
float64) and its own signs (M int8).
"""
import numpy as np
from numba import get_num_threads, njit, prange


@njit(parallel=True, cache=True)
def _sums(mass, order, du, out):
    R, M = mass.shape
    P = order.shape[0]
    for t in prange(R * P):
        r = t // P
        p = t - r * P
        c = 0.0
        s = 0.0
        for k in range(M - 1):
            c += mass[r, order[p, k]]
            s += abs(c) * du[p, k]
        out[r, p] = s


@njit(parallel=True, cache=True)
def _sums_and_grad(mass, order, du, sums, buf, signs, grad):
    R, M = mass.shape
    P = order.shape[0]
    T = buf.shape[0]
    for r in range(R):
        for t in prange(T):
            row = buf[t]
            row[:] = 0.0
            sg = signs[t]
            for p in range(t, P, T):
                c = 0.0
                s = 0.0
                for k in range(M - 1):
                    c += mass[r, order[p, k]]
                    s += abs(c) * du[p, k]
                    sg[k] = 1 if c > 0.0 else (-1 if c < 0.0 else 0)
                sums[r, p] = s
                acc = 0.0
                for k in range(M - 2, -1, -1):
                    acc += sg[k] * du[p, k]
                    row[order[p, k]] += acc
        for j in prange(M):
            v = 0.0
            for t in range(T):
                v += buf[t, j]
            grad[r, j] = v / P


def swd_mean(mass: np.ndarray, order: np.ndarray, du: np.ndarray, want_grad: bool):
    """(L [R], G [R, M] or None) for mass [R, M] float64, order [P, M] int32 or int64 and du [P, M-1] float64
    (see the module docstring)."""
    R, M = mass.shape
    P = order.shape[0]
    sums = np.empty((R, P))
    if not want_grad:
        _sums(mass, order, du, sums)
        return sums.mean(1), None
    T = max(1, min(get_num_threads(), P))
    grad = np.empty((R, M))
    _sums_and_grad(mass, order, du, sums, np.empty((T, M)), np.empty((T, max(M - 1, 1)), np.int8), grad)
    return sums.mean(1), grad
