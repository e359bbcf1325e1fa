"""The weight kernel against its compute floor on this machine, in one run: the floor is a numba loop that
evaluates, per trial and on the dataset's own z and q_B = F_B / (1 - F_B), only what the kernel cannot avoid,
with the kernel's own vectorizable exp and log (fastrsa.hadronization.vmath), vectorized the same way,
with 2 threads:
  compact layout: 1/z, log z, log(1 - z), and at theta exp(d), log R and the gradient factor's division,
                  d = a linear form in the logs;
  feature mode:   only the part at theta.
The ratio kernel / floor is the distance to the floor (issue 13: at most 2x). What the floor leaves out is
the work per z sampling (zMax at theta and at the base) and the sums."""
import numpy as np
import torch
from numba import njit, prange

import fastrsa
from fastrsa.hadronization.vmath import exp_core, log_core, log_pair_core

from .common import string_dataset

N_EVENTS = 20000
THETA = [0.68, 0.98, 0.30]
CHUNK = 4096


@njit(error_model="numpy", fastmath={"contract"})
def _at_theta(lnz, ln1mz, iz, q, out, t0, n):
    for j in range(n):
        d = 0.05 * ln1mz[j] - 0.01 * iz[j] + 0.02 * lnz[j]      # a log-ratio of the kernel's size
        r = exp_core(d)
        R = 1.0 - q[j] * (r - 1.0)
        out[np.uint64(t0 + j)] = log_core(R) - (q[j] * r) / R     # unsigned: no wraparound select


@njit(parallel=True, error_model="numpy", fastmath={"contract"})
def floor_compact(z, qB, out):
    T = z.shape[0]
    for c in prange((T + CHUNK - 1) // CHUNK):
        t0 = c * CHUNK
        n = min(CHUNK, T - t0)
        iz = np.empty(n)
        lnz = np.empty(n)
        ln1mz = np.empty(n)
        for j in range(n):
            iz[j] = 1.0 / z[np.uint64(t0 + j)]
        for j in range(n):
            x = z[np.uint64(t0 + j)]
            lnz[j], ln1mz[j] = log_pair_core(x, 1.0 - x)
        _at_theta(lnz, ln1mz, iz, qB[t0:t0 + n], out, t0, n)


@njit(parallel=True, error_model="numpy", fastmath={"contract"})
def floor_features(feat, qB, out):
    T = feat.shape[0]
    for c in prange((T + CHUNK - 1) // CHUNK):
        t0 = c * CHUNK
        n = min(CHUNK, T - t0)
        f = np.ascontiguousarray(feat[t0:t0 + n].T)         # the kernel's per-event copy of its features
        _at_theta(f[1], f[2], f[0], qB[t0:t0 + n], out, t0, n)


class KernelAndFloor:
    timeout = 600
    number = 1
    repeat = 7

    def setup(self):
        torch.set_num_threads(2)
        self.batch = string_dataset(N_EVENTS).to_torch("cpu")
        self.features = self.batch.with_features()
        self.z, self.qB = self.batch.z.numpy(), self.batch.qB.numpy()
        self.feat = self.features.feat.numpy()
        self.out = np.empty(len(self.z))
        for f in (self.time_kernel_compact, self.time_kernel_features, self.time_floor_compact,
                  self.time_floor_features):
            f()                                                      # compile outside timing

    def _fwd_bwd(self, batch):
        th = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
        fastrsa.lund_log_weights(batch, th).sum().backward()

    def time_kernel_compact(self):
        self._fwd_bwd(self.batch)

    def time_kernel_features(self):
        self._fwd_bwd(self.features)

    def time_floor_compact(self):
        floor_compact(self.z, self.qB, self.out)

    def time_floor_features(self):
        floor_features(self.feat, self.qB, self.out)
