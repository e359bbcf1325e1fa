"""EventMover-style differentiable Discrete-QCD parton shower for e+e- -> q qbar (docs/shower.md).

    from fastrsa.shower import generate, thrust
    s = generate(10000, lam=0.4, orders=3)
    p_new = s.moved(0.05, order=3)          # events moved to Lambda = 0.45
    t = thrust(p_new, s.offsets)
"""
from ._model import ALPHA0, DEFAULT_DY, N_F, flavour_weights
from .sample import SHOWER_VERSION, ShowerSample, generate
from .shapes import c_parameter, thrust

__all__ = [
           "ALPHA0",
           "DEFAULT_DY",
           "N_F",
           "SHOWER_VERSION",
           "ShowerSample",
           "c_parameter",
           "flavour_weights",
           "generate",
           "thrust",
]
