"""generate() and ShowerSample: the public entry points of the shower (docs/shower.md)."""
import math
from dataclasses import dataclass, field

import torch

from ..errors import ParameterError
from . import _grove
from ._kin import Plan, taylor
from ._model import DEFAULT_DY

#: Version of the physics model and of the map from random numbers to events. Any change that alters
#: the events generated for a given (seed, lam, ecm) must change this string.
SHOWER_VERSION = "eventmover-dqcd-1.0"


@dataclass
class ShowerSample:
    """A batch of parton-level events with their Lambda-derivatives (ragged storage).

    p: [n_partons, 4] (px, py, pz, E) in GeV; per event in colour-chain order quark, gluons, antiquark.
    pdg: [n_partons] int64; offsets: [n+1] int64 (event i is p[offsets[i]:offsets[i+1]]).
    coeffs: [orders, n_partons, 4], coeffs[k-1] = d^k p / dLambda^k / k!.
    log_rate_derivs: [n, orders], column k-1 = d^k ln(rate) / dLambda^k (no 1/k!).
    topology: [n] int64 identifier of the discrete structure (equal structure <=> equal id, up to hash
    collisions). log_rate: [n] ln P(discrete structure | Lambda) of the Lambda-dependent columns.
    generation / level: per parton, -1 / 0 for the quarks, else the gluon's generation in the
    grove (0 = primary) and its kappa level m (kappa = 2 m dy).
    """
    p: torch.Tensor
    pdg: torch.Tensor
    offsets: torch.Tensor
    coeffs: torch.Tensor
    log_rate_derivs: torch.Tensor
    topology: torch.Tensor
    generation: torch.Tensor
    level: torch.Tensor
    log_rate: torch.Tensor
    lam: float
    ecm: float
    seed: int
    orders: int
    dy: float
    first_event: int = 0
    version: str = field(default=SHOWER_VERSION)

    @property
    def n_events(self) -> int:
        return self.offsets.numel() - 1

    @property
    def multiplicity(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def event_index(self) -> torch.Tensor:
        """Event number (0..n-1) of every parton."""
        return torch.repeat_interleave(torch.arange(self.n_events, device=self.offsets.device), self.multiplicity)

    def event(self, i: int) -> torch.Tensor:
        return self.p[int(self.offsets[i]):int(self.offsets[i + 1])]

    def moved(self, delta: float, order: int) -> torch.Tensor:
        """p(Lambda + delta) ~ p + sum_{k=1..order} coeffs_k delta^k (EventMover, eq. (1) of 2208.02274)."""
        if not isinstance(order, int) or order < 0 or order > self.orders:
            raise ParameterError(f"order must be an int in 0..{self.orders} (the orders stored), got {order!r}")
        delta = float(delta)
        if not math.isfinite(delta):
            raise ParameterError(f"delta must be finite, got {delta!r}")
        out = self.p.clone()
        for k in range(1, order + 1):
            out = out + self.coeffs[k - 1] * delta ** k
        return out

    def log_weight(self, delta: float, order: int | None = None) -> torch.Tensor:
        """Taylor estimate of ln(rate(Lambda + delta) / rate(Lambda)) per event."""
        order = self.orders if order is None else order
        if not isinstance(order, int) or order < 0 or order > self.orders:
            raise ParameterError(f"order must be an int in 0..{self.orders}, got {order!r}")
        out = torch.zeros(self.n_events, dtype=self.p.dtype, device=self.p.device)
        for k in range(1, order + 1):
            out = out + self.log_rate_derivs[:, k - 1] * float(delta) ** k / math.factorial(k)
        return out


def _check(n, lam, ecm, seed, orders, dtype, dy, chunk_size, first_event):
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ParameterError(f"n (number of events) must be an int >= 0, got {n!r}")
    for name, v in (("lam", lam), ("ecm", ecm), ("dy", dy)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ParameterError(f"{name} must be a finite number > 0, got {v!r}")
    if lam >= ecm / 2:
        raise ParameterError(f"lam must be well below ecm/2 (lam={lam}, ecm={ecm}): set lam to a QCD scale, e.g. 0.4")
    if not 0.3 <= dy <= 2.0:
        raise ParameterError(f"dy must lie in [0.3, 2.0] (the multiplicity explodes for small steps), got {dy!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ParameterError(f"seed must be an int in [0, 2^63), got {seed!r}")
    if isinstance(orders, bool) or not isinstance(orders, int) or not 0 <= orders <= 6:
        raise ParameterError(f"orders must be an int in 0..6, got {orders!r}")
    if dtype not in (torch.float64, torch.float32):
        raise ParameterError(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ParameterError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    if isinstance(first_event, bool) or not isinstance(first_event, int) or first_event < 0:
        raise ParameterError(f"first_event must be an int >= 0, got {first_event!r}")


def generate(n: int, lam: float, ecm: float = 91.2, seed: int = 0, orders: int = 3, device="cpu",
             dtype=torch.float64, *, dy: float = DEFAULT_DY, chunk_size: int = 4096,
             first_event: int = 0, method: str = "jet") -> ShowerSample:
    """Generate n events e+e- -> q qbar + Discrete-QCD cascade at scale Lambda = lam (GeV).

    Event i is a function of (seed, first_event + i, lam, ecm, dy) only: not of n, chunk_size or device.
    orders: number of Lambda-derivatives (Taylor coefficients) computed by nested forward-mode autodiff.
    dy: rapidity step of the lattice (default 1/alpha0; the kappa step is 2 dy).
    method: "jet" (Taylor-mode forward AD, fast) or "jvp" (nested torch.func.jvp, slow; a cross-check).
    The log-rate derivatives always use nested torch.func.jvp.
    """
    if method not in ("jet", "jvp"):
        raise ParameterError(f"method must be 'jet' or 'jvp', got {method!r}")
    lam = float(lam) if isinstance(lam, (int, float)) and not isinstance(lam, bool) else lam
    ecm = float(ecm) if isinstance(ecm, (int, float)) and not isinstance(ecm, bool) else ecm
    _check(n, lam, ecm, seed, orders, dtype, dy, chunk_size, first_event)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device {device!r} is not a torch device: {exc}") from None
    L = 2.0 * math.log(ecm / lam)
    ps, pdgs, mults, coefs, lrs, topos, gens, levels, rates = [], [], [], [], [], [], [], [], []
    for lo in range(0, n, chunk_size):
        m = min(chunk_size, n - lo)
        with torch.no_grad():
            st = _grove.build(m, first_event + lo, seed, L, ecm, dy, dev)
        plan = Plan(st, ecm, dtype)
        x = torch.tensor(lam, dtype=dtype, device=dev)
        valid = torch.arange(plan.nmax, device=dev)[None, :] < (st.n_gluons + 2)[:, None]
        if method == "jet":
            PJ = plan.momenta_jet(lam, orders)
            lr = [d.detach() for d in taylor(plan.log_rate, x, orders)]
            pc = [PJ[k] for k in range(orders + 1)]
        else:
            ders = taylor(plan.both, x, orders)
            lr = [d[1].detach() for d in ders]
            pc = [ders[k][0].detach() / math.factorial(k) for k in range(orders + 1)]
        ps.append(pc[0][valid])
        rates.append(lr[0])
        coefs.append(torch.stack([pc[k][valid] for k in range(1, orders + 1)])
                     if orders else torch.zeros((0, int(valid.sum()), 4), dtype=dtype, device=dev))
        lrs.append(torch.stack(lr[1:], 1) if orders else torch.zeros((m, 0), dtype=dtype, device=dev))
        pdg = torch.full((m, plan.nmax), 21, dtype=torch.int64, device=dev)
        pdg[:, 0] = st.flavour
        pdg[torch.arange(m, device=dev), plan.last] = -st.flavour
        pdgs.append(pdg[valid])
        gen = torch.full((m, plan.nmax), -1, dtype=torch.int64, device=dev)
        lev = torch.zeros((m, plan.nmax), dtype=torch.int64, device=dev)
        gen[st.g_event, st.g_pos] = st.g_gen
        lev[st.g_event, st.g_pos] = st.g_level
        gens.append(gen[valid])
        levels.append(lev[valid])
        mults.append(st.n_gluons + 2)
        topos.append(st.topology)
    if n == 0:
        z = torch.zeros((0,), dtype=torch.int64, device=dev)
        return ShowerSample(p=torch.zeros((0, 4), dtype=dtype, device=dev), pdg=z,
                            offsets=torch.zeros(1, dtype=torch.int64, device=dev),
                            coeffs=torch.zeros((orders, 0, 4), dtype=dtype, device=dev),
                            log_rate_derivs=torch.zeros((0, orders), dtype=dtype, device=dev), topology=z,
                            log_rate=torch.zeros((0,), dtype=dtype, device=dev),
                            generation=z, level=z, lam=lam, ecm=ecm, seed=seed, orders=orders, dy=dy,
                            first_event=first_event)
    mult = torch.cat(mults)
    offsets = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    offsets[1:] = torch.cumsum(mult, 0)
    return ShowerSample(p=torch.cat(ps), pdg=torch.cat(pdgs), offsets=offsets, coeffs=torch.cat(coefs, 1),
                        log_rate_derivs=torch.cat(lrs), topology=torch.cat(topos), generation=torch.cat(gens),
                        log_rate=torch.cat(rates),
                        level=torch.cat(levels), lam=lam, ecm=ecm, seed=seed, orders=orders, dy=dy,
                        first_event=first_event)
