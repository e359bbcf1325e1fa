"""Exceptions that carry a one-line, user-facing message (the CLI prints it and exits non-zero)."""


class FastRSAError(Exception):
    """Base class: the message names the field at fault and the fix."""


class ParameterError(FastRSAError, ValueError):
    """A parameter is unknown, out of range or not a finite number."""


class DatasetError(FastRSAError, ValueError):
    """A dataset is missing, malformed, of another format version, or not the one expected."""


class PythiaError(FastRSAError, RuntimeError):
    """pythia8mc is missing, of an unsupported version, or its records failed the self-check."""


class DependencyError(FastRSAError, ImportError):
    """An optional dependency (an extra of `pip install 'fastrsa[...]'`) is not installed."""
