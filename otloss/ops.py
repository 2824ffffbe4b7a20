"""Geometry: batched pairwise distances, a sqrt that is safe at 0, and kernels.

Everything here is a plain function on tensors (no ``nn.Module``), batched over any
leading dimensions: point clouds are ``(..., N, D)`` and ``(..., M, D)``, distance and
kernel matrices ``(..., N, M)``. Divergences consume these; a new kernel or cost never
touches a divergence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_SCALES",
    "KERNELS",
    "energy_kernel",
    "imq_kernel",
    "laplacian_kernel",
    "median_sqdist",
    "multiscale_kernel",
    "pairwise_distances",
    "rbf_kernel",
    "safe_sqrt",
    "sqdist",
]

#: Multipliers of the base kernel constant ``c0`` used by multi-scale kernels (WAE's choice).
DEFAULT_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def sqdist(x: Tensor, y: Tensor | None = None) -> Tensor:
    r"""Pairwise squared Euclidean distances :math:`|x_i - y_j|^2`.

    Uses the matmul expansion :math:`|x|^2 + |y|^2 - 2 x \cdot y` after centring both
    clouds on their joint mean (distances are translation invariant, and centring removes
    most of the expansion's cancellation error), clamped at 0, in the input dtype.
    When ``y`` is ``None`` the self-distances of ``x`` are returned with an exact zero
    diagonal.

    Shape:
        - x: ``(..., N, D)``, y: ``(..., M, D)`` (broadcastable leading dimensions)
        - output: ``(..., N, M)``, or ``(..., N, N)`` when ``y`` is ``None``
    """
    if y is None:
        return _SelfSqdist.apply(x)
    n, m = x.shape[-2], y.shape[-2]
    center = (x.sum(dim=-2, keepdim=True) + y.sum(dim=-2, keepdim=True)) / (n + m)
    xc, yc = x - center, y - center
    x2 = (xc * xc).sum(dim=-1, keepdim=True)
    y2 = (yc * yc).sum(dim=-1, keepdim=True)
    if xc.dim() == 2 and yc.dim() == 2:
        d2 = torch.addmm(x2, xc, yc.mT, alpha=-2)  # one fused pass: x2 - 2 x.y
    elif xc.dim() == 3 and yc.dim() == 3 and xc.shape[0] == yc.shape[0]:
        d2 = torch.baddbmm(x2, xc, yc.mT, alpha=-2)
    else:
        d2 = x2 - 2 * (xc @ yc.mT)
    d2 = (d2 + y2.mT).clamp_min(0)
    return d2


def _self_sqdist(x: Tensor) -> Tensor:
    # The squared norms are the Gram matrix's diagonal: the matmul is the only pass over
    # the (N, D) features.
    xc = x - x.mean(dim=-2, keepdim=True)
    gram = xc @ xc.mT
    sq = gram.diagonal(dim1=-2, dim2=-1)
    d2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * gram).clamp_min(0)
    eye = torch.eye(x.shape[-2], dtype=torch.bool, device=x.device)
    return d2.masked_fill(eye, 0)


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
    """
    positive = t > 0
    return torch.where(positive, torch.where(positive, t, torch.ones_like(t)).sqrt(), 0.0)


def pairwise_distances(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Pairwise Euclidean distances ``|x_i - y_j|`` with finite gradients at 0.

    Shape: as :func:`sqdist`.
    """
    return safe_sqrt(sqdist(x, y))


def imq_kernel(d2: Tensor, c: float | Tensor) -> Tensor:
    r"""Inverse multiquadratic kernel :math:`c / (c + d^2)` of squared distances ``d2``."""
    return c / (c + d2)


def rbf_kernel(d2: Tensor, c: float | Tensor) -> Tensor:
    r"""Gaussian (RBF) kernel :math:`\exp(-d^2 / c)` of squared distances ``d2``."""
    return torch.exp(-d2 / c)


def laplacian_kernel(d2: Tensor, c: float | Tensor) -> Tensor:
    r"""Laplacian kernel :math:`\exp(-d / c)` of squared distances ``d2`` (safe at ``d = 0``)."""
    return torch.exp(-safe_sqrt(d2) / c)


def energy_kernel(d2: Tensor, c: float | Tensor = 1.0) -> Tensor:
    r"""Energy-distance kernel :math:`-d` (conditionally positive definite; ``c`` is unused).

    With it the biased MMD is the energy distance; the constant ``c`` is accepted so
    every kernel shares one signature, but a scale only multiplies the result.
    """
    del c
    return -safe_sqrt(d2)


#: Kernels by name, each a function ``k(d2, c)`` of squared distances and a constant.
KERNELS: dict[str, Callable[[Tensor, float | Tensor], Tensor]] = {
    "imq": imq_kernel,
    "rbf": rbf_kernel,
    "laplacian": laplacian_kernel,
    "energy": energy_kernel,
}


def multiscale_kernel(
    d2: Tensor,
    kernel: str | Callable[[Tensor, float | Tensor], Tensor],
    c0: float | Tensor,
    scales: Sequence[float] = DEFAULT_SCALES,
) -> Tensor:
    r"""Sum over ``scales`` of ``kernel(d2, s * c0)``, from one squared-distance matrix.

    ``c0`` may be a float or a tensor broadcastable against ``d2`` (e.g. ``(B, 1, 1)``
    for one bandwidth per batch item).
    """
    k = KERNELS[kernel] if isinstance(kernel, str) else kernel
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
