"""Fitting: the problem (bases, target, observables, loss, prepared once), the optimizer, the
uncertainty (Hessian, sandwich covariance, bootstrap) and scans of the loss."""
from ..params import PARAMS
from .optimize import FitResult, fit
from .problem import Evaluation, Problem
from .scans import landscape
from .uncertainty import CHI2_68_2D, CHI2_95_2D, bootstrap, covariance, ellipse, hessian, inside_ellipse

__all__ = ["Problem", "Evaluation", "fit", "FitResult", "landscape", "bootstrap", "covariance", "hessian",
           "ellipse", "inside_ellipse", "CHI2_95_2D", "CHI2_68_2D", "PARAMS"]
