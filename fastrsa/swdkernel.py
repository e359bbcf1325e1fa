"""The sliced Wasserstein loss's inner sums on the CPU, fused (numba): no [rows, directions, events]
intermediate, and the value and the gradient from one sweep per direction.

For one row r (a parameter point or a bootstrap replica) of signed masses m (the simulated weights, then
minus the target weights, each normalized) and direction p with the events' sorted order o_p and the gaps
du_p between consecutive sorted projections,

    S_rp = sum_{k=0}^{M-2} |c_k| du_pk,            c_k = sum_{i<=k} m_{o_p(i)}      (cumulative mass),
    dS_rp / dm_{o_p(i)} = sum_{k=i}^{M-2} s_k du_pk = B_p - b_{i-1},              s_k = sign(c_k), sign(0) = 0,

with b_i = sum_{k<=i} s_k du_pk the running sum of the same sweep (b_{-1} = 0) and B_p = b_{M-2} its end. So
the sweep that makes c and S also hands every event its -b_{i-1} (added to a per-thread gradient row), and
B_p is added to every event at the end: one pass over the sorted order, no signs kept for a backward pass.
The masses and the gradient accumulators sit side by side ([events, 2]), so the random access into them
touches one cache line per event, not two.

The gradient is kept only for the events given in `mass` (the simulated ones: the target's masses are data,
unless a caller asks for them too by passing every event in `mass`); the target's masses are only read. When
every target mass of a row is one constant (an unweighted target, the common case), `target_mass` is that
one number per row, and the sweep touches memory only for simulated events: at 1e6 + 1e6 events, half the
random accesses. Several rows (a Hessian's points, bootstrap replicas) go through the sweep RB = 4 at a
time, with an event's RB masses and gradients side by side: one sorted order read, one cache line touched per
event, for RB rows. (Events without gradient accumulators add their nothing to one of SPREAD dummy slots, so
that no select is needed in the loop; SPREAD slots, not one, so that these updates form no chain.)

The sums are torch's cumsum, abs and sum (losses._swd_chunk) in the same order, so the loss is the same to
rounding; the gradient differs from the backward cumsum only by the rounding of B_p - b_{i-1} (tested at
1e-12 relative). `swd_mean` returns L_r = (1/P) sum_p S_rp [R] and, when asked, G_r = dL_r / dm [R, n_grad].
"""
import numpy as np
from numba import get_num_threads, njit, prange

SPREAD = 16      # target events' dummy gradient slots: consecutive updates of one slot would form a chain


@njit(parallel=True, cache=True, error_model="numpy")
def _sums(values, tmass, order, du, out):
    R, G = values.shape
    NT = tmass.shape[1]
    P, M = order.shape
    last, tlast = np.uint64(G - 1), np.uint64(NT - 1)
    for t in prange(R * P):
        r = t // P
        p = t - r * P
        c = 0.0
        s = 0.0
        for k in range(M - 1):
            i = np.uint64(order[p, k])
            v = values[r, min(i, last)]
            w = tmass[r, min(i - np.uint64(G), tlast)]         # unsigned: wraps past tlast for i < G
            c += v if i < G else w
            s += abs(c) * du[p, k]
        out[r, p] = s


@njit(parallel=True, cache=True, error_model="numpy")
def _sums_and_grad(values, tmass, order, du, sums, btot, pair, grad):
    R, G = values.shape
    NT = tmass.shape[1]
    P, M = order.shape
    T = pair.shape[0]
    n_grad = grad.shape[1]
    tlast = np.uint64(NT - 1)
    for r in range(R):
        for t in prange(T):
            pr = pair[t]
            for j in range(G):
                pr[j, 0] = values[r, j]
                pr[j, 1] = 0.0
            for j in range(G, G + SPREAD):
                pr[j, 0] = 0.0
                pr[j, 1] = 0.0
            for p in range(t, P, T):
                c = 0.0
                s = 0.0
                b = 0.0
                for k in range(M - 1):
                    i = np.uint64(order[p, k])
                    inside = i < G
                    j = i if inside else np.uint64(G) + (np.uint64(k) & np.uint64(SPREAD - 1))
                    v = pr[j, 0]
                    pr[j, 1] -= b
                    w = tmass[r, min(i - np.uint64(G), tlast)]
                    c += v if inside else w
                    d = du[p, k]
                    s += abs(c) * d
                    b += d if c > 0.0 else (-d if c < 0.0 else 0.0)
                i = np.uint64(order[p, M - 1])
                if i < G:
                    pr[i, 1] -= b
                sums[r, p] = s
                btot[r, p] = b
        bt = 0.0
        for p in range(P):
            bt += btot[r, p]
        for j in prange(n_grad):
            v = bt
            for t in range(T):
                v += pair[t, j, 1]
            grad[r, j] = v / P


RB = 4           # rows per sweep in the blocked kernel: one event's 4 (mass, gradient) pairs fill a cache line


