"""Geometry: batched pairwise distances, a sqrt that is safe at 0, and kernels.

Everything here is a plain function on tensors (no ``nn.Module``), batched over any
leading dimensions: point clouds are ``(..., N, D)`` and ``(..., M, D)``, distance and
kernel matrices ``(..., N, M)``. Divergences consume these; a new kernel or cost never
touches a divergence: a kernel is one `Kernel` object (its value, its derivative
in the squared distance and the units of its constant), registered with
`register_kernel`, and every consumer (argument checks, MMD's fused pass, its
bandwidth rules) reads it from there.

Non-finite input propagates: a NaN or an infinite coordinate gives NaN (or an infinite
distance), never a finite number (see ``docs/input-policy.md``).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_SCALES",
    "EXP_FLOOR",
    "KERNELS",
    "LOG_2PI",
    "CenteredPair",
    "Kernel",
    "Precision",
    "autocast_disabled",
    "autocast_enabled",
    "center_pair",
    "compute_dtype",
    "energy_kernel",
    "first_order_only",
    "floored_exp",
    "floored_exp_",
    "full_precision",
    "get_kernel",
    "imq_kernel",
    "laplacian_kernel",
    "loss_precision",
    "median_sqdist",
    "multiscale_kernel",
    "pairwise_distances",
    "rbf_kernel",
    "register_kernel",
    "safe_sqrt",
    "sqdist",
]

#: Multipliers of the base kernel constant ``c0`` used by multi-scale kernels (WAE's choice).
DEFAULT_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

#: $\log 2\pi$, the constant of every Gaussian log-density.
LOG_2PI: float = math.log(2 * math.pi)


# ------------------------------------------------------------ mixed-precision policy


def autocast_enabled(device: torch.device) -> bool:
    """Whether an autocast region is active for ``device``'s type (False where autocast
    does not exist, e.g. on the ``meta`` device)."""
    return torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(
        device.type
    )


@contextlib.contextmanager
def autocast_disabled(device: torch.device) -> Iterator[None]:
    """Run the enclosed computation outside autocast (a no-op where autocast does not exist,
    e.g. on the ``meta`` device)."""
    if torch.amp.is_autocast_available(device.type):
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        yield


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a divergence computes in: half precisions are promoted to float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class Precision(NamedTuple):
    """The dtypes of one loss evaluation under the mixed-precision policy."""

    compute: torch.dtype  #: what the sensitive computation runs in
    result: torch.dtype  #: what the loss returns


def loss_precision(*tensors: Tensor | None) -> Precision:
    """The mixed-precision policy of every divergence, density and critic loss.

    The inputs' promoted dtype ``t`` gives the computing dtype `compute_dtype` (float32
    for half precision, float32/float64 as given). The result is in the computing dtype
    under autocast (a loss under ``torch.autocast`` is float32, whatever dtype autocast
    gave its inputs) and in ``t`` otherwise (an explicit half input gets a half result).
    Read it *before* entering `autocast_disabled`; `full_precision` does both.
    """
    given = [t for t in tensors if t is not None]
    dtype = given[0].dtype
    for t in given[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    compute = compute_dtype(dtype)
    return Precision(compute, compute if autocast_enabled(given[0].device) else dtype)


@contextlib.contextmanager
def full_precision(*tensors: Tensor | None) -> Iterator[Precision]:
    """Run a loss's sensitive part (distances, log-sum-exps, variances, log-densities)
    outside autocast, yielding its `loss_precision`: cast the inputs to ``.compute``
    inside, the result to ``.result`` on the way out."""
    precision = loss_precision(*tensors)
    with autocast_disabled(next(t for t in tensors if t is not None).device):
        yield precision


class CenteredPair(NamedTuple):
    """Two clouds centred on their joint mean, with their squared norms."""

    xc: Tensor  #: ``(..., N, D)``: $x_i - m$
    yc: Tensor  #: ``(..., M, D)``: $y_j - m$
    x2: Tensor  #: ``(..., N)``: $|x_i - m|^2$
    y2: Tensor  #: ``(..., M)``: $|y_j - m|^2$


def center_pair(x: Tensor, y: Tensor) -> CenteredPair:
    r"""Centre ``x`` and ``y`` on their joint mean $m$ and return the squared norms.

    The matmul expansion of a squared distance,
    $|x_i - y_j|^2 = |x_i - m|^2 + |y_j - m|^2 - 2 (x_i - m) \cdot (y_j - m)$, loses
    least to cancellation when both clouds are centred on one point near them; distances
    are translation invariant, so the joint mean costs nothing in exactness. Every
    squared-distance matmul of the library (`sqdist`, MMD's fused pass, Sinkhorn's
    blocked geometry) starts here.

    Shape:
        - x: ``(..., N, D)``, y: ``(..., M, D)`` (broadcastable leading dimensions)
        - output: ``xc (..., N, D)``, ``yc (..., M, D)``, ``x2 (..., N)``, ``y2 (..., M)``
    """
    n, m = x.shape[-2], y.shape[-2]
    center = (x.sum(dim=-2, keepdim=True) + y.sum(dim=-2, keepdim=True)) / (n + m)
    xc, yc = x - center, y - center
    return CenteredPair(xc, yc, (xc * xc).sum(dim=-1), (yc * yc).sum(dim=-1))


def sqdist(x: Tensor, y: Tensor | None = None) -> Tensor:
    r"""Pairwise squared Euclidean distances $|x_i - y_j|^2$.

    Uses the matmul expansion $|x|^2 + |y|^2 - 2 x \cdot y$ after centring both
    clouds on their joint mean (`center_pair`), clamped at 0 (NaN stays NaN), in the
    dtypes of `loss_precision` (half precision and autocast compute in float32). When
    ``y`` is ``None`` the self-distances of ``x`` are returned with an exact zero diagonal.

    Shape:
        - x: ``(..., N, D)``, y: ``(..., M, D)`` (broadcastable leading dimensions)
        - output: ``(..., N, M)``, or ``(..., N, N)`` when ``y`` is ``None``
    """
    with full_precision(x, y) as precision:
        x = x.to(precision.compute)
        if y is None:
            d2 = _SelfSqdist.apply(x)
        else:
            d2 = _cross_sqdist(x, y.to(precision.compute))
    return d2.to(precision.result)


def _cross_sqdist(x: Tensor, y: Tensor) -> Tensor:
    xc, yc, x2, y2 = center_pair(x, y)
    x2 = x2.unsqueeze(-1)
    if xc.dim() == 2 and yc.dim() == 2:
        d2 = torch.addmm(x2, xc, yc.mT, alpha=-2)  # one fused pass: x2 - 2 x.y
    elif xc.dim() == 3 and yc.dim() == 3 and xc.shape[0] == yc.shape[0]:
        d2 = torch.baddbmm(x2, xc, yc.mT, alpha=-2)
    else:
        d2 = x2 - 2 * (xc @ yc.mT)
    return (d2 + y2.unsqueeze(-2)).clamp_min(0)


def _self_sqdist(x: Tensor) -> Tensor:
    # The squared norms are the Gram matrix's diagonal: the matmul is the only pass over
    # the (N, D) features.
    xc = x - x.mean(dim=-2, keepdim=True)
    gram = xc @ xc.mT
    sq = gram.diagonal(dim1=-2, dim2=-1)
    d2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * gram).clamp_min(0)
    eye = torch.eye(x.shape[-2], dtype=torch.bool, device=x.device)
    # An exact zero diagonal, except for a non-finite point, whose distance stays NaN.
    return torch.where(eye, d2 * 0, d2)


def first_order_only(what: str, instead: str) -> Callable[[Callable], Callable]:
    """Mark a ``torch.autograd.Function.backward`` as first order only.

    The backward runs without recording a graph (as ``once_differentiable``), and a
    backward pass asked to record one (``create_graph=True``: double backward,
    ``gradgradcheck``, a penalty on the gradient) raises a ``RuntimeError`` naming
    ``what`` and the alternative ``instead`` at once, rather than returning a gradient
    that fails only when it is differentiated again. Inside a compiled graph the check
    is left to the compiler (which rejects double backward itself).
    """

    def decorate(backward: Callable) -> Callable:
        @functools.wraps(backward)
        def wrapper(ctx, *grads):  # type: ignore[no-untyped-def]
            if torch.is_grad_enabled() and not torch.compiler.is_compiling():
                raise RuntimeError(
                    f"{what} is differentiable once only (its gradients come from the "
                    "envelope theorem, not from a graph), so create_graph=True and double "
                    f"backward are not supported; {instead}"
                )
            with torch.no_grad():
                return backward(ctx, *grads)

        return wrapper

    return decorate


class _SelfSqdist(torch.autograd.Function):
    """Self-distances with a one-matmul backward.

    With ``W = dL/d(d2)`` (zero where clamped and on the diagonal), the gradient is
    ``dL/dx = 2 (diag(rowsum(S)) - S) xc`` with ``S = W + W^T``: its rows sum to zero, so
    the centring needs no backward pass, and autograd's two Gram-matrix products and the
    centring's backward collapse into one product. The backward is written with
    differentiable operations on the saved input, so higher-order gradients still work.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        d2 = _self_sqdist(x)
        ctx.save_for_backward(x, d2)
        return d2

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        x, d2 = ctx.saved_tensors
        off_diagonal = ~torch.eye(x.shape[-2], dtype=torch.bool, device=x.device)
        w = torch.where((d2 > 0) & off_diagonal, grad, 0)
        s = w + w.mT
        a = torch.diag_embed(s.sum(-1)) - s
        return 2 * (a @ (x - x.mean(dim=-2, keepdim=True)))


