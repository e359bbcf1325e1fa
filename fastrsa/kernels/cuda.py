"""numba-cuda kernel: one warp per event, lanes stride over its trials, warp-shuffle reduction.

Runs on torch CUDA tensors without copies (__cuda_array_interface__) on torch's current stream,
and on host arrays under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which is how CI tests it.
"""
import math

from numba import cuda

from ..lund import pt_log_weight, trial_log_weight

WARP = 32
THREADS = 256   # 8 events per block


@cuda.jit
def event_log_weights_cuda(offsets, z, mt2, cls, lfb, lfB, table, n_breaks, sum_pt2, theta, sigma_base,
                           log_zhead, out_lw, out_grad, out_capped):
    gid = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    i = gid // WARP
    lane = cuda.threadIdx.x % WARP
    n_events = offsets.shape[0] - 1
    if i >= n_events:       # the whole warp leaves together (i is the same for its 32 lanes)
        return
    t0 = offsets[i]
    t1 = offsets[i + 1]
    for k in range(theta.shape[0]):
        a = theta[k, 0]
        b = theta[k, 1]
        lw = 0.0
        ga = 0.0
        gb = 0.0
        nc = 0
        t = t0 + lane
        while t < t1:
            c = cls[t]
            lrb = 0.0
            if mt2[t] < 0.0:
                lrb = math.log1p(-math.exp(lfB[t]))
            w, da, db, cp = trial_log_weight(a, b, table[c, 0], table[c, 1], table[c, 2], z[t], mt2[t],
                                             lfb[t], lfb[t] - lfB[t], lrb, log_zhead)
            lw += w
            ga += da
            gb += db
            nc += cp
            t += WARP
        off = WARP // 2
        while off > 0:
            lw += cuda.shfl_down_sync(0xFFFFFFFF, lw, off)
            ga += cuda.shfl_down_sync(0xFFFFFFFF, ga, off)
            gb += cuda.shfl_down_sync(0xFFFFFFFF, gb, off)
            nc += cuda.shfl_down_sync(0xFFFFFFFF, nc, off)
            off //= 2
        if lane == 0:
            pw, gs = pt_log_weight(theta[k, 2], sigma_base, n_breaks[i], sum_pt2[i])
            out_lw[k, i] = lw + pw
            out_grad[k, i, 0] = ga
            out_grad[k, i, 1] = gb
            out_grad[k, i, 2] = gs
            out_capped[k, i] = nc


def launch(args, n_events: int, stream=0) -> None:
    blocks = max(1, (n_events * WARP + THREADS - 1) // THREADS)
    event_log_weights_cuda[blocks, THREADS, stream](*args)
