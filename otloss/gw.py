r"""Minibatch Gromov-Wasserstein estimator (GWAE's $L_{GW}$).

For paired samples $(x_i, z_i)$ (a generated image and the code it came from) the
Gromov-Wasserstein objective of the coupling that pairs them is

$$
L_{GW} = \mathbb{E}_{i \ne j}\, \bigl| d_X(x_i, x_j) - C\, d_Z(z_i, z_j) \bigr|^{\rho}.
$$

It needs no transport solver: the coupling is given by the pairing, so the estimator is
an average over the $N (N - 1)$ ordered pairs of a minibatch. Over minibatches of
i.i.d. pairs it is an **unbiased** U-statistic of the population objective when the
diagonal is excluded (the default); including the diagonal adds $N$ terms equal
to zero, which biases the mean towards 0 by the factor $(N - 1) / N$.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_bool,
    check_choice_or_callable,
    check_exponent,
    check_floating,
    check_min_samples,
    check_nonnegative_entries,
    check_positive,
    check_positive_entries,
    check_same_device_dtype,
)
from otloss.distributed import gather as _gather
from otloss.ops import full_precision, pairwise_distances, sqdist

__all__ = ["GWEstimator", "gw_loss"]

Metric = str | Callable[[Tensor], Tensor]
_METRICS = ("euclidean", "sqeuclidean")


def gw_loss(
    dx: Tensor,
    dz: Tensor,
    *,
    scale: float | Tensor = 1.0,
    rho: float = 1.0,
    include_diagonal: bool = False,
) -> Tensor:
    r"""Gromov-Wasserstein objective of the identity pairing, from distance matrices.

    $$
    \frac{1}{|P|} \sum_{(i, j) \in P} \bigl| dx_{ij} - C\, dz_{ij} \bigr|^{\rho},
    $$

    with $P$ the ordered pairs $i \ne j$ (all $N^2$ pairs when
    ``include_diagonal=True``) and $C$ = ``scale``.

    Args:
        dx: ``(..., N, N)`` distances between the $x_i$ (non-negative; NaN
            propagates to the result).
        dz: ``(..., N, N)`` distances between the $z_i$.
        scale: $C > 0$ and finite, a float or a tensor broadcastable to the leading
            shape (a learnable scale is passed as a tensor so it receives gradients).
        rho: exponent $\rho \ge 1$.
        include_diagonal: also average the $N$ diagonal pairs.

    Returns:
        Tensor of shape ``(...)`` (``(0,)`` for an empty batch). Half-precision inputs are
        computed in float32 and the result is cast back; under autocast the computation
        runs in and returns float32 (`otloss.ops.loss_precision`).

    Raises:
        ValueError: a negative distance or a scale that is not positive and finite (on the
            CPU at once; on accelerators the check is queued with ``torch._assert_async``).

    Examples:
        >>> x, z = torch.randn(16, 5), torch.randn(16, 2)
        >>> gw_loss(torch.cdist(x, x), torch.cdist(z, z), scale=0.5)
    """
    dx = check_floating("dx", dx)
    dz = check_floating("dz", dz)
    if dx.dim() < 2 or dx.shape[-1] != dx.shape[-2]:
        raise ValueError(f"dx must be a square (..., N, N) matrix, got shape {tuple(dx.shape)}")
    if dz.shape != dx.shape:
        raise ValueError(
            f"dx and dz must have the same shape (..., N, N), got {tuple(dx.shape)} and "
            f"{tuple(dz.shape)}"
        )
    check_same_device_dtype(dx=dx, dz=dz)
    rho = check_exponent("rho", rho)
    n = dx.shape[-1]
    check_min_samples("dx", n, 1 if include_diagonal else 2, "the pairs i != j")
    if isinstance(scale, Tensor):
        check_positive_entries("scale", check_floating("scale", scale))
    else:
        check_positive("scale", scale)
    check_nonnegative_entries("dx", dx)
    check_nonnegative_entries("dz", dz)
    return _gw_value(dx, dz, scale, rho, include_diagonal)


def _gw_value(
    dx: Tensor, dz: Tensor, scale: float | Tensor, rho: float, include_diagonal: bool
) -> Tensor:
    """`gw_loss` on validated input."""
    n = dx.shape[-1]
    with full_precision(dx, dz) as precision:
        dtype = precision.compute
        dx, dz = dx.to(dtype), dz.to(dtype)
        if isinstance(scale, Tensor):
            scale = scale.to(dtype)
            if scale.dim() > 0:
                scale = scale[..., None, None]
        residual = (dx - scale * dz).abs()
        terms = residual if rho == 1 else residual.pow(rho)
        if include_diagonal:
            value = terms.mean(dim=(-2, -1))
        else:
            # The diagonal residual is |dx_ii - C dz_ii| = 0 for true distances, but a
            # user metric need not vanish there: mask it rather than subtract it.
            eye = torch.eye(n, dtype=torch.bool, device=terms.device)
            value = terms.masked_fill(eye, 0).sum(dim=(-2, -1)) / (n * (n - 1))
    return value.to(precision.result)


def _distance(metric: Metric, t: Tensor, name: str) -> Tensor:
    if callable(metric):
        d = metric(t)
        n = t.shape[0]
        if not isinstance(d, Tensor) or tuple(d.shape) != (n, n):
            got = tuple(d.shape) if isinstance(d, Tensor) else type(d).__name__
            raise ValueError(f"the {name} metric must return an ({n}, {n}) matrix, got {got}")
        return check_nonnegative_entries(f"the {name} metric's output", d)
    if metric == "euclidean":
        return pairwise_distances(t)
    return sqdist(t)


class GWEstimator(nn.Module):
    r"""Minibatch Gromov-Wasserstein estimator with a learnable scale (GWAE's $L_{GW}$).

    $$
    L_{GW}(x, z) = \frac{1}{N (N - 1)} \sum_{i \ne j}
        \bigl| d_X(x_i, x_j) - C\, d_Z(z_i, z_j) \bigr|^{\rho}
    $$

    over paired samples $(x_i, z_i)$; in GWAE they are generated pairs
    $(\text{decoder}(z_i), z_i)$ with $z_i$ drawn from the prior, so the loss
    asks the decoder to be an isometry up to the scale $C$. Unbiased over i.i.d.
    pairs (see the module docstring for ``include_diagonal``).

    Args:
        rho: exponent $\rho \ge 1$ (GWAE uses 1; 2 gives the squared GW loss).
        scale: initial value of $C > 0$.
        learn_scale: learn $C$ (stored as ``log_scale``, a parameter); ``False``
            keeps it fixed (a buffer).
        normalize_z: divide the z-distances by the batch's mean per-dimension standard
            deviation of ``z``. The loss then no longer changes when ``z`` is rescaled, so
            $C$ alone carries the scale. Use it when the latent scale is free (a
            learnable prior can otherwise shrink or inflate its samples to trade against
            $C$); leave it off with a fixed prior, where the scale of ``z`` is
            meaningful and the normalisation only adds batch-to-batch noise.
        include_diagonal: average over all $N^2$ pairs instead of the $i \ne j$.
        x_metric: ``"euclidean"``, ``"sqeuclidean"`` or a callable mapping the
            ``(N, D)`` flattened samples to an ``(N, N)`` distance matrix (e.g. a learned
            feature metric).
        z_metric: the same choices, for the codes.
        gather: estimate over the global batch of a distributed run: every rank's pairs
            are gathered (`otloss.distributed.gather`) and the distance matrices, the
            ``normalize_z`` scale and the mean over pairs are those of the concatenated
            $W N$ pairs. The value is identical on every rank; rank $r$'s gradient
            w.r.t. its own ``x``, ``z`` is $W$ times the single-process gradient of its
            slice and ``log_scale`` gets the single-process gradient, so DDP's mean over
            ranks gives exactly the single-process parameter gradients of the
            concatenated batch. Every rank needs the same ``N``. A no-op without an
            initialised process group.

    Shape:
        - x: ``(N, *)``, flattened to ``(N, Dx)``
        - z: ``(N, L)``
        - output: scalar

    Examples:
        >>> gw = GWEstimator()
        >>> x, z = torch.randn(64, 3, 8, 8), torch.randn(64, 4)
        >>> loss = gw(x, z)       # differentiable in x, z and gw.log_scale
    """

    def __init__(
        self,
        rho: float = 1.0,
        scale: float = 1.0,
        learn_scale: bool = True,
        normalize_z: bool = False,
        include_diagonal: bool = False,
        x_metric: Metric = "euclidean",
        z_metric: Metric = "euclidean",
        gather: bool = False,
    ) -> None:
        super().__init__()
        self.gather = check_bool("gather", gather)
        self.rho = check_exponent("rho", rho)
        scale = check_positive("scale", scale)
        for name, metric in (("x_metric", x_metric), ("z_metric", z_metric)):
            check_choice_or_callable(name, metric, _METRICS)
        self.normalize_z = normalize_z
        self.include_diagonal = include_diagonal
        self.x_metric = x_metric
        self.z_metric = z_metric
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> Tensor:
        """The positive scale $C = \\exp(\\text{log\\_scale})$."""
        return self.log_scale.exp()

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        x = check_floating("x", x)
        z = check_floating("z", z)
        if x.dim() < 2:
            raise ValueError(f"x must have shape (N, *), got {tuple(x.shape)}")
        if z.dim() != 2:
            raise ValueError(f"z must have shape (N, L), got {tuple(z.shape)}")
        if x.shape[0] != z.shape[0]:
            raise ValueError(
                f"x and z must hold the same number of paired samples, got shapes "
                f"{tuple(x.shape)} and {tuple(z.shape)}"
            )
        if x.device != z.device:
            raise ValueError(f"x is on {x.device} but z is on {z.device}")
        if self.gather:
            x, z = _gather(x), _gather(z)
        check_min_samples("x", x.shape[0], 1 if self.include_diagonal else 2, "the pairs i != j")
        for name, t in (("x", x), ("z", z)):
            if math.prod(t.shape[1:]) == 0:
                raise ValueError(f"{name} has no features: shape {tuple(t.shape)}")
        with full_precision(x, z) as precision:
            dtype = precision.compute
            x = x.reshape(x.shape[0], -1).to(dtype)
            z = z.to(dtype)
            dx = _distance(self.x_metric, x, "x").to(dtype)
            dz = _distance(self.z_metric, z, "z").to(dtype)
            if self.normalize_z:
                # unbiased=False keeps N = 1 finite; clamp keeps a collapsed batch finite.
                dz = dz / z.std(dim=0, unbiased=False).mean().clamp_min(torch.finfo(dtype).eps)
            value = _gw_value(dx, dz, self.scale.to(dtype), self.rho, self.include_diagonal)
        return value.to(precision.result)

    def extra_repr(self) -> str:
        return (
            f"rho={self.rho}, normalize_z={self.normalize_z}, "
            f"include_diagonal={self.include_diagonal}, learn_scale="
            f"{isinstance(self.log_scale, nn.Parameter)}, gather={self.gather}"
        )
