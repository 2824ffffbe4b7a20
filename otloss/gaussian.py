r"""Diagonal Gaussian densities and entropies, shared by the encoders' regularisers.

The closed forms of $\mathcal N(\mu, \operatorname{diag} e^{\log\sigma^2})$ that the
divergences and models use: the element-wise log-density (the total-correlation
estimators' building block) and the differential entropy (GWAE's $R_H$). Both are
computed from ``logvar`` directly, so tiny variances stay finite.
"""

from __future__ import annotations

import torch
from torch import Tensor

from otloss._checks import check_floating
from otloss.ops import LOG_2PI, full_precision

__all__ = ["gaussian_entropy", "gaussian_log_density"]


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    r"""Element-wise log-density of $\mathcal N(\mu, e^{\log\sigma^2})$.

    $$
    \log \mathcal N(z; \mu, \sigma^2) = -\tfrac12 \bigl(\log 2\pi + \log\sigma^2
        + (z - \mu)^2 e^{-\log\sigma^2}\bigr)
    $$

    computed from ``logvar`` directly (no ``exp`` then ``log``), so tiny variances stay finite.

    Args:
        z: the points, a floating tensor broadcastable with ``mu`` and ``logvar``.
        mu: the means.
        logvar: the log-variances.

    Returns:
        Tensor of the broadcast shape: one log-density per coordinate (sum the last
        dimension for a diagonal Gaussian).
    """
    scaled = (z - mu) * torch.exp(-0.5 * logvar)
    return -0.5 * (LOG_2PI + logvar + scaled * scaled)


def gaussian_entropy(logvar: Tensor) -> Tensor:
    r"""Differential entropy of $\mathcal N(\mu, \operatorname{diag} e^{\log\sigma^2})$.

    $$
    H = \tfrac12 \sum_{d=1}^{L} \bigl(1 + \log 2\pi + \log\sigma^2_d\bigr)
    $$

    (GWAE's entropy regulariser $R_H$, averaged over the batch by the caller). Exact,
    no sampling.

    Args:
        logvar: ``(..., L)`` log-variances, on any device (``meta`` included).

    Returns:
        ``(...)``, e.g. ``(N,)`` for ``(N, L)``. Half precision is computed in float32 and
        cast back.

    Examples:
        >>> gaussian_entropy(torch.zeros(8, 4))   # 4 * 0.5 * (1 + log 2 pi) each
    """
    logvar = check_floating("logvar", logvar)
    if logvar.dim() < 1 or logvar.shape[-1] == 0:
        raise ValueError(f"logvar must have shape (..., L) with L >= 1, got {tuple(logvar.shape)}")
    with full_precision(logvar) as precision:
        lv = logvar.to(precision.compute)
        h = 0.5 * (lv.shape[-1] * (1.0 + LOG_2PI) + lv.sum(-1))
    return h.to(precision.result)
