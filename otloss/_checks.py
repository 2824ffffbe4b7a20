"""Input validation shared by every divergence.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError``
(wrong shape, device, value or size) with the offending shapes in the message. Shape,
dtype and device checks read only tensor metadata, so they never synchronise with an
accelerator. Value checks (non-negative weights) read data: on the CPU they raise
``ValueError`` at once, on accelerators (and inside a ``torch.compile`` graph, where a
host read would break the graph) they are queued with ``torch._assert_async`` so the
hot path stays free of host syncs.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from otloss.ops import Kernel, autocast_enabled, compute_dtype, get_kernel

__all__ = [
    "check_bandwidth",
    "check_batch_layout",
    "check_batch_shape",
    "check_bool",
    "check_choice",
    "check_choice_or_callable",
    "check_codes",
    "check_codes_for",
    "check_count",
    "check_dataset_size",
    "check_differentiable_inputs",
    "check_exponent",
    "check_floating",
    "check_generator",
    "check_image_shape",
    "check_interval",
    "check_kernel",
    "check_latent_codes",
    "check_min_samples",
    "check_module_dtype",
    "check_nonnegative",
    "check_nonnegative_entries",
    "check_pair",
    "check_points",
    "check_positive",
    "check_positive_entries",
    "check_prior_matches",
    "check_projections",
    "check_real",
    "check_real_fake",
    "check_same_device_dtype",
    "check_sample_tuple",
    "check_samples_of_shape",
    "check_scales",
    "check_scores",
    "check_sign",
    "check_spread_weights",
    "check_square",
    "check_weights",
    "check_widths",
]


def check_floating(name: str, t: object) -> Tensor:
    """Require a floating-point tensor; return it."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {t.dtype} with shape "
            f"{tuple(t.shape)}; convert it with .float()"
        )
    return t


def check_same_device_dtype(**tensors: Tensor) -> None:
    """Require all given tensors to share one device and one dtype.

    Under autocast mixed floating dtypes are what autocast produces (half activations next
    to float32 data): only the device is checked, and the loss promotes the dtypes
    (`otloss.ops.loss_precision`).
    """
    items = [(k, v) for k, v in tensors.items() if v is not None]
    if not items:
        return
    name0, t0 = items[0]
    for name, t in items[1:]:
        if t.device != t0.device:
            raise ValueError(
                f"{name} is on {t.device} but {name0} is on {t0.device}; move both to one device"
            )
        if t.dtype != t0.dtype and not autocast_enabled(t.device):
            raise TypeError(
                f"{name} has dtype {t.dtype} but {name0} has dtype {t0.dtype}; "
                "cast both to one floating dtype"
            )


def check_points(name: str, t: object, *, min_samples: int = 1) -> Tensor:
    """Require a point cloud of shape (N, D) or batched (B, N, D)."""
    t = check_floating(name, t)
    if t.dim() not in (2, 3):
        raise ValueError(
            f"{name} must be a point cloud of shape (N, D) or (B, N, D), got shape {tuple(t.shape)}"
        )
    if t.shape[-1] == 0:
        raise ValueError(f"{name} has no features: shape {tuple(t.shape)}")
    check_min_samples(name, t.shape[-2], min_samples)
    return t


def check_pair(
    x: object, y: object, *, names: Sequence[str] = ("x", "y"), min_samples: int = 1
) -> tuple[Tensor, Tensor]:
    """Validate two point clouds that a divergence compares.

    Both must be floating tensors of shape (N, D) / (M, D), or batched (B, N, D) /
    (B, M, D), with the same feature size D, batch size B, device and dtype.
    """
    nx, ny = names
    x = check_points(nx, x, min_samples=min_samples)
    y = check_points(ny, y, min_samples=min_samples)
    check_batch_layout(nx, x, ny, y, layout="(N, D)")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{nx} and {ny} must have the same feature size D, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    check_same_device_dtype(**{nx: x, ny: y})
    return x, y


