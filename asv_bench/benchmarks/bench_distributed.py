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
