"""The log-domain, symmetric Sinkhorn loop with epsilon annealing and a safe refinement.

Written once against `otloss.sinkhorn._geometry.CostGeometry` (dense or blocked
costs). The algorithm is Algorithm 3.5 of J. Feydy's thesis ("Geometric data analysis,
beyond convolutions", 2020), the one GeomLoss runs, followed by an optional refinement
at the final temperature:

1. `epsilon_schedule`: temperatures from ``diameter^p`` down to ``blur^p``,
   divided by ``scaling^p`` at each step;
2. at each temperature one *symmetric* update of every potential,
   ``f <- (f + T(g)) / 2``, ``g <- (g + T(f)) / 2`` (and ``f_aa <- (f_aa + T(f_aa)) / 2``
   for the self-transport problems of the debiased divergence);
3. when a stopping test is given (``tol`` on the marginals, ``rtol`` on the value), the
   annealing takes alternating updates instead, over-relaxed by `relaxed_update`
   (``f <- f + omega (T(g) - f)`` with a per-coordinate safeguard that keeps every update
   a dual ascent, so it converges whenever plain Sinkhorn does), the self-transport
   problems following a coarser schedule; then, at the final temperature, the same
   updates run until the tests hold (or ``max_iter``), with ``omega`` set from the
   convergence rate they measure (`optimal_overrelaxation`), the self-transport
   problems stopping once converged;
4. one last full update ``f = T(g), g = T(f)`` whose plans give the envelope-theorem
   gradients (see `otloss.sinkhorn._divergence`); its log-partitions are kept, so
   the backward pass rebuilds the plans without another reduction.

Everything runs without autograd; the only host synchronisations are the stopping
tests of step 3 (every iteration on the CPU, every ``_CHECK_EVERY`` on accelerators).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from otloss.sinkhorn._geometry import CostGeometry

__all__ = [
    "NonFiniteSinkhornError",
    "SinkhornPotentials",
    "bounding_diameters",
    "epsilon_schedule",
    "optimal_overrelaxation",
    "relaxed_update",
    "sinkhorn_loop",
]

#: Iterations between two stopping tests on accelerators (each test is a host sync).
_CHECK_EVERY = 10
#: Largest exponent in the marginal-violation estimate (keeps it finite far from convergence).
_MAX_LOG_RATIO = 60.0
#: Plain updates at the start of the refinement, whose error ratio estimates the rate.
_PLAIN_STEPS = 3
#: Refinement iterations between two updates of the over-relaxation from the measured rate.
_ADAPT_EVERY = 10
#: Over-relaxation of the annealing updates when a stopping test is asked for (measured:
#: with scaling 0.9 it halves the value error left after the schedule; see docs/sinkhorn.md).
_ANNEALING_OVERRELAXATION = 1.5
#: Temperature ratio between two updates of the self-transport problems in a fine schedule.
_SELF_EPS_RATIO = 0.25
#: Upper bound of the over-relaxation. The linearised iteration converges below 2, but
#: far from the solution a larger omega measured slower: 1024 points in 3-D at blur 0.05
#: reached an L1 marginal error of 1e-3 in 353 updates capped at 1.8, not in 3000 at 1.95.
_MAX_OVERRELAXATION = 1.8
#: Fraction of the plain update's dual ascent an over-relaxed coordinate must keep.
_MIN_ASCENT = 0.05
#: Iterations per window of the value test (see `_value_settled`).
_VALUE_WINDOW = 10
#: Contraction per window above which the value test does not trust its extrapolation.
_MAX_WINDOW_RATE = 0.95
#: Below this |u|, ``expm1(u) - u`` is evaluated by its Taylor series (no cancellation).
_SERIES_BELOW = 1e-2


class NonFiniteSinkhornError(ValueError):
    """The potentials became NaN or infinite: an input or the cost is not finite."""


@torch.compiler.assume_constant_result
def epsilon_schedule(p: float, diameter: float, blur: float, scaling: float) -> list[float]:
    r"""Temperatures of the epsilon-annealing heuristic, GeomLoss's schedule.

    $\varepsilon$ starts at $\text{diameter}^p$ (where the soft c-transform
    is almost a plain average, so any initial potential is good), is multiplied by
    $\text{scaling}^p$ at every step and ends at $\text{blur}^p$:

    $$
    [d^p] + [e^{t} \text{ for } t \text{ in arange}(p \log d, p \log \text{blur},
    p \log \text{scaling})] + [\text{blur}^p].
    $$

    The first value appears twice (initialisation, then the first update), as in
    GeomLoss, so that ``tol=None`` reproduces its iterations exactly. A diameter below
    ``blur`` (e.g. 0, when all points coincide) is raised to ``blur``.

    Args:
        p (float): exponent of the cost (``eps = blur^p``).
        diameter (float): upper bound of the distances between points (finite).
        blur (float): target length scale, ``eps = blur^p``.
        scaling (float): ratio in (0, 1) between successive blur values.

    Returns:
        list of float: the temperatures, one Sinkhorn update each.
    """
    diameter = max(diameter, blur)
    steps = np.arange(p * np.log(diameter), p * np.log(blur), p * np.log(scaling))
    return [diameter**p, *(float(np.exp(t)) for t in steps), blur**p]


@dataclass
class SinkhornPotentials:
    """The last update of the loop, everything the value and its gradients need.

    ``f_ba, g_ab`` solve OT(a, b) (on ``x`` and ``y``), ``f_aa, g_bb`` the self problems
    (``None`` without debiasing); ``h_*`` are the log-sum-exp arguments of the last
    update and ``lse_*`` its row log-partitions, which together define the plans of the
    envelope-theorem gradients. ``eps`` is the final temperature per batch item,
    ``iterations`` the number of updates, ``error`` the L1 marginal violation measured
    in the last update and ``converged`` whether the stopping test held, per item.
    """

    f_ba: Tensor
    g_ab: Tensor
    f_aa: Tensor | None
    g_bb: Tensor | None
    h_ba: Tensor
    h_ab: Tensor
    h_aa: Tensor | None
    h_bb: Tensor | None
    lse_ba: Tensor
    lse_ab: Tensor
    lse_aa: Tensor | None
    lse_bb: Tensor | None
    eps: Tensor
    iterations: int
    error: Tensor
    converged: Tensor


def _violation(w: Tensor, u: Tensor) -> Tensor:
    r"""L1 marginal violation $\sum_i w_i |e^{u_i} - 1|$ per item, ``u = (f - T(g)) / eps``.

    For the plan of ``(f, g)`` the marginal on the ``x`` side is $w_i e^{u_i}$, so
    this is exactly $\| \pi 1 - w \|_1$ (balanced case) at no extra cost.
    """
    return (w * u.clamp_max(_MAX_LOG_RATIO).expm1().abs()).sum(-1)


def _expm1_minus_id(u: Tensor) -> Tensor:
    """``expm1(u) - u`` (>= 0), accurate near 0 where the difference cancels."""
    series = u * u * (0.5 + u * (1 / 6 + u / 24))
    return torch.where(u.abs() < _SERIES_BELOW, series, u.expm1() - u)


def relaxed_update(f: Tensor, target: Tensor, eps: Tensor, omega: Tensor) -> Tensor:
    r"""Over-relaxed update ``f + omega (T - f)`` where it is a safe dual ascent, ``T`` elsewhere.

    The balanced entropic dual is separable in ``f`` given ``g``: coordinate ``i``
    contributes $a_i \varepsilon\, \psi(u_i)$ with $\psi(u) = u - e^u$ and
    $u_i = (f_i - T(g)_i)/\varepsilon$, maximal at ``u = 0`` (the plain update).
    Over-relaxation moves to $u' = (1 - \omega) u$, which can lose dual value when
    $u \ll 0$ (an overshoot of ``exp``) -- the divergence of a fixed ``omega`` on
    weights spanning many orders of magnitude. Each coordinate keeps ``omega`` only if
    $\psi(u') - \psi(u) \ge \delta\,(\psi(0) - \psi(u))$ (``delta = _MIN_ASCENT``),
    i.e. it keeps a fixed fraction of the plain update's ascent; otherwise it takes the
    plain update. Every refinement step thus increases the dual at least ``delta``
    times as much as plain Sinkhorn, so it converges whenever plain Sinkhorn does (the
    Lyapunov argument of Thibault, Chizat, Dossal, Papadakis, "Overrelaxed Sinkhorn-Knopp
    algorithm for regularized optimal transport", 2017), and near the solution, where
    the dual is locally quadratic, every ``omega < 1.97`` is kept.

    Args:
        f ((B, N) Tensor): current potential.
        target ((B, N) Tensor): its soft c-transform update ``T(g)``.
        eps ((B, 1) Tensor): temperature.
        omega ((B, 1) Tensor): over-relaxation per item, in [1, 2).

    Returns:
        (B, N) Tensor: the new potential.
    """
    u = ((f - target) / eps).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    # psi(u') - psi(u) with d = u' - u = -omega u, written without cancellation.
    d = -omega * u
    gain = -d * u.expm1() - u.exp() * _expm1_minus_id(d)
    keep = gain >= _MIN_ASCENT * _expm1_minus_id(u)
    return torch.where(keep, f + omega * (target - f), target)


def optimal_overrelaxation(errors: list[Tensor], omega: Tensor) -> Tensor:
    r"""Over-relaxation for the convergence rate observed in ``errors`` under ``omega``.

    For the linearised alternating iteration (two blocks, Young's SOR theory), plain
    Sinkhorn contracts by $\theta$ per iteration, the optimal relaxation is
    $\omega^\star = 2 / (1 + \sqrt{1 - \theta})$, and below it the rate
    $\lambda$ of $\omega$ obeys
    $(\lambda + \omega - 1)^2 = \lambda \omega^2 \theta$
    (Lehmann, von Renesse, Sambale, Uschmajew, "A note on overrelaxation in the Sinkhorn
    algorithm", 2021). So the rate measured over the iterations in ``errors`` (marginal
    violations, one per iteration) gives $\theta$, hence $\omega^\star$;
    a rate at or below $\omega - 1$ means ``omega`` is already past the optimum
    and is kept. Clipped to ``[1, _MAX_OVERRELAXATION]``.

    Args:
        errors (list of (B,) Tensor): violations of consecutive iterations (>= 2).
        omega ((B,) Tensor): the relaxation they were run with.

    Returns:
        (B,) Tensor.
    """
    tiny = torch.finfo(omega.dtype).tiny
    ratio = errors[-1] / errors[0].clamp_min(tiny)
    rate = ratio.clamp(tiny, 1.0) ** (1 / (len(errors) - 1))
    theta = ((rate + omega - 1) ** 2 / (rate * omega**2)).clamp(0.0, 1.0)
    best = (2 / (1 + (1 - theta).sqrt())).clamp(1.0, _MAX_OVERRELAXATION)
    return torch.where(rate > omega - 1, best, omega)


def sinkhorn_loop(
    xy: CostGeometry,
    yx: CostGeometry,
    xx: CostGeometry | None,
    yy: CostGeometry | None,
    a: Tensor,
    b: Tensor,
    schedules: list[list[float]],
    *,
    rho: float | None,
    tol: float | None,
    rtol: float | None,
    max_iter: int,
    value: Callable[[Tensor, Tensor, Tensor | None, Tensor | None], Tensor],
) -> SinkhornPotentials:
    """Run the annealed symmetric Sinkhorn loop, then refine until the stopping test holds.

    Args:
        xy, yx (CostGeometry): the costs ``C(x, y)`` and ``C(y, x)``.
        xx, yy (CostGeometry or None): ``C(x, x)`` and ``C(y, y)`` for the debiased
            divergence, ``None`` otherwise.
        a ((B, N) Tensor), b ((B, M) Tensor): non-negative weights.
        schedules (list of lists of float): one `epsilon_schedule` per item; all
            end at the same ``blur^p``. Shorter schedules start later: until then the
            item keeps its initial potentials, so a batch computes what each item alone
            would.
        rho (float or None): marginal penalty ``reach^p`` (``None``: balanced).
        tol (float or None): marginal test: every L1 marginal violation below ``tol``.
        rtol (float or None): value test: the value's predicted remaining change (its
            last change times ``r / (1 - r)`` for the observed contraction ``r``) below
            ``rtol * (|value| + eps)``. With neither test the loop stops after the
            schedule (GeomLoss); with both, both must hold.
        max_iter (int): cap on the total number of updates (the schedule always runs).
        value (callable): ``value(f_ba, g_ab, f_aa, g_bb) -> (B,)``, the divergence of
            potentials (the value test's quantity).

    Returns:
        SinkhornPotentials.

    Raises:
        NonFiniteSinkhornError: a stopping test saw non-finite potentials.
    """
    debias = xx is not None
    la, lb = a.log(), b.log()  # -inf on zero weights: padding contributes exactly nothing
    steps = max(map(len, schedules))
    offsets = [steps - len(s) for s in schedules]
    # (steps, B) temperatures; before its start an item sees its own first temperature.
    table = torch.tensor(
        [[s[max(k - o, 0)] for s, o in zip(schedules, offsets, strict=True)] for k in range(steps)],
        dtype=a.dtype,
    ).to(a.device)
    late = [k < max(offsets) for k in range(steps)]
    started = torch.tensor(
        [[k >= o for o in offsets] for k in range(steps)], device=a.device
    ).unsqueeze(-1)

    def damping(eps: Tensor) -> Tensor | float:
        return 1.0 if rho is None else (1 / (1 + eps / rho))[:, None]

    eps = table[0]
    damp = damping(eps)
    # Initial potentials: soft c-transforms of zero potentials at the first temperature.
    f_ba, g_ab = damp * xy.softmin(eps, lb), damp * yx.softmin(eps, la)
    f_aa = damp * xx.softmin(eps, la) if debias else None
    g_bb = damp * yy.softmin(eps, lb) if debias else None

    def sym_update(old: Tensor, new: Tensor, k: int) -> Tensor:
        upd = 0.5 * (old + new)
        return torch.where(started[k], upd, old) if late[k] else upd

    refine = tol is not None or rtol is not None
    self_levels = _self_levels(max(schedules, key=len), every_level=not refine)
    anneal_omega = torch.full((a.shape[0], 1), _ANNEALING_OVERRELAXATION, dtype=a.dtype)
    anneal_omega = anneal_omega.to(a.device)

    def alt_update(old: Tensor, new: Tensor, k: int, e: Tensor) -> Tensor:
        upd = new if rho is not None else relaxed_update(old, new, e, anneal_omega)
        return torch.where(started[k], upd, old) if late[k] else upd

    for k in range(steps):
        eps = table[k]
        damp = damping(eps)
        e = eps[:, None]
        if refine:  # alternating, safeguarded over-relaxed updates
            f_ba = alt_update(f_ba, damp * xy.softmin(eps, lb + g_ab / e), k, e)
            g_ab = alt_update(g_ab, damp * yx.softmin(eps, la + f_ba / e), k, e)
        else:  # GeomLoss's symmetric updates
            ft_ba = damp * xy.softmin(eps, lb + g_ab / e)
            gt_ab = damp * yx.softmin(eps, la + f_ba / e)
            f_ba, g_ab = sym_update(f_ba, ft_ba, k), sym_update(g_ab, gt_ab, k)
        if debias and self_levels[k]:
            ft_aa = damp * xx.softmin(eps, la + f_aa / e)
            gt_bb = damp * yy.softmin(eps, lb + g_bb / e)
            f_aa, g_bb = sym_update(f_aa, ft_aa, k), sym_update(g_bb, gt_bb, k)

    iterations = steps
    e = eps[:, None]
    check_every = 1 if a.device.type == "cpu" else _CHECK_EVERY
    omega = torch.ones_like(e)
    passed = torch.zeros_like(eps, dtype=torch.bool)
    self_error = torch.zeros_like(eps)
    self_done = not debias
    history: list[Tensor] = []  # x-side violations since omega was last set
    values: list[Tensor] = []
    while refine and iterations < max_iter:
        ft_ba = damp * xy.softmin(eps, lb + g_ab / e)
        u = (f_ba - ft_ba) / e
        error_x = _violation(a, u)
        f_ba = ft_ba if rho is not None else relaxed_update(f_ba, ft_ba, e, omega)
        gt_ab = damp * yx.softmin(eps, la + f_ba / e)
        error = torch.maximum(error_x, _violation(b, (g_ab - gt_ab) / e))
        g_ab = gt_ab if rho is not None else relaxed_update(g_ab, gt_ab, e, omega)
        if not self_done:
            ft_aa = damp * xx.softmin(eps, la + f_aa / e)
            gt_bb = damp * yy.softmin(eps, lb + g_bb / e)
            self_error = torch.maximum(
                _violation(a, (f_aa - ft_aa) / e), _violation(b, (g_bb - gt_bb) / e)
            )
            f_aa, g_bb = 0.5 * (f_aa + ft_aa), 0.5 * (g_bb + gt_bb)
        error = torch.maximum(error, self_error)
        iterations += 1
        refined = iterations - steps
        if rho is None:
            history.append(error_x)
            if refined == _PLAIN_STEPS or (
                refined > _PLAIN_STEPS and (refined - _PLAIN_STEPS) % _ADAPT_EVERY == 0
            ):
                omega = torch.maximum(omega, optimal_overrelaxation(history, omega[:, 0])[:, None])
                del history[:-1]
        if rtol is not None:
            values.append(value(ft_ba, gt_ab, f_aa, g_bb))
            del values[: -2 * _VALUE_WINDOW - 1]
        if refined % check_every:
            continue
        if not bool(torch.isfinite(error).all()):
            raise NonFiniteSinkhornError("the Sinkhorn potentials are not finite")
        passed = torch.ones_like(passed) if tol is None else error < tol
        if rtol is not None:
            passed &= _value_settled(values, rtol, eps)
        if not self_done:
            # Frozen self problems keep their last violation in ``error``.
            self_done = bool((self_error < (tol if tol is not None else rtol)).all())
        if bool(passed.all()):
            break

    # Last full (undamped) update: its plans carry the gradients.
    h_ba, h_ab = lb + g_ab / e, la + f_ba / e
    lse_ba, lse_ab = xy.log_partition(eps, h_ba), yx.log_partition(eps, h_ab)
    f_last, g_last = damp * -e * lse_ba, damp * -e * lse_ab
    error = torch.maximum(_violation(a, (f_ba - f_last) / e), _violation(b, (g_ab - g_last) / e))
    h_aa = h_bb = lse_aa = lse_bb = None
    if debias:
        h_aa, h_bb = la + f_aa / e, lb + g_bb / e
        lse_aa, lse_bb = xx.log_partition(eps, h_aa), yy.log_partition(eps, h_bb)
        f_aa, g_bb = damp * -e * lse_aa, damp * -e * lse_bb
    return SinkhornPotentials(
        f_ba=f_last,
        g_ab=g_last,
        f_aa=f_aa,
        g_bb=g_bb,
        h_ba=h_ba,
        h_ab=h_ab,
        h_aa=h_aa,
        h_bb=h_bb,
        lse_ba=lse_ba,
        lse_ab=lse_ab,
        lse_aa=lse_aa,
        lse_bb=lse_bb,
        eps=eps,
        iterations=iterations + 1,
        error=error,
        converged=passed if refine else torch.ones_like(passed),
    )


def _self_levels(schedule: list[float], *, every_level: bool) -> list[bool]:
    """Annealing levels at which the self-transport problems are updated.

    GeomLoss updates them at every level (``every_level``). They converge much faster
    than the cross problem, so with a fine schedule they follow a coarser one: a level
    whose temperature is at most ``_SELF_EPS_RATIO`` times that of their last update,
    and the last level (the refinement then converges them).
    """
    if every_level:
        return [True] * len(schedule)
    levels, last = [], math.inf
    for k, eps in enumerate(schedule):
        take = eps <= last * _SELF_EPS_RATIO or k == len(schedule) - 1
        levels.append(take)
        last = eps if take else last
    return levels


def _value_settled(values: list[Tensor], rtol: float, eps: Tensor) -> Tensor:
    """Whether the value's predicted remaining change is below ``rtol * (|value| + eps)``.

    ``values`` holds the value of the last ``2 W + 1`` iterations (``W = _VALUE_WINDOW``).
    Linear convergence with contraction ``r`` per window leaves ``|last change| r / (1 - r)``
    to go (Aitken's estimate); ``r`` is the ratio of the changes over the last two
    windows, which averages out the oscillations of over-relaxed iterates. A value that
    did not contract over the last window (``r >= _MAX_WINDOW_RATE``) is not settled.
    """
    if len(values) < 2 * _VALUE_WINDOW + 1:
        return torch.zeros_like(eps, dtype=torch.bool)
    older, old, new = values[0], values[_VALUE_WINDOW], values[-1]
    last, before = (new - old).abs(), (old - older).abs()
    r = last / before.clamp_min(torch.finfo(eps.dtype).tiny)
    remaining = last * torch.maximum(r / (1 - r.clamp(max=_MAX_WINDOW_RATE)), torch.ones_like(r))
    return (r < _MAX_WINDOW_RATE) & (remaining <= rtol * (new.abs() + eps))


def bounding_diameters(x: Tensor, y: Tensor, a: Tensor, b: Tensor) -> list[float]:
    """Diagonal of the bounding box of the support of ``a`` on ``x`` and ``b`` on ``y``.

    One value per batch item, read to the host once (the only sync the schedule needs;
    pass ``diameter`` to skip it). Zero-weight points (padding) are ignored. A point
    that is not finite makes its item's value NaN or infinite.
    """
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    lo = torch.minimum(
        torch.where(a[..., None] > 0, x, inf).amin(1), torch.where(b[..., None] > 0, y, inf).amin(1)
    )
    hi = torch.maximum(
        torch.where(a[..., None] > 0, x, -inf).amax(1),
        torch.where(b[..., None] > 0, y, -inf).amax(1),
    )
    return (hi - lo).norm(dim=-1).tolist()
