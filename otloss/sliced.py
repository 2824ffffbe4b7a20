r"""Sliced Wasserstein distance: exact 1-D optimal transport along random directions.

$$
SW_p^p(\mu, \nu) = \int_{S^{D-1}} W_p^p(\theta_\# \mu, \theta_\# \nu)\, d\sigma(\theta)
    \approx \frac{1}{P} \sum_{k=1}^{P} W_p^p(\theta_{k\#} \mu, \theta_{k\#} \nu),
$$

where $\theta_\# \mu$ is the law of $\langle \theta, x \rangle$. In one
dimension optimal transport is monotone, so

$$
W_p^p(\alpha, \beta) = \int_0^1 |F_\alpha^{-1}(q) - F_\beta^{-1}(q)|^p\, dq,
$$

which is $\frac{1}{N} \sum_i |x_{(i)} - y_{(i)}|^p$ after sorting for two uniform
clouds of the same size, and a sum over the merged breakpoints of the two cumulative
weight functions otherwise. Both are computed exactly and vectorised over directions and
batch items.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_count,
    check_exponent,
    check_generator,
    check_pair,
    check_projections,
    check_weights,
)
from otloss.ops import center_pair, full_precision

__all__ = ["SlicedWasserstein", "sliced_wasserstein"]


def sliced_wasserstein(
    x: Tensor,
    y: Tensor,
    x_weights: Tensor | None = None,
    y_weights: Tensor | None = None,
    *,
    n_projections: int = 128,
    p: float = 2,
    projections: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Sliced Wasserstein distance to the power p, $SW_p^p$, between two point clouds.

    $$
    SW_p^p = \frac{1}{P} \sum_{k=1}^{P} \int_0^1
        \bigl| F^{-1}_{\langle \theta_k, x \rangle}(q)
             - F^{-1}_{\langle \theta_k, y \rangle}(q) \bigr|^p dq
    $$

    with the quantile functions $F^{-1}$ of the (weighted) projected samples. It
    equals ``ot.sliced_wasserstein_distance(x, y, a, b, projections=P, p=p) ** p`` in POT.
    For given directions the value is exact; over random directions it is an unbiased
    Monte-Carlo estimate of the sliced distance between the two empirical measures (whose
    own distance to the population value shrinks like $N^{-1/2}$).

    Args:
        x: ``(N, D)`` or ``(B, N, D)`` samples.
        y: ``(M, D)`` or ``(B, M, D)`` samples.
        x_weights: optional ``(N,)`` / ``(B, N)`` non-negative weights summing to 1 (zero
            weights act as padding); gradients flow into them.
        y_weights: optional ``(M,)`` / ``(B, M)`` weights, likewise.
        n_projections: number $P$ of random directions drawn when ``projections`` is
            not given.
        p: exponent $p \ge 1$ of the ground cost $|s - t|^p$.
        projections: ``(D, P)`` directions as columns (as in POT), or ``(B, D, P)`` per batch
            item; used as given (pass unit vectors for the sliced distance).
        generator: ``torch.Generator`` (on the inputs' device) for the random directions,
            which are normalised Gaussian vectors, uniform on the sphere, shared by the
            batch.

    Returns:
        $SW_p^p$: a scalar, or ``(B,)`` for batched inputs (``(0,)`` for ``B = 0``),
        in the input dtype (half precision is computed in float32). A NaN or infinite
        coordinate gives NaN.

    Shape:
        - x: ``(N, D)`` or ``(B, N, D)``; y: ``(M, D)`` or ``(B, M, D)``
        - projections: ``(D, P)`` or ``(B, D, P)``
        - output: ``()`` or ``(B,)``

    Examples:
        >>> x, y = torch.randn(500, 3), torch.randn(400, 3) + 1.0
        >>> gen = torch.Generator().manual_seed(0)
        >>> sliced_wasserstein(x, y, n_projections=256, generator=gen)
    """
    x, y = check_pair(x, y)
    p = check_exponent("p", p)
    x_weights = check_weights("x_weights", x_weights, x)
    y_weights = check_weights("y_weights", y_weights, y)
    check_generator("generator", generator)
    dim = x.shape[-1]
    if projections is None:
        check_count("n_projections", n_projections)
    else:
        projections = check_projections(projections, x)

    with full_precision(x, y) as precision:
        dtype = precision.compute
        if projections is None:
            theta = torch.randn(dim, n_projections, generator=generator, device=x.device,
                                dtype=dtype)
            projections = theta / theta.norm(dim=0, keepdim=True)
        projections = projections.to(dtype)
        # Centred on the joint mean (each 1-D problem is translation invariant): the
        # projections stay small, and an infinite coordinate becomes NaN, not inf.
        xc, yc = center_pair(x.to(dtype), y.to(dtype))[:2]
        # (..., N, D) @ (..., D, P) -> (..., P, N): one 1-D problem per direction.
        xp = (xc @ projections).transpose(-1, -2)
        yp = (yc @ projections).transpose(-1, -2)
        if x_weights is None and y_weights is None and xp.shape[-1] == yp.shape[-1]:
            cost = _sorted_cost(xp, yp, p)
        else:
            a = _weights(x_weights, xp, dtype)
            b = _weights(y_weights, yp, dtype)
            cost = _quantile_cost(xp, a, yp, b, p)
        value = cost.mean(-1)
    return value.to(precision.result)


