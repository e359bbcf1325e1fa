"""The sliced Wasserstein loss, forward + backward: the fused numba sums (fastrsa.swdkernel, the CPU default)
against the torch path (chunked gathers and cumsums, what CUDA runs), and one fit step (weights + loss) with
each. Compare within one run."""
import numpy as np
import torch

N_EVENTS = 20000        # per sample, as the fit benchmarks; 2 x 20000 events, 4 observables, 128 directions


class SlicedWasserstein:
    timeout = 600
    number = 1
    repeat = 5
    params = [[True, False], [1, 8]]
    param_names = ["fused", "rows"]

    def setup(self, fused, rows):
        from fastrsa.losses import SlicedWasserstein as SW
        torch.set_num_threads(2)
        rng = np.random.default_rng(0)

        def sample(shift):
            return np.column_stack([rng.poisson(20 + shift, N_EVENTS), rng.normal(shift, 1, N_EVENTS),
                                    rng.beta(2, 5 + shift, N_EVENTS), rng.exponential(1 + shift, N_EVENTS)])
        self.loss = SW(sample(0), sample(1), n_projections=128, fused=fused)
        self.w = torch.from_numpy(rng.uniform(0.5, 1.5, (rows, N_EVENTS)))
        self.time_fwd_bwd(fused, rows)          # compile outside timing

    def time_fwd_bwd(self, fused, rows):
        w = self.w.clone().requires_grad_(True)
        self.loss(w).sum().backward()


class FitStep:
    """One `Problem.loss_and_grad` at one point: 20000 base + 20000 target string events, swd on
    multiplicity and shapes (the default observables)."""
    timeout = 900
    number = 1
    repeat = 5
    params = [True, False]
    param_names = ["fused"]

    def setup(self, fused):
        from fastrsa.fit import Problem

        from .common import string_dataset
        torch.set_num_threads(2)
        base, target = string_dataset(N_EVENTS), string_dataset(N_EVENTS, target=True)
        self.problem = Problem([base.path], target.path)
        self.problem.loss.fused = fused
        self.theta = torch.tensor([[0.68, 0.98, 0.30]], dtype=torch.float64)
        self.problem.loss_and_grad(self.theta)

    def time_loss_and_grad(self, fused):
        self.problem.loss_and_grad(self.theta)
