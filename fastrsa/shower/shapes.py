"""Parton-level event shapes in torch, differentiable in the momenta, ragged via offsets."""
import torch

from ..errors import ParameterError


def _check(p, offsets):
    if not torch.is_tensor(p) or p.dim() != 2 or p.shape[1] not in (3, 4):
        raise ParameterError("p must be a tensor [n_partons, 4] (px, py, pz, E) or [n_partons, 3]")
    if not torch.is_tensor(offsets) or offsets.dim() != 1 or offsets.numel() < 1:
        raise ParameterError("offsets must be a 1-d int tensor [n_events + 1]")
    if int(offsets[0]) != 0 or int(offsets[-1]) != p.shape[0] or bool((offsets[1:] < offsets[:-1]).any()):
        raise ParameterError("offsets must start at 0, end at len(p) and be non-decreasing")


def _pad(p3, offsets):
    mult = offsets[1:] - offsets[:-1]
    n = mult.numel()
    m = int(mult.max()) if n else 0
    ev = torch.repeat_interleave(torch.arange(n, device=p3.device), mult)
    slot = torch.arange(p3.shape[0], device=p3.device) - offsets[:-1][ev]
    out = p3.new_zeros((n, max(m, 1), 3))
    out = out.index_put((ev, slot), p3)
    return out, ev, slot


def _thrust_signs(P: torch.Tensor) -> torch.Tensor:
    """Exact optimal hemisphere signs [E, M] for padded 3-momenta P [E, M, 3] (no grad).

    The thrust axis is perpendicular to a plane through the origin that separates the two hemispheres;
    that plane can be turned, without changing the partition, until it contains two of the momenta
    p_j, p_k. So it suffices to try, for every pair j < k, the normal n = p_j x p_k with the signs
    sign(p_i . n) for i != j, k and all four sign choices for j and k, and keep the largest
    |sum_i s_i p_i| (= max over unit n of sum_i |n . p_i|).
    """
    E, M, _ = P.shape
    if M < 2:
        return torch.ones((E, M), dtype=P.dtype, device=P.device)
    # Degenerate configurations (e.g. every 3-parton event is planar) leave sign(p_i . n) = 0 for
    # momenta in the plane of p_j, p_k. The partitions are therefore enumerated on slightly perturbed
    # momenta (a fixed, relative 1e-7 perturbation), which are in general position; every candidate is
    # then scored with the true momenta. The optimal partition of the true momenta is strictly separable
    # by a plane, so it stays separable after the perturbation and is among the candidates: exact.
    Preal = P
    gen = torch.Generator(device="cpu").manual_seed(12345)
    noise = torch.randn((E, M, 3), generator=gen, dtype=torch.float64).to(device=P.device, dtype=P.dtype)
    P = P + 1e-7 * noise * P.norm(dim=-1, keepdim=True)
    jj, kk = torch.triu_indices(M, M, 1, device=P.device)
    K = jj.numel()
    best_val = torch.full((E,), -1.0, dtype=P.dtype, device=P.device)
    best_s = torch.ones((E, M), dtype=P.dtype, device=P.device)
    combos = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=P.dtype, device=P.device)
    step = max(1, int(4e6 // max(1, E * M)))
    ar = torch.arange(E, device=P.device)
    for lo in range(0, K, step):
        j, k = jj[lo:lo + step], kk[lo:lo + step]
        nrm = torch.cross(P[:, j], P[:, k], dim=-1)                      # [E, k, 3]
        s = torch.sign(torch.einsum("emc,ekc->ekm", P, nrm))             # [E, k, M]
        kk_ar = torch.arange(j.numel(), device=P.device)
        s[:, kk_ar, j] = 0.0
        s[:, kk_ar, k] = 0.0
        base = torch.einsum("ekm,emc->ekc", s, Preal)                     # [E, k, 3]
        cand = base[:, :, None, :] + combos[None, None, :, 0:1] * Preal[:, j][:, :, None, :] \
            + combos[None, None, :, 1:2] * Preal[:, k][:, :, None, :]     # [E, k, 4, 3]
        val = (cand * cand).sum(-1).flatten(1)                            # [E, 4k]
        v, idx = val.max(1)
        better = v > best_val
        if bool(better.any()):
            kc, cc = idx // 4, idx % 4
            sv = s[ar, kc].clone()
            sv[ar, j[kc]] = combos[cc, 0]
            sv[ar, k[kc]] = combos[cc, 1]
            best_s = torch.where(better[:, None], sv, best_s)
            best_val = torch.where(better, v, best_val)
    return best_s


def thrust(p: torch.Tensor, offsets: torch.Tensor, return_axis: bool = False):
    """Thrust T = max_n sum_i |n . p_i| / sum_i |p_i| per event (exact; Farhi 1977).

    The optimal partition is found exactly (see _thrust_signs, O(M^3) per event of M partons); T is then
    |sum_i s_i p_i| / sum_i |p_i| at that fixed partition, which autograd differentiates in p.
    """
    _check(p, offsets)
    p3 = p[:, :3]
    P, ev, slot = _pad(p3, offsets)
    with torch.no_grad():
        s = _thrust_signs(P.detach())
    si = s[ev, slot]
    n = offsets.numel() - 1
    vec = p3.new_zeros((n, 3)).index_add(0, ev, si[:, None] * p3)
    norm = p3.new_zeros((n,)).index_add(0, ev, torch.sqrt((p3 * p3).sum(-1)))
    t = torch.sqrt((vec * vec).sum(-1)) / norm
    if return_axis:
        return t, vec / torch.sqrt((vec * vec).sum(-1, keepdim=True))
    return t


def c_parameter(p: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """C = 3 (l1 l2 + l2 l3 + l3 l1) of the linearised momentum tensor
    Theta^{ab} = sum_i p_i^a p_i^b / |p_i| / sum_i |p_i|, computed as
    C = 3/2 (S^2 - tr(M^2)) / S^2 with M = sum_i p_i p_i^T / |p_i| and S = sum_i |p_i|.
    """
    _check(p, offsets)
    p3 = p[:, :3]
    n = offsets.numel() - 1
    mult = offsets[1:] - offsets[:-1]
    ev = torch.repeat_interleave(torch.arange(n, device=p.device), mult)
    a = torch.sqrt((p3 * p3).sum(-1))
    outer = p3[:, :, None] * p3[:, None, :] / a[:, None, None]
    M = p3.new_zeros((n, 3, 3)).index_add(0, ev, outer)
    S = p3.new_zeros((n,)).index_add(0, ev, a)
    tr = (M * M).sum((1, 2))
    return 1.5 * (S * S - tr) / (S * S)
