"""fastrsa: exact, differentiable reweighting of Pythia's Lund string fragmentation (RSA)."""
__version__ = "0.1.0"

from .dataset import Dataset, open_dataset  # noqa: E402
from .errors import DatasetError, FastRSAError, ParameterError, PythiaError  # noqa: E402
from .params import BaseParams  # noqa: E402

__all__ = ["Dataset", "open_dataset", "BaseParams", "FastRSAError", "ParameterError", "DatasetError",
           "PythiaError", "__version__"]
