"""The weight op: exact per-event log-weights of a dataset at new string parameters, differentiable.

    log w_i(theta) = sum over trials t of event i of log r_t(theta) + sum over its pT breaks
                     + sum over Pythia's 13 flavour counters k of n_ik L_k(theta),
with Pythia's per-trial ratios (see fastrsa.hadronization.lund.trial_log_weight), theta = (a, b, sigma_pT)
(the 'lund' engine) and the flavour part (fastrsa.hadronization.flavmath; the 'flavour' engine: rho, xi,
x, y). The two parts multiply and share no parameter: the z and pT weights use the flavours Pythia
recorded (fixed), the flavour weight only counts choices, so d/d(a, b, sigma) comes from the first and
d/d(rho, xi, x, y) from the second. theta may name any subset of fastrsa.params.WEIGHT_SPACE.
"""
from __future__ import annotations

import warnings

import torch

from ..errors import DatasetError, ParameterError
from ..params import WEIGHT_SPACE, BaseParams
from .batch import TrialBatch
from .dispatch import run_flavour_tables, run_lund_kernel
from .flavmath import FLAV_COLUMNS
from .lund import KERNEL_COLUMNS

NP = len(KERNEL_COLUMNS)


def check_theta(theta: torch.Tensor, batch: TrialBatch) -> None:
    """theta must be a float tensor [3] or [K, 3] on the batch's device, inside the model's domain."""
    check_named_theta(theta, batch, KERNEL_COLUMNS)


def theta_names(theta: torch.Tensor, names) -> tuple:
    """The parameter of each column of theta: `names` (a 'a,b,rho' string or a sequence, any subset of
    WEIGHT_SPACE in any order), or by default (a, b, sigma) for 3 columns and all seven for 7."""
    if names is None:
        width = theta.shape[-1] if isinstance(theta, torch.Tensor) and theta.dim() in (1, 2) else None
        if width == len(WEIGHT_SPACE):
            return WEIGHT_SPACE.names
        return KERNEL_COLUMNS
    out = tuple(n.strip() for n in names.split(",") if n.strip()) if isinstance(names, str) else tuple(names)
    bad = [n for n in out if n not in WEIGHT_SPACE.names]
    if bad or not out:
        raise ParameterError(f"names: {bad or 'none'}; choose from {', '.join(WEIGHT_SPACE.names)} "
                             "(e.g. names='a,b,rho')")
    if len(set(out)) != len(out):
        raise ParameterError(f"names: {', '.join(out)} names a parameter twice; give each once")
    return out


def check_named_theta(theta: torch.Tensor, batch: TrialBatch, names: tuple) -> None:
    """theta must be a float tensor [P] or [K, P] on the batch's device, P = len(names), in the domain."""
    cols = ", ".join(names)
    P = len(names)
    if not isinstance(theta, torch.Tensor):
        raise ParameterError(f"theta: must be a torch tensor of shape [{P}] or [K, {P}] (columns {cols})")
    if not theta.is_floating_point() or theta.dtype in (torch.float16, torch.bfloat16):
        # Half precision would silently move the point (0.68 is 0.6802 in float16): refused, not rounded.
        raise ParameterError(f"theta: dtype {theta.dtype} cannot hold the point exactly; use torch.float64")
    if theta.device != batch.device:
        raise ParameterError(f"theta: on {theta.device} but the batch is on {batch.device}; move one of them")
    if theta.dim() not in (1, 2) or theta.shape[-1] != P:
        raise ParameterError(f"theta: shape {tuple(theta.shape)}; expected [{P}] or [K, {P}] ({cols})")
    WEIGHT_SPACE.check(theta, where="theta", names=names)
    if any(n in FLAV_COLUMNS for n in names) and batch.flavour is None:
        raise DatasetError(batch.flavour_missing)


def _engine_theta(theta2: torch.Tensor, names: tuple, columns: tuple, base: tuple) -> torch.Tensor:
    """[K, len(columns)]: theta's column for each named parameter, the base value for the others
    (differentiable in theta)."""
    K = theta2.shape[0]
    cols = [theta2[:, names.index(c)] if c in names else
            torch.full((K,), float(v), dtype=torch.float64, device=theta2.device) for c, v in zip(columns, base)]
    return torch.stack(cols, 1)


