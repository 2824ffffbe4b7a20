r"""How close a generative map is to an isometry (GWAE, Nakagawa et al., 2023, figure 1).

- `isometry_pairs`: for generated pairs $(x_n, z_n) = (\mathrm{decoder}(z_n), z_n)$,
  the distances $(\Delta z, \Delta x) = (d_Z(z_i, z_j), d_X(x_i, x_j))$ over pairs
  $i < j$: the data of figure 1b's 2-D histogram (an isometry puts them on the line
  $\Delta x = C \Delta z$). Plot it with `otloss.plots.plot_isometry`.
- `empirical_gw`: the Gromov-Wasserstein discrepancy between a data batch and a latent
  batch with the coupling optimised by POT (``ot.gromov.gromov_wasserstein2``), the
  reference curve that figure 1a draws next to the estimate $L_{GW}$; without POT,
  by `otloss.gromov_wasserstein` at a small, annealed epsilon.
"""

from __future__ import annotations

import numpy as np
import torch

from otloss._checks import check_exponent
from otloss._optional import import_optional
from otloss.gromov import gromov_wasserstein
from otloss.metrics.arrays import as_codes, to_numpy
from otloss.ops import pairwise_distances

__all__ = ["empirical_gw", "isometry_pairs"]

#: Without POT: epsilon of the entropic solver relative to the mean squared distances
#: (the scale of the square loss), annealed from that scale down.
FALLBACK_EPSILON = 1e-2


def _flat_points(name: str, a: object, *, min_samples: int = 2) -> np.ndarray:
    """``(N, *)`` samples flattened to finite float64 ``(N, D)``."""
    arr = to_numpy(name, a)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (N, *) with a feature dimension, got {arr.shape}")
    return as_codes(name, arr.reshape(arr.shape[0], -1), min_samples=min_samples)


def _distances(points: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix (exact zero diagonal) through otloss.ops, in float64."""
    return pairwise_distances(torch.from_numpy(points)).numpy()


def _as_scalar(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got bool")
    arr = to_numpy(name, value)
    if arr.size != 1:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    out = float(arr.reshape(()))
    if not 0 < out < float("inf"):
        raise ValueError(f"{name} must be positive and finite, got {out}")
    return out


def isometry_pairs(
    x: object,
    z: object,
    *,
    n_pairs: int | None = None,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Latent and data distances of generated sample pairs, for GWAE's isometry histogram.

    For paired samples $(x_n, z_n)$ (GWAE: $z_n \sim \pi(z)$,
    $x_n = \mathrm{decoder}(z_n)$), returns $\Delta z_{ij} = |z_i - z_j|$ and
    $\Delta x_{ij} = |x_i - x_j|$ (Euclidean, ``x`` flattened) for all pairs
    $i < j$, or for ``n_pairs`` of them drawn without replacement. GWAE's figure 1b
    histograms 10,000 pairs: 142 samples give 10,011 pairs.

    Args:
        x: ``(N, *)`` generated data.
        z: ``(N, L)`` the latent codes they were generated from.
        n_pairs: number of pairs to keep (``None``: all $N(N-1)/2$).
        random_state: seed for choosing the pairs.

    Returns:
        ``(dz, dx)``: two float64 arrays of shape ``(P,)``.
    """
    x = _flat_points("x", x)
    z = as_codes("z", z, min_samples=2)
    if x.shape[0] != z.shape[0]:
        raise ValueError(
            f"x and z must be paired samples with the same N, got shapes {x.shape} and {z.shape}"
        )
    rows, cols = np.triu_indices(x.shape[0], k=1)
    if n_pairs is not None:
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)):
            raise TypeError(f"n_pairs must be an int or None, got {type(n_pairs).__name__}")
        if not 1 <= n_pairs <= rows.shape[0]:
            raise ValueError(
                f"n_pairs must be in [1, {rows.shape[0]}] for {x.shape[0]} samples, got {n_pairs}"
            )
        keep = np.random.default_rng(random_state).choice(rows.shape[0], n_pairs, replace=False)
        rows, cols = rows[keep], cols[keep]
    return _distances(z)[rows, cols], _distances(x)[rows, cols]


