r"""Entropic Gromov-Wasserstein between metric-measure spaces, batched, on log-domain Sinkhorn.

For spaces $(C^x, a)$ and $(C^y, b)$ (cost matrices ``(N, N)`` and ``(M, M)``,
weights on their points) and a loss $L$, the Gromov-Wasserstein objective of a
coupling $T \in \Pi(a, b)$ is

$$
\mathcal{E}(T) = \sum_{i,k=1}^{N} \sum_{j,l=1}^{M} L(C^x_{ik}, C^y_{jl})\, T_{ij} T_{kl},
$$

and the entropic problem is $\min_{T \in \Pi(a, b)} \mathcal{E}(T)
+ \varepsilon\, \text{KL}(T \,|\, a \otimes b)$. Both losses split as
$L(u, v) = f_1(u) + f_2(v) - h_1(u) h_2(v)$ (Peyré, Cuturi, Solomon 2016, Prop. 1):

- square, $(u - v)^2$: $f_1(u) = u^2,\ f_2(v) = v^2,\ h_1(u) = u,\ h_2(v) = 2v$;
- KL, $u \log(u / v) - u + v$: $f_1(u) = u \log u - u,\ f_2(v) = v,\
  h_1(u) = u,\ h_2(v) = \log v$,

so that for $T \in \Pi(a, b)$

$$
\mathcal{E}(T) = \langle c \oplus d - h_1(C^x)\, T\, h_2(C^y)^\top,\ T \rangle,
\qquad c = f_1(C^x)\, a,\ \ d = f_2(C^y)\, b,
$$

two matrix products per evaluation instead of a four-index sum. The solver is the
projected (mirror) gradient descent of Peyré et al. (POT's ``solver="PGD"``): from
$T_0$ (the product coupling by default) it repeats

$$
T_{k+1} = \mathop{\arg\min}_{T \in \Pi(a, b)}
    \langle \nabla \mathcal{E}(T_k), T \rangle + \varepsilon\, \text{KL}(T \,|\, a \otimes b),
\qquad \nabla \mathcal{E}(T) = 2 \bigl(c \oplus d - h_1(C^x)\, T\, h_2(C^y)^\top\bigr)
$$

(symmetric costs; otherwise the average of this expression for $C$ and
$C^\top$, times two), each step an entropic OT problem solved by otloss's
log-domain Sinkhorn soft c-transforms (`otloss.sinkhorn._geometry.CostGeometry.softmin`),
warm-started from the previous step's potentials. Its fixed points are the stationary
points of the entropic objective (GW is not convex: a local optimum, like POT's).

Gradients follow from the envelope theorem at the returned plan $T$:

$$
\frac{\partial}{\partial C^x} = f_1'(C^x) \odot a a^\top
    - h_1'(C^x) \odot \bigl(T\, h_2(C^y)\, T^\top\bigr),
\qquad
\frac{\partial}{\partial C^y} = f_2'(C^y) \odot b b^\top
    - h_2'(C^y) \odot \bigl(T^\top h_1(C^x)\, T\bigr),
$$

(square loss: $2 C^x \odot a a^\top - 2\, T C^y T^\top$), and the centred dual
potentials for the weights: exactly the gradients of the entropic value
$\mathcal{E}(T^\star) + \varepsilon \text{KL}(T^\star | a \otimes b)$ at a stationary
plan, and POT's convention for $\mathcal{E}(T^\star)$ alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_batch_layout,
    check_choice,
    check_count,
    check_floating,
    check_interval,
    check_points,
    check_positive,
    check_same_device_dtype,
    check_sign,
    check_square,
    check_weights,
)
from otloss.ops import (
    autocast_disabled,
    first_order_only,
    full_precision,
    loss_precision,
    pairwise_distances,
    sqdist,
)
from otloss.sinkhorn._divergence import _centred
from otloss.sinkhorn._geometry import CostGeometry
from otloss.sinkhorn._solver import _violation, epsilon_schedule

__all__ = [
    "DEFAULT_MAX_ITER",
    "DEFAULT_SINKHORN_MAX_ITER",
    "DEFAULT_SINKHORN_TOL",
    "DEFAULT_TOL",
    "GromovWasserstein",
    "gromov_wasserstein",
]

#: Default stopping threshold on the Frobenius norm of the plan change between two outer
#: iterations (POT's ``tol`` measures the same quantity; its default 1e-9 lies below the
#: float32 rounding of a plan, where the change stalls near
#: ``1e-7 * |cost| / epsilon * |T|_F``).
DEFAULT_TOL = 1e-6
#: Default cap on the outer (mirror-descent) iterations, annealing included (POT's default).
DEFAULT_MAX_ITER = 1000
#: Default stopping threshold on the L1 marginal violation of each inner Sinkhorn solve.
DEFAULT_SINKHORN_TOL = 1e-4
#: Default cap on the Sinkhorn updates of one inner solve (a capped solve continues,
#: warm-started, in the next outer iteration; the outer test waits for it).
DEFAULT_SINKHORN_MAX_ITER = 100
LOSSES = ("square", "kl")
METRICS = ("euclidean", "sqeuclidean")
INITS = ("product", "identity")
#: Iterations between two convergence tests on accelerators (each test is a host sync).
_CHECK_EVERY = 10
#: Temperatures of the warm-up of the first inner solve, geometric from the range of the
#: cost down to epsilon (from zero potentials plain Sinkhorn needs ~range/eps updates).
_WARMUP_STEPS = 16
#: The plan change is compared with at least this many unit roundoffs of the plan:
#: entry-wise, exp((f + g - M) / eps) carries a relative error of about u |M| / eps.
_ROUNDING_FACTOR = 4.0


@dataclass(frozen=True)
class _Decomposition:
    r"""A loss written $L(u, v) = f_1(u) + f_2(v) - h_1(u) h_2(v)$, with derivatives."""

    f1: Callable[[Tensor], Tensor]
    f2: Callable[[Tensor], Tensor]
    h1: Callable[[Tensor], Tensor]
    h2: Callable[[Tensor], Tensor]
    df1: Callable[[Tensor], Tensor]
    df2: Callable[[Tensor], Tensor]
    dh1: Callable[[Tensor], Tensor]
    dh2: Callable[[Tensor], Tensor]


_DECOMPOSITIONS = {
    "square": _Decomposition(
        f1=torch.square,
        f2=torch.square,
        h1=lambda u: u,
        h2=lambda v: 2 * v,
        df1=lambda u: 2 * u,
        df2=lambda v: 2 * v,
        dh1=torch.ones_like,
        dh2=lambda v: torch.full_like(v, 2.0),
    ),
    "kl": _Decomposition(
        f1=lambda u: torch.xlogy(u, u) - u,
        f2=lambda v: v,
        h1=lambda u: u,
        h2=torch.log,
        df1=torch.log,
        df2=torch.ones_like,
        dh1=torch.ones_like,
        dh2=torch.reciprocal,
    ),
}


@dataclass(frozen=True)
class _Config:
    loss: str
    schedule: tuple[float, ...]
    symmetric: bool
    tol: float | None
    max_iter: int
    sinkhorn_tol: float | None
    sinkhorn_max_iter: int
    entropic: bool


class _Problem:
    """The terms of the split objective on a batch, padding masked out, computed once.

    ``hx = h1(Cx)``, ``hy = h2(Cy)``, ``c = f1(Cx) a``, ``d = f2(Cy) b`` (and the same for
    the transposed costs when they are not symmetric). Entries that touch a zero-weight
    point are set to 0: whatever padding holds, it contributes exactly nothing.
    """

    def __init__(self, cx: Tensor, cy: Tensor, a: Tensor, b: Tensor, cfg: _Config) -> None:
        dec = _DECOMPOSITIONS[cfg.loss]
        self.a, self.b, self.symmetric = a, b, cfg.symmetric
        self.mx = (a[:, :, None] > 0) & (a[:, None, :] > 0)
        self.my = (b[:, :, None] > 0) & (b[:, None, :] > 0)
        fx = torch.where(self.mx, dec.f1(cx), 0)
        fy = torch.where(self.my, dec.f2(cy), 0)
        self.hx = torch.where(self.mx, dec.h1(cx), 0)
        self.hy = torch.where(self.my, dec.h2(cy), 0)
        self.const = (fx @ a[..., None]) + (fy @ b[..., None]).mT  # c_i + d_j, (B, N, M)
        if not cfg.symmetric:
            self.const_t = (fx.mT @ a[..., None]) + (fy.mT @ b[..., None]).mT

    def tensor_product(self, t: Tensor) -> Tensor:
        r"""$c \oplus d - h_1(C^x)\, T\, h_2(C^y)^\top$ (POT's ``tensor_product``)."""
        return torch.baddbmm(self.const, self.hx @ t, self.hy.mT, alpha=-1)

    def gradient(self, t: Tensor) -> Tensor:
        r"""Gradient of the objective $\mathcal{E}$ at the plan ``t``: the linearised cost."""
        if self.symmetric:
            return 2 * self.tensor_product(t)
        return self.tensor_product(t) + torch.baddbmm(
            self.const_t, self.hx.mT @ t, self.hy, alpha=-1
        )

    def objective(self, t: Tensor) -> Tensor:
        r"""$\mathcal{E}(T) = \langle c \oplus d - h_1 T h_2^\top, T \rangle$ per item."""
        return (self.tensor_product(t) * t).sum((-2, -1))


def _plan(cost: Tensor, f: Tensor, g: Tensor, eps: Tensor, la: Tensor, lb: Tensor) -> Tensor:
    r"""$T_{ij} = a_i b_j \exp((f_i + g_j - M_{ij}) / \varepsilon)$, 0 on padding."""
    e = eps[:, None, None]
    return torch.exp((f[:, :, None] + g[:, None, :] - cost) / e + la[:, :, None] + lb[:, None, :])


def _warmup_temperatures(cost: Tensor, eps: Tensor, la: Tensor, lb: Tensor) -> Tensor:
    """``(_WARMUP_STEPS, B)`` temperatures from the cost's range on the support to eps.

    Computed on the device (no host sync), one geometric schedule per item.
    """
    support = la.isfinite()[:, :, None] & lb.isfinite()[:, None, :]
    hi = torch.where(support, cost, -torch.inf).amax((1, 2))
    lo = torch.where(support, cost, torch.inf).amin((1, 2))
    start = torch.maximum(hi - lo, eps)
    steps = torch.linspace(1, 0, _WARMUP_STEPS, dtype=eps.dtype, device=eps.device)
    return eps * (start / eps) ** steps[:, None]


def _sinkhorn(
    cost: Tensor,
    eps: Tensor,
    f: Tensor,
    g: Tensor,
    la: Tensor,
    lb: Tensor,
    cfg: _Config,
    *,
    warmup: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Alternating log-domain Sinkhorn updates on ``cost (B, N, M)`` from ``(f, g)``.

    With ``warmup`` (the first solve, from zero potentials) one update at each of the
    `_warmup_temperatures` comes first (epsilon scaling). Stops an item once the
    L1 violation of its row marginal is below ``sinkhorn_tol`` (its potentials are then
    kept as they were, so a batch computes what each item alone would); runs exactly
    ``sinkhorn_max_iter`` updates without a tolerance (no host sync). Returns potentials
    whose plan has exact column marginals, and which items reached ``sinkhorn_tol``
    (``None`` without a tolerance).
    """
    # The geometry reads only the shapes of its point clouds when given the matrix.
    stub_x = cost.new_empty(cost.shape[0], cost.shape[1], 0)
    stub_y = cost.new_empty(cost.shape[0], cost.shape[2], 0)
    xy = CostGeometry(stub_x, stub_y, p=2, cost=None, blocked=False, matrix=cost)
    yx = xy.transposed()
    a = la.exp()
    e = eps[:, None]
    tol = cfg.sinkhorn_tol
    check_every = 1 if cost.device.type == "cpu" else _CHECK_EVERY
    if warmup:
        for temperature in _warmup_temperatures(cost, eps, la, lb):
            t = temperature[:, None]
            f = xy.softmin(temperature, lb + g / t)
            g = yx.softmin(temperature, la + f / t)
    done = None
    for k in range(cfg.sinkhorn_max_iter):
        f_new = xy.softmin(eps, lb + g / e)
        if tol is None:
            f = f_new
            g = yx.softmin(eps, la + f / e)
            continue
        error = _violation(a, (f - f_new) / e)  # row-marginal violation of the plan (f, g)
        done = error < tol if done is None else done | (error < tol)
        f = torch.where(done[:, None], f, f_new)
        g = torch.where(done[:, None], g, yx.softmin(eps, la + f / e))
        if (k + 1) % check_every == 0 and bool(done.all()):
            break
    return f, g, done


def _solve(problem: _Problem, t: Tensor, cfg: _Config) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mirror descent from the plan ``t``; returns the plan, its potentials and eps."""
    a, b = problem.a, problem.b
    la, lb = a.log(), b.log()  # -inf on zero weights: padding gets no mass
    f, g = a.new_zeros(a.shape), b.new_zeros(b.shape)
    steps = len(cfg.schedule)
    check_every = 1 if a.device.type == "cpu" else _CHECK_EVERY
    active = torch.ones(a.shape[0], dtype=torch.bool, device=a.device)
    cost = problem.gradient(t)
    for k in range(max(cfg.max_iter, steps)):
        eps = a.new_full(a.shape[:1], cfg.schedule[min(k, steps - 1)])
        if k > 0:
            cost = torch.where(active[:, None, None], problem.gradient(t), cost)
        f_new, g_new, inner_done = _sinkhorn(cost, eps, f, g, la, lb, cfg, warmup=k == 0)
        t_new = _plan(cost, f_new, g_new, eps, la, lb)
        if cfg.tol is None or k < steps - 1:
            t, f, g = t_new, f_new, g_new
            continue
        change = (t_new - t).flatten(1).norm(dim=1)
        # Below the rounding of the plan the change stalls instead of reaching tol.
        rounding = _ROUNDING_FACTOR * torch.finfo(t.dtype).eps / eps
        rounding = rounding * cost.abs().amax((1, 2)) * t_new.flatten(1).norm(dim=1)
        keep = active[:, None]
        t = torch.where(keep[..., None], t_new, t)
        f, g = torch.where(keep, f_new, f), torch.where(keep, g_new, g)
        # An item stops once its plan is stable and its last inner solve converged (a
        # capped inner solve continues, warm-started, in the next outer iteration).
        converged = change < torch.clamp_min(rounding, cfg.tol)
        if inner_done is not None:
            converged = converged & inner_done
        active = active & ~converged
        if (k + 1) % check_every == 0 or k + 1 == max(cfg.max_iter, steps):
            if bool(change.isnan().any()):
                raise ValueError(
                    "the Gromov-Wasserstein plan became NaN: Cx, Cy or the weights have "
                    "non-finite entries on the support (or the loss is undefined on them)"
                )
            if not bool(active.any()):
                break
    return t, f, g, eps


class _GromovWassersteinFunction(torch.autograd.Function):
    """GW value of the mirror-descent plan, with gradients by the envelope theorem.

    The loop runs without autograd; the backward pass uses only the final plan and
    potentials, so memory does not grow with the number of iterations.
    """

    @staticmethod
    def forward(ctx, cx: Tensor, cy: Tensor, a: Tensor, b: Tensor, t0: Tensor, cfg: _Config):  # type: ignore[override]
        problem = _Problem(cx, cy, a, b, cfg)
        t, f, g, eps = _solve(problem, t0, cfg)
        value = problem.objective(t)
        if cfg.entropic:
            ratio = torch.where(t > 0, t / (a[:, :, None] * b[:, None, :]), 1)
            kl = (t * ratio.log()).sum((-2, -1)) - t.sum((-2, -1)) + a.sum(-1) * b.sum(-1)
            value = value + eps * kl
        ctx.save_for_backward(cx, cy, a, b, t, f, g)
        ctx.cfg, ctx.masks = cfg, (problem.mx, problem.my)
        ctx.mark_non_differentiable(t)
        return value, t

    @staticmethod
    @first_order_only(
        "gromov_wasserstein",
        "for higher-order gradients use otloss.gw_loss (GWEstimator), which supports them",
    )
    def backward(ctx, grad_value: Tensor, _: Tensor):  # type: ignore[override]
        cx, cy, a, b, t, f, g_pot = ctx.saved_tensors
        dec = _DECOMPOSITIONS[ctx.cfg.loss]
        mx, my = ctx.masks
        gv = grad_value[:, None, None]
        grad_cx = grad_cy = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            hy = torch.where(my, dec.h2(cy), 0)
            g = dec.df1(cx) * (a[:, :, None] * a[:, None, :]) - dec.dh1(cx) * (t @ hy @ t.mT)
            grad_cx = gv * torch.where(mx, g, 0)
        if ctx.needs_input_grad[1]:
            hx = torch.where(mx, dec.h1(cx), 0)
            g = dec.df2(cy) * (b[:, :, None] * b[:, None, :]) - dec.dh2(cy) * (t.mT @ hx @ t)
            grad_cy = gv * torch.where(my, g, 0)
        if ctx.needs_input_grad[2]:
            grad_a = grad_value[:, None] * _centred(a, f)
        if ctx.needs_input_grad[3]:
            grad_b = grad_value[:, None] * _centred(b, g_pot)
        return grad_cx, grad_cy, grad_a, grad_b, None, None


def _costs(name: str, t: object, metric: str | None) -> Tensor:
    """Validate a cost matrix, or compute one from a point cloud when ``metric`` is given."""
    if metric is None:
        return check_square(name, t)
    x = check_points(name, t)
    with full_precision(x) as precision:
        xc = x.to(precision.compute)
        c = pairwise_distances(xc) if metric == "euclidean" else sqdist(xc)
    return c.to(precision.result)


def _initial_plan(init: str | Tensor, a: Tensor, b: Tensor, shape: tuple[int, ...]) -> Tensor:
    if isinstance(init, Tensor):
        init = check_floating("init", init)
        if tuple(init.shape) != shape[1:] and tuple(init.shape) != shape:
            raise ValueError(
                f"init must be a plan of shape {shape[1:]} or {shape} matching the costs, "
                f"got {tuple(init.shape)}"
            )
        if init.device != a.device:
            raise ValueError(f"init is on {init.device} but the costs are on {a.device}")
        check_sign("init", init, strict=False)
        return init.detach().to(a.dtype).expand(shape).contiguous()
    check_choice("init", init, INITS)
    if init == "product":
        return a[:, :, None] * b[:, None, :]
    if shape[1] != shape[2]:
        raise ValueError(
            f"init='identity' pairs point i with point i and needs N == M, got N = {shape[1]} "
            f"and M = {shape[2]}"
        )
    return torch.diag_embed(a)


def gromov_wasserstein(
    Cx: Tensor,
    Cy: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    epsilon: float,
    loss: str = "square",
    metric: str | None = None,
    symmetric: bool | None = None,
    init: str | Tensor = "product",
    epsilon_start: float | None = None,
    scaling: float = 0.5,
    tol: float | None = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    sinkhorn_tol: float | None = DEFAULT_SINKHORN_TOL,
    sinkhorn_max_iter: int = DEFAULT_SINKHORN_MAX_ITER,
    entropic: bool = False,
    return_plan: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Entropic Gromov-Wasserstein discrepancy between (batches of) metric-measure spaces.

    $$
    \text{GW}_\varepsilon = \mathcal{E}(T^\star), \qquad
    T^\star \in \mathop{\arg\min}_{T \in \Pi(a, b)} \sum_{i,k,j,l}
    L(C^x_{ik}, C^y_{jl})\, T_{ij} T_{kl} + \varepsilon\, \text{KL}(T \,|\, a \otimes b),
    $$

    with $L(u, v) = (u - v)^2$ (``loss="square"``) or
    $u \log(u/v) - u + v$ (``"kl"``), the plan found by projected mirror descent
    (Peyré, Cuturi, Solomon 2016; POT's ``entropic_gromov_wasserstein`` with
    ``solver="PGD"``) whose inner entropic OT problems run on otloss's log-domain
    Sinkhorn with warm-started potentials. The value is the objective of the plan
    without the entropy term, POT's ``entropic_gromov_wasserstein2`` (``entropic=True``
    adds $\varepsilon \text{KL}(T | a \otimes b)$, which differs from POT's
    $\varepsilon \sum T \log T$ by the constant $\varepsilon (H(a) + H(b))$).
    GW is not convex: like POT this finds a stationary point, the one that mirror descent
    reaches from ``init``. The value is biased upwards by the entropy
    ($O(\varepsilon \log N)$ at small $\varepsilon$); ``epsilon`` is absolute,
    in units of the loss.

    Gradients w.r.t. ``Cx``, ``Cy`` (and through them the points when ``metric`` is given)
    and the weights come from the envelope theorem at the final plan (no backpropagation
    through the loop): $\partial_{C^x} = f_1'(C^x) \odot a a^\top - h_1'(C^x) \odot
    T h_2(C^y) T^\top$ (square loss: $2 C^x \odot a a^\top - 2 T C^y T^\top$), the
    centred potentials for ``a`` and ``b``. They are exact for the entropic value
    (``entropic=True``) at a converged plan; for the value without entropy they are
    POT's partial derivatives at the plan. They are first order only:
    ``create_graph=True`` raises a ``RuntimeError``.

    Args:
        Cx: cost matrix of the first space, ``(N, N)`` or ``(B, N, N)``; with ``metric``,
            a point cloud ``(N, D)`` or ``(B, N, D)`` instead.
        Cy: cost matrix ``(M, M)`` / ``(B, M, M)`` (or points ``(M, D')`` / ``(B, M, D')``).
        a: weights ``(N,)`` / ``(B, N)``, non-negative, summing to 1; zeros are padding
            (each item gets exactly the value of its space without those points, whatever
            their cost entries hold). Default uniform.
        b: the same for ``Cy``.
        epsilon: entropic regularisation $\varepsilon > 0$ (absolute).
        loss: ``"square"`` or ``"kl"`` (needs ``Cx >= 0`` and ``Cy > 0`` on the support).
        metric: ``None`` (``Cx``, ``Cy`` are cost matrices), ``"euclidean"`` or
            ``"sqeuclidean"`` (they are point clouds; distances computed inside).
        symmetric: whether ``Cx`` and ``Cy`` are symmetric; ``None`` tests it (one host
            sync; always true with ``metric``). Asymmetric costs cost two more products.
        init: initial plan ``T_0``: ``"product"`` ($a \otimes b$), ``"identity"``
            ($\text{diag}(a)$, for paired samples, N == M), or a tensor ``(N, M)`` /
            ``(B, N, M)``.
        epsilon_start: anneal $\varepsilon$ from this value down to ``epsilon``,
            multiplied by ``scaling`` at each outer iteration (``None``: no annealing).
        scaling: annealing ratio in (0, 1).
        tol: stop an item when the Frobenius norm of its plan change between two outer
            iterations is below ``tol`` (POT's criterion); ``None`` runs exactly
            ``max_iter`` outer iterations.
        max_iter: cap on the outer iterations (the annealing steps always run).
        sinkhorn_tol: stop each inner solve when the L1 marginal violation is below it;
            ``None`` runs exactly ``sinkhorn_max_iter`` updates. With ``tol`` and
            ``sinkhorn_tol`` both ``None`` the solver makes no host synchronisation.
        sinkhorn_max_iter: cap on the Sinkhorn updates of one inner solve.
        entropic: add the entropy term $\varepsilon \text{KL}(T | a \otimes b)$.
        return_plan: also return the plan.

    Returns:
        The value, ``()`` or ``(B,)`` in the input dtype; ``(value, plan)`` with
        ``return_plan=True``, the plan ``(N, M)`` / ``(B, N, M)`` (detached; its column
        sums are ``b``, its row sums ``a`` to within ``sinkhorn_tol``).

    Shape:
        - Cx: ``(N, N)`` or ``(B, N, N)``; Cy: ``(M, M)`` or ``(B, M, M)``
        - a: ``(N,)`` or ``(B, N)``; b: ``(M,)`` or ``(B, M)``
        - output: ``()`` or ``(B,)``

    Examples:
        >>> x, y = torch.randn(64, 784), torch.randn(48, 16)
        >>> value = gromov_wasserstein(x, y, epsilon=1e-2, metric="euclidean")
    """
    if metric is not None:
        check_choice("metric", metric, METRICS)
    check_choice("loss", loss, LOSSES)
    Cx, Cy = _costs("Cx", Cx, metric), _costs("Cy", Cy, metric)
    check_batch_layout("Cx", Cx, "Cy", Cy, layout="(N, N)")
    check_same_device_dtype(Cx=Cx, Cy=Cy)
    epsilon = check_positive("epsilon", epsilon)
    scaling = check_interval("scaling", scaling, 0.0, 1.0, open_low=True, open_high=True)
    if epsilon_start is not None:
        epsilon_start = check_positive("epsilon_start", epsilon_start)
    if tol is not None:
        tol = check_positive("tol", tol)
    if sinkhorn_tol is not None:
        sinkhorn_tol = check_positive("sinkhorn_tol", sinkhorn_tol)
    max_iter = check_count("max_iter", max_iter)
    sinkhorn_max_iter = check_count("sinkhorn_max_iter", sinkhorn_max_iter)
    if symmetric is not None and not isinstance(symmetric, bool):
        raise TypeError(f"symmetric must be a bool or None, got {type(symmetric).__name__}")
    a = check_weights("a", a, Cx)
    b = check_weights("b", b, Cy)

    batched = Cx.dim() == 3
    dtype, out_dtype = loss_precision(Cx, Cy)
    cx, cy = (Cx, Cy) if batched else (Cx[None], Cy[None])
    cx, cy = cx.to(dtype), cy.to(dtype)
    nb, n, m = cx.shape[0], cx.shape[1], cy.shape[1]
    wa = cx.new_full((nb, n), 1 / n) if a is None else a.to(dtype).reshape(nb, n)
    wb = cy.new_full((nb, m), 1 / m) if b is None else b.to(dtype).reshape(nb, m)
    if loss == "kl":
        check_sign("Cx", cx, strict=False, where=(wa[:, :, None] > 0) & (wa[:, None, :] > 0))
        check_sign("Cy", cy, strict=True, where=(wb[:, :, None] > 0) & (wb[:, None, :] > 0))
    if symmetric is None:
        symmetric = metric is not None or (
            bool(torch.allclose(cx, cx.mT)) and bool(torch.allclose(cy, cy.mT))
        )
    t0 = _initial_plan(init, wa, wb, (nb, n, m))
    if nb == 0:
        value = cx.sum((-2, -1)) + cy.sum((-2, -1))
        return (value, t0) if return_plan else value
    start = epsilon if epsilon_start is None else epsilon_start
    schedule = tuple(epsilon_schedule(1, start, epsilon, scaling)[1:])
    cfg = _Config(
        loss, schedule, symmetric, tol, max_iter, sinkhorn_tol, sinkhorn_max_iter, entropic
    )
    with autocast_disabled(cx.device):
        value, plan = _GromovWassersteinFunction.apply(cx, cy, wa, wb, t0, cfg)
    value = value.to(out_dtype)
    if not batched:
        value, plan = value[0], plan[0]
    return (value, plan) if return_plan else value


class GromovWasserstein(nn.Module):
    r"""Entropic Gromov-Wasserstein discrepancy (module form of `gromov_wasserstein`).

    Holds the configuration (see `gromov_wasserstein` for the math, the conventions
    against POT's and the bias) and applies it in `forward`.

    Args:
        epsilon: entropic regularisation (absolute, in units of the loss).
        loss: ``"square"`` or ``"kl"``.
        metric: ``None`` (inputs are cost matrices), ``"euclidean"`` or ``"sqeuclidean"``
            (inputs are point clouds).
        symmetric: whether the costs are symmetric (``None``: tested once per call).
        init: ``"product"``, ``"identity"`` or a plan tensor.
        epsilon_start: start of the epsilon annealing (``None``: none).
        scaling: annealing ratio in (0, 1).
        tol: stopping threshold on the plan change (``None``: ``max_iter`` iterations).
        max_iter: cap on the outer iterations.
        sinkhorn_tol: stopping threshold of the inner solves (``None``: fixed count).
        sinkhorn_max_iter: cap on the updates of one inner solve.
        entropic: include the entropy term in the value.

    Shape:
        - Cx: ``(N, N)`` or ``(B, N, N)``; Cy: ``(M, M)`` or ``(B, M, M)``
        - output: ``()`` or ``(B,)``

    Examples:
        >>> gw = GromovWasserstein(epsilon=1e-2, metric="euclidean")
        >>> value = gw(torch.randn(64, 784), torch.randn(64, 16))
    """

    def __init__(
        self,
        epsilon: float,
        loss: str = "square",
        metric: str | None = None,
        symmetric: bool | None = None,
        init: str | Tensor = "product",
        epsilon_start: float | None = None,
        scaling: float = 0.5,
        tol: float | None = DEFAULT_TOL,
        max_iter: int = DEFAULT_MAX_ITER,
        sinkhorn_tol: float | None = DEFAULT_SINKHORN_TOL,
        sinkhorn_max_iter: int = DEFAULT_SINKHORN_MAX_ITER,
        entropic: bool = False,
    ) -> None:
        super().__init__()
        self.epsilon = check_positive("epsilon", epsilon)
        self.loss = check_choice("loss", loss, LOSSES)
        self.metric = None if metric is None else check_choice("metric", metric, METRICS)
        self.symmetric, self.init = symmetric, init
        self.epsilon_start, self.scaling = epsilon_start, scaling
        self.tol, self.max_iter = tol, max_iter
        self.sinkhorn_tol, self.sinkhorn_max_iter = sinkhorn_tol, sinkhorn_max_iter
        self.entropic = entropic

    def forward(
        self, Cx: Tensor, Cy: Tensor, a: Tensor | None = None, b: Tensor | None = None
    ) -> Tensor:
        """The discrepancy between ``(Cx, a)`` and ``(Cy, b)``."""
        return gromov_wasserstein(  # type: ignore[return-value]
            Cx,
            Cy,
            a,
            b,
            epsilon=self.epsilon,
            loss=self.loss,
            metric=self.metric,
            symmetric=self.symmetric,
            init=self.init,
            epsilon_start=self.epsilon_start,
            scaling=self.scaling,
            tol=self.tol,
            max_iter=self.max_iter,
            sinkhorn_tol=self.sinkhorn_tol,
            sinkhorn_max_iter=self.sinkhorn_max_iter,
            entropic=self.entropic,
        )

    def extra_repr(self) -> str:
        return (
            f"epsilon={self.epsilon}, loss={self.loss!r}, metric={self.metric!r}, "
            f"tol={self.tol}, max_iter={self.max_iter}"
        )
