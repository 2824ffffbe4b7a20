r"""Sinkhorn divergence between point clouds: log-domain, annealed, converged when asked.

$$
\text{OT}_\varepsilon(\alpha, \beta) = \min_{\pi \ge 0} \langle \pi, C \rangle
    + \varepsilon\, \text{KL}(\pi \,|\, \alpha \otimes \beta)
    = \max_{f, g} \langle \alpha, f \rangle + \langle \beta, g \rangle
    - \varepsilon \langle \alpha \otimes \beta, e^{(f \oplus g - C)/\varepsilon} - 1 \rangle,
$$

$$
S_\varepsilon(\alpha, \beta) = \text{OT}_\varepsilon(\alpha, \beta)
    - \tfrac12 \text{OT}_\varepsilon(\alpha, \alpha)
    - \tfrac12 \text{OT}_\varepsilon(\beta, \beta),
$$

with $C(x, y) = |x - y|^p / p$ and $\varepsilon = \text{blur}^p$, as in
GeomLoss's ``SamplesLoss("sinkhorn")``. The solver lives in
`otloss.sinkhorn._solver`, the costs in `otloss.sinkhorn._geometry`; this
module validates inputs, evaluates the dual value and its envelope-theorem gradients.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_bool,
    check_choice,
    check_count,
    check_interval,
    check_pair,
    check_positive,
    check_weights,
)
from otloss.distributed import gather_clouds
from otloss.ops import first_order_only, loss_precision
from otloss.sinkhorn._geometry import CostFunction, CostGeometry
from otloss.sinkhorn._solver import (
    NonFiniteSinkhornError,
    SinkhornPotentials,
    bounding_diameters,
    epsilon_schedule,
    sinkhorn_loop,
)

__all__ = [
    "DEFAULT_MAX_ITER",
    "DEFAULT_RTOL",
    "DEFAULT_TOL",
    "SinkhornConvergenceWarning",
    "SinkhornDivergence",
    "SinkhornOutput",
    "epsilon_schedule",
    "sinkhorn_divergence",
]

#: Default marginal test: none. The L1 marginal violation converges far more slowly than
#: the value at small blur (see docs/sinkhorn.md), so the default stops on the value.
DEFAULT_TOL = None
#: Default value test: the predicted remaining change of the value below 1e-4 of it
#: (plus ``eps``). Chosen from the measurements in docs/sinkhorn.md: within 1e-3
#: relative of the converged value on the benchmark problems, at a few times the cost
#: of GeomLoss's fixed schedule.
DEFAULT_RTOL = 1e-4
#: Annealing ratio of the fixed schedule by default (GeomLoss's default).
GEOMLOSS_SCALING = 0.5
#: Annealing ratio by default when a stopping test is asked for: a slower annealing with
#: alternating updates converges the value far faster than iterating at the final blur.
DEFAULT_SCALING = 0.9
#: Default cap on the total number of Sinkhorn updates (annealing included).
DEFAULT_MAX_ITER = 1000
#: ``backend="auto"`` switches to the blocked backend above this many cost entries.
AUTO_BLOCKED_ELEMENTS = 1 << 25
BACKENDS = ("auto", "tensorized", "blocked")


class SinkhornOutput(NamedTuple):
    """What `sinkhorn_divergence` returns with ``potentials=True``.

    Attributes:
        value: the divergence, ``()`` or ``(B,)``, differentiable.
        f: potential on ``x``, ``(N,)`` or ``(B, N)`` (detached): ``f_ba - f_aa`` when
            debiased (GeomLoss's convention), ``f_ba`` otherwise.
        g: potential on ``y``, ``(M,)`` or ``(B, M)`` (detached).
        iterations: number of Sinkhorn updates run (annealing, refinement, last update).
        marginal_error: L1 marginal violation of the last update, ``()`` or ``(B,)``.
        converged: whether the stopping tests (``tol``, ``rtol``) held before
            ``max_iter``, ``()`` or ``(B,)`` bool; always True for the fixed schedule (no
            test asked for). The tests measure the iterate before the last update, so
            ``marginal_error`` can differ slightly from the violation they saw.
    """

    value: Tensor
    f: Tensor
    g: Tensor
    iterations: int
    marginal_error: Tensor
    converged: Tensor


class SinkhornConvergenceWarning(UserWarning):
    """A Sinkhorn call stopped at ``max_iter`` before its stopping test held."""


@dataclass(frozen=True)
class _Config:
    p: int
    blur: float
    scaling: float
    debias: bool
    rho: float | None
    diameter: float | None
    tol: float | None
    rtol: float | None
    max_iter: int
    blocked: bool
    cost: CostFunction | None
    shared: bool


def _centred(w: Tensor, potential: Tensor) -> Tensor:
    """Subtract the mean over the support: the dual's gauge ``(f + c, g - c)`` is fixed."""
    support = (w > 0).to(potential.dtype)
    mean = (potential * support).sum(-1, keepdim=True) / support.sum(-1, keepdim=True)
    return potential - mean


class _SinkhornFunction(torch.autograd.Function):
    """Dual value of the Sinkhorn loop, with gradients by the envelope theorem.

    Nothing of the loop is recorded: the backward pass rebuilds the plans of the last
    update tile by tile from its saved log-partitions, so memory does not grow with the
    number of iterations. Costs and log-sum-exps run in the computing dtype, outside
    any autocast region.
    """

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, a: Tensor, b: Tensor, cfg: _Config, record: dict):  # type: ignore[override]
        with torch.autocast(x.device.type, enabled=False):
            pot, geometries = _solve(x, y, a, b, cfg)
            value = _dual_value(a, b, pot.f_ba, pot.g_ab, pot.f_aa, pot.g_bb, pot.eps, cfg.rho)
        f, g = pot.f_ba, pot.g_ab
        if cfg.debias:
            f, g = f - pot.f_aa, g - pot.g_bb
        ctx.save_for_backward(a, b)
        # The temperature is a view of the loop's constant table: a copy keeps the
        # saved state free of aliases, which a compiled graph cannot carry over.
        pot = dataclasses.replace(pot, eps=pot.eps.clone())
        ctx.cfg, ctx.pot, ctx.geometries = cfg, pot, geometries
        ctx.mark_non_differentiable(f, g, pot.error, pot.converged)
        record["iterations"] = pot.iterations
        return value, f, g, pot.error, pot.converged

    @staticmethod
    @first_order_only(
        "sinkhorn_divergence",
        "for higher-order gradients use otloss.mmd, which supports them",
    )
    def backward(ctx, grad_value: Tensor, *_: Tensor):  # type: ignore[override]
        a, b = ctx.saved_tensors
        cfg: _Config = ctx.cfg
        pot: SinkhornPotentials = ctx.pot
        xy, yx, xx, yy = ctx.geometries
        eps, rho = pot.eps, cfg.rho

        def mass(w: Tensor, potential: Tensor) -> Tensor:  # row sums of the last plan
            return w if rho is None else w * torch.exp(-potential / rho)

        grad_x = grad_y = grad_a = grad_b = None
        gv = grad_value[:, None]
        with torch.autocast(a.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                gx = xy.transport_gradient(eps, pot.h_ba, pot.lse_ba, mass(a, pot.f_ba))
                if cfg.debias:
                    gx -= xx.transport_gradient(eps, pot.h_aa, pot.lse_aa, mass(a, pot.f_aa))
                grad_x = gv[..., None] * gx
            if ctx.needs_input_grad[1]:
                gy = yx.transport_gradient(eps, pot.h_ab, pot.lse_ab, mass(b, pot.g_ab))
                if cfg.debias:
                    gy -= yy.transport_gradient(eps, pot.h_bb, pot.lse_bb, mass(b, pot.g_bb))
                grad_y = gv[..., None] * gy
            if ctx.needs_input_grad[2]:
                grad_a = gv * _weight_gradient(a, pot.f_ba, pot.f_aa, eps, rho)
            if ctx.needs_input_grad[3]:
                grad_b = gv * _weight_gradient(b, pot.g_ab, pot.g_bb, eps, rho)
        return grad_x, grad_y, grad_a, grad_b, None, None


def _solve(
    x: Tensor, y: Tensor, a: Tensor, b: Tensor, cfg: _Config
) -> tuple[SinkhornPotentials, tuple[CostGeometry, ...]]:
    """Build the four cost geometries and run the loop; non-finite input is a ValueError."""
    kw = {"p": cfg.p, "cost": cfg.cost, "blocked": cfg.blocked}
    xy = CostGeometry(x, y, symmetric=cfg.shared, **kw)
    yx = xy.transposed()
    xx = CostGeometry(x, x, symmetric=True, **kw) if cfg.debias else None
    yy = CostGeometry(y, y, symmetric=True, **kw) if cfg.debias else None
    if cfg.diameter is None:
        diameters = bounding_diameters(x, y, a, b)
        if not all(map(math.isfinite, diameters)):
            raise _non_finite(x, y)
    else:
        diameters = [cfg.diameter] * x.shape[0]
    schedules = [epsilon_schedule(cfg.p, d, cfg.blur, cfg.scaling) for d in diameters]
    final_eps = a.new_full((x.shape[0],), cfg.blur**cfg.p)

    def value(f_ba: Tensor, g_ab: Tensor, f_aa: Tensor | None, g_bb: Tensor | None) -> Tensor:
        return _dual_value(a, b, f_ba, g_ab, f_aa, g_bb, final_eps, cfg.rho)

    try:
        pot = sinkhorn_loop(
            xy, yx, xx, yy, a, b, schedules,
            rho=cfg.rho, tol=cfg.tol, rtol=cfg.rtol, max_iter=cfg.max_iter, value=value,
        )  # fmt: skip
    except NonFiniteSinkhornError:
        raise _non_finite(x, y) from None
    return pot, (xy, yx, xx, yy)


def _non_finite(x: Tensor, y: Tensor) -> ValueError:
    """The error for potentials that are not finite, naming the input that caused them."""
    for name, t in (("x", x), ("y", y)):
        if not bool(torch.isfinite(t).all()):
            return ValueError(
                f"{name} of shape {tuple(t.shape)} has NaN or infinite entries; "
                "Sinkhorn needs finite points"
            )
    return ValueError(
        "the Sinkhorn potentials became non-finite although x and y are finite: "
        "the cost returned NaN or infinite values"
    )


def _dual_value(
    a: Tensor,
    b: Tensor,
    f_ba: Tensor,
    g_ab: Tensor,
    f_aa: Tensor | None,
    g_bb: Tensor | None,
    eps: Tensor,
    rho: float | None,
) -> Tensor:
    r"""``<a, f> + <b, g>`` (balanced), or the unbalanced dual formula of Séjourné et al.

    With ``f_aa, g_bb`` (debiased) the self terms are subtracted. Unbalanced (Séjourné et
    al. 2019, Prop. 12), for normalised weights:
    $\text{OT} = (\rho + \varepsilon/2)(\langle a, 1 - e^{-f/\rho} \rangle
    + \langle b, 1 - e^{-g/\rho} \rangle)$.
    """
    debias = f_aa is not None
    if rho is None:
        if debias:
            return (a * (f_ba - f_aa)).sum(-1) + (b * (g_ab - g_bb)).sum(-1)
        return (a * f_ba).sum(-1) + (b * g_ab).sum(-1)

    def mass_left(w: Tensor, potential: Tensor) -> Tensor:
        return (w * -torch.expm1(-potential / rho)).sum(-1)

    value = mass_left(a, f_ba) + mass_left(b, g_ab)
    if debias:
        value = value - mass_left(a, f_aa) - mass_left(b, g_bb)
    return (rho + eps / 2) * value


def _weight_gradient(
    w: Tensor, cross: Tensor, self_: Tensor | None, eps: Tensor, rho: float | None
) -> Tensor:
    """Envelope gradient in the weights: the (debiased) potential, gauge-centred.

    Unbalanced: ``(rho + eps) (1 - exp(-f / rho))`` per problem (no gauge freedom).
    """
    if rho is None:
        potential = cross if self_ is None else cross - self_
        return _centred(w, potential)
    scale = (rho + eps)[:, None]
    grad = -torch.expm1(-cross / rho)
    if self_ is not None:
        grad = grad + torch.expm1(-self_ / rho)
    return scale * grad


def sinkhorn_divergence(
    x: Tensor,
    y: Tensor,
    x_weights: Tensor | None = None,
    y_weights: Tensor | None = None,
    *,
    p: int = 2,
    blur: float = 0.05,
    scaling: float | None = None,
    debias: bool = True,
    reach: float | None = None,
    diameter: float | None = None,
    tol: float | None = DEFAULT_TOL,
    rtol: float | None = DEFAULT_RTOL,
    max_iter: int = DEFAULT_MAX_ITER,
    backend: str = "auto",
    cost: CostFunction | None = None,
    potentials: bool = False,
    gather: bool = False,
) -> Tensor | SinkhornOutput:
    r"""Debiased Sinkhorn divergence (or entropic OT cost) between weighted point clouds.

    $$
    S_\varepsilon(\alpha, \beta) = \text{OT}_\varepsilon(\alpha, \beta)
    - \tfrac12 \text{OT}_\varepsilon(\alpha, \alpha)
    - \tfrac12 \text{OT}_\varepsilon(\beta, \beta),
    \qquad
    \text{OT}_\varepsilon(\alpha, \beta) = \langle a, f \rangle + \langle b, g \rangle,
    $$

    the dual value of entropic OT with cost $C(x, y) = |x - y|^p / p$ and
    regularisation $\varepsilon\,\text{KL}(\pi \,|\, a \otimes b)$,
    $\varepsilon = \text{blur}^p$ (absolute, in cost units). ``debias=False``
    returns $\text{OT}_\varepsilon(\alpha, \beta)$ itself, which is biased: it is
    not 0 for $\alpha = \beta$ and overestimates $W_p^p / p$ by about
    $\varepsilon \log$ (number of points). The debiased divergence is non-negative,
    zero iff $\alpha = \beta$ (p = 2 and other positive kernels), and differs from
    $W_p^p / p$ by $O(\varepsilon^2)$ for smooth measures (plus the sampling
    bias of the clouds themselves).

    Potentials come from the log-domain symmetric Sinkhorn loop with epsilon annealing
    from the diameter to ``blur`` (GeomLoss's schedule), then safeguarded over-relaxed
    updates at the final temperature until the stopping tests hold: ``rtol`` on the
    value (default: its predicted remaining change below ``1e-4 (|value| + eps)``) and,
    when given, ``tol`` on the L1 marginal violations. With ``tol=None, rtol=None`` the
    value is GeomLoss's ``SamplesLoss("sinkhorn", p, blur, reach, scaling, debias)``
    (same iterations), which is not converged at small blur (several percent low at
    blur 0.1). A test that does not hold within ``max_iter`` updates gives a
    `SinkhornConvergenceWarning` (once per call) and ``converged=False``.

    Gradients w.r.t. ``x``, ``y`` and the weights follow from the envelope theorem
    (no backpropagation through the loop: memory does not depend on the iterations;
    first-order only: ``create_graph=True`` raises a ``RuntimeError``). Weight gradients
    are centred over the support (balanced OT fixes potentials only up to
    ``(f + c, g - c)``), as POT does.

    Non-finite points raise a ``ValueError`` naming the input whenever the call reads
    data on the host anyway (``diameter=None``, or a stopping test); with ``diameter``
    given and the fixed schedule there is no host sync and the value is NaN.

    Args:
        x: points ``(N, D)`` or ``(B, N, D)``.
        y: points ``(M, D)`` or ``(B, M, D)``.
        x_weights: non-negative weights ``(N,)`` / ``(B, N)`` summing to 1; zeros act as
            padding (the value is that of the cloud without those points). Default uniform.
        y_weights: the same for ``y``.
        p: exponent of the cost $|x - y|^p / p$, 1 or 2; also ``eps = blur^p`` and
            the schedule use it when a custom ``cost`` is given.
        blur: target length scale, ``eps = blur^p`` (> 0).
        scaling: blur ratio between annealing steps, in (0, 1).
        debias: subtract the self-transport terms (Sinkhorn divergence).
        reach: unbalanced OT with KL marginal penalties of strength ``rho = reach^p``;
            ``None`` is balanced OT.
        diameter: upper bound of the distances, start of the schedule; by default the
            bounding-box diagonal per batch item (one host sync).
        tol: stopping threshold on the L1 marginal violations at the final temperature
            (e.g. ``1e-6`` for evaluation); ``None``: no marginal test.
        rtol: stopping threshold on the value's predicted remaining change, relative to
            ``|value| + eps``; ``None``: no value test.
        max_iter: cap on the total number of updates (the schedule always runs in full).
        backend: ``"tensorized"`` (dense cost matrices), ``"blocked"`` (tiles recomputed
            on the fly, memory O(N + M)), or ``"auto"`` (blocked above 2^25 cost entries).
        cost: custom cost ``cost(x (B, N, D), y (B, M, D)) -> (B, N, M)``, differentiable
            in its first argument and symmetric (it replaces $|x - y|^p / p$).
        potentials: also return the potentials, iterations, marginal error and whether
            the stopping tests held.
        gather: estimate over the global batch of a distributed run: every rank's
            points and weights are gathered (`otloss.distributed.gather_clouds`) and the
            divergence is that of the concatenated clouds, each rank's weights (summing
            to 1) divided by the number of ranks $W$ (the global measure is the mean of
            the ranks' measures). The value and potentials are identical on every rank
            (the potentials cover the global clouds); rank $r$'s input gradients are
            $W$ times the single-process gradients of its slices, so DDP's mean over
            ranks gives exactly the single-process parameter gradients of the
            concatenated batch. Every rank needs the same shapes. A no-op without an
            initialised process group.

    Returns:
        The divergence, a scalar or ``(B,)`` in the input dtype; a
        `SinkhornOutput` when ``potentials=True``.

    Shape:
        - x: ``(N, D)`` or ``(B, N, D)``; y: ``(M, D)`` or ``(B, M, D)``
        - x_weights: ``(N,)`` or ``(B, N)``; y_weights: ``(M,)`` or ``(B, M)``
        - output: ``()`` or ``(B,)``

    Examples:
        >>> x, y = torch.randn(100, 3), torch.randn(80, 3) + 0.5
        >>> loss = sinkhorn_divergence(x, y, blur=0.05)
    """
    x, y = check_pair(x, y)
    if check_bool("gather", gather):
        x, y, x_weights, y_weights = gather_clouds(x, y, x_weights, y_weights)
    cfg = _config(p, blur, scaling, debias, reach, diameter, tol, rtol, max_iter, backend, cost)
    x_weights = check_weights("x_weights", x_weights, x)
    y_weights = check_weights("y_weights", y_weights, y)

    batched = x.dim() == 3
    dtype, out_dtype = loss_precision(x, y)
    xb, yb = (x, y) if batched else (x[None], y[None])
    xb, yb = xb.to(dtype), yb.to(dtype)
    nb, n, m = xb.shape[0], xb.shape[1], yb.shape[1]
    if nb == 0:
        empty = xb.new_zeros(0, dtype=out_dtype) + 0 * x.sum()
        if not potentials:
            return empty
        return SinkhornOutput(
            empty, xb.new_zeros(0, n), yb.new_zeros(0, m), 0, xb.new_zeros(0),
            torch.ones(0, dtype=torch.bool, device=x.device),
        )  # fmt: skip
    a = xb.new_full((nb, n), 1 / n) if x_weights is None else x_weights.to(dtype).reshape(nb, n)
    b = yb.new_full((nb, m), 1 / m) if y_weights is None else y_weights.to(dtype).reshape(nb, m)
    if cost is not None:
        probe = cost(xb[:, :2].detach(), yb[:, :3].detach())
        if not isinstance(probe, Tensor) or probe.shape != (nb, min(n, 2), min(m, 3)):
            raise ValueError(
                "cost(x (B, N, D), y (B, M, D)) must return a (B, N, M) tensor; on shapes "
                f"{tuple(xb[:, :2].shape)} and {tuple(yb[:, :3].shape)} it returned "
                f"{getattr(probe, 'shape', type(probe).__name__)}"
            )
    blocked = backend == "blocked" or (backend == "auto" and nb * n * m > AUTO_BLOCKED_ELEMENTS)
    # Shared points: the cross cost gets the exact zero diagonal of a self cost (reading
    # the data is free on the CPU; elsewhere, and in a compiled graph, only the same
    # tensor object counts).
    shared = x is y or (
        x.device.type == "cpu"
        and not torch.compiler.is_compiling()
        and x.shape == y.shape
        and bool(torch.equal(x, y))
    )
    cfg = dataclasses.replace(cfg, blocked=blocked, shared=shared)
    record: dict[str, int] = {}
    value, f, g, error, converged = _SinkhornFunction.apply(xb, yb, a, b, cfg, record)
    if (tol is not None or rtol is not None) and not bool(converged.all()):
        warnings.warn(
            f"Sinkhorn reached max_iter={max_iter} updates before its stopping test held "
            f"(tol={tol}, rtol={rtol}; L1 marginal error {float(error.max()):.2e}); "
            "raise max_iter or blur, or loosen the tolerance",
            SinkhornConvergenceWarning,
            stacklevel=2,
        )
    value = value.to(out_dtype)
    if not batched:
        value, f, g, error, converged = value[0], f[0], g[0], error[0], converged[0]
    if not potentials:
        return value
    return SinkhornOutput(value, f, g, record["iterations"], error, converged)


def _config(
    p: object,
    blur: object,
    scaling: object,
    debias: object,
    reach: object,
    diameter: object,
    tol: object,
    rtol: object,
    max_iter: object,
    backend: object,
    cost: object,
) -> _Config:
    """Validate the configuration (shared by the function and the module's constructor)."""
    if cost is not None and not callable(cost):
        raise TypeError(f"cost must be callable or None, got {type(cost).__name__}")
    if p not in (1, 2) or isinstance(p, bool):
        what = "the cost |x - y|^p / p" if cost is None else "with a custom cost p (eps = blur^p)"
        raise ValueError(f"unknown p {p!r}; {what} supports p = 1 or 2")
    if not isinstance(debias, bool):
        raise TypeError(f"debias must be a bool, got {type(debias).__name__}")
    blur = check_positive("blur", blur)
    if scaling is None:
        scaling = GEOMLOSS_SCALING if tol is None and rtol is None else DEFAULT_SCALING
    scaling = check_interval("scaling", scaling, 0.0, 1.0, open_low=True, open_high=True)
    rho = None if reach is None else check_positive("reach", reach) ** p
    if diameter is not None:
        diameter = check_interval("diameter", diameter, 0.0, math.inf, open_high=True)
    tol = None if tol is None else check_positive("tol", tol)
    rtol = None if rtol is None else check_positive("rtol", rtol)
    max_iter = check_count("max_iter", max_iter)
    check_choice("backend", backend, BACKENDS)
    return _Config(
        p, blur, scaling, debias, rho, diameter, tol, rtol, max_iter, False, cost, False
    )  # type: ignore[arg-type]


class SinkhornDivergence(nn.Module):
    r"""Sinkhorn divergence $S_\varepsilon$ between point clouds (module form).

    Holds the configuration of `sinkhorn_divergence` (see there for the math,
    conventions, bias and stopping tests), validated at construction, and applies it in
    `forward`.

    Args:
        p: exponent of the cost $|x - y|^p / p$ (1 or 2).
        blur: target length scale, ``eps = blur^p``.
        scaling: blur ratio between annealing steps, in (0, 1).
        debias: Sinkhorn divergence (True) or entropic OT cost (False).
        reach: unbalanced OT with ``rho = reach^p``; ``None`` is balanced.
        diameter: start of the annealing schedule (skips one host sync).
        tol: stopping threshold on the L1 marginal violation; ``None``: no marginal test.
        rtol: stopping threshold on the value's predicted remaining change; ``None``: no
            value test (with ``tol=None`` too: GeomLoss's fixed schedule).
        max_iter: cap on the total number of updates.
        backend: ``"auto"``, ``"tensorized"`` or ``"blocked"``.
        cost: optional custom cost ``(B, N, D) x (B, M, D) -> (B, N, M)``.
        potentials: `forward` returns a `SinkhornOutput` (value, potentials,
            iterations, marginal error, convergence) instead of the value alone.
        gather: estimate over the global batch of a distributed run (see
            `sinkhorn_divergence`).

    Shape:
        - x: ``(N, D)`` or ``(B, N, D)``; y: ``(M, D)`` or ``(B, M, D)``
        - output: ``()`` or ``(B,)``

    Examples:
        >>> loss_fn = SinkhornDivergence(blur=0.05)
        >>> loss = loss_fn(torch.randn(64, 2), torch.randn(32, 2))
    """

    def __init__(
        self,
        p: int = 2,
        blur: float = 0.05,
        scaling: float | None = None,
        debias: bool = True,
        reach: float | None = None,
        diameter: float | None = None,
        tol: float | None = DEFAULT_TOL,
        rtol: float | None = DEFAULT_RTOL,
        max_iter: int = DEFAULT_MAX_ITER,
        backend: str = "auto",
        cost: CostFunction | None = None,
        potentials: bool = False,
        gather: bool = False,
    ) -> None:
        super().__init__()
        self.gather = check_bool("gather", gather)
        _config(p, blur, scaling, debias, reach, diameter, tol, rtol, max_iter, backend, cost)
        if not isinstance(potentials, bool):
            raise TypeError(f"potentials must be a bool, got {type(potentials).__name__}")
        self.p, self.blur, self.scaling, self.debias = p, blur, scaling, debias
        self.reach, self.diameter, self.tol, self.rtol = reach, diameter, tol, rtol
        self.max_iter, self.backend, self.cost = max_iter, backend, cost
        self.potentials = potentials

    def forward(
        self,
        x: Tensor,
        y: Tensor,
        x_weights: Tensor | None = None,
        y_weights: Tensor | None = None,
    ) -> Tensor | SinkhornOutput:
        """The divergence between ``(x, x_weights)`` and ``(y, y_weights)``."""
        return sinkhorn_divergence(
            x,
            y,
            x_weights,
            y_weights,
            p=self.p,
            blur=self.blur,
            scaling=self.scaling,
            debias=self.debias,
            reach=self.reach,
            diameter=self.diameter,
            tol=self.tol,
            rtol=self.rtol,
            max_iter=self.max_iter,
            backend=self.backend,
            cost=self.cost,
            potentials=self.potentials,
            gather=self.gather,
        )

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, blur={self.blur}, scaling={self.scaling}, debias={self.debias}, "
            f"reach={self.reach}, tol={self.tol}, rtol={self.rtol}, backend={self.backend!r}"
        )
