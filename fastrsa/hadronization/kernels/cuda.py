"""numba-cuda kernel: one warp per event, lanes stride over its trials (coalesced reads), then a
shared-memory tree reduction per warp.

Runs on torch CUDA tensors without copies (__cuda_array_interface__) on torch's current stream,
and on host arrays under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which is how CI tests it.
(The reduction uses shared memory rather than warp shuffles because the simulator has no shuffles.)
"""

from numba import cuda, float64, int32

from ..flavmath import F_RHO, F_X, F_XI, F_Y, flavour_table
from ..lund import COL_A, COL_B, COL_SIGMA, pt_log_weight, strided_trial_sums

WARP = 32
THREADS = 256   # 8 events per block


@cuda.jit
def event_log_weights_cuda(offsets, z, qB, feat, hadron, h_start, h_m, h_cls, h_base, table, n_breaks, sum_pt2, theta,
                           a_base, b_base, sigma_base, log_zhead, out_lw, out_grad, out_capped):
    s_lw = cuda.shared.array(THREADS, float64)
    s_ga = cuda.shared.array(THREADS, float64)
    s_gb = cuda.shared.array(THREADS, float64)
    s_nc = cuda.shared.array(THREADS, int32)
    tid = cuda.threadIdx.x
    i = (cuda.blockIdx.x * cuda.blockDim.x + tid) // WARP
    lane = tid % WARP
    n_events = offsets.shape[0] - 1
    valid = i < n_events        # no early return: every thread must reach syncthreads
    t0 = 0
    t1 = 0
    if valid:
        t0 = offsets[i]
        t1 = offsets[i + 1]
    for k in range(theta.shape[0]):
        lw, ga, gb, nc = strided_trial_sums(theta[k, COL_A], theta[k, COL_B], a_base, b_base, table, h_m, h_cls,
                                            hadron, z, qB, feat, log_zhead, t0 + lane, t1, WARP)
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
