r"""Maximum mean discrepancy (WAE's latent penalty) with multi-scale kernels.

For a kernel $k$ and weighted samples $\mu = \sum_i a_i \delta_{x_i}$,
$\nu = \sum_j b_j \delta_{y_j}$ (uniform weights by default),

$$
\mathrm{MMD}^2(\mu, \nu) = \mathbb{E}\,k(x, x') + \mathbb{E}\,k(y, y')
    - 2\, \mathbb{E}\,k(x, y),
$$

estimated by one of three estimators:

* ``"unbiased"`` (U-statistic, the default): the within-sample terms skip the pairs
  $i = j$, $\sum_{i \ne j} a_i a_j k(x_i, x_j) / (1 - \sum_i a_i^2)$, which is
  $\frac{1}{N (N - 1)} \sum_{i \ne j} k(x_i, x_j)$ for uniform weights. Unbiased (it
  can be negative), needs two samples on each side.
* ``"biased"`` (V-statistic): all pairs, $\sum_{i, j} a_i a_j k(x_i, x_j)$; the squared
  kernel distance between the empirical measures, never negative, biased upwards by
  $O(1/N)$.
* ``"linear"`` (Gretton et al., 2012, linear-time): the mean over
  $\lfloor N/2 \rfloor$ disjoint consecutive pairs of
  $k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i})$:
  unbiased, $O(N)$ time, variance $O(1/N)$ instead of the U-statistic's
  $O(1/N^2)$ under the alternative.

The kernel is a sum over ``scales`` of one kernel family with constants $s\,c_0$.
Every `otloss.ops.Kernel` (the built-in ``"imq"``, ``"rbf"``, ``"laplacian"``,
``"energy"`` and any registered one) runs in one fused pass over row blocks of the three
kernel matrices that also forms the gradients (see `_FusedMMD`); a plain callable
kernel runs through autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from otloss._checks import (
    check_bandwidth,
    check_bool,
    check_choice,
    check_kernel,
    check_min_samples,
    check_pair,
    check_scales,
    check_spread_weights,
    check_weights,
)
from otloss.distributed import gather_clouds
from otloss.ops import (
    DEFAULT_SCALES,
    Kernel,
    center_pair,
    full_precision,
    median_sqdist,
    multiscale_kernel,
    sqdist,
)

__all__ = ["MMD", "mmd"]

KernelArg = str | Kernel | Callable[[Tensor, float | Tensor], Tensor]
Bandwidth = float | str | None

ESTIMATORS = ("unbiased", "biased", "linear")

#: Elements of one row strip of a kernel matrix per CPU thread: the strip buffers (8 MB
#: per thread's share in float32) stay in cache. A strip of ``_CPU_BLOCK`` times the
#: thread count is one operation that torch's own thread pool splits between its threads.
_CPU_BLOCK = 1 << 19
#: Elements of one row block on accelerators, where fewer, larger launches are faster.
_DEVICE_BLOCK = 1 << 24


def mmd(
    x: Tensor,
    y: Tensor,
    x_weights: Tensor | None = None,
    y_weights: Tensor | None = None,
    *,
    kernel: KernelArg = "imq",
    bandwidth: Bandwidth = None,
    scales: Sequence[float] = DEFAULT_SCALES,
    estimator: str = "unbiased",
    gather: bool = False,
) -> Tensor:
    r"""Squared maximum mean discrepancy between two (weighted) point clouds.

    $$
    \mathrm{MMD}^2 = \sum_{i, j} a_i a_j k(x_i, x_j) + \sum_{i, j} b_i b_j k(y_i, y_j)
        - 2 \sum_{i, j} a_i b_j k(x_i, y_j),
    \qquad k = \sum_{s \in \text{scales}} k_{s c_0},
    $$

    with the within-sample sums over $i \ne j$ and renormalised by
    $\sum_{i \ne j} a_i a_j$ ($1 - \sum_i a_i^2$ for weights summing to 1) for
    the unbiased estimator (see the module docstring). The kernels, as functions of
    $d = |u - v|$:

    * ``"imq"``: $k_c = c / (c + d^2)$ (WAE's inverse multiquadratic);
    * ``"rbf"``: $k_c = \exp(-d^2 / c)$, GeomLoss's ``"gaussian"`` with
      $c = 2\,\text{blur}^2$;
    * ``"laplacian"``: $k_c = \exp(-d / c)$, GeomLoss's ``"laplacian"`` with
      $c = \text{blur}$;
    * ``"energy"``: $k = -d$, which has no constant: every scale adds the same term, so
      ``scales=(1.0,)`` gives the energy distance itself;
    * any other `otloss.ops.Kernel`, by object or by its registered name;
    * a callable ``k(d2, c)`` of squared distances and a constant (plain autograd).

    Args:
        x: ``(N, D)`` or ``(B, N, D)`` samples of the first distribution.
        y: ``(M, D)`` or ``(B, M, D)`` samples of the second distribution.
        x_weights: optional ``(N,)`` / ``(B, N)`` non-negative weights summing to 1; they
            receive gradients (GM-WAE's weighted MMD). The unbiased estimator needs two
            samples of positive weight: one sample carrying all the weight leaves no pair
            $i \ne j$ and raises ``ValueError`` (queued with ``torch._assert_async``
            on accelerators).
        y_weights: optional ``(M,)`` / ``(B, M)`` weights, likewise.
        kernel: ``"imq"``, ``"rbf"``, ``"laplacian"``, ``"energy"``, a registered name, a
            `otloss.ops.Kernel` or a callable.
        bandwidth: the base constant $c_0$, in the units of the kernel's constant
            (squared distance for ``"imq"``/``"rbf"``, distance for ``"laplacian"``; a
            plain callable is taken to use squared distances).
            ``None`` uses the expected squared distance $2D$ between two draws of a
            unit-variance prior (WAE's convention; $\sqrt{2D}$ for ``"laplacian"``);
            ``"median"`` the median squared distance between distinct points of the pooled
            sample (its square root for ``"laplacian"``), per batch item, without gradient.
        scales: positive multipliers $s$ of $c_0$; the kernel is their sum.
        estimator: ``"unbiased"`` (needs $N, M \ge 2$), ``"biased"`` or ``"linear"``
            (needs $N = M \ge 2$; an odd last sample is dropped; no weights).
        gather: estimate over the global batch of a distributed run: every rank's
            ``x``, ``y`` and weights are gathered (`otloss.distributed.gather_clouds`)
            and the estimate is that of the concatenated clouds, each rank's weights
            (summing to 1) divided by the number of ranks $W$: the global measure is
            the mean of the ranks' measures (uniform stays uniform). The value is
            identical on every rank; rank $r$'s input gradients are $W$ times the
            single-process gradients of its slices, so DDP's mean over ranks gives
            exactly the single-process parameter gradients of the concatenated batch.
            Every rank needs the same shapes. A no-op without an initialised process
            group.

    Returns:
        The estimate: a scalar, or ``(B,)`` for batched inputs (``(0,)`` for ``B = 0``), in
        the input dtype (half precision is computed in float32). A NaN or infinite
        coordinate gives NaN. Gradients reach the points and the weights, to any order:
        registered kernels form first-order gradients in their fused pass, and a
        backward pass with ``create_graph=True`` differentiates the dense kernel
        matrices instead (O(N M) memory).

    Shape:
        - x: ``(N, D)`` or ``(B, N, D)``; y: ``(M, D)`` or ``(B, M, D)``
        - x_weights: ``(N,)`` or ``(B, N)``; y_weights: ``(M,)`` or ``(B, M)``
        - output: ``()`` or ``(B,)``

    Examples:
        >>> z = torch.randn(256, 8, requires_grad=True)  # encoder output
        >>> prior = torch.randn(256, 8)
        >>> mmd(z, prior).backward()
    """
    x, y = check_pair(x, y)
    if check_bool("gather", gather):
        x, y, x_weights, y_weights = gather_clouds(x, y, x_weights, y_weights)
    kernel = check_kernel(kernel)
    bandwidth = check_bandwidth(bandwidth)
    scales = check_scales(scales)
    check_choice("estimator", estimator, ESTIMATORS)
    n, m = x.shape[-2], y.shape[-2]
    if estimator == "unbiased":
        check_min_samples("x", n, 2, "the unbiased MMD estimator")
        check_min_samples("y", m, 2, "the unbiased MMD estimator")
    elif estimator == "linear":
        if n != m:
            raise ValueError(
                "the linear MMD estimator pairs x_i with y_i and needs N == M, got shapes "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        check_min_samples("x", n, 2, "the linear MMD estimator")
        if x_weights is not None or y_weights is not None:
            raise ValueError(
                "the linear MMD estimator does not take sample weights; use 'unbiased' or "
                "'biased'"
            )
    x_weights = check_weights("x_weights", x_weights, x)
    y_weights = check_weights("y_weights", y_weights, y)
    if estimator == "unbiased":
        why = "the unbiased MMD estimator (pairs i != j)"
        check_spread_weights("x_weights", x_weights, why)
        check_spread_weights("y_weights", y_weights, why)

    batched = x.dim() == 3
    if batched and x.shape[0] == 0:
        return x.sum(dim=(-2, -1))  # the empty (0,) result, still part of the graph
    with full_precision(x, y) as precision:
        dtype = precision.compute
        x, y = _as_batch(x.to(dtype), batched), _as_batch(y.to(dtype), batched)
        a = None if x_weights is None else _as_batch(x_weights.to(dtype), batched)
        b = None if y_weights is None else _as_batch(y_weights.to(dtype), batched)
        c0 = _base_constant(kernel, bandwidth, x, y)
        if estimator == "linear":
            value = _linear_mmd(x, y, kernel, c0, scales)
        elif isinstance(kernel, Kernel):
            value = _fused_mmd(x, y, a, b, kernel, c0, scales, estimator == "unbiased")
        else:
            value = _dense_mmd(x, y, a, b, kernel, c0, scales, estimator == "unbiased")
        if not batched:
            value = value[0]
    return value.to(precision.result)


class MMD(nn.Module):
    r"""Squared maximum mean discrepancy with a multi-scale kernel (WAE's penalty).

    $$
    \mathrm{MMD}^2 = \mathbb{E}\,k(x, x') + \mathbb{E}\,k(y, y') - 2\,\mathbb{E}\,k(x, y),
    \qquad k = \sum_{s \in \text{scales}} k_{s c_0},
    $$

    with the IMQ kernel $k_c(u, v) = c / (c + |u - v|^2)$ by default and
    $c_0 = 2D$ (the expected squared distance between two draws of a unit-variance
    prior). See `mmd` for the kernels, bandwidth rules and estimators; the default
    ``"unbiased"`` U-statistic has expectation exactly $\mathrm{MMD}^2$ (so it can be
    negative), ``"biased"`` is the V-statistic, ``"linear"`` the linear-time estimator.
    The configuration is validated here, at construction.

    Args:
        kernel: ``"imq"``, ``"rbf"``, ``"laplacian"``, ``"energy"``, a registered name, an
            `otloss.ops.Kernel` or a callable ``k(d2, c)``.
        bandwidth: base constant $c_0$, ``None`` ($2D$) or ``"median"``.
        scales: multipliers of $c_0$ summed over.
        estimator: ``"unbiased"``, ``"biased"`` or ``"linear"``.
        gather: estimate over the global batch of a distributed run (see `mmd`).

    Shape:
        - x: ``(N, D)`` or ``(B, N, D)``; y: ``(M, D)`` or ``(B, M, D)``
        - x_weights: ``(N,)`` or ``(B, N)``; y_weights: ``(M,)`` or ``(B, M)`` (optional)
        - output: ``()`` or ``(B,)``

    Examples:
        >>> penalty = MMD()                      # 7-scale IMQ, unbiased
        >>> z = encoder(x)                       # (N, 8)
        >>> loss = recon + 10.0 * penalty(z, torch.randn_like(z))
    """

    def __init__(
        self,
        kernel: KernelArg = "imq",
        bandwidth: Bandwidth = None,
        scales: Sequence[float] = DEFAULT_SCALES,
        estimator: str = "unbiased",
        gather: bool = False,
    ) -> None:
        super().__init__()
        check_kernel(kernel)
        self.gather = check_bool("gather", gather)
        self.kernel = kernel  # a name stays a name: resolved in the registry at each call
        self.bandwidth = check_bandwidth(bandwidth)
        self.scales = check_scales(scales)
        self.estimator = check_choice("estimator", estimator, ESTIMATORS)

    def forward(
        self,
        x: Tensor,
        y: Tensor,
        x_weights: Tensor | None = None,
        y_weights: Tensor | None = None,
    ) -> Tensor:
        """MMD estimate between ``x`` and ``y`` (see `mmd`)."""
        return mmd(
            x,
            y,
            x_weights,
            y_weights,
            kernel=self.kernel,
            bandwidth=self.bandwidth,
            scales=self.scales,
            estimator=self.estimator,
            gather=self.gather,
        )

    def extra_repr(self) -> str:
        kernel = self.kernel
        if not isinstance(kernel, str):
            kernel = kernel.name if isinstance(kernel, Kernel) else getattr(
                kernel, "__name__", "callable"
            )
        return (
            f"kernel={kernel!r}, bandwidth={self.bandwidth!r}, scales={self.scales}, "
            f"estimator={self.estimator!r}, gather={self.gather}"
        )


# --------------------------------------------------------------------------- shared pieces


def _as_batch(t: Tensor, batched: bool) -> Tensor:
    return t if batched else t.unsqueeze(0)


def _base_constant(
    kernel: KernelArg, bandwidth: Bandwidth, x: Tensor, y: Tensor
) -> float | Tensor:
    """The base constant c0: a float, or a ``(B,)`` tensor for the median heuristic.

    The rules give squared distances; a `Kernel` converts them to its constant's
    units (a plain callable is taken to use squared distances).
    """
    units = kernel.constant_from_sqdist if isinstance(kernel, Kernel) else (lambda d2: d2)
    if isinstance(kernel, Kernel) and kernel.power == 0:
        return 1.0
    if bandwidth is None:
        return float(units(2.0 * x.shape[-1]))
    if isinstance(bandwidth, float):
        return bandwidth
    med = median_sqdist(x, y)
    # The median is 0 when most pairs coincide; fall back to the mean squared distance
    # (twice the pooled variance), and to 1 when every point is the same (MMD is 0 then).
    pooled = torch.cat([x, y], dim=-2).detach()
    fallback = 2 * pooled.var(dim=-2).sum(-1)
    med = torch.where(med > 0, med, fallback)
    med = torch.where(med > 0, med, torch.ones_like(med))
    return units(med)


def _constant_view(c0: float | Tensor, dims: int) -> float | Tensor:
    """c0 shaped to broadcast against a ``(B, ...)`` tensor with ``dims`` trailing dims."""
    return c0 if isinstance(c0, float) else c0.reshape(-1, *([1] * dims))


# --------------------------------------------------------------------------- linear-time


def _linear_mmd(
    x: Tensor, y: Tensor, kernel: KernelArg, c0: float | Tensor, scales: tuple[float, ...]
) -> Tensor:
    # Centred on the joint mean like every other path: the kernel is translation
    # invariant, and an infinite coordinate becomes NaN here instead of a kernel value 0.
    x, y = center_pair(x, y)[:2]
    half = x.shape[-2] // 2
    x0, x1 = x[:, 0 : 2 * half : 2], x[:, 1 : 2 * half : 2]
    y0, y1 = y[:, 0 : 2 * half : 2], y[:, 1 : 2 * half : 2]
    c = _constant_view(c0, 1)

    def k(u: Tensor, v: Tensor) -> Tensor:
        d2 = (u - v).pow(2).sum(-1)
        return multiscale_kernel(d2, kernel, c, scales)

    h = k(x0, x1) + k(y0, y1) - k(x0, y1) - k(x1, y0)
    return h.mean(-1)


# --------------------------------------------------------------------------- dense path


def _dense_mmd(
    x: Tensor,
    y: Tensor,
    a: Tensor | None,
    b: Tensor | None,
    kernel: KernelArg,
    c0: float | Tensor,
    scales: tuple[float, ...],
    unbiased: bool,
) -> Tensor:
    """Plain autograd MMD from the three kernel matrices (used for callable kernels)."""
    c = _constant_view(c0, 2)
    a = _uniform(x) if a is None else a
    b = _uniform(y) if b is None else b
    kxx = multiscale_kernel(sqdist(x), kernel, c, scales)
    kyy = multiscale_kernel(sqdist(y), kernel, c, scales)
    kxy = multiscale_kernel(sqdist(x, y), kernel, c, scales)
    return (
        _within(kxx, a, unbiased)
        + _within(kyy, b, unbiased)
        - 2 * torch.einsum("bi,bij,bj->b", a, kxy, b)
    )


def _within(k: Tensor, w: Tensor, unbiased: bool) -> Tensor:
    if not unbiased:
        return torch.einsum("bi,bij,bj->b", w, k, w)
    eye = torch.eye(k.shape[-1], dtype=torch.bool, device=k.device)
    total = torch.einsum("bi,bij,bj->b", w, k.masked_fill(eye, 0), w)
    return total / _unbiased_norm(w)


def _others(w: Tensor) -> Tensor:
    """$\\sum_{j \\ne i} w_j$ for each i, as sums of the other weights (no
    cancellation: near a one-hot vector, ``1 - w_i`` would lose the small weights)."""
    zero = w.new_zeros(*w.shape[:-1], 1)
    before = torch.cat([zero, w[..., :-1].cumsum(-1)], -1)
    after = torch.cat([w[..., 1:].flip(-1).cumsum(-1).flip(-1), zero], -1)
    return before + after


def _unbiased_norm(w: Tensor) -> Tensor:
    """$\\sum_{i \\ne j} w_i w_j$ ($1 - \\sum_i w_i^2$ for weights summing to 1):
    N (N - 1) / N^2 for uniform weights, so the U-statistic is recovered.

    It is positive whenever two samples carry weight (the estimator checks that), and
    accurate however close the weights are to one-hot, so the estimate and its weight
    gradient stay finite and exact there.
    """
    return (w * _others(w)).sum(-1)


def _uniform(t: Tensor) -> Tensor:
    n = t.shape[-2]
    return torch.full(t.shape[:-1], 1.0 / n, dtype=t.dtype, device=t.device)


# --------------------------------------------------------------------------- fused path


def _fused_mmd(
    x: Tensor,
    y: Tensor,
    a: Tensor | None,
    b: Tensor | None,
    kernel: Kernel,
    c0: float | Tensor,
    scales: tuple[float, ...],
    unbiased: bool,
) -> Tensor:
    """Centre and rescale to the coordinates in which the kernel's base constant is 1."""
    xc, yc, x2, y2 = center_pair(x, y)
    unit = kernel.unit_length(c0)  # the argument becomes d^2 / c0 (imq, rbf), d / c0, d
    xs, ys = xc / _constant_view(unit, 2), yc / _constant_view(unit, 2)
    x2, y2 = x2 / _constant_view(unit, 1) ** 2, y2 / _constant_view(unit, 1) ** 2
    a = _uniform(x) if a is None else a
    b = _uniform(y) if b is None else b
    # needs_input_grad inside a Function ignores no_grad mode, so decide here.
    grad = torch.is_grad_enabled()
    needs = tuple(grad and t.requires_grad for t in (xs, ys, a, b))
    block = _cpu_block() if x.device.type == "cpu" else _DEVICE_BLOCK
    return _FusedMMD.apply(xs, ys, x2, y2, a, b, kernel, scales, unbiased, needs, block)


@torch.compiler.assume_constant_result
def _cpu_block() -> int:
    """`_CPU_BLOCK` times the thread count (a constant of a compiled graph)."""
    return _CPU_BLOCK * torch.get_num_threads()


class _FusedMMD(torch.autograd.Function):
    r"""MMD and its gradients in one blocked pass over the kernel matrices.

    The three kernel matrices are never stored: they are built in row strips of about
    ``block`` elements that stay in cache, from one matmul each (the expansion
    $|u|^2 + |v|^2 - 2 u \cdot v$ as a single product of augmented matrices). In
    the same pass the kernel sum over scales $K$ and the negated derivative
    $G = -\partial K / \partial d^2$ are accumulated with in-place operations, and
    reduced at once with matmuls:

    * $K w$ gives the value and the weight gradients;
    * $G [w \odot z, w]$ gives the point gradients, from
      $\partial_{z_i} \sum_j w_j k(|z_i - z_j|^2) = -2 (z_i (G w)_i - (G (w z))_i)$.

    The self terms are symmetric, so only the strip of each row block right of its
    diagonal block is built, and its off-diagonal part is used twice (rows and columns).
    Gradients are formed in the forward pass and scaled in the backward pass. A backward
    pass that records a graph (``create_graph=True``, e.g. ``gradgradcheck`` or a penalty
    on the gradient) instead differentiates the dense closed form `_dense_mmd` at the
    saved inputs, so higher-order gradients are exact at the dense path's memory cost.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        xs: Tensor,
        ys: Tensor,
        x2: Tensor,
        y2: Tensor,
        a: Tensor,
        b: Tensor,
        kernel: Kernel,
        scales: tuple[float, ...],
        unbiased: bool,
        needs: tuple[bool, bool, bool, bool],
        block: int,
    ) -> Tensor:
        need_x, need_y, need_a, need_b = needs
        plan = _Plan(xs, ys, x2, y2, a, b, kernel.accumulate_scales, scales, unbiased, needs)
        sums = _run_strips(plan, block)
        for key in ("kw_x", "kw_y", "kb", "kta"):
            if key in sums:
                sums[key] = sums[key].squeeze(-1)
        sxx = (a * sums["kw_x"]).sum(-1)
        syy = (b * sums["kw_y"]).sum(-1)
        sxy = (a * sums["kb"]).sum(-1)
        zx = _unbiased_norm(a) if unbiased else torch.ones_like(sxx)
        zy = _unbiased_norm(b) if unbiased else torch.ones_like(syy)
        value = sxx / zx + syy / zy - 2 * sxy

        # d/dz_i of sum_j w_j k(|z_i - z_j|^2), from acc = G [w z, w] (and k' = -G).
        def point_grad(z: Tensor, w: Tensor, acc: Tensor) -> Tensor:
            dim = z.shape[-1]
            return -2 * w.unsqueeze(-1) * (z * acc[..., dim:] - acc[..., :dim])

        grads: list[Tensor | None] = [None, None, None, None]
        if need_x:
            grads[0] = (2 * point_grad(xs, a, sums["acc_xx"]) / zx[:, None, None]
                        - 2 * point_grad(xs, a, sums["acc_xy"]))
        if need_y:
            grads[1] = (2 * point_grad(ys, b, sums["acc_yy"]) / zy[:, None, None]
                        - 2 * point_grad(ys, b, sums["acc_yx"]))
        if need_a:
            # d(sum_{i != j} a_i a_j) / da_i = 2 sum_{j != i} a_j
            ga = 2 * sums["kw_x"] / zx[:, None] - 2 * sums["kb"]
            grads[2] = ga - 2 * _others(a) * (sxx / zx**2)[:, None] if unbiased else ga
        if need_b:
            gb = 2 * sums["kw_y"] / zy[:, None] - 2 * sums["kta"]
            grads[3] = gb - 2 * _others(b) * (syy / zy**2)[:, None] if unbiased else gb
        ctx.grads = grads
        ctx.kernel, ctx.scales, ctx.unbiased = kernel, scales, unbiased
        ctx.save_for_backward(xs, ys, a, b)
        return value

    @staticmethod
    def backward(ctx, grad_value: Tensor):  # type: ignore[override]
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            out = _differentiable_grads(ctx, grad_value)
        else:
            out = [
                None if g is None else g * grad_value.reshape(-1, *([1] * (g.dim() - 1)))
                for g in ctx.grads
            ]
        return (out[0], out[1], None, None, out[2], out[3], None, None, None, None, None)


def _differentiable_grads(ctx, grad_value: Tensor) -> list[Tensor | None]:  # type: ignore[no-untyped-def]
    """The fused pass's input gradients as a graph: autograd through `_dense_mmd` at the
    saved (scaled) inputs, where the kernel's base constant is 1."""
    inputs = ctx.saved_tensors
    wanted = [i for i, need in enumerate(g is not None for g in ctx.grads) if need]
    with torch.enable_grad():
        value = _dense_mmd(*inputs, ctx.kernel, 1.0, ctx.scales, ctx.unbiased)
        grads = torch.autograd.grad(
            value, [inputs[i] for i in wanted], grad_value, create_graph=True
        )
    out: list[Tensor | None] = [None] * 4
    for i, g in zip(wanted, grads, strict=True):
        out[i] = g
    return out


class _Plan:
    """Inputs of the fused pass, and the strips (row ranges of each kernel matrix).

    A strip ``("xx", i0, i1)`` covers rows ``i0:i1`` and columns ``i0:`` of the x-x matrix;
    ``("xy", i0, i1)`` rows ``i0:i1`` and all columns of the x-y matrix. Each holds about
    ``block`` elements.
    """

    def __init__(self, xs, ys, x2, y2, a, b, evaluate, scales, unbiased, needs):  # type: ignore[no-untyped-def]
        self.xs, self.ys, self.a, self.b = xs, ys, a, b
        self.evaluate, self.scales, self.unbiased = evaluate, scales, unbiased
        self.need_x, self.need_y, _, self.need_b = needs
        self.px, self.qx = _augmented(xs, x2)
        self.py, self.qy = _augmented(ys, y2)
        self.ac, self.bc = a.unsqueeze(-1), b.unsqueeze(-1)
        # Right-hand sides of the gradient matmuls: [w z, w].
        self.rx = torch.cat([self.ac * xs, self.ac], -1) if self.need_x or self.need_y else None
        self.ry = torch.cat([self.bc * ys, self.bc], -1) if self.need_x or self.need_y else None

    def strips(self, block: int) -> list[tuple[str, int, int]]:
        bsz, n, m = self.xs.shape[0], self.xs.shape[1], self.ys.shape[1]
        out = []
        for name, size in (("xx", n), ("yy", m)):
            i0 = 0
            while i0 < size:
                i1 = min(size, i0 + max(1, block // (bsz * (size - i0))))
                out.append((name, i0, i1))
                i0 = i1
        step = max(1, block // (bsz * m))
        out += [("xy", i0, min(n, i0 + step)) for i0 in range(0, n, step)]
        return out

    def accumulators(self) -> dict[str, Tensor]:
        """Zeroed per-worker sums: K w (and K^T a), G [w z, w] for each term."""
        bsz, n, dim = self.xs.shape
        m = self.ys.shape[1]

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(bsz, *shape, dtype=self.xs.dtype, device=self.xs.device)

        acc = {"kw_x": zeros(n, 1), "kw_y": zeros(m, 1), "kb": zeros(n, 1)}
        if self.need_b:
            acc["kta"] = zeros(m, 1)
        if self.need_x:
            acc["acc_xx"], acc["acc_xy"] = zeros(n, dim + 1), zeros(n, dim + 1)
        if self.need_y:
            acc["acc_yy"], acc["acc_yx"] = zeros(m, dim + 1), zeros(m, dim + 1)
        return acc

    def run(self, strip: tuple[str, int, int], acc: dict[str, Tensor], buffers: list[Tensor]):  # type: ignore[no-untyped-def]
        name, i0, i1 = strip
        if name == "xy":
            self._cross(i0, i1, acc, buffers)
        elif name == "xx":
            self._self(self.px, self.qx, self.ac, self.rx, self.need_x, i0, i1,
                       acc["kw_x"], acc.get("acc_xx"), buffers)
        else:
            self._self(self.py, self.qy, self.bc, self.ry, self.need_y, i0, i1,
                       acc["kw_y"], acc.get("acc_yy"), buffers)

    def _self(self, p, q, wc, rhs, need_points, i0, i1, kw, acc, buffers):  # type: ignore[no-untyped-def]
        rows, cols = i1 - i0, p.shape[1] - i0
        d2, tmp, k, g = _views(buffers, (p.shape[0], rows, cols))
        torch.bmm(p[:, i0:i1], q[:, i0:].mT, out=d2)
        d2.clamp_min_(0)
        d2[:, :, :rows].diagonal(dim1=1, dim2=2).zero_()
        self.evaluate(d2, tmp, k, g, self.scales, need_points)
        if self.unbiased:
            k[:, :, :rows].diagonal(dim1=1, dim2=2).zero_()
        kw[:, i0:i1].baddbmm_(k, wc[:, i0:])
        kw[:, i1:].baddbmm_(k[:, :, rows:].mT, wc[:, i0:i1])
        if need_points:
            g[:, :, :rows].diagonal(dim1=1, dim2=2).zero_()
            acc[:, i0:i1].baddbmm_(g, rhs[:, i0:])
            acc[:, i1:].baddbmm_(g[:, :, rows:].mT, rhs[:, i0:i1])

    def _cross(self, i0, i1, acc, buffers):  # type: ignore[no-untyped-def]
        d2, tmp, k, g = _views(buffers, (self.xs.shape[0], i1 - i0, self.ys.shape[1]))
        torch.bmm(self.px[:, i0:i1], self.qy.mT, out=d2)
        d2.clamp_min_(0)
        self.evaluate(d2, tmp, k, g, self.scales, self.need_x or self.need_y)
        acc["kb"][:, i0:i1].baddbmm_(k, self.bc)
        if self.need_b:
            acc["kta"].baddbmm_(k.mT, self.ac[:, i0:i1])
        if self.need_x:
            acc["acc_xy"][:, i0:i1].baddbmm_(g, self.ry)
        if self.need_y:
            acc["acc_yx"].baddbmm_(g.mT, self.rx[:, i0:i1])


def _run_strips(plan: _Plan, block: int) -> dict[str, Tensor]:
    """Run every strip in turn into one set of accumulators.

    Parallelism is torch's own: each strip is one set of operations over about ``block``
    elements, which the intra-op thread pool splits between its threads (the caller sizes
    ``block`` by the thread count). No thread is started and no global setting changed.
    """
    xs = plan.xs
    bsz, n, m = xs.shape[0], xs.shape[1], plan.ys.shape[1]
    # The largest strip: about `block` elements, at least one row, at most a matrix.
    size = min(max(block, bsz * max(n, m)), bsz * max(n * max(n, m), m * m))
    acc = plan.accumulators()
    buffers = [torch.empty(size, dtype=xs.dtype, device=xs.device) for _ in range(4)]
    for strip in plan.strips(block):
        plan.run(strip, acc, buffers)
    return acc


def _augmented(z: Tensor, sq: Tensor) -> tuple[Tensor, Tensor]:
    """P, Q with ``P_i . Q_j = |z_i|^2 + |z_j|^2 - 2 z_i . z_j``, from the squared norms."""
    sq = sq.unsqueeze(-1)
    ones = torch.ones_like(sq)
    return torch.cat([z, sq, ones], -1), torch.cat([-2 * z, ones, sq], -1)


def _views(buffers: list[Tensor], shape: tuple[int, ...]) -> list[Tensor]:
    numel = math.prod(shape)
    return [buf[:numel].view(shape) for buf in buffers]
