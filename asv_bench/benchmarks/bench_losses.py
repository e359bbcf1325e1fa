"""The sliced Wasserstein loss, forward + backward: the fused numba sums (fastrsa.swdkernel, the CPU default)
against the torch path (chunked gathers and cumsums, what CUDA runs), and one fit step (weights + loss) with
each. Compare within one run."""
import numpy as np
import torch

N_EVENTS = 20000        # per sample, as the fit benchmarks; 2 x 20000 events, 4 observables, 128 directions


def _sample(rng, n, shift):
    return np.column_stack([rng.poisson(20 + shift, n), rng.normal(shift, 1, n), rng.beta(2, 5 + shift, n),
                            rng.exponential(1 + shift, n)])


class SlicedWasserstein:
    """rows: parameter points (1) or a Hessian's / bootstrap's batch (8); target: unweighted (the fit
    steps: the CPU kernel reads the target as one constant) or Poisson(1) multiplicities per row (a
    bootstrap: the target's masses are read per event)."""
    timeout = 600
    number = 1
    repeat = 5
    params = [[True, False], [1, 8], ["unweighted", "poisson"]]
    param_names = ["fused", "rows", "target"]

    def setup(self, fused, rows, target):
        from fastrsa.losses import SlicedWasserstein as SW
        torch.set_num_threads(2)
        rng = np.random.default_rng(0)
        self.loss = SW(_sample(rng, N_EVENTS, 0), _sample(rng, N_EVENTS, 1), n_projections=128, fused=fused)
        self.w = torch.from_numpy(rng.uniform(0.5, 1.5, (rows, N_EVENTS)))
        self.q = None if target == "unweighted" else torch.from_numpy(rng.poisson(1.0, (rows, N_EVENTS)) * 1.0)
        self.time_fwd_bwd(fused, rows, target)          # compile outside timing

    def time_fwd_bwd(self, fused, rows, target):
        w = self.w.clone().requires_grad_(True)
        self.loss(w, self.q).sum().backward()


class SlicedWassersteinPaperScale:
    """The RSA paper's scale, 1e6 + 1e6 events (4 observables), fused CPU kernel, 16 directions (the time
    grows linearly with them: a fit's 128 cost 8x): there the random accesses into the masses miss the
    caches, which the 20,000-event benchmark does not show. target: "unweighted" (a fit step: the sweep over
    runs), "unweighted-merged" (event by event, runs=False), "poisson" (one bootstrap row), "poisson-x8" (8
    bootstrap rows in one sweep) and "poisson-x8-one-by-one" (the same 8 rows in 8 sweeps, as before rows
    were swept together). numbering: "locality" (the default, swdkernel.locality_order) or "given" (the
    events in the order they came, locality=False)."""
    timeout = 900
    number = 1
    repeat = 3
    params = [["unweighted", "unweighted-merged", "poisson", "poisson-x8", "poisson-x8-one-by-one"],
              ["locality", "given"]]
    param_names = ["target", "numbering"]

    def setup(self, target, numbering):
        from fastrsa.losses import SlicedWasserstein as SW
        torch.set_num_threads(2)
        rng = np.random.default_rng(0)
        n = 1_000_000
        rows = 8 if "x8" in target else 1
        self.loss = SW(_sample(rng, n, 0), _sample(rng, n, 1), n_projections=16, runs=target != "unweighted-merged",
                       locality=numbering == "locality")
        self.w = torch.from_numpy(rng.uniform(0.5, 1.5, (rows, n)))
        self.q = None if target.startswith("unweighted") else torch.from_numpy(rng.poisson(1.0, (rows, n)) * 1.0)
        self.time_fwd_bwd(target, numbering)
        self.time_fwd_bwd(target, numbering)        # an unweighted target's runs are made on the second call

    def time_fwd_bwd(self, target, numbering):
        if target.endswith("one-by-one"):
            for r in range(len(self.w)):
                w = self.w[r:r + 1].clone().requires_grad_(True)
                self.loss(w, self.q[r:r + 1]).sum().backward()
            return
        w = self.w.clone().requires_grad_(True)
        self.loss(w, self.q).sum().backward()


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
