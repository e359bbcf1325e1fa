"""fastrsa: exact, differentiable reweighting of Pythia's Lund string fragmentation (RSA).

Layers, each importing only those below it (docs/architecture.md): errors, params -> store, pythia ->
generation, hadronization, observables -> losses -> fit -> plots -> cli.
"""
__version__ = "0.1.0"

from .errors import DatasetError, FastRSAError, ParameterError, PythiaError  # noqa: E402

# Everything else loads when first used: `import fastrsa` (and the CLI's start, which must answer Ctrl-C
# from its first moment) imports no numpy, pyarrow, torch or numba.
_LAZY = {"SPACE": "params", "BaseParams": "params", "Parameter": "params", "ParameterSpace": "params",
         "Dataset": "store", "open_dataset": "store", "lund_log_weights": "hadronization.weights", "LundReweighter": "hadronization.weights",
         "TrialBatch": "hadronization.batch", "diagnostics": "hadronization.diagnostics",
         "summarize_log_weights": "hadronization.diagnostics", "Diagnostics": "hadronization.diagnostics",
         "Recorder": "generation.recorder"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'fastrsa' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


__all__ = ["Dataset", "open_dataset", "BaseParams", "Parameter", "ParameterSpace", "SPACE", "FastRSAError",
           "ParameterError", "DatasetError", "PythiaError", "__version__", *_LAZY]