def safe_sqrt(t: Tensor) -> Tensor:
    """Square root whose gradient is 0, not infinite, at ``t == 0`` (and for ``t < 0``).

    The subgradient 0 is the right choice for a distance at coincident points: the
    distance ``|u - v|`` has no preferred direction there. Twice differentiable elsewhere.
    NaN stays NaN (``t <= 0`` is false for NaN, so it takes the square-root branch) and
    ``+inf`` gives ``+inf``; only ``t <= 0`` maps to 0.
    """
    nonpositive = t <= 0
    return torch.where(nonpositive, 0.0, torch.where(nonpositive, torch.ones_like(t), t).sqrt())


def pairwise_distances(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Pairwise Euclidean distances ``|x_i - y_j|`` with finite gradients at 0.

    Shape: as `sqdist`.
    """
    return safe_sqrt(sqdist(x, y))


# --------------------------------------------------------------------------- kernels


def imq_kernel(d2: Tensor, c: float | Tensor) -> Tensor:
    r"""Inverse multiquadratic kernel $c / (c + d^2)$ of squared distances ``d2``."""
    return c / (c + d2)


#: Exponents below these give an exact 0 in `floored_exp`: ``exp`` of them, and that
#: divided by a kernel scale up to 1e3, stays a normal float (no subnormal arithmetic,
#: ~100x slower on many CPUs), and a term below ``e^-75`` is invisible next to the
#: kernel's diagonal value 1.
EXP_FLOOR = {torch.float32: -75.0, torch.float64: -700.0}


def floored_exp_(t: Tensor) -> Tensor:
    """In-place ``exp`` with exponents below `EXP_FLOOR` mapped to exact zeros (NaN stays)."""
    return t.masked_fill_(t < EXP_FLOOR.get(t.dtype, -75.0), -math.inf).exp_()


def floored_exp(t: Tensor) -> Tensor:
    """``exp`` with exponents below `EXP_FLOOR` mapped to exact zeros (differentiable)."""
    return t.masked_fill(t < EXP_FLOOR.get(t.dtype, -75.0), -math.inf).exp()


def rbf_kernel(d2: Tensor, c: float | Tensor) -> Tensor:
    r"""Gaussian (RBF) kernel $\exp(-d^2 / c)$ of squared distances ``d2``."""
    return floored_exp(-d2 / c)


def laplacian_kernel(d2: Tensor, c: float | Tensor) -> Tensor:
    r"""Laplacian kernel $\exp(-d / c)$ of squared distances ``d2`` (safe at ``d = 0``)."""
    return floored_exp(-safe_sqrt(d2) / c)


def energy_kernel(d2: Tensor, c: float | Tensor = 1.0) -> Tensor:
    r"""Energy-distance kernel $-d$ (conditionally positive definite; ``c`` is unused).

    With it the biased MMD is the energy distance; the constant ``c`` is accepted so
    every kernel shares one signature, but a scale only multiplies the result.
    """
    del c
    return -safe_sqrt(d2)


def _zero_at_coincidence(d2: Tensor, slope: Tensor) -> Tensor:
    # A derivative in d^2 of a function of d is infinite at d = 0; the safe-sqrt
    # subgradient there is 0 (NaN stays NaN: only d2 == 0 is replaced).
    return torch.where(d2 == 0, 0.0, slope)


def _imq_derivative(d2: Tensor, c: float | Tensor) -> Tensor:
    return -c / (c + d2) ** 2


def _rbf_derivative(d2: Tensor, c: float | Tensor) -> Tensor:
    return -floored_exp(-d2 / c) / c


def _laplacian_derivative(d2: Tensor, c: float | Tensor) -> Tensor:
    d = d2.sqrt()
    return _zero_at_coincidence(d2, -floored_exp(-d / c) / (2 * c * d))


def _energy_derivative(d2: Tensor, c: float | Tensor = 1.0) -> Tensor:
    del c
    return _zero_at_coincidence(d2, -0.5 / d2.sqrt())


#: ``accumulate(d2, tmp, k, g, scales, need_g)``: in place, ``k`` receives
#: $\sum_s k_s(d2)$ and, when ``need_g``, ``g`` receives $-\sum_s \partial k_s /
#: \partial d^2$, on a block of squared distances in units where the base constant is 1
#: (so scale ``s`` is the constant). ``d2`` and ``tmp`` are scratch buffers of the block's
#: shape.
Accumulate = Callable[[Tensor, Tensor, Tensor, Tensor, Sequence[float], bool], None]


@dataclass(frozen=True, eq=False)
class Kernel:
    r"""A radial kernel $k_c(u, v) = \kappa(|u - v|^2, c)$: the one definition every
    consumer reads.

    Args:
        name: the name ``mmd(kernel=...)`` accepts once registered (`register_kernel`).
        value: $\kappa(d^2, c)$, a function of squared distances and a constant.
        derivative: $\partial \kappa / \partial d^2$ at ``(d2, c)``, finite at
            ``d2 == 0`` (a subgradient where $\kappa$ is not differentiable there).
        power: the constant's units, distance to the power ``power``: 2 for a squared
            distance (IMQ, RBF), 1 for a distance (Laplacian), 0 for a kernel without a
            constant (energy). The kernel must be scale covariant,
            $\kappa(\lambda^2 d^2, \lambda^{power} c) = \kappa(d^2, c)$; this is what
            lets MMD rescale the points so the base constant is 1, and what converts
            squared-distance bandwidth rules (``2 D``, the median) into the constant.
        accumulate: optional in-place evaluation over a block for MMD's fused pass (see
            `Accumulate`); by default it is built from ``value`` and ``derivative``.

    Calling the object evaluates ``value(d2, c)``, so it is also a plain kernel function.

    Examples:
        >>> cauchy = Kernel("cauchy2", lambda d2, c: (c / (c + d2)) ** 2,
        ...                 lambda d2, c: -2 * c**2 / (c + d2) ** 3, power=2)
        >>> register_kernel(cauchy)
        >>> otloss.mmd(x, y, kernel="cauchy2")
    """

    name: str
    value: Callable[[Tensor, float | Tensor], Tensor]
    derivative: Callable[[Tensor, float | Tensor], Tensor]
    power: int
    accumulate: Accumulate | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a kernel needs a non-empty name, got {self.name!r}")
        if not callable(self.value) or not callable(self.derivative):
            raise TypeError(f"kernel {self.name!r}: value and derivative must be callables")
        if self.power not in (0, 1, 2):
            raise ValueError(
                f"kernel {self.name!r}: power must be 0, 1 or 2 (the units of its constant), "
                f"got {self.power!r}"
            )

    def __call__(self, d2: Tensor, c: float | Tensor = 1.0) -> Tensor:
        return self.value(d2, c)

    def unit_length(self, c0: float | Tensor) -> float | Tensor:
        """The length that makes the constant ``c0`` equal to 1 (1 when there is none)."""
        return c0 ** (1.0 / self.power) if self.power else 1.0

    def constant_from_sqdist(self, d2: float | Tensor) -> float | Tensor:
        """A squared-distance scale (``2 D``, a median) in the constant's units."""
        if self.power == 2:
            return d2
        return d2 ** (self.power / 2) if self.power else 1.0

    def accumulate_scales(
        self, d2: Tensor, tmp: Tensor, k: Tensor, g: Tensor, scales: Sequence[float],
        need_g: bool,
    ) -> None:
        """Run `Accumulate` for this kernel (its own fast path, or the generic one)."""
        if self.accumulate is not None:
            self.accumulate(d2, tmp, k, g, scales, need_g)
            return
        k.zero_()
        if need_g:
            g.zero_()
        for s in scales:
            k.add_(self.value(d2, s))
            if need_g:
                g.sub_(self.derivative(d2, s))

    def __repr__(self) -> str:
        return f"Kernel({self.name!r}, power={self.power})"