def empirical_gw(
    x: object,
    z: object,
    *,
    scale: object = 1.0,
    rho: float = 1.0,
    x_weights: object = None,
    z_weights: object = None,
    max_iter: int = 10000,
) -> float:
    r"""Empirical Gromov-Wasserstein discrepancy between a data batch and a latent batch (POT).

    $$
    \mathrm{GW}_\rho = \sum_{i,k=1}^{N} \sum_{j,l=1}^{M}
    \bigl| d_X(x_i, x_k) - C\, d_Z(z_j, z_l) \bigr|^{\rho}\, T_{ij} T_{kl}
    $$

    at the coupling T that ``ot.gromov.gromov_wasserstein2`` (conditional gradient on the
    square loss, from the product coupling) returns for the distance matrices
    $d_X$ and $C d_Z$ and the sample weights. Without POT the coupling is
    otloss's entropic solution (`otloss.gromov_wasserstein`, square loss) at
    $\varepsilon$ = ``FALLBACK_EPSILON`` times the mean squared distances,
    annealed from that scale: an approximation of a local optimum (not necessarily the one
    POT reaches) whose value is slightly biased upwards by the entropy. For ``rho=2`` this
    is POT's value itself; for other ``rho`` (GWAE uses $\rho = 1$) the same coupling is
    scored with $|\cdot|^\rho$ over its support. POT's solver finds a local optimum of a
    non-convex problem, so the value is an upper bound on the exact discrepancy; it sums
    over all pairs, diagonal included, while $L_{GW}$ averages pairs $i \ne j$
    under the generative coupling, which is why GWAE's estimate sits slightly above it.

    Args:
        x: ``(N, *)`` data samples (flattened; Euclidean distances).
        z: ``(M, L)`` latent samples (e.g. from the prior or the encoder).
        scale: $C > 0$, a float or a scalar tensor (``GWEstimator.scale``).
        rho: exponent $\rho \ge 1$.
        x_weights: optional ``(N,)`` weights summing to 1 (uniform by default).
        z_weights: optional ``(M,)`` weights summing to 1 (uniform by default).
        max_iter: POT's iteration limit (the fallback solver keeps its own defaults).

    Returns:
        The discrepancy $\mathrm{GW}_\rho$ (not its $1/\rho$ power).
    """
    x = _flat_points("x", x)
    z = as_codes("z", z, min_samples=2)
    scale = _as_scalar("scale", scale)
    rho = check_exponent("rho", rho)
    p = _weights("x_weights", x_weights, x.shape[0])
    q = _weights("z_weights", z_weights, z.shape[0])
    dx, dz = _distances(x), scale * _distances(z)
    value, plan = _square_loss_coupling(dx, dz, p, q, max_iter)
    if rho == 2:
        return value
    i, j = np.nonzero(plan > 0)
    w = plan[i, j]
    total = 0.0
    chunk = max(1, 2**22 // max(1, w.shape[0]))
    for start in range(0, w.shape[0], chunk):
        a = slice(start, start + chunk)
        residual = np.abs(dx[i[a]][:, i] - dz[j[a]][:, j]) ** rho
        total += float(w[a] @ residual @ w)
    return total


def _square_loss_coupling(
    dx: np.ndarray, dz: np.ndarray, p: np.ndarray, q: np.ndarray, max_iter: int
) -> tuple[float, np.ndarray]:
    """GW value (square loss) and coupling: POT's conditional gradient, else otloss's solver."""
    try:
        ot = import_optional("ot", "otloss.metrics.empirical_gw")
    except ImportError:
        scale = float((p @ dx**2 @ p + q @ dz**2 @ q) / 2)
        if scale == 0:  # both spaces are single points
            return 0.0, np.outer(p, q)
        value, plan = gromov_wasserstein(
            *(torch.from_numpy(v) for v in (dx, dz, p, q)),
            epsilon=FALLBACK_EPSILON * scale,
            epsilon_start=scale,
            symmetric=True,
            return_plan=True,
        )
        return float(value), plan.numpy()
    value, log = ot.gromov.gromov_wasserstein2(
        dx, dz, p, q, loss_fun="square_loss", log=True, max_iter=max_iter
    )
    return float(value), np.asarray(log["T"])


def _weights(name: str, w: object, n: int) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    w = to_numpy(name, w).astype(np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any() or abs(w.sum() - 1) > 1e-6:
        raise ValueError(f"{name} must be finite, non-negative and sum to 1, got sum {w.sum():.6g}")
    return w
