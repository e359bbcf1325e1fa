"""Counter-based random numbers: every random number of an event is a pure function of
(seed, event index, cell address, purpose).

Nothing is drawn sequentially, so an event does not depend on the batch it is generated in, on the
chunking, or on the device: the fixed table of random numbers of each event is simply evaluated on
demand. All arithmetic is done on int64 tensors holding values in [0, 2**32), with multipliers below
2**30 so that no product overflows a signed 64-bit integer.
"""
import torch

_M32 = (1 << 32) - 1
# Odd multipliers below 2**30 (own choice); products of a 32-bit value with them fit in int64.
_C1 = 0x2C1B3C6D & 0x3FFFFFFF
_C2 = 0x297A2D39 & 0x3FFFFFFF
_C3 = 0x1B873593 & 0x3FFFFFFF
_GOLD = 0x9E3779B9


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective avalanche mix of 32-bit values (xor-shift / multiply rounds)."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * _C1) & _M32
    x = x ^ (x >> 15)
    x = (x * _C2) & _M32
    x = x ^ (x >> 16)
    x = (x * _C3) & _M32
    x = x ^ (x >> 13)
    return x


def combine(h: torch.Tensor, k) -> torch.Tensor:
    """Hash of the pair (h, k); h and k are 32-bit values (k may be a Python int or a tensor)."""
    if not torch.is_tensor(k):
        k = torch.as_tensor(k, dtype=torch.int64, device=h.device)
    return mix32(((h & _M32) * 0x3B9F1C7 + ((k & _M32) ^ _GOLD) + 0x6A09E667) & _M32)


def event_keys(seed: int, event_index: torch.Tensor) -> torch.Tensor:
    """One 32-bit key per event from the 64-bit seed and the 64-bit event index."""
    seed = int(seed)
    h = torch.full_like(event_index, 0x243F6A88)
    h = combine(h, seed & _M32)
    h = combine(h, (seed >> 32) & _M32)
    h = combine(h, event_index & _M32)
    h = combine(h, (event_index >> 32) & _M32)
    return h


def uniform(addr: torch.Tensor, purpose: int, dtype=torch.float64) -> torch.Tensor:
    """A uniform number in (0, 1) with 53 random bits, attached to a cell address and a purpose."""
    h1 = combine(addr, 2 * purpose + 1)
    h2 = combine(addr, 2 * purpose + 2)
    mant = (h1 << 21) | (h2 >> 11)  # 53 bits
    return ((mant.to(torch.float64) + 0.5) * (2.0 ** -53)).to(dtype)
