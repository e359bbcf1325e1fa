"""Kinematics: momenta as a smooth torch function of Lambda at a fixed grove (docs/shower.md)."""
import math

import torch
from torch.func import jvp

from ._grove import Structure


def _boost(p: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Lorentz boost of p = (px, py, pz, E) into the frame that moves with velocity beta.

    Written with gamma^2/(gamma+1) instead of (gamma-1)/beta^2, so beta = 0 is regular.
    """
    bp = (beta * p[..., :3]).sum(-1, keepdim=True)
    e = p[..., 3:4]
    vec = p[..., :3] + beta * (gamma * gamma / (gamma + 1.0) * bp - gamma * e)
    return torch.cat([vec, gamma * (e - bp)], -1)


def emit(pa, pb, log_a, log_b, phi):
    """One 2 -> 3 dipole emission: the dipole (a, b) becomes (a', g, b').

    log_a, log_b are ln(m_ag^2/m_ab^2) and ln(m_gb^2/m_ab^2) read off the grove. The exact three-body
    invariants are y_ag = A/(1+A+B), y_gb = B/(1+A+B) (A = e^log_a, B = e^log_b), always inside the
    massless three-body phase space and equal to (A, B) in the soft limit. In the dipole rest frame the
    parton a' makes the angle psi x_b^2/(x_a^2+x_b^2) with the old direction of a (Kleiss recoil), the
    emission plane has azimuth phi around that direction.
    """
    q = pa + pb
    q0 = q[..., 3:4]
    s = q0 * q0 - (q[..., :3] * q[..., :3]).sum(-1, keepdim=True)
    w = torch.sqrt(s)
    beta = q[..., :3] / q0
    gamma = q0 / w
    ra = _boost(pa, beta, gamma)[..., :3]
    n = ra / torch.sqrt((ra * ra).sum(-1, keepdim=True))

    A = torch.exp(log_a)[..., None]
    B = torch.exp(log_b)[..., None]
    d = 1.0 + A + B
    yag = A / d
    ygb = B / d
    xa = 1.0 - ygb
    xb = 1.0 - yag
    c = (1.0 / d) / (xa * xb)  # cos^2(psi/2), psi = pi - (angle between a' and b')
    psi = 2.0 * torch.atan2(torch.sqrt(1.0 - c), torch.sqrt(c))
    th1 = psi * xb * xb / (xa * xa + xb * xb)
    th2 = psi - th1

    nx, ny, nz = n[..., 0:1], n[..., 1:2], n[..., 2:3]
    rho = torch.sqrt(nx * nx + ny * ny)
    e1 = torch.cat([-ny / rho, nx / rho, torch.zeros_like(nx)], -1)
    e2 = torch.cat([ny * e1[..., 2:3] - nz * e1[..., 1:2], nz * e1[..., 0:1] - nx * e1[..., 2:3],
                    nx * e1[..., 1:2] - ny * e1[..., 0:1]], -1)
    ph = phi[..., None]
    e = torch.cos(ph) * e1 + torch.sin(ph) * e2

    ea = 0.5 * xa * w
    eb = 0.5 * xb * w
    va = ea * (torch.cos(th1) * n - torch.sin(th1) * e)
    vb = eb * (-torch.cos(th2) * n - torch.sin(th2) * e)
    vg = -(va + vb)
    eg = w - ea - eb
    na = _boost(torch.cat([va, ea], -1), -beta, gamma)
    nb = _boost(torch.cat([vb, eb], -1), -beta, gamma)
    ng = _boost(torch.cat([vg, eg], -1), -beta, gamma)
    return na, ng, nb


class Plan:
    """Per-step index lists of a Structure (no grad), ready for the differentiable loop."""

    def __init__(self, st: Structure, ecm: float, dtype):
        dev = st.flavour.device
        self.n = st.n
        self.ecm = ecm
        self.dtype = dtype
        self.nmax = int(st.n_gluons.max()) + 2 if st.n > 0 else 2
        self.last = st.n_gluons + 1
        ct = st.cos_theta.to(dtype)
        stt = torch.sqrt((1.0 - ct * ct).clamp(min=0.0))
        ph = st.phi0.to(dtype)
        self.dir = torch.stack([stt * torch.cos(ph), stt * torch.sin(ph), ct], -1)
        half_dy = 0.5 * st.dy
        lam = st.lam_int.to(dtype) * half_dy
        cl = st.lam_half_l.to(dtype) * 0.5  # multiple of L
        # log A = lambda_ag - lambda_ab, log B = lambda_gb - lambda_ab  (each: const + coef * L)
        self.la0 = lam[:, 1] - lam[:, 0]
        self.lac = cl[:, 1] - cl[:, 0]
        self.lb0 = lam[:, 2] - lam[:, 0]
        self.lbc = cl[:, 2] - cl[:, 0]
        order = torch.argsort(st.g_rank * max(st.n, 1) + st.g_event)
        counts = torch.bincount(st.g_rank, minlength=self.nmax - 2) if st.g_rank.numel() else \
            torch.zeros(0, dtype=torch.int64, device=dev)
        self.steps = []
        lo = 0
        for c in counts.tolist():
            idx = order[lo:lo + c]
            lo += c
            self.steps.append((st.g_event[idx], st.a_pos[idx], st.g_pos[idx], st.b_pos[idx],
                               self.la0[idx], self.lac[idx], self.lb0[idx], self.lbc[idx],
                               st.g_phi[idx].to(dtype)))
        # log-rate of the primary columns
        self.col_abs_y = st.col_abs_y.to(dtype)
        self.col_level = st.col_level.to(dtype)
        self.dk = 2.0 * st.dy
        self.a = st.a
        kmax0 = st.L - 2.0 * self.col_abs_y
        self.col_top = (self.col_level + 1.0) * self.dk >= kmax0[None, :]

    def momenta(self, lam: torch.Tensor) -> torch.Tensor:
        """Padded momenta [n, nmax, 4] at scale lam (a 0-dim tensor), differentiable in lam."""
        L = 2.0 * torch.log(self.ecm / lam)
        n = self.n
        dev = self.dir.device
        # lam * 0 makes P a dual tensor at every jvp level from the start, so the in-place writes below
        # touch only the written rows of the tangents (writing a dual into a plain buffer copies it all).
        P = torch.zeros((n, self.nmax, 4), dtype=self.dtype, device=dev) + lam * 0.0
        half = 0.5 * self.ecm
        ar = torch.arange(n, device=dev)
        P[:, 0, :3] = half * self.dir
        P[:, 0, 3] = half
        P[ar, self.last, :3] = -half * self.dir
        P[ar, self.last, 3] = half
        for ev, a, g, b, la0, lac, lb0, lbc, phi in self.steps:
            pa = P[ev, a]
            pb = P[ev, b]
            na, ng, nb = emit(pa, pb, la0 + lac * L, lb0 + lbc * L, phi)
            P[ev, a] = na
            P[ev, g] = ng
            P[ev, b] = nb
        return P

    def log_rate(self, lam: torch.Tensor) -> torch.Tensor:
        """ln P(discrete structure | Lambda), up to Lambda-independent terms, per event [n]."""
        L = 2.0 * torch.log(self.ecm / lam)
        kmax = L - 2.0 * self.col_abs_y  # [C]
        m = self.col_level
        lower = (m * self.dk / kmax) ** self.a
        upper = torch.where(self.col_top, torch.ones_like(lower), ((m + 1.0) * self.dk / kmax) ** self.a)
        return torch.log(upper - lower).sum(-1)

    def both(self, lam):
        return self.momenta(lam), self.log_rate(lam)


def taylor(f, x: torch.Tensor, order: int):
    """[f(x), f'(x), ..., f^(order)(x)] by nested forward-mode AD (torch.func.jvp); f returns a tuple."""
    if order == 0:
        return [f(x)]
    def nest(k):
        if k == 0:
            return f
        inner = nest(k - 1)
        return lambda z: jvp(inner, (z,), (torch.ones_like(z),))
    tree = nest(order)(x)
    out = []
    for j in range(order + 1):
        node = tree
        # the outermost tuple index selects the tangent of the last jvp: a path with j ones
        for bit in [1] * j + [0] * (order - j):
            node = node[bit]
        out.append(node)
    return out


def fact(k: int) -> float:
    return float(math.factorial(k))
