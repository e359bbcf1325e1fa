"""Truncated Taylor polynomials ("jets"): Taylor-mode forward automatic differentiation.

A Jet holds c[k] = f^(k)(x0) / k!, k = 0..K, stacked in one tensor [K+1, ...]. Every operation used by
the kinematics is propagated exactly with the standard recurrences (Griewank & Walther, "Evaluating
Derivatives", 2nd ed., ch. 13): product (Cauchy), quotient, exp, sqrt, sin/cos, atan2. This is forward-mode
AD of order K in one pass, with O(K^2) cost per operation instead of the 3^K of nested first-order jvp,
and it lets the momenta live in a plain tensor that is written in place. The nested torch.func.jvp
evaluation of the same function is kept as a cross-check (generate(..., method="jvp")).
"""
import math

import torch


class Jet:
    __slots__ = ("c",)
    __array_priority__ = 1000

    def __init__(self, c: torch.Tensor):
        self.c = c

    @property
    def K(self) -> int:
        return self.c.shape[0] - 1

    @staticmethod
    def const(x: torch.Tensor, K: int) -> "Jet":
        c = x.new_zeros((K + 1,) + tuple(x.shape))
        c[0] = x
        return Jet(c)

    # --- arithmetic -------------------------------------------------------------------------------
    def __add__(self, o):
        if isinstance(o, Jet):
            return Jet(self.c + o.c)
        c = self.c.clone()
        c[0] = c[0] + o
        return Jet(c)

    __radd__ = __add__

    def __neg__(self):
        return Jet(-self.c)

    def __sub__(self, o):
        return self + (-o)

    def __rsub__(self, o):
        return (-self) + o

    def __mul__(self, o):
        if not isinstance(o, Jet):
            return Jet(self.c * o)
        a, b = self.c, o.c
        K = a.shape[0] - 1
        out = [a[0] * b[0]]
        for k in range(1, K + 1):
            s = a[0] * b[k]
            for i in range(1, k + 1):
                s = s + a[i] * b[k - i]
            out.append(s)
        return Jet(torch.stack(out))

    __rmul__ = __mul__

    def __truediv__(self, o):
        if not isinstance(o, Jet):
            return Jet(self.c / o)
        a, b = self.c, o.c
        K = a.shape[0] - 1
        inv0 = 1.0 / b[0]
        q = [a[0] * inv0]
        for k in range(1, K + 1):
            s = a[k]
            for i in range(1, k + 1):
                s = s - b[i] * q[k - i]
            q.append(s * inv0)
        return Jet(torch.stack(q))

    def __rtruediv__(self, o):
        return Jet.const(torch.as_tensor(o, dtype=self.c.dtype, device=self.c.device)
                         .expand(self.c.shape[1:]), self.K) / self

    def deriv(self) -> "Jet":
        """The jet of f' (its top coefficient is unknown and set to 0; callers only use k < K)."""
        K = self.K
        k = torch.arange(1, K + 1, dtype=self.c.dtype, device=self.c.device).view((-1,) + (1,) * (self.c.dim() - 1))
        return Jet(torch.cat([self.c[1:] * k, torch.zeros_like(self.c[:1])]))


def exp(a):
    if not isinstance(a, Jet):
        return torch.exp(a)
    K = a.K
    e = [torch.exp(a.c[0])]
    for k in range(1, K + 1):
        s = a.c[1] * e[k - 1]
        for i in range(2, k + 1):
            s = s + i * a.c[i] * e[k - i]
        e.append(s / k)
    return Jet(torch.stack(e))


def sqrt(a):
    if not isinstance(a, Jet):
        return torch.sqrt(a)
    K = a.K
    s = [torch.sqrt(a.c[0])]
    inv = 0.5 / s[0]
    for k in range(1, K + 1):
        t = a.c[k]
        for i in range(1, k):
            t = t - s[i] * s[k - i]
        s.append(t * inv)
    return Jet(torch.stack(s))


def sincos(a):
    if not isinstance(a, Jet):
        return torch.sin(a), torch.cos(a)
    K = a.K
    s = [torch.sin(a.c[0])]
    c = [torch.cos(a.c[0])]
    for k in range(1, K + 1):
        ss = a.c[1] * c[k - 1]
        cc = a.c[1] * s[k - 1]
        for i in range(2, k + 1):
            ss = ss + i * a.c[i] * c[k - i]
            cc = cc + i * a.c[i] * s[k - i]
        s.append(ss / k)
        c.append(-cc / k)
    return Jet(torch.stack(s)), Jet(torch.stack(c))


def atan2(y, x):
    if not isinstance(y, Jet) and not isinstance(x, Jet):
        return torch.atan2(y, x)
    K = y.K if isinstance(y, Jet) else x.K
    y = y if isinstance(y, Jet) else Jet.const(y, K)
    x = x if isinstance(x, Jet) else Jet.const(x, K)
    r = (x * y.deriv() - y * x.deriv()) / (x * x + y * y)  # jet of theta'
    th = [torch.atan2(y.c[0], x.c[0])]
    for k in range(1, K + 1):
        th.append(r.c[k - 1] / k)
    return Jet(torch.stack(th))


def log_scale_jet(ecm: float, lam0: float, K: int, dtype, device) -> torch.Tensor:
    """Taylor coefficients of L(Lambda) = 2 ln(ecm / Lambda) at lam0: L_k = 2 (-1)^k / (k lam0^k)."""
    c = [2.0 * math.log(ecm / lam0)] + [2.0 * (-1.0) ** k / (k * lam0 ** k) for k in range(1, K + 1)]
    return torch.tensor(c, dtype=dtype, device=device)
