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
random accesses. (Events without gradient accumulators add their nothing to one of SPREAD dummy slots, so
that no select is needed in the loop; SPREAD slots, not one, so that these updates form no chain.)

Several rows with a gradient and no runs (a bootstrap's replicas, whose target is weighted) go through one
sweep per direction RB = 8 at a time (_sums_and_grad_rows): every event's 8 masses in one 64-byte-aligned
cache line, its 8 gradient accumulators in another, both prefetched, so that one gather serves 8 rows (64
bytes per event, and 64 per simulated event and thread: 0.26 GB at 1e6 + 1e6 events on 2 threads, 1.1 GB
on 16, against 16 bytes per simulated event and thread one row at a time); the
same additions in the same order per row, so the same bits as one row at a time (tested). The 64 bootstrap
rows of the paper's problem: 29 s against 80 s. (A first try, 4 rows with two selected loads per event and
no prefetch or alignment, was 1.5-1.9x slower per row and was dropped on 2026-11-24.)

The loss numbers its events by locality (`locality_order`, applied in losses.SlicedWasserstein): events near
in observable space sit near in memory, so the gathers of a sweep often land on lines and pages that are
already cached. A fit step's loss at 1e6 + 1e6 events: 0.34-0.41 s against 0.76-0.85 s.

With an unweighted target (one constant mass t per row) and a gradient to take, as in a fit's steps,
the sweep goes over runs instead (_sums_and_grad_runs, on the runs that sweep_runs makes once per sort
order): after a simulated event at position k, the n target events up to the next simulated one move c by
t each, so where c keeps its sign over the run, the run adds sign(c) (c g0 + t g1) to S and sign(c) g0 to
b, with g0 = sum_{j=0..n} du_{k+j} and g1 = sum_{j=0..n} j du_{k+j} fixed by the sort order. Only the
simulated events are visited (their masses and gradients are the random accesses); a run in which c
reaches or crosses 0 is summed event by event. The same S and gradient to rounding (tested), with 24
bytes per simulated event and direction kept for the runs. One difference is not rounding: where c is
exactly 0 over a gap (a kink of S, which samples of equal weights can reach), the merged sweep takes
sign(0) = 0, as torch does, while c + n t, rounded once, may land beside 0 and take a one-sided
derivative. Both are subgradients of the convex S (tested).

The sums are torch's cumsum, abs and sum (losses._swd_chunk) in the same order, so the loss is the same to
rounding; the gradient differs from the backward cumsum only by the rounding of B_p - b_{i-1} (tested at
1e-12 relative). `swd_mean` returns L_r = (1/P) sum_p S_rp [R] and, when asked, G_r = dL_r / dm [R, n_grad].

