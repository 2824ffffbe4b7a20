"""One entry point for every dataset: `load_dataset`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from otloss.data.celeba import CelebA
from otloss.data.digits import Digits
from otloss.data.dsprites import DSprites
from otloss.data.idx import MNIST, FashionMNIST
from otloss.data.omniglot import Omniglot
from otloss.data.shapes3d import Shapes3D
from otloss.data.sprites import Sprites

__all__ = ["DATASETS", "load_dataset"]

Root = str | os.PathLike[str] | None


def _on_disk(cls: type[Dataset]) -> Callable[..., Dataset]:
    def build(root: Root, split: str, image_size: int | None, **kwargs: Any) -> Dataset:
        if image_size is not None:
            kwargs["image_size"] = image_size
        return cls(root, split, **kwargs)

    return build


def _procedural(cls: type[Dataset]) -> Callable[..., Dataset]:
    def build(root: Root, split: str, image_size: int | None, **kwargs: Any) -> Dataset:
        if image_size is not None:
            kwargs["image_size"] = image_size
        return cls(split, **kwargs)

    return build


#: Dataset name -> builder ``(root, split, image_size, **kwargs) -> Dataset``.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _procedural(Digits),
    "mnist": _on_disk(MNIST),
    "fashion-mnist": _on_disk(FashionMNIST),
    "omniglot": _on_disk(Omniglot),
    "celeba": _on_disk(CelebA),
    "3dshapes": _on_disk(Shapes3D),
    "dsprites": _on_disk(DSprites),
    "sprites": _procedural(Sprites),
}
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "shapes3d": "3dshapes",
    "3d-shapes": "3dshapes",
    "3d_shapes": "3dshapes",
}


def load_dataset(
    name: str,
    root: Root = None,
    split: str = "train",
    image_size: int | None = None,
    **kwargs: Any,
) -> Dataset:
    """Load a dataset by name; every item is ``(image, target)``.

    ``image`` is a float32 ``(C, S, S)`` tensor in [0, 1]; ``target`` an int64 label
    (digits, MNIST, Fashion-MNIST, Omniglot) or an int64 vector of factors (CelebA's 40
    attributes, 3D Shapes', dSprites' and sprites' factor indices).

    Args:
        name: ``"digits"`` (embedded, no files), ``"mnist"``, ``"fashion-mnist"``,
            ``"omniglot"``, ``"celeba"``, ``"3dshapes"``, ``"dsprites"`` or ``"sprites"``
            (procedural, no files). Case-insensitive.
        root: data root; None uses ``$OTLOSS_DATA``, else ``~/.otloss/data``
            (`otloss.data.data_root`). Ignored by digits and sprites.
        split: ``"train"`` or ``"test"`` (CelebA also ``"valid"``; Omniglot's train/test
            are its background/evaluation sets; 3D Shapes, dSprites and sprites have a
            single split, ``"train"`` or ``"all"``).
        image_size: output side length; None keeps each dataset's default (digits 28,
            MNIST 28, Omniglot 105, CelebA 64, 3D Shapes 64, dSprites 64, sprites 64).
        **kwargs: passed to the dataset class (e.g. ``source="zip"`` for Omniglot,
            ``antialias=True`` for sprites).

    Returns:
        A ``torch.utils.data.Dataset``.

    Raises:
        ValueError: unknown name or split.
        DatasetNotFoundError: files missing; the message says where to get them and
            where to put them, and how to use the embedded digits instead.
        CorruptDatasetError: a file is truncated or not in the release format.

    Examples:
        >>> from otloss.data import load_dataset
        >>> train = load_dataset("digits", image_size=32)
        >>> image, label = train[0]
        >>> tuple(image.shape), image.dtype
        ((1, 32, 32), torch.float32)
    """
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; expected one of {', '.join(map(repr, DATASETS))}"
        )
    return DATASETS[key](root, split, image_size, **kwargs)
