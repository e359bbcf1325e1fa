"""The weight kernel against its compute floor on this machine, in one run: the floor is a numba loop that
evaluates, per trial and on the dataset's own z and log F_B, only the functions the kernel cannot avoid
(compact layout: 1/z, log z, log(1 - z), and for a rejected trial exp and log1p for F_theta and for
log(1 - F_B); feature mode: exp and log1p of F_theta for a rejected trial), with 2 threads. The ratio
kernel / floor is the distance to the floor (issue 13: at most 2x)."""
import math

import numpy as np
import torch
from numba import njit, prange

import fastrsa

from .common import string_dataset

N_EVENTS = 20000
THETA = [0.68, 0.98, 0.30]


@njit(parallel=True, cache=True)
def floor_compact(z, lfB, out):
    for t in prange(z.shape[0]):
        zt = z[t]
        iz = 1.0 / zt
        lnz = math.log(zt)
        ln1mz = math.log1p(-zt)
        d = 0.05 * ln1mz - 0.01 * iz         # a log-ratio of the kernel's size, from the same values
        acc = iz + lnz + ln1mz
        if lfB[t] <= 0.0:                   # rejected (an accepted trial is marked by lfB = +1)
            fn = math.exp(lfB[t] + d)
            acc += math.log1p(-fn) - math.log1p(-math.exp(lfB[t]))
        out[t] = acc


@njit(parallel=True, cache=True)
def floor_features(lfB, feat, out):
    for t in prange(lfB.shape[0]):
        d = 0.05 * feat[t, 2] - 0.01 * feat[t, 0]
        acc = d
        if lfB[t] <= 0.0:
            acc += math.log1p(-math.exp(lfB[t] + d)) - feat[t, 3]
        out[t] = acc


class KernelAndFloor:
    timeout = 600
    number = 1
    repeat = 7

    def setup(self):
        torch.set_num_threads(2)
        self.batch = string_dataset(N_EVENTS).to_torch("cpu")
        self.features = self.batch.with_features()
        self.z, self.lfB = self.batch.z.numpy(), self.batch.lfB.numpy()
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
        floor_compact(self.z, self.lfB, self.out)

    def time_floor_features(self):
        floor_features(self.lfB, self.feat, self.out)
