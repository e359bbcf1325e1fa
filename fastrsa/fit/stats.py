"""Statistical tests used to validate fits."""
from __future__ import annotations

import math

import numpy as np


def chi2_two_sample(x, y, min_count: int = 5) -> tuple[float, int, float]:
    """Two-sample chi2 test of integer-valued samples x, y (e.g. multiplicities): bins with fewer than
    `min_count` entries in both samples together are merged into their neighbours. (chi2, ndf, p-value)."""
    import torch
    lo, hi = int(min(x.min(), y.min())), int(max(x.max(), y.max()))
    cx = np.bincount((x - lo).astype(np.int64), minlength=hi - lo + 1).astype(float)
    cy = np.bincount((y - lo).astype(np.int64), minlength=hi - lo + 1).astype(float)
    bx, by, ax_, ay_ = [], [], 0.0, 0.0
    for u, v in zip(cx, cy):
        ax_, ay_ = ax_ + u, ay_ + v
        if ax_ + ay_ >= min_count:
            bx.append(ax_); by.append(ay_); ax_ = ay_ = 0.0
    if ax_ + ay_ > 0 and bx:
        bx[-1] += ax_; by[-1] += ay_
    bx, by = np.array(bx), np.array(by)
    nx, ny = bx.sum(), by.sum()
    chi2 = float(np.sum((bx * math.sqrt(ny / nx) - by * math.sqrt(nx / ny)) ** 2 / (bx + by)))
    ndf = len(bx) - 1
    p = float(torch.special.gammaincc(torch.tensor(ndf / 2, dtype=torch.float64),
                                      torch.tensor(chi2 / 2, dtype=torch.float64)))
    return chi2, ndf, p
