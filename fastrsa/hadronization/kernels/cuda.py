"""numba-cuda kernel: one warp per event. Its lanes first compute the shape at theta of up to 32 of the
event's z samplings, one each, into shared memory (lund.sampling_coeffs: zMax and the linear form of log f,
once per sampling, as on the CPU), then stride over those samplings' trials (coalesced reads), each
evaluating its trial by lund.trial_terms and lund.trial_log_ratio; then a shared-memory tree reduction per
warp.

Runs on torch CUDA tensors without copies (__cuda_array_interface__) on torch's current stream,
and on host arrays under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which is how CI tests it.
(Warps synchronize with syncthreads, not warp shuffles or syncwarp, which the simulator lacks: every warp
of a block runs as many chunks of samplings as the block's busiest, so all of its threads reach each
barrier.)
"""

import math

from numba import cuda, float64, int32

from ..flavmath import F_RHO, F_X, F_XI, F_Y, flavour_table
from ..lund import COL_A, COL_B, COL_SIGMA, pt_log_weight, sampling_coeffs, trial_log_ratio, trial_terms

WARP = 32
THREADS = 256               # 8 events per block
WARPS = THREADS // WARP
# Per z sampling in shared memory: log f's form at theta (e0, eI, eL, eM) and at the base (b0, bI, bL, bM,
# read from h_base), the constant terms of d log f / d(a, b) (gA0, gAM, gB0), m, kc and the base's clamp flag.
# The differences d0..dM that lund.sampling_coeffs also returns are not stored: each trial forms them again
# from the two forms (the same subtractions on the same values, so the same bits), which keeps the block's
# shared memory at 35.9 KB instead of 44 KB.
E0, B0, GA0, GAM, GB0, M, KC, FLAG, NCOEF = 0, 4, 8, 9, 10, 11, 12, 13, 14