def _matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x @ y; on the CPU through numpy, whose BLAS call for these thin products does not wake torch's
    thread pool (which costs tens of ms per product on a busy machine)."""
    if x.device.type == "cpu":
        return torch.from_numpy(x.detach().numpy() @ y.detach().numpy())
    return x @ y


class FlavourLogWeight(torch.autograd.Function):
    """Flavour log-weights [K, N] = L [K, 13] @ counts[N, 13]^T; backward contracts with dL [K, 13, 4]."""

    @staticmethod
    def forward(ctx, theta_f, batch, backend):
        L, dL = run_flavour_tables(batch, theta_f, backend)
        ctx.save_for_backward(dL, batch.flav)
        return _matmul(L, batch.flav.T)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        dL, flav = ctx.saved_tensors
        g = _matmul(grad_out.to(dL.dtype).contiguous(), flav)       # [K, 13]
        return (g[:, :, None] * dL).sum(1), None, None


POPCORN_WARNING = ("flavour weights of a sample made with popcorn baryon production on (StringFlav:popcornRate "
                   "> 0, Pythia's default) are Pythia's own but not exact: Pythia 8.317 records no popcorn "
                   "(B M Bbar) choices, so at rho, xi = 1.2 x Monash the mean weight is 1.14 and p, Lambda rates "
                   "come out high (docs/weights.md, 'Popcorn'); for an exact flavour tune generate the base with "
                   "--set 'StringFlav:popcornRate = 0'")


class PopcornWarning(UserWarning):
    """Flavour reweighting of a sample with popcorn baryon production (see POPCORN_WARNING)."""


def _warn_popcorn(batch) -> None:
    if batch.flavour is not None and batch.flavour.popcorn:
        warnings.warn(POPCORN_WARNING, PopcornWarning, stacklevel=3)


def _flavour_jacobian(batch, theta_f, backend):
    L, dL = run_flavour_tables(batch, theta_f, backend)
    return _matmul(L, batch.flav.T), torch.einsum("nj,kjp->knp", batch.flav, dL)


class LundLogWeight(torch.autograd.Function):
    """Forward runs the kernel, which also returns d log w / d theta; backward contracts it."""

    @staticmethod
    def forward(ctx, theta2, batch, backend, stats):
        lw, grad, cap = run_lund_kernel(batch, theta2, backend)
        if stats is not None:
            stats["capped_trials"] = cap
        ctx.save_for_backward(grad)
        return lw

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return torch.einsum("kn,knp->kp", grad_out.to(grad.dtype), grad), None, None, None


def lund_log_weights(batch: TrialBatch, theta: torch.Tensor, *, names=None, expected_base: BaseParams | None = None,
                     backend: str = "auto", stats: dict | None = None) -> torch.Tensor:
    """Per-event log-weights log w_i(theta) relative to the batch's base point.

    theta: [P] or [K, P] float tensor on the batch's device whose columns are the parameters `names`
    (any subset of a, b, sigma, rho, xi, x, y, e.g. names="a,b,rho"; default: (a, b, sigma) for P = 3,
    all seven for P = 7); the parameters not named stay at the base. Returns [N] or [K, N] float64,
    differentiable in theta (analytic gradients from the same kernel pass). A weight is exactly Pythia's
    (KinematicVariations x FlavorVariations / in-situ VariationFrag weights): product over every trial
    of min(f_theta/f_B, zHead) (accepted) or (1 - F_B min(f_theta/f_B, zHead)) / (1 - F_B) (rejected),
    times the pT ratio of every break, times the flavour factors of the event's counted flavour choices.
    Flavour parameters need a batch with flavour records (format 3, ee or cmnd setups); asking another
    one is a DatasetError. `stats`, if given, receives 'capped_trials' [K, N]: trials whose ratio hit
    zHead, i.e. where the base sampling does not cover theta.
    """
    if not isinstance(batch, TrialBatch):
        raise ParameterError("batch: expected a TrialBatch (dataset.to_torch(device))")
    if expected_base is not None and not batch.base.same_as(expected_base):
        raise DatasetError("batch: its dataset's base parameters differ from the expected ones "
                           f"({batch.base} vs {expected_base}); use a batch of the matching dataset")
    names = theta_names(theta, names)
    if names == KERNEL_COLUMNS:     # the (a, b, sigma) fast path, as before flavour parameters
        check_theta(theta, batch)
        lw = LundLogWeight.apply(theta.reshape(-1, NP), batch, backend, stats)
        return lw[0] if theta.dim() == 1 else lw
    check_named_theta(theta, batch, names)
    theta2 = theta.reshape(-1, len(names)).to(torch.float64)
    K = theta2.shape[0]
    lw = None
    if any(n in KERNEL_COLUMNS for n in names):
        base = (batch.base.a, batch.base.b, batch.base.sigma)
        lw = LundLogWeight.apply(_engine_theta(theta2, names, KERNEL_COLUMNS, base), batch, backend, stats)
    elif stats is not None:
        stats["capped_trials"] = torch.zeros((K, len(batch)), dtype=torch.int32, device=batch.device)
    if any(n in FLAV_COLUMNS for n in names):
        _warn_popcorn(batch)
        lf = FlavourLogWeight.apply(_engine_theta(theta2, names, FLAV_COLUMNS, batch.flavour.theta), batch, backend)
        lw = lf if lw is None else lw + lf
    return lw[0] if theta.dim() == 1 else lw


def log_weights_and_jacobian(batch: TrialBatch, theta: torch.Tensor, backend: str = "auto", names=None):
    """(log w [K, N], d log w / d theta [K, N, P]) at theta [K, P] (columns `names`, as in
    lund_log_weights), without autograd.

    The kernels compute both in one pass; callers that need per-event derivatives (the bootstrap's
    per-replica gradients, linearized around one point) use this instead of K backward passes.
    """
    names = theta_names(theta, names)
    if names == KERNEL_COLUMNS:
        check_theta(theta, batch)
        lw, grad, _ = run_lund_kernel(batch, theta.detach().reshape(-1, NP), backend)
        return lw, grad
    check_named_theta(theta, batch, names)
    theta2 = theta.detach().reshape(-1, len(names)).to(torch.float64)
    K, N = theta2.shape[0], len(batch)
    lw = torch.zeros((K, N), dtype=torch.float64, device=batch.device)
    grad = torch.zeros((K, N, len(names)), dtype=torch.float64, device=batch.device)
    if any(n in KERNEL_COLUMNS for n in names):
        base = (batch.base.a, batch.base.b, batch.base.sigma)
        lz, gz, _ = run_lund_kernel(batch, _engine_theta(theta2, names, KERNEL_COLUMNS, base), backend)
        lw += lz
        for j, c in enumerate(KERNEL_COLUMNS):
            if c in names:
                grad[:, :, names.index(c)] = gz[:, :, j]
    if any(n in FLAV_COLUMNS for n in names):
        _warn_popcorn(batch)
        lf, gf = _flavour_jacobian(batch, _engine_theta(theta2, names, FLAV_COLUMNS, batch.flavour.theta), backend)
        lw += lf
        for j, c in enumerate(FLAV_COLUMNS):
            if c in names:
                grad[:, :, names.index(c)] = gf[:, :, j]
    return lw, grad


class LundReweighter(torch.nn.Module):
    """theta = (a, b, sigma_pT) as a Parameter; forward(batch) -> log-weights [N] (any torch optimizer)."""

    def __init__(self, a: float, b: float, sigma: float, base: BaseParams | None = None,
                 dtype=torch.float64, device="cpu"):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([a, b, sigma], dtype=dtype, device=device))
        self.base = base

    def forward(self, batch: TrialBatch) -> torch.Tensor:
        return lund_log_weights(batch, self.theta, expected_base=self.base)

    def extra_repr(self) -> str:
        a, b, s = self.theta.detach().tolist()
        return f"a={a:.4f}, b={b:.4f}, sigma={s:.4f}"
