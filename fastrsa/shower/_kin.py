"""Kinematics: momenta as a smooth torch function of Lambda at a fixed grove (docs/shower.md)."""
import torch
from torch.func import jvp

from . import _jet as _j
from ._grove import Structure
from ._jet import Jet, log_scale_jet


def _boost(p, bx, by, bz, g):
    """Lorentz boost of p = (px, py, pz, E) into the frame that moves with velocity (bx, by, bz).

    Written with gamma^2/(gamma+1) instead of (gamma-1)/beta^2, so beta = 0 is regular. Works on plain
    tensors and on Jets alike (Jets are always the left operand of a product with a plain tensor).
    """
    px, py, pz, e = p
    bp = bx * px + by * py + bz * pz
    f = g * g / (g + 1.0) * bp - g * e
    return (px + bx * f, py + by * f, pz + bz * f, g * (e - bp))


def emit(pa, pb, log_a, log_b, sphi, cphi):
    """One 2 -> 3 dipole emission: the dipole (a, b) becomes (a', g, b').

    log_a, log_b are ln(m_ag^2/m_ab^2) and ln(m_gb^2/m_ab^2) read off the grove. The exact three-body
    invariants are y_ag = A/(1+A+B), y_gb = B/(1+A+B) (A = e^log_a, B = e^log_b), always inside the
    massless three-body phase space and equal to (A, B) in the soft limit. In the dipole rest frame the
    parton a' makes the angle psi x_b^2/(x_a^2+x_b^2) with the old direction of a (Kleiss recoil), the
    emission plane has azimuth phi around that direction (measured from e1 ~ z_lab x n).
    Momenta are 4-tuples (px, py, pz, E) of tensors or Jets.
    """
    qx, qy, qz, qe = (pa[i] + pb[i] for i in range(4))
    w = _j.sqrt(qe * qe - (qx * qx + qy * qy + qz * qz))
    bx, by, bz = qx / qe, qy / qe, qz / qe
    g = qe / w
    rx, ry, rz, _ = _boost(pa, bx, by, bz, g)
    rn = _j.sqrt(rx * rx + ry * ry + rz * rz)
    nx, ny, nz = rx / rn, ry / rn, rz / rn

    A = _j.exp(log_a)
    B = _j.exp(log_b)
    d = A + B + 1.0
    yag = A / d
    ygb = B / d
    xa = -ygb + 1.0
    xb = -yag + 1.0
    c = 1.0 / (d * xa * xb)  # cos^2(psi/2), psi = pi - (angle between a' and b')
    psi = _j.atan2(_j.sqrt(-c + 1.0), _j.sqrt(c)) * 2.0
    th1 = psi * (xb * xb) / (xa * xa + xb * xb)
    th2 = psi - th1

    rho = _j.sqrt(nx * nx + ny * ny)
    e1x, e1y = -ny / rho, nx / rho
    e2x, e2y, e2z = -(nz * e1y), nz * e1x, nx * e1y - ny * e1x
    ex = e1x * cphi + e2x * sphi
    ey = e1y * cphi + e2y * sphi
    ez = e2z * sphi
    s1, c1 = _j.sincos(th1)
    s2, c2 = _j.sincos(th2)
    ea = xa * w * 0.5
    eb = xb * w * 0.5
    ax, ay, az = ea * (c1 * nx - s1 * ex), ea * (c1 * ny - s1 * ey), ea * (c1 * nz - s1 * ez)
    cx, cy, cz = -(eb * (c2 * nx + s2 * ex)), -(eb * (c2 * ny + s2 * ey)), -(eb * (c2 * nz + s2 * ez))
    gx, gy, gz = -(ax + cx), -(ay + cy), -(az + cz)
    eg = w - ea - eb
    na = _boost((ax, ay, az, ea), -bx, -by, -bz, g)
    nb = _boost((cx, cy, cz, eb), -bx, -by, -bz, g)
    ng = _boost((gx, gy, gz, eg), -bx, -by, -bz, g)
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

    def _initial(self, P0):
        half = 0.5 * self.ecm
        ar = torch.arange(self.n, device=self.dir.device)
        P0[:, 0, :3] = half * self.dir
        P0[:, 0, 3] = half
        P0[ar, self.last, :3] = -half * self.dir
        P0[ar, self.last, 3] = half

    def momenta(self, lam: torch.Tensor) -> torch.Tensor:
        """Padded momenta [n, nmax, 4] at scale lam (a 0-dim tensor), differentiable in lam (torch AD)."""
        L = 2.0 * torch.log(self.ecm / lam)
        # lam * 0 makes P a dual tensor at every jvp level from the start, so the in-place writes below
        # do not have to promote a plain buffer.
        P = torch.zeros((self.n, self.nmax, 4), dtype=self.dtype, device=self.dir.device) + lam * 0.0
        self._initial(P)
        for ev, a, g, b, la0, lac, lb0, lbc, phi in self.steps:
            pa = tuple(P[ev, a, i] for i in range(4))
            pb = tuple(P[ev, b, i] for i in range(4))
            na, ng, nb = emit(pa, pb, la0 + lac * L, lb0 + lbc * L, torch.sin(phi), torch.cos(phi))
            P[ev, a] = torch.stack(na, -1)
            P[ev, g] = torch.stack(ng, -1)
            P[ev, b] = torch.stack(nb, -1)
        return P

    def momenta_jet(self, lam0: float, K: int) -> torch.Tensor:
        """Taylor coefficients [K+1, n, nmax, 4] of the padded momenta in Lambda at lam0 (Taylor-mode AD)."""
        Lc = log_scale_jet(self.ecm, lam0, K, self.dtype, self.dir.device)
        P = torch.zeros((K + 1, self.n, self.nmax, 4), dtype=self.dtype, device=self.dir.device)
        self._initial(P[0])
        for ev, a, g, b, la0, lac, lb0, lbc, phi in self.steps:
            pa = tuple(Jet(P[:, ev, a, i]) for i in range(4))
            pb = tuple(Jet(P[:, ev, b, i]) for i in range(4))
            ja = Jet(torch.cat([(la0 + lac * Lc[0])[None], lac[None] * Lc[1:, None]]))
            jb = Jet(torch.cat([(lb0 + lbc * Lc[0])[None], lbc[None] * Lc[1:, None]]))
            na, ng, nb = emit(pa, pb, ja, jb, torch.sin(phi), torch.cos(phi))
            P[:, ev, a] = torch.stack([x.c for x in na], -1)
            P[:, ev, g] = torch.stack([x.c for x in ng], -1)
            P[:, ev, b] = torch.stack([x.c for x in nb], -1)
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
