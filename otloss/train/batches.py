"""Batches that resume exactly: `InfiniteBatches`, and cycling a user's iterable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["InfiniteBatches", "Repeat"]


class InfiniteBatches:
    """Endless, exactly resumable batches from a map-style dataset (or a tensor of samples).

    Epoch ``e`` visits the samples in ``torch.randperm`` order drawn from a
    ``torch.Generator`` seeded with ``(seed, e)`` and drops the last incomplete batch, so
    every batch has ``batch_size`` samples (estimators such as GW and unbiased MMD depend
    on the batch size). The whole state is ``(seed, epoch, position)``: saving and
    restoring it with `state_dict` / `load_state_dict` reproduces the batch
    order exactly, with or without worker processes.

    Sharded over ``world_size`` processes, every step draws one global batch of
    ``world_size * batch_size`` samples from the same order on every rank, and rank ``r``
    takes its ``r``-th block of ``batch_size``: the ranks' batches are disjoint, their
    concatenation in rank order is the batch that one process with ``batch_size *
    world_size`` would draw, and the state is the same on every rank.

    Args:
        dataset: a ``Tensor`` of samples ``(N, ...)``, a ``TensorDataset``, or any
            ``Dataset`` with ``__len__`` and ``__getitem__`` (items collated with
            ``torch.utils.data.default_collate``).
        batch_size: samples per batch of this process; ``world_size * batch_size`` at
            most ``len(dataset)``.
        seed: the data-order seed.
        num_workers: ``DataLoader`` workers fetching items (``Dataset`` only).
        rank: this process's shard, ``0 <= rank < world_size``.
        world_size: number of shards (processes).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        seed: int = 0,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        size = len(dataset)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if size < batch_size * world_size:
            shards = f" x world_size={world_size}" if world_size > 1 else ""
            raise ValueError(
                f"the dataset has {size} samples, fewer than batch_size={batch_size}{shards}; "
                "use a smaller batch"
            )
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.num_workers, self.rank, self.world_size = num_workers, rank, world_size
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order(0)
        self._batches: Iterator[Any] | None = None

    def _epoch_order(self, epoch: int) -> Tensor:
        """This rank's sample indices of one epoch, shape ``(n_batches, batch_size)``."""
        high, low = np.random.SeedSequence([self.seed, epoch]).generate_state(2)
        generator = torch.Generator().manual_seed(int(high) << 32 | int(low))
        order = torch.randperm(len(self.dataset), generator=generator)
        width = self.batch_size * self.world_size
        n_batches = len(self.dataset) // width
        order = order[: n_batches * width].view(n_batches, self.world_size, self.batch_size)
        return order[:, self.rank]

    def _fetch(self, indices: Tensor) -> Any:
        if isinstance(self.dataset, Tensor):
            return self.dataset[indices]
        if isinstance(self.dataset, TensorDataset):
            return tuple(t[indices] for t in self.dataset.tensors)
        return torch.utils.data.default_collate([self.dataset[i] for i in indices.tolist()])

    def _rest_of_epoch(self) -> Iterator[Any]:
        remaining = self._order[self.position :]
        if self.num_workers == 0 or isinstance(self.dataset, (Tensor, TensorDataset)):
            return (self._fetch(indices) for indices in remaining)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=remaining.tolist(), num_workers=self.num_workers
        )
        return iter(loader)

    def __iter__(self) -> InfiniteBatches:
        return self

    def __next__(self) -> Any:
        if self._batches is None:
            self._batches = self._rest_of_epoch()
        for batch in self._batches:
            self.position += 1
            return batch
        self.epoch, self.position = self.epoch + 1, 0
        self._order = self._epoch_order(self.epoch)
        self._batches = None
        return next(self)

    def state_dict(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "size": len(self.dataset),
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``; the dataset size, batch size and world size must be
        the same (the state is the same on every rank)."""
        stored = (state["size"], state["batch_size"], state.get("world_size", 1))
        if stored != (len(self.dataset), self.batch_size, self.world_size):
            raise ValueError(
                f"cannot resume the data order: the checkpoint was made with "
                f"{stored[0]} samples in batches of {stored[1]} on {stored[2]} "
                f"process(es), this run has {len(self.dataset)} samples in batches of "
                f"{self.batch_size} on {self.world_size}"
            )
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._order = self._epoch_order(self.epoch)
        self._batches = None


class Repeat:
    """Cycles over a user's iterable of batches (a DataLoader, a list...), epoch after epoch."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches, self._it = batches, iter(batches)

    def __next__(self) -> Any:
        for batch in self._it:
            return batch
        self._it = iter(self.batches)
        for batch in self._it:
            return batch
        raise ValueError("the batch iterable passed to Trainer.fit yielded no batches")
