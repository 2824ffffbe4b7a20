r"""Reconstruction quality: peak signal-to-noise ratio, per image then averaged."""

from __future__ import annotations

import numpy as np

from otloss.metrics.arrays import to_numpy

__all__ = ["psnr"]


def psnr(x: object, x_hat: object, data_range: float = 1.0) -> float:
    r"""Mean over images of the peak signal-to-noise ratio, in decibels.

    $$
    \mathrm{PSNR} = \frac{1}{N} \sum_{n=1}^{N} 10 \log_{10}
    \frac{R^2}{\mathrm{MSE}_n}, \qquad
    \mathrm{MSE}_n = \frac{1}{D} \sum_{d=1}^{D} (x_{nd} - \hat x_{nd})^2
    $$

    with $R$ = ``data_range`` (1 for images in [0, 1], 255 for 8-bit images) and D
    the number of values per image. The PSNR is computed **per image, then averaged**, as in
    the autoencoder papers' tables. torchmetrics' ``PeakSignalNoiseRatio`` instead pools the
    squared error over the whole batch by default (its ``dim=None`` reduces over all
    dimensions at once), which gives $10 \log_{10} (R^2 / \overline{\mathrm{MSE}})$:
    never larger (Jensen), and smaller whenever the per-image errors differ. Pass
    ``dim=(1, 2, 3)`` to torchmetrics to get the per-image mean used here.

    An exactly reconstructed image has infinite PSNR, and so has the mean.

    Args:
        x: ``(N, *)`` reference images (numpy or torch; any trailing shape).
        x_hat: ``(N, *)`` reconstructions, same shape.
        data_range: $R$, the span of valid pixel values.

    Returns:
        Mean PSNR in dB.
    """
    x = to_numpy("x", x).astype(np.float64, copy=False)
    x_hat = to_numpy("x_hat", x_hat).astype(np.float64, copy=False)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise ValueError(f"x must be a non-empty batch of images of shape (N, *), got {x.shape}")
    if not (np.isfinite(x).all() and np.isfinite(x_hat).all()):
        raise ValueError("x and x_hat must be finite")
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)):
        raise TypeError(f"data_range must be a number, got {type(data_range).__name__}")
    if not 0 < data_range < float("inf"):
        raise ValueError(f"data_range must be positive and finite, got {data_range}")
    mse = ((x - x_hat) ** 2).reshape(x.shape[0], -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        per_image = 10.0 * np.log10(float(data_range) ** 2 / mse)
    return float(per_image.mean())
