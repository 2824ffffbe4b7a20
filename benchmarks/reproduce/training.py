"""Training a model with the paper's optimiser settings, its learning curve, and evaluating
it in chunks."""

from __future__ import annotations

import dataclasses
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


#: Evaluations of a learning curve after step 0 (the curve has one more point).
CURVE_POINTS = 8


@dataclasses.dataclass
class Curve:
    """A learning curve: the metric after each of ``steps``, and the training's wall time
    (the evaluations excluded)."""

    steps: list[int] = dataclasses.field(default_factory=list)
    values: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def points(self) -> tuple[list[int], list[float]]:
        """``(steps, values)``, as `otloss.plots.plot_learning_curves` takes them."""
        return self.steps, self.values


def evaluated(model: nn.Module, evaluate: Callable[[], float]) -> float:
    """``evaluate()`` on ``model`` in eval mode, without a graph, leaving the random
    generators and the training mode as they were (so a curve does not change the run)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng():
            return float(evaluate())
    finally:
        model.train(was_training)


def train(
    model: nn.Module,
    data: Tensor,
    steps: int,
    name: str,
    ctx: Context,
    *,
    evaluate: Callable[[], float] | None = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int | None = None,
    **config: Any,
) -> Curve:
    """Train ``model`` for ``steps`` generator steps with the paper's optimiser settings
    (``model.training_defaults``, overridden by ``config``), then put it in eval mode.

    With ``evaluate`` (a metric of the current model), the learning curve: the metric
    before training and after every ``steps / CURVE_POINTS`` steps (`evaluated`: the run
    itself is the same as without it); otherwise an empty curve. Either way the curve's
    ``seconds`` is the training time."""
    curve = Curve()
    evaluating = 0.0

    def record(step: int, metrics: dict[str, float]) -> None:
        nonlocal evaluating
        if evaluate is not None:
            t0 = time.perf_counter()
            curve.steps.append(step)
            curve.values.append(evaluated(model, evaluate))
            evaluating += time.perf_counter() - t0
        if on_log is not None:
            on_log(step, metrics)

    if evaluate is not None:
        record(0, {})
        evaluating = 0.0
        log_every = log_every or max(1, steps // CURVE_POINTS)
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
        on_log=record,
        **settings,
    )
    started = time.perf_counter()
    trainer.fit(data, max_steps=steps)
    model.eval()
    curve.seconds = time.perf_counter() - started - evaluating
    log(f"  {name}: {steps} steps in {curve.seconds:.0f} s (+ {evaluating:.0f} s evaluating)")
    return curve


@torch.no_grad()
def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 500) -> Tensor:
    """``fn`` over ``x`` in chunks (evaluation, no graph), concatenated."""
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def mean_squared_error(x: Tensor, x_hat: Tensor) -> float:
    """Mean over images of :math:`\\lVert x - \\hat x\\rVert_2^2` (SWAE's Table 3)."""
    return float(squared_error(x, x_hat).mean())
