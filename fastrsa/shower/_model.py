"""Physical constants and the hard process of the shower model (see docs/shower.md)."""
import math

import torch

N_F = 5
#: One-loop running: abar(kT) = N_c alpha_s / pi = ALPHA0 / kappa with kappa = ln(kT^2 / Lambda^2).
ALPHA0 = 36.0 / (33.0 - 2.0 * N_F)
#: Default rapidity step of the lattice: ALPHA0 * DY = 1 makes the effective gluon of a column
#: uniformly distributed in kappa (docs/shower.md, "The lattice").
DEFAULT_DY = 1.0 / ALPHA0

# Electroweak inputs (PDG-like values) for the flavour mix of e+e- -> gamma*/Z -> q qbar.
SIN2W = 0.2312
MZ = 91.1876
GAMMAZ = 2.4952
#: pdg ids of the massless flavours d, u, s, c, b and their charges.
FLAVOURS = (1, 2, 3, 4, 5)
_CHARGE = {1: -1.0 / 3.0, 2: 2.0 / 3.0, 3: -1.0 / 3.0, 4: 2.0 / 3.0, 5: -1.0 / 3.0}


def flavour_weights(ecm: float) -> list:
    """Relative Born cross sections sigma(e+e- -> gamma*/Z -> f fbar) of d, u, s, c, b at sqrt(s) = ecm.

    Tree level with couplings normalised as a_f = 2 T3_f, v_f = a_f - 4 Q_f sin^2(theta_W):
    sigma_f ~ Q_f^2 - 2 Q_f v_e v_f chi1 + (a_e^2 + v_e^2)(a_f^2 + v_f^2) chi2,
    chi1 = k s (s - mZ^2) / D, chi2 = k^2 s^2 / D, D = (s - mZ^2)^2 + (GammaZ mZ)^2,
    k = 1 / (16 sin^2 cos^2). The common colour factor 3 drops out.
    """
    s = ecm * ecm
    ae, ve = -1.0, -1.0 + 4.0 * SIN2W
    kap = 1.0 / (16.0 * SIN2W * (1.0 - SIN2W))
    den = (s - MZ * MZ) ** 2 + (GAMMAZ * MZ) ** 2
    chi1 = kap * s * (s - MZ * MZ) / den
    chi2 = kap * kap * s * s / den
    out = []
    for f in FLAVOURS:
        q = _CHARGE[f]
        af = 1.0 if q > 0 else -1.0
        vf = af - 4.0 * q * SIN2W
        out.append(q * q - 2.0 * q * ve * vf * chi1 + (ae * ae + ve * ve) * (af * af + vf * vf) * chi2)
    return out


def sample_flavour(u: torch.Tensor, ecm: float) -> torch.Tensor:
    """Inverse-CDF choice of the quark flavour from one uniform number per event."""
    w = torch.tensor(flavour_weights(ecm), dtype=torch.float64, device=u.device)
    cdf = torch.cumsum(w, 0) / w.sum()
    idx = torch.searchsorted(cdf, u.to(torch.float64).contiguous(), right=True).clamp(max=len(FLAVOURS) - 1)
    return torch.tensor(FLAVOURS, dtype=torch.int64, device=u.device)[idx]


def sample_cos_theta(u: torch.Tensor) -> torch.Tensor:
    """cos(theta) of the quark from d sigma / d cos ~ 1 + cos^2 (inverse CDF, Cardano's formula).

    CDF(c) = (c + c^3/3 + 4/3) / (8/3) = u  <=>  c^3 + 3 c = 2 r with r = 4 u - 2,
    whose single real root is cbrt(r + sqrt(r^2 + 1)) + cbrt(r - sqrt(r^2 + 1)).
    """
    r = 4.0 * u - 2.0
    q = torch.sqrt(r * r + 1.0)
    c1 = r + q
    c2 = r - q
    cbrt = lambda x: torch.sign(x) * torch.abs(x) ** (1.0 / 3.0)
    return (cbrt(c1) + cbrt(c2)).clamp(-1.0, 1.0)


def log_scale(ecm: float, lam) -> "torch.Tensor | float":
    """L = ln(s / Lambda^2), the size of the primary q qbar triangle."""
    if torch.is_tensor(lam):
        return 2.0 * torch.log(ecm / lam)
    return 2.0 * math.log(ecm / lam)
