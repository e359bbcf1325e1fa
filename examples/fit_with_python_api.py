"""The demo's steps through the Python API, and `lund_log_weights` inside a loss of your own.

    python examples/fit_with_python_api.py [workdir]

1. generate a base sample at the RSA paper's point and pseudo-data at Pythia's default;
2. fit (a, b) with fastrsa's sliced Wasserstein loss (fastrsa.fit);
3. write the same fit by hand: weights from `lund_log_weights`, a plain torch loss, torch.optim.
"""
import sys
from pathlib import Path

import torch

import fastrsa
from fastrsa.fit import Problem, fit, inside_ellipse
from fastrsa.generation import generate
from fastrsa.losses import Wasserstein1D
from fastrsa.observables import compute
from fastrsa.store import load_hadrons


def main(work: Path) -> None:

    # 1. Samples (an interrupted run resumes; a finished one is reused).
    base = generate(work / "base", events=10000, a=0.72, b=0.88, seed=1, jobs=2)
    target = generate(work / "target", events=10000, a=0.68, b=0.98, seed=2, jobs=2)

    # 2. The packaged tuner: observables computed once, loss sorted once, AdamW, sandwich covariance.
    problem = Problem([base.path], target.path, observables="multiplicity,shapes", loss="swd")
    result = fit(problem, steps=80)
    print(result.summary())
    print("truth inside the 95% ellipse:", inside_ellipse([0.68, 0.98], result.theta[:2], result.cov)[0])

    # 3. Your own loss: any torch function of the event weights works, because the weights are a torch op.
    batch = base.to_torch("cpu")                                          # records as tensors, once
    mult = compute(load_hadrons(base.path), ["multiplicity"])["multiplicity"].values
    mult_target = compute(load_hadrons(target.path), ["multiplicity"])["multiplicity"].values
    w1 = Wasserstein1D(mult, mult_target)                                 # exact 1D Wasserstein, sorted once
    mean_target = torch.tensor(mult_target.mean())
    mult_t = torch.from_numpy(mult)

    theta = torch.tensor([0.72, 0.88, 0.335], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.01)
    for step in range(60):
        log_w = fastrsa.lund_log_weights(batch, theta)                    # [N], exact, differentiable
        w = torch.softmax(log_w, 0)                                       # self-normalized weights
        loss = w1(w) + (torch.sum(w * mult_t) - mean_target) ** 2         # W1 plus a moment penalty
        opt.zero_grad()
        loss.backward()
        theta.grad[2] = 0.0                                               # keep sigma_pT fixed
        opt.step()
    print("hand-written fit: a = %.4f, b = %.4f" % tuple(theta[:2].tolist()))
    print(fastrsa.diagnostics(batch, theta.detach())[0])


# Generation runs jobs in spawned processes, which re-import this file: keep the work under main.
if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "fastrsa-example"))
