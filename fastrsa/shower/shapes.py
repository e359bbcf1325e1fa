"""Parton-level event shapes in torch, differentiable in the momenta, ragged via offsets."""
import numpy as np
import torch

from ..errors import ParameterError
from ..eventshapes import thrust_kernel


def _check(p, offsets):
    if not torch.is_tensor(p) or p.dim() != 2 or p.shape[1] not in (3, 4):
        raise ParameterError("p must be a tensor [n_partons, 4] (px, py, pz, E) or [n_partons, 3]")
    if not torch.is_tensor(offsets) or offsets.dim() != 1 or offsets.numel() < 1:
        raise ParameterError("offsets must be a 1-d int tensor [n_events + 1]")
    if int(offsets[0]) != 0 or int(offsets[-1]) != p.shape[0] or bool((offsets[1:] < offsets[:-1]).any()):
        raise ParameterError("offsets must start at 0, end at len(p) and be non-decreasing")


def thrust(p: torch.Tensor, offsets: torch.Tensor, return_axis: bool = False):
    """Thrust T = max_n sum_i |n . p_i| / sum_i |p_i| per event (exact; Farhi 1977).

    The optimal partition is found exactly (fastrsa.eventshapes.thrust_kernel, O(M^3) per event of M partons,
    compiled with numba on the CPU); T is then
    |sum_i s_i p_i| / sum_i |p_i| at that fixed partition, which autograd differentiates in p.
    """
    _check(p, offsets)
    p3 = p[:, :3]
    with torch.no_grad():       # the optimal partition, exactly (fastrsa.eventshapes, numba)
        q = p3.detach().to("cpu", torch.float64).numpy()
        off = offsets.detach().cpu().numpy().astype(np.int64)
        signs = np.empty(len(q))
        thrust_kernel(off, *(np.ascontiguousarray(q[:, c]) for c in range(3)), np.empty(len(off) - 1), signs, True)
    si = torch.from_numpy(signs).to(p.dtype).to(p.device)
    ev = torch.repeat_interleave(torch.arange(offsets.numel() - 1, device=p.device), offsets[1:] - offsets[:-1])
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
