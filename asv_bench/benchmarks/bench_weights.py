"""Weights + gradients, events per second: fastrsa's kernel vs the padded-PyTorch research layout
vs a Python loop over pythia8mc.KinematicVariations.weight (forward only). Compare within one run."""
import numpy as np
import torch

import fastrsa

from .common import string_dataset
from .padded_baseline import log_weights as padded_log_weights
from .padded_baseline import pad

N_EVENTS = 20000
N_PADDED = 1000       # the padded layout needs 10605 slots per event: keep its memory sane
N_KV = 200
THETA = [0.68, 0.98, 0.30]


class Weights:
    timeout = 600
    number = 1
    repeat = 5

    def setup(self):
        torch.set_num_threads(2)
        self.ds = string_dataset(N_EVENTS)
        self.batch = self.ds.to_torch("cpu")
        self.theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
        fastrsa.lund_log_weights(self.batch, self.theta).sum().backward()      # compile outside timing
        self.padded = pad(self.ds, N_PADDED)
        self.theta32 = torch.tensor(THETA, dtype=torch.float32, requires_grad=True)

    def time_fastrsa_fwd_bwd_20000_events(self):
        self.theta.grad = None
        fastrsa.lund_log_weights(self.batch, self.theta).sum().backward()

    def time_fastrsa_fwd_bwd_K16_20000_events(self):
        th = self.theta.detach().repeat(16, 1).requires_grad_(True)
        fastrsa.lund_log_weights(self.batch, th).sum().backward()

    def time_padded_torch_fwd_bwd_1000_events(self):
        self.theta32.grad = None
        padded_log_weights(self.theta32, (0.72, 0.88), *self.padded).sum().backward()

    def peakmem_fastrsa_batch_20000_events(self):
        self.ds.to_torch("cpu")

    def track_bytes_per_trial(self):
        """What the weight engine keeps per trial (goal: at most 24 bytes in the default layout)."""
        return self.batch.nbytes / self.batch.n_trials

    track_bytes_per_trial.unit = "bytes"


class KinematicVariationsLoop:
    timeout = 600
    number = 1
    repeat = 3

    def setup(self):
        import pythia8mc as p8
        ds = string_dataset(N_EVENTS)
        b = ds.base
        self.kv = p8.KinematicVariations(b.a, b.b, b.r_fact_c, b.r_fact_b, b.sigma, b.z_head)
        fv = ds.flat(groups=("trials", "breaks"))
        to, bo = fv.offsets["trials"], fv.offsets["breaks"]
        self.events = []
        for i in range(N_KV):
            s, e = to[i], to[i + 1]
            self.events.append((
                np.stack([fv["id_old"][s:e], fv["id_new"][s:e]], 1).ravel().tolist(),
                np.stack([fv["mt2"][s:e], fv["z"][s:e], fv["fprel"][s:e]], 1).ravel().tolist(),
                np.stack([fv["pt2"][bo[i]:bo[i + 1]], fv["pt_mult"][bo[i]:bo[i + 1]]], 1).ravel().tolist()))
        self.rc, self.rb = b.r_fact_c, b.r_fact_b

    def time_kinematic_variations_fwd_200_events(self):
        for zi, zd, pt in self.events:
            self.kv.weight(THETA[0], THETA[1], self.rc, self.rb, THETA[2], zi, zd, pt)