def check_batch_layout(nx: str, x: Tensor, ny: str, y: Tensor, *, layout: str) -> None:
    """Require ``x`` and ``y`` both unbatched (2-D, ``layout``) or both batched with one B."""
    if x.dim() != y.dim():
        raise ValueError(
            f"{nx} and {ny} must both be single or both batched ({layout} or "
            f"(B, {layout[1:]}), got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.dim() == 3 and x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{nx} and {ny} must have the same batch size B, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )


def check_min_samples(name: str, n: int, minimum: int, why: str = "this estimator") -> None:
    """Require at least ``minimum`` samples."""
    if n < minimum:
        raise ValueError(f"{name} has {n} samples but {why} needs at least {minimum}")


def check_weights(
    name: str, w: Tensor | None, points: Tensor, *, normalized: bool = True, atol: float = 1e-4
) -> Tensor | None:
    """Validate optional sample weights of shape points.shape[:-1].

    Weights must be non-negative and, when ``normalized``, sum to 1 along the last
    dimension (within ``atol``). ``None`` passes through.
    """
    if w is None:
        return None
    w = check_floating(name, w)
    if tuple(w.shape) != tuple(points.shape[:-1]):
        raise ValueError(
            f"{name} must have shape {tuple(points.shape[:-1])} to match points of shape "
            f"{tuple(points.shape)}, got {tuple(w.shape)}"
        )
    if w.device != points.device:
        raise ValueError(f"{name} is on {w.device} but the points are on {points.device}")
    wd = w.detach()
    nonneg = (wd >= 0).all()  # False for NaN as well
    total_ok = ((wd.sum(-1) - 1).abs() <= atol).all() if normalized else None
    if _reads_host(wd):
        if not bool(nonneg):
            if not bool(wd.isfinite().all()):
                raise ValueError(f"{name} must be finite and non-negative, got NaN or Inf entries")
            raise ValueError(f"{name} must be non-negative, got a minimum of {wd.min().item():.3g}")
        if total_ok is not None and not bool(total_ok):
            raise ValueError(
                f"{name} must sum to 1 along its last dimension, got sums "
                f"{wd.sum(-1).flatten()[:4].tolist()}"
            )
    else:
        torch._assert_async(nonneg, f"{name} must be non-negative")
        if total_ok is not None:
            torch._assert_async(total_ok, f"{name} must sum to 1 along its last dimension")
    return w


def check_bool(name: str, value: object) -> bool:
    """Require a Python bool (a flag such as ``gather``)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_positive(name: str, value: float) -> float:
    """Require a positive finite Python number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)


def check_nonnegative(name: str, value: float) -> float:
    """Require a finite Python number ``>= 0`` (a loss weight that may switch a term off)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (value >= 0 and value < float("inf")):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return float(value)


def check_interval(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """Require a real Python number in ``[low, high]`` (ends excluded where ``open_*``)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    too_low = value <= low if open_low else value < low
    too_high = value >= high if open_high else value > high
    if value != value or too_low or too_high:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(f"{name} must lie in {left}{low}, {high}{right}, got {value}")
    return float(value)


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """Require an integer size (``latent_dim``, ``n_components``, a batch size) >= ``minimum``.

    Python and NumPy integers are accepted, booleans are not.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if count < minimum:
        need = "a positive int" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{name} must be {need}, got {count}")
    return count


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Require ``value`` to be one of ``choices``."""
    if value not in choices:
        expected = ", ".join(map(repr, choices))
        raise ValueError(f"unknown {name} {value!r}; expected one of {expected}")
    return value  # type: ignore[return-value]


def _reads_host(t: Tensor) -> bool:
    """Whether a value check may read ``t`` on the host: on the CPU, outside a compiled graph."""
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def _queue_or_raise(ok: Tensor, message: str, detail: Callable[[], str] | None = None) -> None:
    """Raise ``ValueError`` now on the CPU (with ``detail()``, which may read the data);
    on accelerators and under ``torch.compile`` queue the check with the plain
    ``message``, without a host sync."""
    if _reads_host(ok):
        if not bool(ok):
            raise ValueError(message + ("" if detail is None else detail()))
    else:
        torch._assert_async(ok, message)


def check_spread_weights(name: str, w: Tensor | None, why: str) -> None:
    """Require at least two samples of positive weight (a U-statistic's pairs ``i != j``).

    One sample carrying all the weight leaves no pair with weight: the weighted
    U-statistic is undefined (its normaliser $\\sum_{i \\ne j} w_i w_j$ is 0).
    """
    if w is None:
        return
    ok = ((w.detach() > 0).sum(-1) >= 2).all()
    _queue_or_raise(
        ok,
        f"{name} puts all its weight on one sample, but {why} needs two samples "
        "of positive weight; use the biased estimator for such weights",
    )


def check_nonnegative_entries(name: str, t: Tensor) -> Tensor:
    """Require no negative entry (NaN passes: it propagates to the result instead)."""
    ok = ~(t.detach() < 0).any()
    _queue_or_raise(
        ok, f"{name} must be non-negative (distances)",
        lambda: f", got a minimum of {t.detach().min().item():.3g}",
    )
    return t