# In-place fast paths of the built-in kernels. Every line is one pass over the block,
# which is what MMD's blocking keeps in cache; tests compare each with the generic path
# built from the kernel's value and derivative.


def _imq_block(d2, tmp, k, g, scales, need_g):  # type: ignore[no-untyped-def]
    for idx, s in enumerate(scales):
        torch.add(d2, s, out=tmp)
        tmp.reciprocal_()  # 1 / (s + d2)
        if idx == 0:
            torch.mul(tmp, s, out=k)
            if need_g:
                torch.mul(k, tmp, out=g)  # s / (s + d2)^2
        else:
            k.add_(tmp, alpha=s)
            if need_g:
                g.addcmul_(tmp, tmp, value=s)


def _rbf_block(d2, tmp, k, g, scales, need_g):  # type: ignore[no-untyped-def]
    for idx, s in enumerate(scales):
        if idx == 0:
            torch.mul(d2, -1.0 / s, out=k)
            floored_exp_(k)
            if need_g:
                torch.mul(k, 1.0 / s, out=g)
        else:
            torch.mul(d2, -1.0 / s, out=tmp)
            floored_exp_(tmp)
            k.add_(tmp)
            if need_g:
                g.add_(tmp, alpha=1.0 / s)


def _laplacian_block(d2, tmp, k, g, scales, need_g):  # type: ignore[no-untyped-def]
    d = d2.sqrt_()
    _rbf_block(d, tmp, k, g, scales, need_g)  # exp(-d / s): the same recursion in d
    if need_g:
        # -dk/d(d2) = (-dk/dd) / (2 d); +inf where d == 0 becomes the subgradient 0, and a
        # NaN distance stays NaN.
        torch.mul(d, 2.0, out=tmp)
        g.div_(tmp).nan_to_num_(nan=math.nan, posinf=0.0)