class SlicedWasserstein(nn.Module):
    r"""Sliced Wasserstein distance $SW_p^p$ over random (or given) directions.

    $$
    SW_p^p(\mu, \nu) = \frac{1}{P} \sum_{k=1}^{P} W_p^p(\theta_{k\#}\mu, \theta_{k\#}\nu),
    $$

    the mean over $P$ unit directions of the exact 1-D optimal transport cost of
    the projected samples (sorting, or quantile functions for unequal sizes or weights).
    The value is POT's ``sliced_wasserstein_distance(...) ** p`` on the same directions.
    See `sliced_wasserstein`.

    Args:
        n_projections: number of random directions drawn per call.
        p: exponent $p \ge 1$ of the ground cost.

    Shape:
        - x: ``(N, D)`` or ``(B, N, D)``; y: ``(M, D)`` or ``(B, M, D)``
        - x_weights: ``(N,)`` or ``(B, N)``; y_weights: ``(M,)`` or ``(B, M)`` (optional)
        - projections: ``(D, P)`` or ``(B, D, P)`` (optional)
        - output: ``()`` or ``(B,)``

    Examples:
        >>> sw = SlicedWasserstein(n_projections=64)
        >>> z = encoder(x)                          # (N, 2)
        >>> loss = recon + sw(z, prior.rsample(len(z)))
    """

    def __init__(self, n_projections: int = 128, p: float = 2) -> None:
        super().__init__()
        self.n_projections = check_count("n_projections", n_projections)
        self.p = check_exponent("p", p)

    def forward(
        self,
        x: Tensor,
        y: Tensor,
        x_weights: Tensor | None = None,
        y_weights: Tensor | None = None,
        *,
        projections: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """$SW_p^p$ between ``x`` and ``y`` (see `sliced_wasserstein`)."""
        return sliced_wasserstein(
            x,
            y,
            x_weights,
            y_weights,
            n_projections=self.n_projections,
            p=self.p,
            projections=projections,
            generator=generator,
        )

    def extra_repr(self) -> str:
        return f"n_projections={self.n_projections}, p={self.p}"


def _weights(w: Tensor | None, proj: Tensor, dtype: torch.dtype) -> Tensor:
    """Weights broadcast to the projected samples ``(..., P, N)``."""
    if w is None:
        n = proj.shape[-1]
        return torch.full((1, n), 1.0 / n, dtype=dtype, device=proj.device).expand_as(proj)
    return w.to(dtype).unsqueeze(-2).expand_as(proj)


def _sorted_cost(xp: Tensor, yp: Tensor, p: float) -> Tensor:
    """W_p^p between uniform clouds of equal size: pair the order statistics."""
    diff = (xp.sort(dim=-1).values - yp.sort(dim=-1).values).abs()
    return (diff if p == 1 else diff.pow(p)).mean(-1)


def _quantile_cost(xp: Tensor, a: Tensor, yp: Tensor, b: Tensor, p: float) -> Tensor:
    r"""W_p^p = \int_0^1 |F_x^{-1}(q) - F_y^{-1}(q)|^p dq, exactly, for weighted samples.

    Both quantile functions are step functions that change only at the cumulative
    weights of either sample; between two consecutive merged breakpoints they are
    constant, so the integral is a finite sum of (interval length) x |difference|^p.
    """
    xs, ix = xp.sort(dim=-1)
    ys, iy = yp.sort(dim=-1)
    cx = a.gather(-1, ix).cumsum(-1)
    cy = b.gather(-1, iy).cumsum(-1)
    qs = torch.cat([cx, cy], dim=-1).sort(dim=-1).values
    delta = torch.diff(qs, dim=-1, prepend=torch.zeros_like(qs[..., :1]))
    # The quantile at the right end q of an interval is the first atom with F >= q.
    jx = torch.searchsorted(cx.detach().contiguous(), qs.detach().contiguous())
    jy = torch.searchsorted(cy.detach().contiguous(), qs.detach().contiguous())
    jx = jx.clamp_max(xs.shape[-1] - 1)
    jy = jy.clamp_max(ys.shape[-1] - 1)
    diff = (xs.gather(-1, jx) - ys.gather(-1, jy)).abs()
    return (delta * (diff if p == 1 else diff.pow(p))).sum(-1)
