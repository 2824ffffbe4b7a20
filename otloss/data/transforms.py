"""Image resizing shared by the readers: float images in [0, 1], channels first."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["check_image_size", "resize_images", "to_unit_float"]


def check_image_size(image_size: object) -> int | None:
    """Validate an output side length (``None`` keeps the native size)."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    return image_size


def resize_images(images: Tensor, image_size: int | None) -> Tensor:
    """Resize ``(C, H, W)`` or ``(N, C, H, W)`` float images to ``image_size`` squared.

    Bilinear interpolation (``align_corners=False``), antialiased when shrinking so thin
    strokes (Omniglot at 28 px) do not vanish. Both are convex combinations of input
    pixels, so values stay in [0, 1]. ``None`` or the current size returns the input.
    """
    if image_size is None or images.shape[-2:] == (image_size, image_size):
        return images
    batch = images if images.dim() == 4 else images.unsqueeze(0)
    shrink = image_size < batch.shape[-1] or image_size < batch.shape[-2]
    out = F.interpolate(
        batch,
        size=(image_size, image_size),
        mode="bilinear",
        align_corners=False,
        antialias=shrink,
    ).clamp_(0.0, 1.0)
    return out if images.dim() == 4 else out.squeeze(0)


def to_unit_float(images: Tensor, max_value: float = 255.0) -> Tensor:
    """Integer pixels in ``[0, max_value]`` -> float32 in [0, 1]."""
    return images.to(torch.float32).div_(max_value)