def check_positive_entries(name: str, t: Tensor) -> Tensor:
    """Require every entry positive and finite (a scale tensor)."""
    td = t.detach()
    ok = ((td > 0) & td.isfinite()).all()
    _queue_or_raise(
        ok, f"{name} must be positive and finite", lambda: f", got {td.flatten()[:4].tolist()}"
    )
    return t


def check_exponent(name: str, value: object) -> float:
    """Require an exponent (``rho``, ``p``): a finite real number ``>= 1``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value >= 1
        or math.isinf(value)
    ):
        raise ValueError(f"{name} must be a finite number >= 1, got {value!r}")
    return float(value)


def check_generator(name: str, generator: object) -> torch.Generator | None:
    """Require a ``torch.Generator`` or ``None``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} "
            f"{generator!r}; create one with torch.Generator(device).manual_seed(seed)"
        )
    return generator


def check_choice_or_callable(name: str, value: object, choices: Sequence[str]) -> object:
    """Require one of ``choices`` or a callable."""
    if callable(value):
        return value
    if value not in choices:
        expected = ", ".join(map(repr, choices))
        raise ValueError(f"unknown {name} {value!r}; expected {expected} or a callable")
    return value


def check_kernel(kernel: object) -> Kernel | Callable[[Tensor, float | Tensor], Tensor]:
    """A registered kernel name (resolved to its `otloss.ops.Kernel`), a ``Kernel``
    or a callable ``k(d2, c)``."""
    if isinstance(kernel, str):
        return get_kernel(kernel)
    if callable(kernel):
        return kernel  # type: ignore[return-value]
    raise TypeError(f"kernel must be a name, an otloss.ops.Kernel or a callable, got {kernel!r}")


def check_bandwidth(bandwidth: object) -> float | str | None:
    """A kernel's base constant: a positive number, ``None`` or ``"median"``."""
    if bandwidth is None or bandwidth == "median":
        return bandwidth  # type: ignore[return-value]
    if isinstance(bandwidth, str):
        raise ValueError(f"unknown bandwidth {bandwidth!r}; expected a number, None or 'median'")
    return check_positive("bandwidth", bandwidth)  # type: ignore[arg-type]


def check_scales(scales: object) -> tuple[float, ...]:
    """A non-empty sequence of positive numbers (a multi-scale kernel's multipliers)."""
    if isinstance(scales, (int, float)) or not isinstance(scales, Sequence) or not scales:
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales!r}")
    return tuple(check_positive("each scale", s) for s in scales)


def check_projections(projections: object, x: Tensor) -> Tensor:
    """Directions as columns, ``(D, P)`` or ``(B, D, P)`` for points ``x`` ``(..., N, D)``."""
    projections = check_floating("projections", projections)
    dim = x.shape[-1]
    batch_ok = projections.dim() == 2 or (
        projections.dim() == 3 and x.dim() == 3 and projections.shape[0] == x.shape[0]
    )
    if not batch_ok or projections.shape[-2] != dim or projections.shape[-1] == 0:
        expected = f"({dim}, P)" + (f" or ({x.shape[0]}, {dim}, P)" if x.dim() == 3 else "")
        raise ValueError(
            f"projections must have shape {expected} (directions as columns) for points of "
            f"shape {tuple(x.shape)}, got {tuple(projections.shape)}"
        )
    check_same_device_dtype(x=x, projections=projections)
    return projections


def check_prior_matches(prior: object, **expected: int) -> None:
    """Require a prior's sizes (``latent_dim=...``, ``n_components=...``) to match the model's."""
    have = {key: getattr(prior, key, None) for key in expected}
    if any(have[key] is None or int(have[key]) != value for key, value in expected.items()):
        ours = ", ".join(f"{k}={v}" for k, v in have.items())
        model = ", ".join(f"{k}={v}" for k, v in expected.items())
        raise ValueError(f"the prior has {ours} but the model {model}")


def check_module_dtype(name: str, t: Tensor, module: nn.Module) -> Tensor:
    """Require ``t`` in the floating dtype of ``module``'s parameters (when it has any).

    Under autocast mixed dtypes are what the user asked for, so nothing is checked there.
    """
    if autocast_enabled(t.device):
        return t
    ref = next((p for p in module.parameters() if p.is_floating_point()), None)
    if ref is not None and t.dtype != ref.dtype:
        raise TypeError(
            f"{name} has dtype {t.dtype} but the network's parameters are {ref.dtype}; cast the "
            f"input with .to({ref.dtype}) or the network with .to({t.dtype})"
        )
    return t


