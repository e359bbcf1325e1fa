"""A fit step on a Dask LocalCluster of 1 and 2 workers against one process (same data, --loss chi2).

One step is the loss and its gradient at one point: the workers compute their events' weights and
per-bin sums, the driver combines them. Also tracked: the bytes that come back per step (they depend
on the bins, not on the events)."""
import os

from .common import CACHE, string_dataset

N_BASE = 20000
N_TARGET = 5000
OBSERVABLES = "multiplicity,thrust,pt"
THETA = [[0.68, 0.98, 0.30]]


def _target():
    from fastrsa.generation import generate
    return generate(CACHE / f"string-target-{N_TARGET}", events=N_TARGET, a=0.68, b=0.98, seed=6, jobs=2,
                    progress=False)


class FitStep:
    params = ["one process", 1, 2]
    param_names = ["workers"]
    timeout = 600
    number = 1
    repeat = 5

    def setup(self, workers):
        import torch
        base, target = string_dataset(N_BASE), _target()
        self.theta = torch.tensor(THETA, dtype=torch.float64)
        self.cluster = self.client = None
        if workers == "one process":
            from fastrsa.fit import Problem
            self.problem = Problem([base.path], target.path, OBSERVABLES, loss="chi2")
        else:
            import logging

            import distributed

            from fastrsa.fit.distributed import DistributedProblem
            # Each worker single-threaded, like the one process below (torch and numba threads pinned to 1).
            os.environ["NUMBA_NUM_THREADS"] = "1"
            self.cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                    dashboard_address=":0", silence_logs=logging.CRITICAL)
            self.client = distributed.Client(self.cluster)
            self.problem = DistributedProblem([base.path], target.path, self.client, OBSERVABLES, loss="chi2")
        self.problem.loss_and_grad(self.theta)          # warm-up (kernels compiled, caches filled)

    def teardown(self, workers):
        if self.client is not None:
            self.problem.close()
            self.client.close()
            self.cluster.close()

    def time_step(self, workers):
        self.problem.loss_and_grad(self.theta)

    def track_bytes_back_per_step(self, workers):
        if workers == "one process":
            return 0
        t0 = dict(self.problem.traffic)
        self.problem.loss_and_grad(self.theta)
        return self.problem.traffic["received"] - t0["received"]

    track_bytes_back_per_step.unit = "bytes"


class W1Grid:
    """The grid error of the distributed `--loss w1` against the exact single-process W1 (same data):
    relative error of the loss, and of the gradient as a fraction of its largest component, the worst of
    three points (docs/distributed.md)."""
    params = (["multiplicity", "thrust", "pt"], [300, 1000])
    param_names = ["observable", "grid"]
    timeout = 900
    POINTS = [[0.70, 0.90, 0.33], [0.68, 0.98, 0.30], [0.60, 0.90, 0.34]]

    def setup(self, observable, grid):
        import logging

        import distributed
        import numpy as np
        import torch

        from fastrsa.fit import Problem
        from fastrsa.fit.distributed import DistributedProblem
        base, target = string_dataset(N_BASE), _target()
        th = torch.tensor(self.POINTS, dtype=torch.float64)
        exact = Problem([base.path], target.path, observable, loss="w1").loss_and_grad(th)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                      silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
            problem = DistributedProblem([base.path], target.path, client, observable, loss="w1", grid=grid)
            ev = problem.loss_and_grad(th)
            problem.close()
        g1, g2 = exact.grad.numpy(), ev.grad.numpy()
        self.loss_err = float(np.max(np.abs(ev.loss.numpy() / exact.loss.numpy() - 1)))
        self.grad_err = float(np.max(np.abs(g2 - g1) / np.abs(g1).max(1, keepdims=True)))

    def track_loss_relative_error(self, observable, grid):
        return self.loss_err

    def track_gradient_error(self, observable, grid):
        return self.grad_err
