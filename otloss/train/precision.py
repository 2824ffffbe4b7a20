"""Mixed precision of a run: autocast around the loss computation, a gradient scaler for fp16.

``"fp32"`` computes as the model is; ``"bf16"`` and ``"fp16"`` run each ``losses(x)`` /
``critic_losses(x)`` under ``torch.autocast`` on the run's device (CPU or CUDA), with the
backward pass and the optimiser step outside it. ``"fp16"`` also scales every loss by a
``torch.amp.GradScaler`` (one per optimiser): a step whose scaled gradients overflow is
skipped and the scale lowered, which is how fp16 training normally proceeds, not an
error. A loss term that is itself NaN or infinite still stops the run
(`otloss.train.NonFiniteLossError`): the scaler only guards the gradients.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "autocast", "make_scaler"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a loss is computed in: ``torch.autocast`` for bf16/fp16, else nothing."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (a disabled one passes losses and steps
    through unchanged)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
