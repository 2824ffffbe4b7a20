"""Training a model with the paper's optimiser settings, and evaluating it in chunks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.reproduce.budget import Context
from otloss.models.base import squared_error
from otloss.train import Trainer


def log(message: str) -> None:
    print(message, flush=True)


def train(
    model: nn.Module,
    data: Tensor,
    steps: int,
    name: str,
    ctx: Context,
    *,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int | None = None,
    **config: Any,
) -> None:
    """Train ``model`` for ``steps`` generator steps with the paper's optimiser settings
    (``model.training_defaults``, overridden by ``config``), then put it in eval mode."""
    settings = {**getattr(model, "training_defaults", {}), **config}
    settings["batch_size"] = min(settings.get("batch_size", 64), data.shape[0])
    trainer = Trainer(
        model,
        out_dir=ctx.work / name,
        overwrite=True,
        progress=False,
        tensorboard=False,
        device="cpu",
        seed=ctx.seed,
        log_every=log_every or max(1, steps // 5),
        checkpoint_every=steps,
        on_log=on_log,
        **settings,
    )
    started = time.perf_counter()
    trainer.fit(data, max_steps=steps)
    model.eval()
    log(f"  {name}: {steps} steps in {time.perf_counter() - started:.0f} s")


@torch.no_grad()
def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 500) -> Tensor:
    """``fn`` over ``x`` in chunks (evaluation, no graph), concatenated."""
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def mean_squared_error(x: Tensor, x_hat: Tensor) -> float:
    """Mean over images of :math:`\\lVert x - \\hat x\\rVert_2^2` (SWAE's Table 3)."""
    return float(squared_error(x, x_hat).mean())
