"""Observables of a sample, computed once from the hadron momenta (see registry.py). Importing this
package registers the built-in ones: counts and spectra (basic), event shapes (shapes) and the
learned classifier score (classifier), and the LEP measurements' own definitions (lep)."""
from . import basic, classifier, identified, lep, shapes  # noqa: F401  (registration)
from .basic import charge3
from .registry import (
                       GROUPS,
                       OBSERVABLES,
                       Observable,
                       compute,
                       expand_names,
                       level_of,
                       register,
                       register_group,
                       register_prefix,
)
from .shapes import sphericity, thrust

__all__ = ["Observable", "OBSERVABLES", "GROUPS", "compute", "expand_names", "level_of", "register",
           "register_group", "register_prefix", "charge3", "thrust", "sphericity"]
