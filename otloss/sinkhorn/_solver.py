"""The log-domain, symmetric Sinkhorn loop with epsilon annealing and a stopping test.

Written once against :class:`otloss.sinkhorn._geometry.CostGeometry` (dense or blocked
costs). The algorithm is Algorithm 3.5 of J. Feydy's thesis ("Geometric data analysis,
beyond convolutions", 2020), the one GeomLoss runs, followed by an optional refinement
at the final temperature:

1. :func:`epsilon_schedule`: temperatures from ``diameter^p`` down to ``blur^p``,
   divided by ``scaling^p`` at each step;
2. at each temperature one *symmetric* update of every potential,
   ``f <- (f + T(g)) / 2``, ``g <- (g + T(f)) / 2`` (and ``f_aa <- (f_aa + T(f_aa)) / 2``
   for the self-transport problems of the debiased divergence);
3. when ``tol`` is given, over-relaxed alternating Sinkhorn updates (omega = 1.8) at the
   final temperature until
   the marginal violation is below ``tol`` (or ``max_iter`` iterations in total);
4. one last full update ``f = T(g), g = T(f)`` whose plan gives the envelope-theorem
   gradients (see :mod:`otloss.sinkhorn`).

Everything runs without autograd; the only host synchronisations are the convergence
tests of step 3 (every iteration on the CPU, every ``_CHECK_EVERY`` on accelerators).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from otloss.sinkhorn._geometry import CostGeometry

__all__ = ["SinkhornPotentials", "bounding_diameters", "epsilon_schedule", "sinkhorn_loop"]

#: Iterations between two convergence tests on accelerators (each test is a host sync).
_CHECK_EVERY = 10
#: Over-relaxation of the refinement updates (1 is plain Sinkhorn; below 2 it converges).
_OVERRELAXATION = 1.8
#: Largest exponent in the marginal-violation estimate (keeps it finite far from convergence).
_MAX_LOG_RATIO = 60.0


def epsilon_schedule(p: float, diameter: float, blur: float, scaling: float) -> list[float]:
    r"""Temperatures of the epsilon-annealing heuristic, GeomLoss's schedule.

    :math:`\varepsilon` starts at :math:`\text{diameter}^p` (where the soft c-transform
    is almost a plain average, so any initial potential is good), is multiplied by
    :math:`\text{scaling}^p` at every step and ends at :math:`\text{blur}^p`:

    .. math::
        [d^p] + [e^{t} \text{ for } t \text{ in arange}(p \log d, p \log \text{blur},
        p \log \text{scaling})] + [\text{blur}^p].

    The first value appears twice (initialisation, then the first update), as in
    GeomLoss, so that ``tol=None`` reproduces its iterations exactly. A diameter below
    ``blur`` (e.g. 0, when all points coincide) is raised to ``blur``: the annealing
    never starts colder than its target.

    Args:
        p (float): exponent of the cost (``eps = blur^p``).
        diameter (float): upper bound of the distances between points.
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
    update, which define the plans of the envelope-theorem gradients. ``eps`` is the
    final temperature per batch item, ``iterations`` the number of updates, ``error``
    the marginal violation (L1) measured in the last update, per batch item.
    """

    f_ba: Tensor
    g_ab: Tensor
    f_aa: Tensor | None
    g_bb: Tensor | None
    h_ba: Tensor
    h_ab: Tensor
    h_aa: Tensor | None
    h_bb: Tensor | None
    eps: Tensor
    iterations: int
    error: Tensor


def _violation(w: Tensor, old: Tensor, new: Tensor, eps: Tensor) -> Tensor:
    r"""L1 marginal violation :math:`\sum_j w_j |e^{(g_j - T(f)_j)/\varepsilon} - 1|` per item.

    For the plan of ``(f, g)`` the marginal on the ``y`` side is
    :math:`w_j e^{(g_j - T(f)_j)/\varepsilon}`, so this is exactly
    :math:`\| \pi^\top 1 - w \|_1` (balanced case) at no extra cost.
    """
    ratio = ((old - new) / eps[:, None]).clamp_max(_MAX_LOG_RATIO)
    return (w * ratio.expm1().abs()).sum(-1)


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
    max_iter: int,
) -> SinkhornPotentials:
    """Run the annealed symmetric Sinkhorn loop (then refine to ``tol``) on a batch.

    Args:
        xy, yx (CostGeometry): the costs ``C(x, y)`` and ``C(y, x)``.
        xx, yy (CostGeometry or None): ``C(x, x)`` and ``C(y, y)`` for the debiased
            divergence, ``None`` otherwise.
        a ((B, N) Tensor), b ((B, M) Tensor): non-negative weights.
        schedules (list of lists of float): one :func:`epsilon_schedule` per item; all
            end at the same ``blur^p``. Shorter schedules start later: until then the
            item keeps its initial potentials, so a batch computes what each item alone
            would.
        rho (float or None): marginal penalty ``reach^p`` (``None``: balanced).
        tol (float or None): stop refining when every L1 marginal violation is below it;
            ``None`` stops after the schedule, as GeomLoss does.
        max_iter (int): cap on the total number of updates (the schedule always runs).

    Returns:
        SinkhornPotentials.
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

    for k in range(steps):
        eps = table[k]
        damp = damping(eps)
        e = eps[:, None]
        ft_ba = damp * xy.softmin(eps, lb + g_ab / e)
        gt_ab = damp * yx.softmin(eps, la + f_ba / e)
        f_ba, g_ab = sym_update(f_ba, ft_ba, k), sym_update(g_ab, gt_ab, k)
        if debias:
            ft_aa = damp * xx.softmin(eps, la + f_aa / e)
            gt_bb = damp * yy.softmin(eps, lb + g_bb / e)
            f_aa, g_bb = sym_update(f_aa, ft_aa, k), sym_update(g_bb, gt_bb, k)

    iterations = steps
    e = eps[:, None]
    check_every = 1 if a.device.type == "cpu" else _CHECK_EVERY
    while tol is not None and iterations < max_iter:
        # Over-relaxed alternating updates (Thibault et al. 2017): x <- x + omega (T - x)
        # with omega > 1 converges much faster than plain Sinkhorn at small eps.
        ft_ba = damp * xy.softmin(eps, lb + g_ab / e)
        error = _violation(a, f_ba, ft_ba, eps)
        f_ba = f_ba + _OVERRELAXATION * (ft_ba - f_ba)
        gt_ab = damp * yx.softmin(eps, la + f_ba / e)
        error = torch.maximum(error, _violation(b, g_ab, gt_ab, eps))
        g_ab = g_ab + _OVERRELAXATION * (gt_ab - g_ab)
        if debias:
            ft_aa = damp * xx.softmin(eps, la + f_aa / e)
            gt_bb = damp * yy.softmin(eps, lb + g_bb / e)
            error = torch.maximum(error, _violation(a, f_aa, ft_aa, eps))
            error = torch.maximum(error, _violation(b, g_bb, gt_bb, eps))
            f_aa, g_bb = 0.5 * (f_aa + ft_aa), 0.5 * (g_bb + gt_bb)
        iterations += 1
        if (iterations - steps) % check_every == 0 and bool(error.max() < tol):
            break

    # Last full (undamped) update: its plans carry the gradients.
    h_ba, h_ab = lb + g_ab / e, la + f_ba / e
    f_last, g_last = damp * xy.softmin(eps, h_ba), damp * yx.softmin(eps, h_ab)
    error = torch.maximum(_violation(a, f_ba, f_last, eps), _violation(b, g_ab, g_last, eps))
    h_aa = h_bb = None
    if debias:
        h_aa, h_bb = la + f_aa / e, lb + g_bb / e
        f_aa, g_bb = damp * xx.softmin(eps, h_aa), damp * yy.softmin(eps, h_bb)
    return SinkhornPotentials(
        f_ba=f_last,
        g_ab=g_last,
        f_aa=f_aa,
        g_bb=g_bb,
        h_ba=h_ba,
        h_ab=h_ab,
        h_aa=h_aa,
        h_bb=h_bb,
        eps=eps,
        iterations=iterations + 1,
        error=error,
    )


def bounding_diameters(x: Tensor, y: Tensor, a: Tensor, b: Tensor) -> list[float]:
    """Diagonal of the bounding box of the support of ``a`` on ``x`` and ``b`` on ``y``.

    One value per batch item, read to the host once (the only sync the schedule needs;
    pass ``diameter`` to skip it). Zero-weight points (padding) are ignored.
    """
    inf = torch.tensor(math.inf, dtype=x.dtype, device=x.device)
    lo = torch.minimum(
        torch.where(a[..., None] > 0, x, inf).amin(1), torch.where(b[..., None] > 0, y, inf).amin(1)
    )
    hi = torch.maximum(
        torch.where(a[..., None] > 0, x, -inf).amax(1),
        torch.where(b[..., None] > 0, y, -inf).amax(1),
    )
    return (hi - lo).norm(dim=-1).tolist()
