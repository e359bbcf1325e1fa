"""Hadronization reweighting: the Lund math (one source for CPU and GPU), flavour classes, the
TrialBatch of a dataset's records, the kernels and their dispatch, the differentiable weight op,
diagnostics, and an independent float64 reference."""
from .batch import TrialBatch
from .diagnostics import Diagnostics, diagnostics, summarize_log_weights
from .weights import LundReweighter, log_weights_and_jacobian, lund_log_weights

__all__ = ["TrialBatch", "lund_log_weights", "log_weights_and_jacobian", "LundReweighter", "diagnostics",
           "summarize_log_weights", "Diagnostics"]