@cuda.jit
def event_log_weights_cuda(offsets, z, qB, feat, hadron, h_start, h_m, h_cls, h_base, table, n_breaks, sum_pt2, theta,
                           a_base, b_base, sigma_base, log_zhead, out_lw, out_grad, out_capped):
    s_lw = cuda.shared.array(THREADS, float64)
    s_ga = cuda.shared.array(THREADS, float64)
    s_gb = cuda.shared.array(THREADS, float64)
    s_nc = cuda.shared.array(THREADS, int32)
    s_co = cuda.shared.array((WARPS, WARP, NCOEF), float64)
    s_chunks = cuda.shared.array(WARPS, int32)
    tid = cuda.threadIdx.x
    w = tid // WARP
    lane = tid % WARP
    i = (cuda.blockIdx.x * cuda.blockDim.x + tid) // WARP
    n_events = offsets.shape[0] - 1
    has_feat = feat.shape[0] > 0
    valid = i < n_events        # no early return: every thread must reach syncthreads
    h0 = 0
    h1 = 0
    if valid and offsets[i + 1] > offsets[i]:
        h0 = hadron[offsets[i]]                 # the event's z samplings: h0 .. h1 - 1, its trials all theirs
        h1 = hadron[offsets[i + 1] - 1] + 1
    if lane == 0:
        s_chunks[w] = (h1 - h0 + WARP - 1) // WARP
    cuda.syncthreads()
    # Every warp of the block runs the busiest warp's number of chunks, so all threads reach the same number
    # of barriers. The simulator cannot check this (it releases a barrier once every live thread waits, so
    # warps that each took their own count also pass its tests); on hardware a mismatch is undefined.
    n_chunks = 0
    for v in range(cuda.blockDim.x // WARP):
        n_chunks = max(n_chunks, s_chunks[v])
    co = s_co[w]
    for k in range(theta.shape[0]):
        a = theta[k, COL_A]
        b = theta[k, COL_B]
        at_base = a == a_base and b == b_base
        lw = 0.0
        ga = 0.0
        gb = 0.0
        nc = 0
        for ch in range(n_chunks):
            hc = h0 + ch * WARP                 # this chunk: samplings hc .. he - 1
            he = min(hc + WARP, h1)
            h = hc + lane
            if h < he:
                c = h_cls[h]
                m = h_m[h]
                kc = table[c, 2]
                b0 = h_base[h, 0]
                bI = h_base[h, 1]
                bL = h_base[h, 2]
                bM = h_base[h, 3]
                e0, eI, eL, eM, _, _, _, _, gA0, gAM, gB0 = sampling_coeffs(a, b, at_base, table[c, 0], table[c, 1],
                                                                            kc, m, b0, bI, bL, bM)
                co[lane, E0] = e0
                co[lane, E0 + 1] = eI
                co[lane, E0 + 2] = eL
                co[lane, E0 + 3] = eM
                co[lane, B0] = b0
                co[lane, B0 + 1] = bI
                co[lane, B0 + 2] = bL
                co[lane, B0 + 3] = bM
                co[lane, GA0] = gA0
                co[lane, GAM] = gAM
                co[lane, GB0] = gB0
                co[lane, M] = m
                co[lane, KC] = kc
                co[lane, FLAG] = h_base[h, 4]
            cuda.syncthreads()
            if he > hc:
                t = h_start[hc] + lane
                te = h_start[he]
                while t < te:
                    j = hadron[t] - hc
                    if has_feat:
                        iz = feat[t, 0]
                        lnz = feat[t, 1]
                        ln1mz = feat[t, 2]
                    else:
                        zt = z[t]
                        iz = 1.0 / zt
                        lnz = math.log(zt)
                        ln1mz = math.log1p(-zt)
                    e0 = co[j, E0]
                    eI = co[j, E0 + 1]
                    eL = co[j, E0 + 2]
                    eM = co[j, E0 + 3]
                    b0 = co[j, B0]
                    bI = co[j, B0 + 1]
                    bL = co[j, B0 + 2]
                    bM = co[j, B0 + 3]
                    d, da, db = trial_terms(iz, lnz, ln1mz, e0, eI, eL, eM, b0, bI, bL, bM, e0 - b0, eI - bI, eL - bL,
                                            eM - bM, co[j, GA0], co[j, GAM], co[j, GB0], co[j, M], co[j, KC],
                                            co[j, FLAG] != 0.0)
                    tw, da, db, cp = trial_log_ratio(d, da, db, qB[t], log_zhead)
                    lw += tw
                    ga += da
                    gb += db
                    nc += cp
                    t += WARP
            cuda.syncthreads()          # the chunk's shapes are read by all lanes before the next is written
        s_lw[tid] = lw
        s_ga[tid] = ga
        s_gb[tid] = gb
        s_nc[tid] = nc
        cuda.syncthreads()
        off = WARP // 2
        while off > 0:
            if lane < off:
                s_lw[tid] += s_lw[tid + off]
                s_ga[tid] += s_ga[tid + off]
                s_gb[tid] += s_gb[tid + off]
                s_nc[tid] += s_nc[tid + off]
            cuda.syncthreads()
            off //= 2
        if valid and lane == 0:
            pw, gs = pt_log_weight(theta[k, COL_SIGMA], sigma_base, n_breaks[i], sum_pt2[i])
            out_lw[k, i] = s_lw[tid] + pw
            out_grad[k, i, COL_A] = s_ga[tid]
            out_grad[k, i, COL_B] = s_gb[tid]
            out_grad[k, i, COL_SIGMA] = gs
            out_capped[k, i] = s_nc[tid]
        cuda.syncthreads()      # the shared buffers are reused for the next theta


def launch(args, n_events: int, stream=0) -> None:
    """One warp per event, THREADS per block; a batch of fewer than THREADS / WARP events gets one block of
    just its warps (the shared buffers are sized for THREADS, any multiple of WARP below fits)."""
    threads = min(THREADS, WARP * max(1, n_events))
    blocks = max(1, (n_events * WARP + threads - 1) // threads)
    event_log_weights_cuda[blocks, threads, stream](*args)


@cuda.jit
def flavour_tables_cuda(theta, base, cg, out_L, out_dL):
    """One thread per flavour point: the same tables as kernels.cpu.flavour_tables."""
    k = cuda.grid(1)
    if k < theta.shape[0]:
        flavour_table(theta[k, F_RHO], theta[k, F_XI], theta[k, F_X], theta[k, F_Y], base[F_RHO], base[F_XI],
                      base[F_X], base[F_Y], cg[0], cg[1], out_L[k], out_dL[k])


def launch_flavour(args, n_points: int, stream=0) -> None:
    threads = 64
    flavour_tables_cuda[max(1, (n_points + threads - 1) // threads), threads, stream](*args)
