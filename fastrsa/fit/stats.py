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


def chi2_weighted_vs_sample(x, w, y, max_bins: int = 25) -> tuple[float, int, float]:
    """Two-sample chi2 of a weighted sample (x, w) against an unweighted one y, both normalized: bins at y's
    quantiles (at most `max_bins`; ties merge them, so integer observables get their own values), errors
    sum w^2 / (sum w)^2 for the weighted side and N_b / N^2 for the other. (chi2, ndf, p-value)."""
    from scipy import stats
    x, w, y = (np.asarray(v, np.float64) for v in (x, w, y))
    q = np.unique(np.quantile(y, np.linspace(0, 1, max_bins + 1)))
    inner = q[1:-1] if len(q) > 2 else np.array([np.median(y)])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    n = len(edges) - 1
    ix, iy = np.digitize(x, edges) - 1, np.digitize(y, edges) - 1
    sw, sw2 = np.bincount(ix, w, n), np.bincount(ix, w * w, n)
    ny = np.bincount(iy, minlength=n).astype(np.float64)
    keep = (ny > 0) | (sw > 0)
    sw, sw2, ny = sw[keep], sw2[keep], ny[keep]
    W, N = w.sum(), ny.sum()
    var = sw2 / W ** 2 + ny / N ** 2
    chi2 = float(np.sum((sw / W - ny / N) ** 2 / np.maximum(var, 1e-300)))
    ndf = len(ny) - 1
    return chi2, ndf, float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else float("nan")
