"""The discrete structure of the events (the "grove"), built before any kinematics.

Everything here is integer or no-grad bookkeeping. Lengths along the grove are kept as exact
integers in units of dy/2 plus an integer multiple of L/2 (L = ln(s/Lambda^2)), so the structure does
not depend on floating-point summation order (hence not on the batch or the chunking).
See docs/shower.md for the model.
"""
import math
from dataclasses import dataclass

import torch

from . import _rng
from ._model import ALPHA0, sample_cos_theta, sample_flavour

# Purposes of the uniform numbers attached to an address (docs/shower.md, "Random numbers").
_P_LEVEL, _P_PHI = 0, 1
_P_FLAV, _P_COS, _P_PHI0 = 10, 11, 12
_J_OFFSET = 1 << 20


def _segment_starts(counts: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(counts, 0) - counts


def _local_index(counts: torch.Tensor) -> torch.Tensor:
    """0..c-1 for every segment of the given lengths, concatenated."""
    total = int(counts.sum())
    starts = _segment_starts(counts)
    return torch.arange(total, device=counts.device) - torch.repeat_interleave(starts, counts)


def _exclusive_segment_cumsum(values: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Exclusive cumulative sum of int64 values within contiguous groups (group ids sorted)."""
    if values.numel() == 0:
        return values.clone()
    _, counts = torch.unique_consecutive(group, return_counts=True)
    ex = torch.cumsum(values, 0) - values
    first = ex[_segment_starts(counts)]
    return ex - torch.repeat_interleave(first, counts)


@dataclass
class Structure:
    """The discrete part of a chunk of events (all tensors on one device)."""
    n: int
    L: float
    dy: float
    a: float                      # exponent alpha0*dy of the column distribution
    flavour: torch.Tensor         # [n] pdg id of the quark
    cos_theta: torch.Tensor       # [n]
    phi0: torch.Tensor            # [n]
    col_abs_y: torch.Tensor       # [C] |y| of the primary columns that can hold a gluon at this L
    col_level: torch.Tensor       # [n, C] level m of every primary column (0: no gluon)
    n_gluons: torch.Tensor        # [n]
    # per gluon, sorted by (event, chain position):
    g_event: torch.Tensor
    g_pos: torch.Tensor           # chain position (1..n_g); the quark is 0, the antiquark n_g+1
    g_level: torch.Tensor         # m >= 1, kappa = 2 m dy
    g_gen: torch.Tensor           # 0 for primary gluons
    g_rank: torch.Tensor          # emission order inside its event (kappa descending)
    g_phi: torch.Tensor           # azimuth of the emission, float64
    a_pos: torch.Tensor           # colour neighbours at the time of the emission
    b_pos: torch.Tensor
    lam_int: torch.Tensor         # [G, 3] grove lengths (ab, ag, gb): integer part in units dy/2
    lam_half_l: torch.Tensor      # [G, 3] grove lengths: multiple of L/2
    topology: torch.Tensor        # [n] int64


def column_level(kmax: torch.Tensor, u: torch.Tensor, a: float, dk: float) -> torch.Tensor:
    """Level of the effective gluon of a column: floor(kappa / dk) with kappa = kmax * u^(1/a)."""
    kap = kmax * u ** (1.0 / a)
    return torch.floor(kap / dk).to(torch.int64)


#: Reference scale of the stable coupling of the primary columns (docs/shower.md, 3.2).
LAMBDA_REF = 0.1
N_CANDIDATES = 16


def primary_level(addr: torch.Tensor, kmax: torch.Tensor, kref: torch.Tensor, a: float, dk: float) -> torch.Tensor:
    """Level of a primary column, drawn so that it rarely changes when kmax (i.e. Lambda) changes.

    Candidates kappa_i = kref u_i^(1/a), i = 0..15, follow the column law on the larger, Lambda-independent
    range [0, kref]; the first one below kmax is taken (rejection sampling, so it follows the column law on
    [0, kmax] exactly). A candidate is an absolute kappa, so the choice changes only when kmax crosses the
    chosen or an earlier candidate. If none is accepted (rare), kappa = kmax u^(1/a) (still exact).
    """
    shape = addr.shape
    kap = torch.empty(shape, dtype=torch.float64, device=addr.device)
    found = torch.zeros(shape, dtype=torch.bool, device=addr.device)
    for i in range(N_CANDIDATES):
        ki = kref * _rng.uniform(addr, 100 + i) ** (1.0 / a)
        take = (~found) & (ki < kmax)
        kap = torch.where(take, ki, kap)
        found |= take
    fallback = kmax * _rng.uniform(addr, _P_LEVEL) ** (1.0 / a)
    kap = torch.where(found, kap, fallback)
    return torch.floor(kap / dk).to(torch.int64)


def build(n: int, first_event: int, seed: int, L: float, ecm: float, dy: float, device) -> Structure:
    dev = torch.device(device)
    a = ALPHA0 * dy
    dk = 2.0 * dy
    evg = torch.arange(first_event, first_event + n, device=dev, dtype=torch.int64)
    ek = _rng.event_keys(seed, evg)
    flavour = sample_flavour(_rng.uniform(ek, _P_FLAV), ecm)
    cos_theta = sample_cos_theta(_rng.uniform(ek, _P_COS))
    phi0 = 2.0 * math.pi * _rng.uniform(ek, _P_PHI0)

    # ---- generation 0: the primary triangle |y| < (L - kappa)/2, columns at y = (j + 1/2) dy.
    jhi = math.ceil(L / (2.0 * dy)) + 1
    js = torch.arange(jhi, -jhi - 1, -1, device=dev, dtype=torch.int64)  # y descending = quark side first
    y = (js.to(torch.float64) + 0.5) * dy
    kmax = L - 2.0 * y.abs()
    keep = kmax > dk
    js, y, kmax = js[keep], y[keep], kmax[keep]
    C = js.numel()
    addr0 = _rng.combine(ek[:, None].expand(n, C), (js + _J_OFFSET)[None, :].expand(n, C))
    lref = 2.0 * math.log(ecm / LAMBDA_REF)
    kref = torch.clamp(lref - 2.0 * y.abs(), min=0.0).maximum(kmax)
    col_level = primary_level(addr0, kmax[None, :].expand(n, C), kref[None, :].expand(n, C), a, dk)  # [n, C]

    sel = col_level >= 1
    ev_l = [torch.arange(n, device=dev).repeat_interleave(C).view(n, C)[sel]]
    addr_l = [addr0[sel]]
    m_l = [col_level[sel]]
    t_l = [(-(2 * js + 1))[None, :].expand(n, C)[sel]]  # t = -y in units dy/2 (s = L/2 + t)
    par_l = [torch.full_like(m_l[0], -1)]
    gen_l = [torch.zeros_like(m_l[0])]
    offset = m_l[0].numel()
    cur = torch.arange(offset, device=dev)
    cur_m, cur_addr, cur_ev = m_l[0], addr_l[0], ev_l[0]
    gen = 0
    # ---- folds: a gluon of level k (kappa_g = 2 k dy) opens a triangle of size kappa_g, seen from its
    # tip: columns at t = (j + 1/2) dy, j = -k..k-1, with kappa_max = 2 |t|.
    while cur.numel() > 0:
        gen += 1
        cnt = 2 * cur_m
        rep = torch.repeat_interleave(torch.arange(cur.numel(), device=dev), cnt)
        j = _local_index(cnt) - cur_m[rep]
        t = 2 * j + 1
        kmx = t.abs().to(torch.float64) * dy
        ok = kmx > dk
        rep, j, t, kmx = rep[ok], j[ok], t[ok], kmx[ok]
        addr = _rng.combine(cur_addr[rep], j + _J_OFFSET)
        m = column_level(kmx, _rng.uniform(addr, _P_LEVEL), a, dk)
        s = m >= 1
        rep, t, addr, m = rep[s], t[s], addr[s], m[s]
        ev_l.append(cur_ev[rep])
        addr_l.append(addr)
        m_l.append(m)
        t_l.append(t)
        par_l.append(cur[rep])
        gen_l.append(torch.full_like(m, gen))
        cur = torch.arange(offset, offset + m.numel(), device=dev)
        offset += m.numel()
        cur_m, cur_addr, cur_ev = m, addr, cur_ev[rep]

    g_ev = torch.cat(ev_l)
    g_addr = torch.cat(addr_l)
    g_m = torch.cat(m_l)
    g_t = torch.cat(t_l)
    g_par = torch.cat(par_l)
    g_gen = torch.cat(gen_l)
    G = g_m.numel()
    gen_bounds = torch.cumsum(torch.tensor([0] + [x.numel() for x in m_l], device=dev), 0).tolist()

    # ---- grove lengths in units of dy/2: the half-fold of a gluon is h = kappa/2 = m dy = 2m units.
    h = 2 * g_m
    F = 2 * h  # total length of the fold of the gluon including all its descendants
    Fneg = torch.zeros_like(F)  # length of the descendants on the quark side (t < 0)
    for g in range(len(m_l) - 1, 0, -1):
        lo, hi = gen_bounds[g], gen_bounds[g + 1]
        if hi > lo:
            par = g_par[lo:hi]
            F.index_add_(0, par, F[lo:hi].clone())
            neg = g_t[lo:hi] < 0
            Fneg.index_add_(0, par[neg], F[lo:hi][neg].clone())
    A = torch.zeros_like(F)  # walk position where the fold of the gluon starts (integer part)
    lo, hi = gen_bounds[0], gen_bounds[1]
    A[lo:hi] = g_t[lo:hi] + _exclusive_segment_cumsum(F[lo:hi], g_ev[lo:hi])
    for g in range(1, len(m_l)):
        lo, hi = gen_bounds[g], gen_bounds[g + 1]
        if hi > lo:
            par = g_par[lo:hi]
            A[lo:hi] = A[par] + h[par] + g_t[lo:hi] + _exclusive_segment_cumsum(F[lo:hi], par)
    X = A + h + Fneg  # tip position (integer part); every gluon tip also carries + L/2

    # ---- colour chain: sort the gluons of each event by tip position.
    n_g = torch.bincount(g_ev, minlength=n) if G else torch.zeros(n, dtype=torch.int64, device=dev)
    order = torch.argsort(X, stable=True)
    order = order[torch.argsort(g_ev[order], stable=True)]
    g_ev, g_addr, g_m, g_gen, X, h = (v[order] for v in (g_ev, g_addr, g_m, g_gen, X, h))
    starts = _segment_starts(n_g)
    g_pos = _local_index(n_g) + 1
    nmax = int(n_g.max()) + 2 if n > 0 else 2
    last = n_g + 1

    # emission order: kappa (level) descending, then generation, then chain position
    key = g_ev * (1 << 40) + (1023 - g_m) * (1 << 28) + g_gen * (1 << 20) + g_pos
    ordr = torch.argsort(key)
    g_rank = torch.empty_like(g_m)
    g_rank[ordr] = torch.arange(G, device=dev) - starts[g_ev[ordr]]

    # padded per-event arrays along the chain
    big = 1 << 40
    R = torch.full((n, nmax), big, dtype=torch.int64, device=dev)
    R[:, 0] = -1
    R[torch.arange(n, device=dev), last] = -1
    R[g_ev, g_pos] = g_rank
    Xp = torch.zeros((n, nmax), dtype=torch.int64, device=dev)
    Cl = torch.zeros((n, nmax), dtype=torch.int64, device=dev)  # multiple of L/2
    Hp = torch.zeros((n, nmax), dtype=torch.int64, device=dev)
    Xp[g_ev, g_pos] = X
    Cl[g_ev, g_pos] = 1
    Hp[g_ev, g_pos] = h
    total = torch.zeros(n, dtype=torch.int64, device=dev)
    if G:
        total.index_add_(0, g_ev, 2 * h)
    Xp[torch.arange(n, device=dev), last] = total
    Cl[torch.arange(n, device=dev), last] = 2
    Cx = torch.cumsum(2 * Hp, 1) - 2 * Hp  # exclusive sum of own fold lengths along the chain

    # colour neighbours at the time of each emission: nearest already-emitted partons
    ar = torch.arange(nmax, device=dev)
    rows = R[g_ev]                                   # [G, nmax]
    earlier = rows < g_rank[:, None]
    a_pos = torch.where(earlier & (ar[None, :] < g_pos[:, None]), ar[None, :], -1).max(1).values
    b_pos = torch.where(earlier & (ar[None, :] > g_pos[:, None]), ar[None, :], nmax).min(1).values

    def grove_len(x, yv):
        """Length between tips x < y when every parton strictly between them is still unemitted."""
        i = Xp[g_ev, yv] - Xp[g_ev, x] - (Cx[g_ev, yv] - Cx[g_ev, x + 1])
        c = Cl[g_ev, yv] - Cl[g_ev, x]
        return i, c

    iab, cab = grove_len(a_pos, b_pos)
    iag, cag = grove_len(a_pos, g_pos)
    igb, cgb = grove_len(g_pos, b_pos)
    lam_int = torch.stack([iab, iag, igb], 1)
    lam_half_l = torch.stack([cab, cag, cgb], 1)

    g_phi = 2.0 * math.pi * _rng.uniform(g_addr, _P_PHI)
    th = _rng.combine(g_addr, g_m + 77)
    topo = torch.zeros(n, dtype=torch.int64, device=dev)
    if G:
        topo.index_add_(0, g_ev, th)
    topo = _rng.combine(_rng.combine(topo & 0xFFFFFFFF, (topo >> 32) & 0xFFFFFFFF), n_g) \
        | ((n_g & 0x7FFF) << 32) | ((flavour & 0xFF) << 47)

    return Structure(n=n, L=L, dy=dy, a=a, flavour=flavour, cos_theta=cos_theta, phi0=phi0,
                     col_abs_y=y.abs(), col_level=col_level, n_gluons=n_g, g_event=g_ev, g_pos=g_pos,
                     g_level=g_m, g_gen=g_gen, g_rank=g_rank, g_phi=g_phi, a_pos=a_pos, b_pos=b_pos,
                     lam_int=lam_int, lam_half_l=lam_half_l, topology=topo)
