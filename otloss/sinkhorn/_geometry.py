"""Ground costs for the Sinkhorn solver and the soft c-transform computed on them.

A :class:`CostGeometry` is the cost ``C(x_i, y_j)`` between two batched point clouds
``x (B, N, D)`` and ``y (B, M, D)``, either stored as a dense ``(B, N, M)`` matrix
(``blocked=False``, "tensorized") or recomputed tile by tile from the points
(``blocked=True``: memory ``O(B * tile)``, never an ``N x M`` matrix). The solver in
:mod:`otloss.sinkhorn._solver` only calls :meth:`CostGeometry.softmin` and the
envelope-theorem gradient :meth:`CostGeometry.transport_gradient`, so both backends
share one solver, as in GeomLoss and OTT-JAX.

Every log-sum-exp runs over row tiles that stay in cache: one fused ``h - C / eps``
pass, a row maximum, then ``exp`` and a row sum in place (about 6x faster than
``torch.logsumexp`` on a materialised ``h - C / eps``). The shifted exponents are
clamped at ``_EXP_FLOOR`` first: terms below it are smaller than ``1e-34`` times the
largest term (invisible in the sum), and ``exp`` of very negative numbers takes a slow
underflow path on CPUs that costs about ten times a normal evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from otloss.ops import safe_sqrt, sqdist

__all__ = ["CostFunction", "CostGeometry", "ground_cost"]

#: A user cost: ``cost(x (B, N, D), y (B, M, D)) -> (B, N, M)``.
CostFunction = Callable[[Tensor, Tensor], Tensor]

#: Elements per log-sum-exp tile (4 MiB in float32: stays in the L3 cache, and is large
#: enough that the few intra-op parallel regions per tile stay cheap on a busy machine).
_TILE_ELEMENTS = 1 << 20
#: Floor of the shifted exponents (see the module docstring), by dtype.
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}


def ground_cost(x: Tensor, y: Tensor, p: int, cost: CostFunction | None) -> Tensor:
    r"""Dense cost matrix: ``cost(x, y)``, or :math:`|x_i - y_j|^p / p` for ``p`` in {1, 2}.

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
        p (int): exponent of the default cost :math:`|x - y|^p / p` (1 or 2).
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
        self.floor = _EXP_FLOOR.get(x.dtype, -80.0)
        if blocked:
            self.matrix = None
            if cost is None:
                # Centre once on the joint mean (distances are translation invariant and
                # the matmul expansion loses less to cancellation), keep half-norms.
                centre = (x.sum(1, keepdim=True) + y.sum(1, keepdim=True)) / (n + m)
                self.xc, self.yc = x - centre, y - centre
                self.x2h = (self.xc * self.xc).sum(-1) / 2
                self.y2h = (self.yc * self.yc).sum(-1) / 2
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
            self.y, self.x, p=self.p, cost=self.cost, blocked=self.blocked, matrix=matrix
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

    def _tiles(self, eps: Tensor, h: Tensor) -> Iterator[tuple[int, int, Tensor, Tensor, Tensor]]:
        """Yield ``(start, stop, e, s, lse)`` per row tile.

        ``e = exp(h_j - C_ij / eps - m_i)`` (in a reused buffer), its row sums ``s`` and
        the row log-sum-exps ``lse_i = log sum_j exp(h_j - C_ij / eps)``.
        """
        batch, n, m = self.x.shape[0], self.x.shape[1], self.y.shape[1]
        inv_eps = eps.reciprocal().view(batch, 1, 1)
        hh = h.unsqueeze(1)
        buffer = h.new_empty(batch, min(self.rows, n), m)
        for start in range(0, n, self.rows):
            stop = min(n, start + self.rows)
            e = buffer[:, : stop - start]
            offset = self._exponent(start, stop, hh, inv_eps, e)
            row_max = e.amax(-1, keepdim=True)
            e.sub_(row_max).clamp_min_(self.floor).exp_()
            s = e.sum(-1)
            lse = row_max.squeeze(-1) + s.log()
            if offset is not None:
                lse = lse + offset
            yield start, stop, e, s, lse

    # -- what the solver uses ------------------------------------------------------------

    def softmin(self, eps: Tensor, h: Tensor) -> Tensor:
        r"""Soft c-transform :math:`f_i = -\varepsilon \log \sum_j \exp(h_j - C_{ij}/\varepsilon)`.

        Args:
            eps ((B,) Tensor): temperature per batch item.
            h ((B, M) Tensor): log-weights plus potential over eps, ``log b + g / eps``.

        Returns:
            (B, N) Tensor: the potential ``f`` on the points ``x``.
        """
        out = h.new_empty(self.x.shape[:2])
        for start, stop, _, _, lse in self._tiles(eps, h):
            out[:, start:stop] = lse
        return out.mul_(-eps[:, None])

    def transport_gradient(self, eps: Tensor, h: Tensor, mass: Tensor) -> Tensor:
        r"""Gradient in ``x`` of :math:`\langle \pi, C(x, y) \rangle`, ``y`` held fixed.

        The plan is :math:`\pi_{ij} = \text{mass}_i\, \text{softmax}_j(h_j - C_{ij}/\varepsilon)`:
        the one the final soft c-transform ``softmin(eps, h)`` defines, whose row sums are
        ``mass``. By the envelope theorem this is the gradient of the transport value.

        Returns:
            (B, N, D) Tensor.
        """
        grad = torch.empty_like(self.x)
        for start, stop, e, s, _ in self._tiles(eps, h):
            w = e.div_(s.unsqueeze(-1)).mul_(mass[:, start:stop, None])  # plan rows
            xb = self.x[:, start:stop]
            if self.cost is not None:
                with torch.enable_grad():
                    xr = xb.detach().requires_grad_(True)
                    (grad[:, start:stop],) = torch.autograd.grad(
                        self.cost(xr, self.y.detach()), xr, grad_outputs=w
                    )
                continue
            if self.p == 1:  # grad_x |x - y| = (x - y) / |x - y|, 0 where x = y
                d = self.cost_tile(start, stop)
                w = torch.where(d > 0, w / torch.where(d > 0, d, 1.0), 0.0)
            grad[:, start:stop] = xb * w.sum(-1, keepdim=True) - torch.bmm(w, self.y)
        return grad
