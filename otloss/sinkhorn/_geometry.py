"""Ground costs for the Sinkhorn solver and the soft c-transform computed on them.

A `CostGeometry` is the cost ``C(x_i, y_j)`` between two batched point clouds
``x (B, N, D)`` and ``y (B, M, D)``, either stored as a dense ``(B, N, M)`` matrix
(``blocked=False``, "tensorized") or recomputed tile by tile from the points
(``blocked=True``: memory ``O(B * tile)``, never an ``N x M`` matrix). The solver in
`otloss.sinkhorn._solver` only calls `CostGeometry.softmin` and the
envelope-theorem gradient `CostGeometry.transport_gradient`, so both backends
share one solver, as in GeomLoss and OTT-JAX.

Every log-sum-exp runs over row tiles that stay in cache: one fused ``h - C / eps``
pass, a row maximum, then ``exp`` and a row sum in place (about 6x faster than
``torch.logsumexp`` on a materialised ``h - C / eps``).

No subnormal number is ever produced on these hot paths. Arithmetic on subnormals (floats
below ``1.2e-38`` in float32) takes a microcode path about 100 times slower on many x86
CPUs, so a plan that holds them makes every pass over it slow on those machines and not
on others. In the forward log-sum-exp the shifted exponents are clamped at
``_SUM_FLOOR`` (terms ``e^{-80}`` times the largest are invisible in the sum, and stay
normal). In the backward the plan is built directly in the log domain,
``exp(h_j - C_ij / eps - lse_i)`` with the row normaliser ``lse`` saved by the forward
(no second reduction), and exponents below ``_PLAN_FLOOR`` become exact zeros, so the
plan entries and their products with coordinates stay normal; the row masses multiply
the ``(N, D)`` result, not the ``(N, M)`` plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from otloss.ops import center_pair, safe_sqrt, sqdist

__all__ = ["CostFunction", "CostGeometry", "ground_cost"]

#: A user cost: ``cost(x (B, N, D), y (B, M, D)) -> (B, N, M)``.
CostFunction = Callable[[Tensor, Tensor], Tensor]

#: Elements per log-sum-exp tile (4 MiB in float32: stays in the L3 cache, and is large
#: enough that the few intra-op parallel regions per tile stay cheap on a busy machine).
_TILE_ELEMENTS = 1 << 20
#: Floor of the shifted exponents in the forward sums (see the module docstring), by dtype:
#: ``exp`` of the floor is normal, and below it a term is < 1e-34 of the row's largest.
_SUM_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}
#: Exponents of normalised plan entries below this are exact zeros in the backward: the
#: entries left (> 1e-26 in float32) times any coordinate above 1e-12 stay normal.
_PLAN_FLOOR = {torch.float32: -60.0, torch.float64: -600.0}


def ground_cost(x: Tensor, y: Tensor, p: int, cost: CostFunction | None) -> Tensor:
    r"""Dense cost matrix: ``cost(x, y)``, or $|x_i - y_j|^p / p$ for ``p`` in {1, 2}.

    Shape: x ``(B, N, D)``, y ``(B, M, D)`` -> ``(B, N, M)``.
    """
    if cost is not None:
        return cost(x, y)
    d2 = sqdist(x, y)
    return d2 / 2 if p == 2 else safe_sqrt(d2)


class CostGeometry:
    r"""The cost between ``x`` and ``y``, dense or in tiles, and the soft c-transform on it.

    Args:
        x ((B, N, D) Tensor): first point cloud (detached; computing dtype).
        y ((B, M, D) Tensor): second point cloud.
        p (int): exponent of the default cost $|x - y|^p / p$ (1 or 2).
        cost (callable, optional): user cost replacing the default one.
        blocked (bool): recompute tiles instead of storing the ``(B, N, M)`` matrix.
        symmetric (bool): ``y`` is ``x`` (the self-transport problems of the debiased
            divergence); the default costs then have an exactly zero diagonal.
        matrix ((B, N, M) Tensor, optional): a precomputed dense cost (tensorized only).
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        p: int,
        cost: CostFunction | None,
        blocked: bool,
        symmetric: bool = False,
        matrix: Tensor | None = None,
    ) -> None:
        self.x, self.y, self.p, self.cost = x, y, p, cost
        self.blocked, self.symmetric = blocked, symmetric
        batch, n, m = x.shape[0], x.shape[1], y.shape[1]
        self.rows = max(1, min(n, _TILE_ELEMENTS // max(1, batch * m)))
        self.sum_floor = _SUM_FLOOR.get(x.dtype, -80.0)
        self.plan_floor = _PLAN_FLOOR.get(x.dtype, -60.0)
        if blocked:
            self.matrix = None
            if cost is None:
                # Centred once on the joint mean (ops.center_pair), with half-norms.
                pair = center_pair(x, y)
                self.xc, self.yc = pair.xc, pair.yc
                self.x2h, self.y2h = pair.x2 / 2, pair.y2 / 2
        elif matrix is not None:
            self.matrix = matrix
        elif symmetric and cost is None:
            d2 = sqdist(x)
            self.matrix = d2 / 2 if p == 2 else safe_sqrt(d2)
        else:
            self.matrix = ground_cost(x, y, p, cost)

    def transposed(self) -> CostGeometry:
        """The geometry of ``(y, x)``, sharing the dense matrix (as a contiguous transpose)."""
        matrix = None if self.matrix is None else self.matrix.mT.contiguous()
        return CostGeometry(
            self.y,
            self.x,
            p=self.p,
            cost=self.cost,
            blocked=self.blocked,
            symmetric=self.symmetric,
            matrix=matrix,
        )

    # -- cost tiles ---------------------------------------------------------------------

    def _sqdist_tile(self, start: int, stop: int) -> Tensor:
        xc = self.xc[:, start:stop]
        d2 = torch.baddbmm(
            self.x2h[:, start:stop, None] + self.y2h[:, None, :], xc, self.yc.mT, alpha=-1.0
        ).mul_(2).clamp_min_(0)
        if self.symmetric:
            d2[:, torch.arange(stop - start), torch.arange(start, stop)] = 0
        return d2

    def cost_tile(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of the cost, ``(B, stop - start, M)``."""
        if self.matrix is not None:
            return self.matrix[:, start:stop]
        if self.cost is not None:
            return self.cost(self.x[:, start:stop], self.y)
        d2 = self._sqdist_tile(start, stop)
        return d2.mul_(0.5) if self.p == 2 else safe_sqrt(d2)

    def _exponent(
        self, start: int, stop: int, h: Tensor, inv_eps: Tensor, out: Tensor
    ) -> Tensor | None:
        """Write ``h_j - C_ij / eps`` (up to a returned per-row offset) into ``out``."""
        if self.matrix is None and self.cost is None and self.p == 2:
            # -C_ij / eps = (x_i.y_j - |x_i|^2 / 2 - |y_j|^2 / 2) / eps: one batched matmul,
            # and the row term |x_i|^2 / (2 eps) leaves the log-sum-exp as an offset.
            torch.baddbmm(
                h - self.y2h[:, None, :] * inv_eps,
                self.xc[:, start:stop] * inv_eps,
                self.yc.mT,
                out=out,
            )
            return -self.x2h[:, start:stop] * inv_eps[:, :, 0]
        torch.addcmul(h, self.cost_tile(start, stop), -inv_eps, out=out)
        return None

    # -- what the solver uses ------------------------------------------------------------

    def log_partition(self, eps: Tensor, h: Tensor) -> Tensor:
        r"""Row log-sum-exps $\log \sum_j \exp(h_j - C_{ij}/\varepsilon)$.

        Args:
            eps ((B,) Tensor): temperature per batch item.
            h ((B, M) Tensor): log-weights plus potential over eps, ``log b + g / eps``.

        Returns:
            (B, N) Tensor.
        """
        batch, n, m = self.x.shape[0], self.x.shape[1], self.y.shape[1]
        inv_eps = eps.reciprocal().view(batch, 1, 1)
        hh = h.unsqueeze(1)
        buffer = h.new_empty(batch, min(self.rows, n), m)
        out = h.new_empty(batch, n)
        for start in range(0, n, self.rows):
            stop = min(n, start + self.rows)
            e = buffer[:, : stop - start]
            offset = self._exponent(start, stop, hh, inv_eps, e)
            row_max = e.amax(-1, keepdim=True)
            e.sub_(row_max).clamp_min_(self.sum_floor).exp_()
            lse = out[:, start:stop]
            torch.add(row_max.squeeze(-1), e.sum(-1).log_(), out=lse)
            if offset is not None:
                lse.add_(offset)
        return out

    def softmin(self, eps: Tensor, h: Tensor) -> Tensor:
        r"""Soft c-transform $f_i = -\varepsilon \log \sum_j \exp(h_j - C_{ij}/\varepsilon)$.

        Shapes as `log_partition`; returns the ``(B, N)`` potential on ``x``.
        """
        return self.log_partition(eps, h).mul_(-eps[:, None])

    def plan_rows(
        self, eps: Tensor, h: Tensor, lse: Tensor
    ) -> Iterator[tuple[int, int, Tensor]]:
        r"""Yield ``(start, stop, w)``: tiles of the row-normalised plan, in a reused buffer.

        $w_{ij} = \exp(h_j - C_{ij}/\varepsilon - \text{lse}_i)$ for rows
        ``start:stop``, ``(B, stop - start, M)``, with every entry below
        ``exp(_PLAN_FLOOR)`` an exact zero: no subnormal number is produced.
        """
        batch, n, m = self.x.shape[0], self.x.shape[1], self.y.shape[1]
        inv_eps = eps.reciprocal().view(batch, 1, 1)
        hh = h.unsqueeze(1)
        buffer = h.new_empty(batch, min(self.rows, n), m)
        for start in range(0, n, self.rows):
            stop = min(n, start + self.rows)
            w = buffer[:, : stop - start]
            offset = self._exponent(start, stop, hh, inv_eps, w)
            shift = lse[:, start:stop] if offset is None else lse[:, start:stop] - offset
            w.sub_(shift.unsqueeze(-1))
            w.masked_fill_(w < self.plan_floor, -math.inf)  # NaN stays NaN
            yield start, stop, w.exp_()

    def transport_gradient(self, eps: Tensor, h: Tensor, lse: Tensor, mass: Tensor) -> Tensor:
        r"""Gradient in ``x`` of $\langle \pi, C(x, y) \rangle$, ``y`` held fixed.

        The plan is $\pi_{ij} = \text{mass}_i \exp(h_j - C_{ij}/\varepsilon - \text{lse}_i)$
        with ``lse = log_partition(eps, h)`` (saved by the forward pass): the plan of the
        final soft c-transform, whose row sums are ``mass``. By the envelope theorem this
        is the gradient of the transport value. Normalised entries below
        ``exp(_PLAN_FLOOR)`` are exact zeros (see the module docstring).

        Returns:
            (B, N, D) Tensor.
        """
        grad = torch.empty_like(self.x)
        for start, stop, w in self.plan_rows(eps, h, lse):
            xb = self.x[:, start:stop]
            if self.cost is not None:
                with torch.enable_grad():
                    xr = xb.detach().requires_grad_(True)
                    (g,) = torch.autograd.grad(self.cost(xr, self.y.detach()), xr, grad_outputs=w)
            else:
                if self.p == 1:  # grad_x |x - y| = (x - y) / |x - y|, 0 where x = y
                    d = self.cost_tile(start, stop)
                    w = torch.where(d > 0, w / torch.where(d > 0, d, 1.0), 0.0)
                g = xb * w.sum(-1, keepdim=True) - torch.bmm(w, self.y)
            grad[:, start:stop] = g * mass[:, start:stop, None]
        return grad