@njit(parallel=True, cache=True, error_model="numpy")
def _sums_and_grad_blocked(values, tmass, order, du, sums, btot, pair, grad):
    """_sums_and_grad for RB rows at a time: values [blocks, G, RB] and tmass [blocks, NT, RB] (rows
    last, so that one event's rows share a cache line), sums and btot [blocks, RB, P], pair [T, G + SPREAD,
    RB, 2], grad [R, n_grad]."""
    nblk, G, _ = values.shape
    NT = tmass.shape[1]
    P, M = order.shape
    T = pair.shape[0]
    R, n_grad = grad.shape
    tlast = np.uint64(NT - 1)
    for blk in range(nblk):
        tm = tmass[blk]
        for t in prange(T):
            pr = pair[t]
            for j in range(G):
                for q in range(RB):
                    pr[j, q, 0] = values[blk, j, q]
                    pr[j, q, 1] = 0.0
            for j in range(G, G + SPREAD):
                for q in range(RB):
                    pr[j, q, 0] = 0.0
                    pr[j, q, 1] = 0.0
            for p in range(t, P, T):
                c0 = c1 = c2 = c3 = 0.0
                s0 = s1 = s2 = s3 = 0.0
                b0 = b1 = b2 = b3 = 0.0
                for k in range(M - 1):
                    i = np.uint64(order[p, k])
                    inside = i < G
                    j = i if inside else np.uint64(G) + (np.uint64(k) & np.uint64(SPREAD - 1))
                    ti = min(i - np.uint64(G), tlast)
                    c0 += pr[j, 0, 0] if inside else tm[ti, 0]
                    c1 += pr[j, 1, 0] if inside else tm[ti, 1]
                    c2 += pr[j, 2, 0] if inside else tm[ti, 2]
                    c3 += pr[j, 3, 0] if inside else tm[ti, 3]
                    pr[j, 0, 1] -= b0
                    pr[j, 1, 1] -= b1
                    pr[j, 2, 1] -= b2
                    pr[j, 3, 1] -= b3
                    d = du[p, k]
                    s0 += abs(c0) * d
                    s1 += abs(c1) * d
                    s2 += abs(c2) * d
                    s3 += abs(c3) * d
                    b0 += d if c0 > 0.0 else (-d if c0 < 0.0 else 0.0)
                    b1 += d if c1 > 0.0 else (-d if c1 < 0.0 else 0.0)
                    b2 += d if c2 > 0.0 else (-d if c2 < 0.0 else 0.0)
                    b3 += d if c3 > 0.0 else (-d if c3 < 0.0 else 0.0)
                i = np.uint64(order[p, M - 1])
                if i < G:
                    pr[i, 0, 1] -= b0
                    pr[i, 1, 1] -= b1
                    pr[i, 2, 1] -= b2
                    pr[i, 3, 1] -= b3
                sums[blk, 0, p], sums[blk, 1, p], sums[blk, 2, p], sums[blk, 3, p] = s0, s1, s2, s3
                btot[blk, 0, p], btot[blk, 1, p], btot[blk, 2, p], btot[blk, 3, p] = b0, b1, b2, b3
        for q in range(min(RB, R - blk * RB)):
            bt = 0.0
            for p in range(P):
                bt += btot[blk, q, p]
            r = blk * RB + q
            for j in prange(n_grad):
                v = bt
                for t in range(T):
                    v += pair[t, j, q, 1]
                grad[r, j] = v / P


def _blocked(x: np.ndarray) -> np.ndarray:
    """[R, N] -> [ceil(R / RB), N, RB], padded with rows of zeros (which add nothing anywhere)."""
    R, N = x.shape
    nblk = -(-R // RB)
    out = np.zeros((nblk * RB, N))
    out[:R] = x
    return np.ascontiguousarray(out.reshape(nblk, RB, N).transpose(0, 2, 1))


def swd_mean(mass: np.ndarray, target_mass: np.ndarray | None, order: np.ndarray, du: np.ndarray,
             want_grad: bool):
    """(L [R], G [R, N] or None) for the masses of the first N events mass [R, N] float64, the other events'
    target_mass [R, M - N] float64 (or [R, 1]: every one of them has that mass; or None when N = M), the
    sort order [P, M] int32 or int64 and du [P, M - 1] float64 (see the module docstring). G is the gradient
    with respect to `mass`."""
    R, G = mass.shape
    P, M = order.shape
    if target_mass is None:
        if G != M:
            raise ValueError(f"mass covers {G} of the sort order's {M} events and no target_mass was given")
        target_mass = np.zeros((R, 1))
    elif target_mass.shape[0] != R or target_mass.shape[1] not in (1, M - G):
        raise ValueError(f"target_mass has shape {target_mass.shape}, expected ({R}, {M - G}) or ({R}, 1)")
    sums = np.empty((R, P))
    if not want_grad:
        _sums(mass, target_mass, order, du, sums)
        return sums.mean(1), None
    T = max(1, min(get_num_threads(), P))
    grad = np.empty((R, G))
    if R == 1:
        _sums_and_grad(mass, target_mass, order, du, sums, np.empty((R, P)), np.empty((T, G + SPREAD, 2)), grad)
        return sums.mean(1), grad
    nblk = -(-R // RB)
    bsums = np.empty((nblk, RB, P))
    _sums_and_grad_blocked(_blocked(mass), _blocked(target_mass), order, du, bsums, np.empty((nblk, RB, P)),
                           np.empty((T, G + SPREAD, RB, 2)), grad)
    return bsums.reshape(nblk * RB, P)[:R].mean(1), grad
