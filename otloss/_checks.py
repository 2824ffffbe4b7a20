"""Input validation shared by every divergence.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError``
(wrong shape, device, value or size) with the offending shapes in the message. Shape,
dtype and device checks read only tensor metadata, so they never synchronise with an
accelerator. Value checks (non-negative weights) read data: on the CPU they raise
``ValueError`` at once, on accelerators they are queued with ``torch._assert_async``
so the hot path stays free of host syncs.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_choice",
    "check_count",
    "check_floating",
    "check_interval",
    "check_min_samples",
    "check_nonnegative",
    "check_pair",
    "check_points",
    "check_positive",
    "check_same_device_dtype",
    "check_sign",
    "check_square",
    "check_weights",
    "compute_dtype",
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
    """Require all given tensors to share one device and one dtype."""
    items = [(k, v) for k, v in tensors.items() if v is not None]
    if not items:
        return
    name0, t0 = items[0]
    for name, t in items[1:]:
        if t.device != t0.device:
            raise ValueError(
                f"{name} is on {t.device} but {name0} is on {t0.device}; move both to one device"
            )
        if t.dtype != t0.dtype:
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
    if x.dim() != y.dim():
        raise ValueError(
            f"{nx} and {ny} must both be (N, D) or both (B, N, D), got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{nx} and {ny} must have the same feature size D, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.dim() == 3 and x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{nx} and {ny} must have the same batch size B, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    check_same_device_dtype(**{nx: x, ny: y})
    return x, y


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
    nonneg = (wd >= 0).all()
    total_ok = ((wd.sum(-1) - 1).abs() <= atol).all() if normalized else None
    if wd.device.type == "cpu":
        if not bool(nonneg):
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


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a divergence computes in: half precisions are promoted to float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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
    or > 0 when ``strict``.

    Reads data like :func:`check_weights`: raises at once on the CPU, queued with
    ``torch._assert_async`` on accelerators. NaN entries pass (they propagate).
    """
    td = t.detach()
    bad = td <= 0 if strict else td < 0
    if where is not None:
        bad = bad & where
    need = "positive" if strict else "non-negative"
    if td.device.type == "cpu":
        if bool(bad.any()):
            raise ValueError(
                f"{name} must be {need}, got a minimum of {td[bad].min().item():.3g} "
                f"in a tensor of shape {tuple(t.shape)}"
            )
    else:
        torch._assert_async(~bad.any(), f"{name} must be {need}")
