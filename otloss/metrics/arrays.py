"""Conversion of metric and figure inputs (numpy arrays, torch tensors, sequences) to checked
numpy arrays, shared by `otloss.metrics` and `otloss.plots`.

Metrics and figures run on the host in float64 numpy: they are evaluation code, called once
per checkpoint, so a device-to-host copy here is expected. Every check raises ``TypeError``
(not array-like, not numeric) or ``ValueError`` (shape, size, non-finite values) naming
the argument and its shape.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_codes", "as_factors", "as_labels", "as_scores", "check_same_length", "to_numpy"]


def to_numpy(name: str, a: object) -> np.ndarray:
    """A numpy view/copy of ``a`` (torch tensors are detached and moved to the CPU)."""
    if isinstance(a, torch.Tensor):
        a = a.detach()
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        return a.cpu().numpy()
    try:
        out = np.asarray(a)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a numpy array or torch tensor, got {type(a).__name__}"
        ) from err
    if out.dtype == object or not (
        np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must hold numbers, got dtype {out.dtype} with shape {out.shape}")
    return out


def _finite(name: str, a: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values (shape {a.shape})")
    return a


def as_codes(name: str, a: object, *, min_samples: int = 1, min_dims: int = 1) -> np.ndarray:
    """Representations of shape (N, L) as finite float64."""
    a = to_numpy(name, a)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, L), got shape {a.shape}")
    if a.shape[0] < min_samples:
        raise ValueError(f"{name} has {a.shape[0]} samples but this metric needs {min_samples}")
    if a.shape[1] < min_dims:
        raise ValueError(
            f"{name} has {a.shape[1]} dimensions (shape {a.shape}) but this metric needs "
            f"at least {min_dims}"
        )
    return _finite(name, a.astype(np.float64, copy=False))


def as_factors(name: str, a: object, *, min_factors: int = 1) -> np.ndarray:
    """Discrete ground-truth factors of shape (N, K) as int64; each factor must vary."""
    a = to_numpy(name, a)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, K), got shape {a.shape}")
    if a.shape[1] < min_factors:
        raise ValueError(
            f"{name} has {a.shape[1]} factors (shape {a.shape}) but this metric needs "
            f"at least {min_factors}"
        )
    a = _finite(name, a)
    rounded = np.rint(a)
    if not np.array_equal(rounded, a):
        raise ValueError(
            f"{name} must hold discrete (integer-valued) factors, got non-integer values "
            f"in shape {a.shape}; map continuous factors to their index first"
        )
    a = rounded.astype(np.int64)
    constant = [k for k in range(a.shape[1]) if a.shape[0] and (a[:, k] == a[0, k]).all()]
    if constant:
        raise ValueError(
            f"{name} factors {constant} take a single value over all {a.shape[0]} samples; "
            "a constant factor has zero entropy and no metric is defined for it"
        )
    return a


def _vector(name: str, a: object) -> np.ndarray:
    """A non-empty array of shape (N,)."""
    a = to_numpy(name, a)
    if a.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return a


def as_labels(name: str, a: object) -> np.ndarray:
    """Class or cluster labels of shape (N,) (integers, or anything numpy can compare)."""
    return _finite(name, _vector(name, a))


def as_scores(name: str, a: object) -> np.ndarray:
    """Real-valued scores of shape (N,) as finite float64."""
    return _finite(name, _vector(name, a).astype(np.float64, copy=False))


def check_same_length(**arrays: np.ndarray) -> None:
    """Require all arrays to have the same number of samples (first dimension)."""
    items = list(arrays.items())
    name0, a0 = items[0]
    for name, a in items[1:]:
        if a.shape[0] != a0.shape[0]:
            raise ValueError(
                f"{name} and {name0} must have the same number of samples, got shapes "
                f"{a.shape} and {a0.shape}"
            )
