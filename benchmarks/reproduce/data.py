"""The real datasets of the reproduction, loaded once per worker process."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor

from otloss.data import load_dataset
from otloss.data.transforms import to_unit_float

MNIST_SHAPE = (1, 28, 28)


@functools.lru_cache(maxsize=1)
def load_mnist(root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """MNIST train and test images ``(N, 1, 28, 28)`` in [0, 1] and their labels."""
    train, test = load_dataset("mnist", root, "train"), load_dataset("mnist", root, "test")
    return (
        to_unit_float(train.images).unsqueeze(1),
        train.targets,
        to_unit_float(test.images).unsqueeze(1),
        test.targets,
    )


def load_omniglot(root: Path, n: int, seed: int) -> Tensor:
    """``n`` random Omniglot evaluation-set characters at 28 px, ink = 1 like MNIST."""
    data = load_dataset("omniglot", root, "test", image_size=28)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return torch.stack([data[int(i)][0] for i in index])


def subset(x: Tensor, y: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` random rows of ``(x, y)``, the same ones for every model (fixed seed)."""
    index = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x[index], y[index]
