"""fastrsa: exact, differentiable reweighting of Pythia's Lund string fragmentation (RSA)."""
__version__ = "0.1.0"

from .dataset import Dataset, open_dataset  # noqa: E402
from .errors import DatasetError, FastRSAError, ParameterError, PythiaError  # noqa: E402
from .params import BaseParams  # noqa: E402


def __getattr__(name):
    # torch and numba load only when the weight engine is used: `import fastrsa` stays light.
    if name in ("lund_log_weights", "LundReweighter", "diagnostics", "summarize_log_weights", "Diagnostics"):
        from . import weights
        return getattr(weights, name)
    if name == "TrialBatch":
        from .batch import TrialBatch
        return TrialBatch
    raise AttributeError(f"module 'fastrsa' has no attribute {name!r}")


__all__ = ["Dataset", "open_dataset", "BaseParams", "FastRSAError", "ParameterError", "DatasetError",
           "PythiaError", "__version__", "lund_log_weights", "LundReweighter",
           "diagnostics", "summarize_log_weights", "Diagnostics", "TrialBatch"]