def _energy_block(d2, tmp, k, g, scales, need_g):  # type: ignore[no-untyped-def]
    d = d2.sqrt_()
    count = float(len(scales))
    torch.mul(d, -count, out=k)
    if need_g:
        torch.reciprocal(d, out=g)  # -dk/d(d2) = count / (2 d), 0 at d == 0
        g.mul_(count / 2).nan_to_num_(nan=math.nan, posinf=0.0)


#: Registered kernels by name (read through `get_kernel`, extended by
#: `register_kernel`).
KERNELS: dict[str, Kernel] = {}


def register_kernel(kernel: Kernel) -> Kernel:
    """Make ``kernel`` available by its name to every consumer (``mmd(kernel=name)``)."""
    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernel must be an otloss.ops.Kernel, got {type(kernel).__name__}")
    if KERNELS.get(kernel.name, kernel) is not kernel:
        raise ValueError(f"a different kernel is already registered as {kernel.name!r}")
    KERNELS[kernel.name] = kernel
    return kernel


def get_kernel(kernel: str | Kernel) -> Kernel:
    """The `Kernel` for a registered name (or the object itself)."""
    if isinstance(kernel, Kernel):
        return kernel
    if kernel not in KERNELS:
        expected = ", ".join(map(repr, KERNELS))
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {expected}, or a callable")
    return KERNELS[kernel]


