"""The research implementation's layout, re-implemented for comparison only: zero-padded float32
tensors of 105 hadron slots x 101 trial slots per event (rejections capped at 99 + accept), with
the per-trial weights computed by vectorized PyTorch and gradients by autograd."""

import numpy as np
import torch

H, R = 105, 101


def pad(ds, n_events):
    fv = ds.flat(groups=("trials",))
    to = fv.offsets["trials"]
    z = np.full((n_events, H, R), 0.5, np.float32)
    mt2 = np.zeros((n_events, H, R), np.float32)
    fprel = np.ones((n_events, H, R), np.float32)
    mask = np.zeros((n_events, H, R), np.float32)
    for i in range(n_events):
        h = r = 0
        for t in range(to[i], to[i + 1]):
            if h < H and r < R:
                z[i, h, r], mt2[i, h, r], fprel[i, h, r], mask[i, h, r] = fv["z"][t], fv["mt2"][t], fv["fprel"][t], 1
            r += 1
            if fv["mt2"][t] > 0:
                h, r = h + 1, 0
    return [torch.from_numpy(x) for x in (z, mt2, fprel, mask)]


def log_f(a, b, z, mt2):
    bb = b * mt2.abs()
    c = 1.0
    zm = 0.5 * (bb + c - torch.sqrt((bb - c) ** 2 + 4 * a * bb)) / (c - a)
    return a * torch.log((1 - z) / (1 - zm)) + bb * (1 / zm - 1 / z) + c * torch.log(zm / z)


def log_weights(theta, base, z, mt2, fprel, mask, z_head=10.0):
    lfn = log_f(theta[0], theta[1], z, mt2)
    lfb = log_f(torch.tensor(base[0]), torch.tensor(base[1]), z, mt2)
    acc = lfn - lfb
    fb = torch.exp(lfb) / (fprel * z_head)
    rej = torch.log1p(-torch.exp(acc) * fb) - torch.log1p(-fb)
    per = torch.where(mt2 > 0, acc, rej) * mask
    return per.sum(dim=(1, 2)) + 0 * theta[2]
