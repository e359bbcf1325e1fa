"""A fit's fixed phases on the 20,000-event pion string: the event shapes (thrust dominates the
observables phase), loading the TrialBatch from Parquet (the weights phase) and sorting the swd's
projections (the loss phase). Compare within one run: thrust against sphericity, loading with and
without the background shard read."""
import numpy as np
import torch

from .common import string_dataset

N_EVENTS = 20000


class EventShapes:
    number = 1
    repeat = 7

    def setup(self):
        from fastrsa.observables import compute
        from fastrsa.store.hadrons import dataset_hadrons
        self.h = dataset_hadrons(string_dataset(N_EVENTS))
        self.compute = compute
        compute(self.h, ["thrust", "sphericity"])          # compile outside timing

    def time_thrust_20000_events(self):
        self.compute(self.h, ["thrust"])

    def time_sphericity_20000_events(self):
        self.compute(self.h, ["sphericity"])


class Loading:
    number = 1
    repeat = 5
    params = [False, True]
    param_names = ["prefetch"]

    def setup(self, prefetch):
        from fastrsa.hadronization.batch import TrialBatch
        self.ds = string_dataset(N_EVENTS)
        self.TrialBatch = TrialBatch
        TrialBatch.from_dataset(self.ds)                    # compile (and warm the page cache) outside timing

    def time_trialbatch_from_dataset(self, prefetch):
        self.TrialBatch.from_dataset(self.ds, prefetch=prefetch)


class SortProjections:
    number = 1
    repeat = 5

    def setup(self):
        from fastrsa.losses import SlicedWasserstein
        rng = np.random.default_rng(0)
        torch.set_num_threads(2)
        self.loss = SlicedWasserstein(rng.normal(size=(200_000, 3)), rng.normal(size=(200_000, 3)),
                                      n_projections=32)

    def time_resample_32_directions_400000_events(self):
        self.loss.resample()