IMQ = register_kernel(Kernel("imq", imq_kernel, _imq_derivative, power=2, accumulate=_imq_block))
RBF = register_kernel(Kernel("rbf", rbf_kernel, _rbf_derivative, power=2, accumulate=_rbf_block))
LAPLACIAN = register_kernel(
    Kernel("laplacian", laplacian_kernel, _laplacian_derivative, power=1,
           accumulate=_laplacian_block)
)
ENERGY = register_kernel(
    Kernel("energy", energy_kernel, _energy_derivative, power=0, accumulate=_energy_block)
)


def multiscale_kernel(
    d2: Tensor,
    kernel: str | Callable[[Tensor, float | Tensor], Tensor],
    c0: float | Tensor,
    scales: Sequence[float] = DEFAULT_SCALES,
) -> Tensor:
    r"""Sum over ``scales`` of ``kernel(d2, s * c0)``, from one squared-distance matrix.

    ``kernel`` is a registered name, a `Kernel` or any function ``k(d2, c)``;
    ``c0`` may be a float or a tensor broadcastable against ``d2`` (e.g. ``(B, 1, 1)``
    for one bandwidth per batch item).
    """
    k = get_kernel(kernel) if isinstance(kernel, str) else kernel
    out = k(d2, scales[0] * c0)
    for s in scales[1:]:
        out = out + k(d2, s * c0)
    return out


def median_sqdist(x: Tensor, y: Tensor) -> Tensor:
    """Median of the squared distances between distinct points of the pooled sample.

    The median heuristic for a kernel constant. Computed without gradient (the
    bandwidth is a hyper-parameter, not a function to differentiate) and without a
    host sync.

    Shape: x ``(..., N, D)``, y ``(..., M, D)`` -> ``(...)``.
    """
    with torch.no_grad():
        z = torch.cat([x, y], dim=-2)
        d2 = sqdist(z)
        n = z.shape[-2]
        iu = torch.triu_indices(n, n, offset=1, device=z.device)
        return d2[..., iu[0], iu[1]].median(dim=-1).values