def check_sample_tuple(name: str, inputs: object) -> tuple[Tensor, ...]:
    """A tensor or a non-empty tuple of tensors, each ``(N, *)`` with one shared N >= 1."""
    members = (inputs,) if isinstance(inputs, Tensor) else inputs
    if not isinstance(members, (tuple, list)) or len(members) == 0:
        raise TypeError(
            f"{name} must be a Tensor or a non-empty tuple of Tensors, got {type(inputs).__name__}"
        )
    out = tuple(check_floating(f"{name}[{i}]", t) for i, t in enumerate(members))
    for i, t in enumerate(out):
        if t.dim() == 0:
            raise ValueError(f"{name}[{i}] must have a sample dimension (N, *), got a scalar")
    n = out[0].shape[0]
    if any(t.shape[0] != n for t in out):
        raise ValueError(
            f"the members of {name} must share the sample dimension N, got shapes "
            f"{[tuple(t.shape) for t in out]}"
        )
    if n == 0:
        raise ValueError(f"{name} has 0 samples, shapes {[tuple(t.shape) for t in out]}")
    if autocast_enabled(out[0].device):
        # Autocast mixes half and float32 members by design (float32 data, half codes);
        # the critic's loss is computed in float32 (`otloss.ops.loss_precision`).
        out = tuple(t.to(compute_dtype(t.dtype)) for t in out)
    check_same_device_dtype(**{f"{name}[{i}]": t for i, t in enumerate(out)})
    return out


