r"""The bootstrap: how much a metric moves when its evaluation sample is redrawn.

A metric computed on $N$ evaluation samples (codes and factors, test codes and labels)
is itself a random quantity. `bootstrap` recomputes it on $B$ resamples of the $N$
samples drawn with replacement, **paired** across the arrays it is given (row $i$ of every
array moves together), so the spread of the returned values estimates the metric's
sampling noise, and a statistic of two models on the same evaluation sample (e.g. the
difference of their MIGs) gets the noise of the difference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from otloss._checks import check_count
from otloss.metrics.arrays import to_numpy

__all__ = ["bootstrap"]


def bootstrap(
    statistic: Callable[..., float],
    *samples: object,
    n_resamples: int = 100,
    random_state: int | np.random.Generator = 0,
) -> np.ndarray:
    r"""``statistic(*resampled)`` on ``n_resamples`` paired bootstrap resamples.

    Each resample draws $N$ row indices uniformly with replacement and applies them to
    every array of ``samples`` (all of length $N$ along their first axis). The standard
    deviation of the result estimates the statistic's standard error; its 2.5 and 97.5
    percentiles give the percentile 95 % interval. Plug-in metrics such as `mig`
    are biased upwards on duplicated samples, so the bootstrap estimates their *spread*,
    not a correction of their value.

    Args:
        statistic: a function of the arrays, returning a float.
        *samples: one or more arrays (numpy or torch) with the same first dimension N >= 2.
        n_resamples: $B$.
        random_state: seed or ``numpy.random.Generator`` of the resampling.

    Returns:
        ``(B,)`` float64 values of the statistic.
    """
    if not samples:
        raise ValueError("bootstrap needs at least one sample array")
    n_resamples = check_count("n_resamples", n_resamples, 1)
    arrays = [to_numpy(f"samples[{k}]", a) for k, a in enumerate(samples)]
    n = arrays[0].shape[0] if arrays[0].ndim else 0
    for k, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(
                f"every sample must have the same first dimension, got {arrays[0].shape} "
                f"(sample 0) and {a.shape} (sample {k})"
            )
    if n < 2:
        raise ValueError(f"bootstrap needs at least 2 samples, got {n}")
    rng = random_state if isinstance(random_state, np.random.Generator) else (
        np.random.default_rng(random_state))
    values = np.empty(n_resamples)
    for b in range(n_resamples):
        index = rng.integers(0, n, size=n)
        values[b] = float(statistic(*(a[index] for a in arrays)))
    return values
