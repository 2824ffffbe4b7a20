"""Data-parallel runs of `otloss.train.Trainer`: the process group, DDP around the losses.

A run is distributed when ``torch.distributed`` is already initialised with more than one
process, or when the launcher (``torchrun``) set ``WORLD_SIZE`` > 1; then the Trainer
initialises the process group itself from the launcher's environment (``env://``): NCCL
when the run's device is CUDA (process ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK``), gloo on
the CPU.

DistributedDataParallel averages gradients in hooks that its own ``forward`` arms, and
otloss models train through ``losses(x)`` and ``critic_losses(x)``, not ``forward``. So
each of the two is wrapped in a `LossForward` module whose ``forward`` calls it, and that
module in its own DDP, which ignores the other optimiser's parameters: a generator step
all-reduces the generator's gradients only, a critic step the critic's. The model's
buffers are broadcast from rank 0 at every forward (DDP's default).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from otloss.distributed import rank, world_size

__all__ = [
    "LossForward",
    "all_gather_objects",
    "barrier",
    "init_from_environment",
    "launched",
    "mean_over_ranks",
    "planned_world_size",
    "rank",
    "rank_seed",
    "run_device",
    "world_size",
    "wrap_losses",
]


def planned_world_size() -> int:
    """Processes of the run this process belongs to: the initialised process group's, else
    the launcher's ``WORLD_SIZE`` (1 when there is neither)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether this process belongs to a multi-process run (`planned_world_size` > 1)."""
    return planned_world_size() > 1


def run_device(device: torch.device) -> torch.device:
    """The device of this process: an index-less ``cuda`` becomes ``cuda:LOCAL_RANK`` in a
    multi-process run, so that the processes of one machine use one GPU each."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_environment(device: torch.device) -> None:
    """Initialise the default process group from the launcher's environment, unless it is
    initialised already: NCCL for a CUDA ``device`` (made the current device), else gloo."""
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


class LossForward(nn.Module):
    """``forward(x)`` is ``model.<method>(x)``: the call DDP needs to synchronise a loss's
    gradients (``method`` is ``"losses"`` or ``"critic_losses"``)."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return getattr(self.model, self.method)(x)


def wrap_losses(
    model: nn.Module, method: str, ignored: Iterable[nn.Parameter], device: torch.device
) -> DistributedDataParallel:
    """DDP around ``LossForward(model, method)`` that leaves the ``ignored`` parameters
    (the other optimiser's) out of its gradient averaging.

    ``static_graph``: the loss reaches the same parameters at every step, which DDP
    records at the first one, so a loss need not reach every parameter it may train (a
    prior that only one term uses) and no graph is searched at later steps.
    """
    module = LossForward(model, method)
    ignored_ids = {id(p) for p in ignored}
    names = [f"model.{name}" for name, p in model.named_parameters() if id(p) in ignored_ids]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
    return DistributedDataParallel(
        module,
        device_ids=[device] if device.type == "cuda" else None,
        static_graph=True,
    )


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (every rank passes the same names in order)."""
    if not values or world_size() == 1:
        return values
    total = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return dict(zip(values, (total / world_size()).tolist(), strict=True))


def all_gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order (``[value]`` in a single process)."""
    if world_size() == 1:
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def barrier() -> None:
    """Wait for every rank (nothing in a single process)."""
    if world_size() > 1:
        dist.barrier()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random generators: ``seed`` itself on rank 0 (so a
    single process seeds as it always did), a distinct one on every other rank (so the
    ranks draw different noise)."""
    if rank == 0:
        return seed
    high, low = np.random.SeedSequence([seed, rank]).generate_state(2)
    return int(high) << 31 | int(low) >> 1