def check_real_fake(
    real: object, fake: object, *, same_n: bool
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Validate a critic's (real, fake) pair of tensors or tuples of tensors."""
    r, f = check_sample_tuple("real", real), check_sample_tuple("fake", fake)
    if len(r) != len(f):
        raise ValueError(
            f"real has {len(r)} members but fake has {len(f)}; pass tensors, or tuples of "
            "the same length such as (x, z)"
        )
    for i, (a, b) in enumerate(zip(r, f, strict=True)):
        if a.shape[1:] != b.shape[1:] or (same_n and a.shape[0] != b.shape[0]):
            need = "the same shape" if same_n else "the same shape after the sample dimension"
            raise ValueError(
                f"real[{i}] and fake[{i}] must have {need}, got {tuple(a.shape)} and "
                f"{tuple(b.shape)}"
            )
    check_same_device_dtype(real=r[0], fake=f[0])
    return r, f


def check_scores(out: Tensor, n: int) -> Tensor:
    """A critic's output as ``(N,)``; accepts ``(N,)`` or ``(N, 1)``."""
    if out.dim() == 2 and out.shape[1] == 1:
        out = out.squeeze(1)
    if out.shape != (n,):
        raise ValueError(
            f"the critic must return one score per sample, shape ({n},) or ({n}, 1), got "
            f"{tuple(out.shape)}"
        )
    return out


def check_real(name: str, value: object) -> float:
    """Require a real Python number (booleans excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def check_dataset_size(dataset_size: object, batch_size: int) -> int:
    """The size N of the dataset a batch of ``batch_size`` codes is drawn from (N >= M)."""
    n = check_count("dataset_size", dataset_size)
    if n < batch_size:
        raise ValueError(
            f"dataset_size={n} is smaller than the batch size {batch_size}: the batch is drawn "
            "from the dataset, so pass the number of training points (>= the batch size)"
        )
    return n


def check_codes(
    z: object, mu: object, logvar: object, *, min_samples: int, why: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Codes of a Gaussian encoder: ``z``, ``mu``, ``logvar`` of one shape (M, L) / (B, M, L)."""
    z = check_points("z", z)
    mu = check_floating("mu", mu)
    logvar = check_floating("logvar", logvar)
    for name, t in (("mu", mu), ("logvar", logvar)):
        if t.shape != z.shape:
            raise ValueError(
                f"z, mu and logvar must have the same shape (M, L) or (B, M, L), got z "
                f"{tuple(z.shape)}, mu {tuple(mu.shape)}, logvar {tuple(logvar.shape)} "
                f"({name} differs)"
            )
    check_same_device_dtype(z=z, mu=mu, logvar=logvar)
    check_min_samples("z", z.shape[-2], min_samples, why)
    return z, mu, logvar


def check_codes_for(name: str, z: object, latent_dim: int, module: nn.Module) -> Tensor:
    """Codes ``(N, L)`` / ``(B, N, L)`` for a network on ``latent_dim`` inputs, on its device."""
    z = check_points(name, z)
    if z.shape[-1] != latent_dim:
        raise ValueError(
            f"{name} must have latent_dim={latent_dim} columns, got shape {tuple(z.shape)}"
        )
    device = next(module.parameters()).device
    if z.device != device:
        raise ValueError(f"{name} is on {z.device} but the network is on {device}")
    return z


def check_latent_codes(
    name: str,
    z: object,
    latent_dim: int,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Codes ``(..., L)`` for ``latent_dim = L``; optionally of one dtype and device."""
    z = check_floating(name, z)
    if z.dim() < 1 or z.shape[-1] != latent_dim:
        raise ValueError(
            f"{name} must have shape (..., {latent_dim}) for latent_dim={latent_dim}, "
            f"got {tuple(z.shape)}"
        )
    if dtype is not None and z.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {z.dtype} but the prior's parameters are {dtype}; pass "
            f"{name}.to({dtype}) or move the prior with .to({z.dtype})"
        )
    if device is not None and z.device != device:
        raise ValueError(f"{name} is on {z.device} but the prior is on {device}")
    return z


def check_widths(name: str, widths: Sequence[int], *, allow_empty: bool) -> tuple[int, ...]:
    """Layer widths (or channels): positive ints, at least one unless ``allow_empty``."""
    widths = tuple(widths)
    if not widths and not allow_empty:
        raise ValueError(f"{name} must name at least one layer width, got ()")
    return tuple(check_count(f"{name}[{i}]", w) for i, w in enumerate(widths))


def check_image_shape(image_size: object) -> tuple[int, int]:
    """An image size: a side length ``S`` (square) or ``(height, width)``, positive ints."""
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not isinstance(image_size, Sequence):
        raise TypeError(f"image_size must be an int or (height, width), got {image_size!r}")
    size = tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    return check_count("image_size[0]", size[0]), check_count("image_size[1]", size[1])


def check_batch_shape(name: str, t: object, expected: tuple[int, ...], what: str) -> None:
    """A network's input: a tensor of shape ``(N, *expected)``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != len(expected) + 1 or tuple(t.shape[1:]) != expected:
        raise ValueError(
            f"{name} must have shape (N, {', '.join(map(str, expected))}) ({what}), "
            f"got {tuple(t.shape)}"
        )


def check_differentiable_inputs(real: tuple[Tensor, ...], fake: tuple[Tensor, ...]) -> None:
    """A gradient penalty differentiates the critic: no inference mode, no inference tensors
    (nothing to check in a compiled graph, which cannot hold either)."""
    if torch.compiler.is_compiling():
        return
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "the gradient penalty differentiates the critic, which torch.inference_mode() "
            "forbids; compute it outside inference mode (torch.no_grad() is fine)"
        )
    for name, members in (("real", real), ("fake", fake)):
        if any(t.is_inference() for t in members):
            raise ValueError(
                f"{name} was created under torch.inference_mode(), so no gradient can flow "
                f"through its interpolates; recompute it outside inference mode or pass "
                f"{name}.clone()"
            )


def check_samples_of_shape(name: str, x: object, shape: tuple[int, ...]) -> Tensor:
    """At least one floating sample of shape ``shape``: ``(N, *shape)`` with ``N >= 1``."""
    x = check_floating(name, x)
    if tuple(x.shape[1:]) != shape or x.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (N, {', '.join(map(str, shape))}) with N >= 1 "
            f"for input_shape={shape}, got {tuple(x.shape)}"
        )
    return x


def check_square(name: str, t: object, *, min_samples: int = 1) -> Tensor:
    """Require square matrices ``(N, N)`` or batched ``(B, N, N)`` (a cost matrix per space)."""
    t = check_floating(name, t)
    if t.dim() not in (2, 3) or t.shape[-1] != t.shape[-2]:
        raise ValueError(
            f"{name} must be a square matrix of shape (N, N) or (B, N, N), got shape "
            f"{tuple(t.shape)}"
        )
    check_min_samples(name, t.shape[-1], min_samples)
    return t


def check_sign(name: str, t: Tensor, *, strict: bool, where: Tensor | None = None) -> None:
    """Require the entries of ``t`` (those selected by the boolean ``where``) to be >= 0,
    or > 0 when ``strict``; NaN entries pass (they propagate). See `_queue_or_raise`.
    """
    td = t.detach()
    bad = td <= 0 if strict else td < 0
    if where is not None:
        bad = bad & where
    need = "positive" if strict else "non-negative"
    _queue_or_raise(
        ~bad.any(),
        f"{name} must be {need}",
        lambda: f", got a minimum of {td[bad].min().item():.3g} in a tensor of shape "
        f"{tuple(t.shape)}",
    )