The sort orders themselves come from `argsort_rows` (once, when the loss is built): a radix sort of each
projection's float64 bits, in the order of a stable comparison sort bit for bit.
"""
import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

SPREAD = 16      # target events' dummy gradient slots: consecutive updates of one slot would form a chain
AHEAD = 64       # the sweep prefetches the masses of the event this many sorted positions ahead


@intrinsic
def _prefetch(typingctx, arr, i, j):
    """Ask the CPU to fetch arr[i, j]'s cache line (LLVM's prefetch: for writing, into all cache levels).
    Out-of-order execution alone keeps only about 10 of the sweep's random accesses in flight; with the
    prefetch, 64 positions ahead, the loss of the paper's 1e6 + 1e6 events took 0.77 s per step instead of
    1.34 s (asv_bench/README.md). The intrinsic is declared through llvmlite, which names it for the LLVM
    that numba is built on. It changes no result."""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]], wraparound=False)
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p.type], fnty)
        builder.call(fn, [i8p, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(arr, i, j), codegen


@njit(inline="always")
def _grad_row(r, btot, acc, col, grad):
    """Row r's gradient from a sweep's per-thread accumulators (acc[:, :, col], each event's -b_{i-1} summed
    over the thread's directions) and the directions' ends B_p = btot[r, p], averaged over directions.
    Inlined, so that its loop runs in parallel in the caller."""
    P = btot.shape[1]
    T = acc.shape[0]
    bt = 0.0
    for p in range(P):
        bt += btot[r, p]
    for j in prange(grad.shape[1]):
        v = bt
        for t in range(T):
            v += acc[t, j, col]
        grad[r, j] = v / P


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
                    ia = np.uint64(order[p, min(k + AHEAD, M - 1)])
                    _prefetch(pr, ia if ia < G else np.uint64(G), np.uint64(0))
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
        _grad_row(r, btot, pair, 1, grad)


RB = 8           # rows per sweep in _sums_and_grad_rows: one event's 8 masses (or gradients) fill a cache line


@njit(parallel=True, cache=True, error_model="numpy")
def _sums_and_grad_rows(mt, order, du, G, r0, sums, btot, acc, grad):
    """_sums_and_grad for the RB rows r0 .. r0 + RB - 1 in one sweep per direction: mt [M, RB] holds every
    event's masses (simulated, then target), rows last, so that one event's RB masses are one cache line
    (64-byte aligned) and its RB gradient accumulators (acc [T, G + SPREAD, RB], per thread) another.
    Each row's c, S and b go through the same additions in the same order as in _sums_and_grad, so the
    results are the same to the bit (tested). Rows past the last real one hold zero masses."""
    M = mt.shape[0]
    P = order.shape[0]
    T = acc.shape[0]
    for t in prange(T):
        ac = acc[t]
        for j in range(G + SPREAD):
            for r in range(RB):
                ac[j, r] = 0.0
        c = np.empty(RB)
        s = np.empty(RB)
        b = np.empty(RB)
        for p in range(t, P, T):
            for r in range(RB):
                c[r] = 0.0
                s[r] = 0.0
                b[r] = 0.0
            for k in range(M - 1):
                ia = np.uint64(order[p, min(k + AHEAD, M - 1)])
                _prefetch(mt, ia, np.uint64(0))
                _prefetch(ac, ia if ia < G else np.uint64(G), np.uint64(0))
                i = np.uint64(order[p, k])
                j = i if i < G else np.uint64(G) + (np.uint64(k) & np.uint64(SPREAD - 1))
                d = du[p, k]
                for r in range(RB):
                    ac[j, r] -= b[r]
                    cr = c[r] + mt[i, r]
                    c[r] = cr
                    s[r] += abs(cr) * d
                    b[r] += d if cr > 0.0 else (-d if cr < 0.0 else 0.0)
            i = np.uint64(order[p, M - 1])
            if i < G:
                for r in range(RB):
                    ac[i, r] -= b[r]
            for r in range(RB):
                sums[r0 + r, p] = s[r]
                btot[r0 + r, p] = b[r]
    for r in range(r0, min(r0 + RB, grad.shape[0])):
        _grad_row(r, btot, acc, r - r0, grad)


def _aligned(shape: tuple) -> np.ndarray:
    """An uninitialized float64 array whose start is 64-byte aligned (a cache line)."""
    n = int(np.prod(shape))
    buf = np.empty(n + 8)
    off = (-buf.ctypes.data % 64) // 8
    return buf[off:off + n].reshape(shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _runs(order, du, G, sim_order, run_len, g0, g1, lead_n, lead):
    """Per direction p, the sort order as runs: each simulated event (order < G) in sorted order, with the
    run of n target events that follows it before the next simulated one, and that run's gap sums
    g0 = sum_{j=0..n} du_{k+j} and g1 = sum_{j=0..n} j du_{k+j} (k: the simulated event's position; only the
    gaps that exist, k + j <= M - 2). lead_n[p] = the target events before the first simulated one, lead[p]
    = (sum_{k<lead_n} (k + 1) du_k, sum_{k<lead_n} du_k)."""
    P, M = order.shape
    for p in prange(P):
        k = 0
        a = 0.0
        d = 0.0
        while k < M and order[p, k] >= G:
            if k <= M - 2:
                a += (k + 1) * du[p, k]
                d += du[p, k]
            k += 1
        lead_n[p] = k
        lead[p, 0] = a
        lead[p, 1] = d
        q = 0
        while k < M:
            sim_order[p, q] = order[p, k]
            n = 0
            s0 = du[p, k] if k <= M - 2 else 0.0
            s1 = 0.0
            k += 1
            while k < M and order[p, k] >= G:
                n += 1
                if k <= M - 2:
                    s0 += du[p, k]
                    s1 += n * du[p, k]
                k += 1
            run_len[p, q] = n
            g0[p, q] = s0
            g1[p, q] = s1
            q += 1


def sweep_runs(order: np.ndarray, du: np.ndarray, n_sim: int) -> tuple:
    """The sort order as runs of target events after each simulated one (_runs), for swd_mean with an
    unweighted target: (sim_order [P, n_sim], run_len [P, n_sim] int32, g0, g1 [P, n_sim] float64, lead_n [P]
    int64, lead [P, 2] float64), 24 bytes per simulated event and direction (28 with an int64 order)."""
    P, M = order.shape
    if not 1 <= n_sim <= M:
        raise ValueError(f"n_sim = {n_sim}; give between 1 and the sort order's {M}")
    out = (np.empty((P, n_sim), order.dtype), np.empty((P, n_sim), np.int32), np.empty((P, n_sim)),
           np.empty((P, n_sim)), np.empty(P, np.int64), np.empty((P, 2)))
    _runs(order, du, n_sim, *out)
    return out


@njit(parallel=True, cache=True, error_model="numpy", fastmath={"contract"})
def _sums_and_grad_runs(values, tc, sim_order, run_len, g0, g1, lead_n, lead, du, sums, btot, pair, grad):
    """_sums_and_grad for a target whose masses are all tc[r] (one constant per row), over the runs of
    sweep_runs: between two simulated events the cumulative mass c moves by tc per target event, so a run
    in which c keeps its sign (at its start and, c + n tc, at its end) adds sign(c) (c g0 + tc g1) to S and
    sign(c) g0 to b in one step, and its events need no visit. A run in which c reaches or crosses 0 is
    summed event by event. The same S and gradient as the merged sweep to rounding (module docstring: where
    c is exactly 0 over a gap the two may take different one-sided derivatives)."""
    R, G = values.shape
    P = sim_order.shape[0]
    M2 = du.shape[1] - 1            # the last position with a gap
    T = pair.shape[0]
    for r in range(R):
        t_c = tc[r]
        for t in prange(T):
            pr = pair[t]
            for j in range(G):
                pr[j, 0] = values[r, j]
                pr[j, 1] = 0.0
            for p in range(t, P, T):
                k = lead_n[p]
                c = k * t_c
                s = abs(t_c) * lead[p, 0]
                b = (1.0 if t_c > 0.0 else (-1.0 if t_c < 0.0 else 0.0)) * lead[p, 1]
                for q in range(G):
                    ia = np.uint64(sim_order[p, min(q + AHEAD, G - 1)])
                    _prefetch(pr, ia, np.uint64(0))
                    i = np.uint64(sim_order[p, q])
                    pr[i, 1] -= b
                    c += pr[i, 0]
                    n = run_len[p, q]
                    ce = c + n * t_c
                    if (c > 0.0 and ce > 0.0) or (c < 0.0 and ce < 0.0):
                        sg = 1.0 if c > 0.0 else -1.0
                        s += sg * (c * g0[p, q] + t_c * g1[p, q])
                        b += sg * g0[p, q]
                    else:               # c reaches or crosses 0 in this run: event by event
                        ce = c
                        for j in range(n + 1):
                            if j > 0:
                                ce += t_c
                            if k + j <= M2:
                                d = du[p, k + j]
                                s += abs(ce) * d
                                b += d if ce > 0.0 else (-d if ce < 0.0 else 0.0)
                    c = ce
                    k += n + 1
                sums[r, p] = s
                btot[r, p] = b
        _grad_row(r, btot, pair, 1, grad)


_SIGN = np.uint64(1) << np.uint64(63)
DIGIT = 16                                  # bits per radix pass: 4 passes over 64-bit keys
_NB = 1 << DIGIT
_MASK = np.uint64(_NB - 1)


@njit(parallel=True, cache=True)
def _argsort_rows(x, order, srt, gaps):
    """Per row p: order[p] = the stable ascending argsort of x[p] and srt[p] = the sorted values (and, when
    gaps has M - 1 columns, gaps[p, i] = srt[p, i + 1] - srt[p, i], torch.diff's bits), by a
    least-significant-digit radix sort of the values' bits. A float64's bits, with the sign bit flipped for
    a positive value and every bit flipped for a negative one, sort as unsigned integers in the order of
    the values; -0.0 is first made +0.0, so that it ties with 0.0 as in a comparison sort, and every NaN
    one positive NaN, so that NaNs come last in index order as torch sorts them. Every pass is stable and
    the start is 0, 1, 2, ..., so ties keep their index order: the same order as a stable comparison sort
    (torch.sort(stable=True)), bit for bit. The four digits' counts come from one pass; a digit all values
    share is skipped. srt holds +0.0 for -0.0 and that one NaN for any NaN (the differences of the sorted
    values are the same)."""
    P, M = x.shape
    for p in prange(P):
        keys = np.empty(M, np.uint64)
        k2 = np.empty(M, np.uint64)
        idx = np.empty_like(order[p])
        i2 = np.empty_like(order[p])
        count = np.zeros((64 // DIGIT, _NB), np.int64)
        v = np.empty(M)
        for i in range(M):
            y = x[p, i] + 0.0                   # -0.0 -> +0.0
            v[i] = np.nan if y != y else y      # every NaN one positive NaN: last, in index order
        bits = v.view(np.uint64)
        for i in range(M):
            b = bits[i]
            k = ~b if b >= _SIGN else b | _SIGN
            keys[i] = k
            idx[i] = i
            for g in range(64 // DIGIT):
                count[g, (k >> np.uint64(g * DIGIT)) & _MASK] += 1
        for g in range(64 // DIGIT):
            if count[g].max() == M:
                continue
            sh = np.uint64(g * DIGIT)
            tot = 0
            for d in range(_NB):
                c = count[g, d]
                count[g, d] = tot
                tot += c
            for i in range(M):
                k = keys[i]
                d = (k >> sh) & _MASK
                pos = count[g, d]
                count[g, d] = pos + 1
                k2[pos] = k
                i2[pos] = idx[i]
            keys, k2 = k2, keys
            idx, i2 = i2, idx
        out = srt[p].view(np.uint64)
        for i in range(M):
            k = keys[i]
            order[p, i] = idx[i]
            out[i] = k ^ _SIGN if k >= _SIGN else ~k
        if gaps.shape[1] == M - 1:
            for i in range(M - 1):
                gaps[p, i] = srt[p, i + 1] - srt[p, i]


def argsort_rows(x: np.ndarray, index_dtype=np.int32, order: np.ndarray | None = None,
                 gaps: np.ndarray | None = None):
    """(order, sorted) of each row of x [P, M] float64: the stable ascending argsort (index_dtype) and the
    sorted values, with torch.sort(x, stable=True)'s order bit for bit, NaNs last (_argsort_rows; rows in
    parallel). The sorted values hold +0.0 for -0.0 and np.nan for any NaN. With `order` [P, M] and `gaps`
    [P, M - 1] (C-contiguous arrays to fill, e.g. views of a loss's buffers): the order is written there,
    and the gaps between consecutive sorted values in the same pass (np.diff of the sorted rows, bit for
    bit); returns (order, gaps)."""
    x = np.ascontiguousarray(x, np.float64)
    srt = np.empty_like(x)
    if (order is None) != (gaps is None):
        raise ValueError("order and gaps: give both arrays to fill, or neither")
    if gaps is None:
        order = np.empty(x.shape, index_dtype)
        _argsort_rows(x, order, srt, np.empty((x.shape[0], 0)))
        return order, srt
    if order.shape != x.shape or gaps.shape != (x.shape[0], x.shape[1] - 1):
        raise ValueError(f"order and gaps: need shapes {x.shape} and {(x.shape[0], x.shape[1] - 1)}")
    if order.dtype not in (np.int32, np.int64) or gaps.dtype != np.float64:
        raise ValueError(f"order and gaps: need int32 or int64 and float64 arrays, not {order.dtype} and {gaps.dtype}")
    _argsort_rows(x, order, srt, gaps)
    return order, gaps


def locality_order(u: np.ndarray) -> np.ndarray:
    """A numbering of the events (rows of u [N, D]) that keeps events near in observable space near in
    memory: the argsort of their Morton (Z-order) codes, made of each column's rank quantized to
    B = min(21, 63 // D) bits (ranks, so that every cell holds about as many events whatever the columns'
    distributions; equal values share one rank, so that a discrete or constant column adds no index order to
    the code; columns past the 63rd are not used). The sweeps gather the
    events' masses in the sorted order of a projection, which has no order in memory; numbered this way,
    events that come one after another in a projection's order tend to share cache lines and pages (events near
    in a projection are near in space along that direction). The sweeps' results do not depend on the
    numbering except through the order of ties, which sit at zero gaps (the same to rounding)."""
    u = np.asarray(u, np.float64)
    u = u[:, None] if u.ndim == 1 else u
    N, D = u.shape
    D = min(D, 63)
    B = max(1, min(21, 63 // D))
    code = np.zeros(N, np.uint64)
    for j in range(D):
        srt = np.argsort(u[:, j], kind="stable")
        v = u[srt, j]
        new = np.empty(N, bool)
        new[:1] = True
        new[1:] = v[1:] != v[:-1]
        rank = np.empty(N, np.uint64)                 # equal values share the rank of the first of them
        rank[srt] = np.flatnonzero(new).astype(np.uint64)[np.cumsum(new) - 1]
        q = (rank << np.uint64(B)) // np.uint64(max(N, 1))         # in [0, 2^B)
        for bit in range(B):
            code |= ((q >> np.uint64(bit)) & np.uint64(1)) << np.uint64(bit * D + j)
    return np.argsort(code, kind="stable")


def swd_mean(mass: np.ndarray, target_mass: np.ndarray | None, order: np.ndarray, du: np.ndarray,
             want_grad: bool, runs: tuple | None = None):
    """(L [R], G [R, N] or None) for the masses of the first N events mass [R, N] float64, the other events'
    target_mass [R, M - N] float64 (or [R, 1]: every one of them has that mass; or None when N = M), the
    sort order [P, M] int32 or int64 and du [P, M - 1] float64 (see the module docstring). G is the gradient
    with respect to `mass`."""
    R, G = mass.shape
    P, M = order.shape
    if not 1 <= G <= M:
        raise ValueError(f"mass covers {G} events; give between 1 and the sort order's {M}")
    if target_mass is None:
        if G != M:
            raise ValueError(f"mass covers {G} of the sort order's {M} events and no target_mass was given")
        target_mass = np.zeros((R, 1))
    elif G == M:
        raise ValueError(f"mass covers all {M} events of the sort order; give target_mass=None")
    elif target_mass.shape[0] != R or target_mass.shape[1] not in (1, M - G):
        raise ValueError(f"target_mass has shape {target_mass.shape}, expected ({R}, {M - G}) or ({R}, 1)")
    sums = np.empty((R, P))
    if not want_grad:
        _sums(mass, target_mass, order, du, sums)
        return sums.mean(1), None
    T = max(1, min(get_num_threads(), P))
    grad = np.empty((R, G))
    if runs is not None and runs[0].shape != (P, G):
        raise ValueError(f"runs are for {runs[0].shape[1]} simulated events and {runs[0].shape[0]} directions; "
                         f"the masses cover {G} and the sort order has {P}")
    if runs is not None and target_mass.shape[1] == 1 and G < M:
        _sums_and_grad_runs(mass, np.ascontiguousarray(target_mass[:, 0]), *runs, du, sums, np.empty((R, P)),
                            np.empty((T, G, 2)), grad)
    elif R == 1:
        _sums_and_grad(mass, target_mass, order, du, sums, np.empty((R, P)), np.empty((T, G + SPREAD, 2)), grad)
    else:               # several rows (a Hessian's points, bootstrap replicas): RB rows per sweep
        sums = np.zeros((R + RB, P))
        btot = np.empty((R + RB, P))
        mt = _aligned((M, RB))
        acc = _aligned((T, G + SPREAD, RB))
        for r0 in range(0, R, RB):
            n = min(RB, R - r0)
            mt[:G, :n] = mass[r0:r0 + n].T
            mt[G:, :n] = target_mass[r0:r0 + n].T          # [R, 1] (one constant per row) broadcasts
            mt[:, n:] = 0.0
            _sums_and_grad_rows(mt, order, du, G, r0, sums, btot, acc, grad)
        sums = sums[:R]
    return sums.mean(1), grad
