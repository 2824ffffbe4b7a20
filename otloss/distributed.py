r"""Estimates over the global batch of a data-parallel run: an all-gather that keeps gradients.

Under `torch.nn.parallel.DistributedDataParallel` each of the $W$ ranks holds a
local batch; a divergence estimated on it sees $N$ samples, not the global $W N$.
The estimators' ``gather=True`` option gathers every rank's samples with `gather`
first, so each rank computes the estimate $L$ of the concatenated global batch.

Gradient convention (sum over ranks). The backward of `gather` is a reduce-scatter with
**sum**: rank $r$ receives, for its own slice $x_r$, the sum over all ranks of the
gradients that flow into that slice. Every rank computes the same $L$, so rank
$r$'s input gradient is

$$
\texttt{x}_r\texttt{.grad} = \sum_{s=1}^{W} \frac{\partial L_s}{\partial x_r}
    = W\, \frac{\partial L}{\partial x_r},
$$

$W$ times the single-process gradient of its slice. A parameter $\theta$ of the
network that produced $x_r$ then gets $W\, (\partial L / \partial x_r)
(\partial x_r / \partial \theta)$ on rank $r$, and DDP's **mean** over ranks gives
$\sum_r (\partial L / \partial x_r)(\partial x_r / \partial \theta) = \partial L /
\partial \theta$: the exact single-process gradient of the concatenated batch. A
parameter of the estimator itself (GW's ``log_scale``) receives the full
$\partial L / \partial \theta$ on every rank, which DDP's mean leaves unchanged.
Without DDP (a plain sum of per-rank gradients) divide by $W$.

Requirements: every rank calls `gather` (and an estimator with ``gather=True``) in
the same order with tensors of the **same shape and dtype** (a ``DataLoader`` with
``drop_last=True`` over a `torch.utils.data.distributed.DistributedSampler` gives every
rank equal batches), and every rank passes weights or none does. CPU tensors are checked
for equal shapes and dtypes across ranks (one small host-side exchange); on accelerators
the check would cost a host synchronisation, so there a mismatch is the collective's own
error or a hang.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from otloss._checks import check_weights

__all__ = ["gather", "gather_clouds", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """Whether a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks of the default process group (1 when not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group (0 when not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather(x: Tensor, dim: int = 0) -> Tensor:
    r"""All ranks' ``x`` concatenated along ``dim`` in rank order, with gradients.

    The result's rank-$r$ slice is rank $r$'s ``x``; its backward sums the
    gradients of all ranks for this rank's slice (reduce-scatter with sum; see the
    module docstring for what this means under DDP). No host synchronisation: the
    gather is the asynchronous functional collective, waited on at first use.

    Args:
        x: this rank's tensor, of the same shape and dtype on every rank (non-contiguous
            tensors are fine).
        dim: the dimension to concatenate along.

    Returns:
        ``x`` itself when torch.distributed is not initialised or has one rank; otherwise
        a tensor whose ``dim`` is ``world_size()`` times longer.

    Raises:
        ValueError: on CPU, when the ranks' shapes or dtypes differ (raised on every rank).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
    if not is_distributed():
        return x
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension to concatenate along, got a scalar")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim {dim} is out of range for x of shape {tuple(x.shape)}")
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        _check_same_layout(x)
    # The functional collective: gathers along dim 0, backward = reduce-scatter (sum),
    # works under torch.compile (torch.distributed.nn.functional.all_gather, its
    # deprecated predecessor with the same backward, does not).
    from torch.distributed._functional_collectives import all_gather_single

    moved = x.movedim(dim, 0).contiguous()
    gathered = all_gather_single(moved, 0, dist.group.WORLD)
    return gathered.movedim(0, dim)


def gather_clouds(
    x: Tensor, y: Tensor, x_weights: Tensor | None = None, y_weights: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    r"""The global weighted clouds of a two-sample divergence (MMD, Sinkhorn).

    Points ``(N, D)`` / ``(B, N, D)`` are gathered along the sample dimension. Each rank's
    weights sum to 1 (checked here); the global measure is the average of the ranks'
    measures, $\alpha = \frac1W \sum_r \alpha_r$, i.e. the gathered weights divided
    by $W$ (uniform weights stay uniform). ``y`` given as the same tensor as ``x``
    stays the same tensor.
    """
    x_weights = check_weights("x_weights", x_weights, x)
    y_weights = check_weights("y_weights", y_weights, y)
    if not is_distributed():
        return x, y, x_weights, y_weights
    same = y is x
    x = gather(x, -2)
    y = x if same else gather(y, -2)
    w = world_size()
    a = None if x_weights is None else gather(x_weights, -1) / w
    b = None if y_weights is None else gather(y_weights, -1) / w
    return x, y, a, b


def _check_same_layout(x: Tensor) -> None:
    """Every rank's (shape, dtype), exchanged on the host; raises on every rank if they differ."""
    layouts: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(layouts, (tuple(x.shape), str(x.dtype)))
    if any(layout != layouts[0] for layout in layouts):
        described = ", ".join(f"rank {r}: {s} {d}" for r, (s, d) in enumerate(layouts))  # type: ignore[misc]
        raise ValueError(
            f"gather needs tensors of the same shape and dtype on every rank, got {described}"
        )
