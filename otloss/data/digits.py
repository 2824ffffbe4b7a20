"""The embedded default dataset: scikit-learn's bundled handwritten digits.

``sklearn.datasets.load_digits`` ships 1797 grey 8 x 8 digits (values 0..16, UCI optical
recognition set) inside the scikit-learn package, so the examples and tests train
without downloading anything. Images are scaled to [0, 1] and upsampled by bilinear
interpolation to the size the models expect (28 by default, like MNIST).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from otloss._checks import check_choice
from otloss._optional import import_optional
from otloss.data.transforms import check_image_size, resize_images

__all__ = ["DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "Digits"]

#: Seed of the fixed permutation that splits the 1797 digits into train and test.
DIGITS_SPLIT_SEED = 0
#: Fraction of the digits held out as the test split (359 images; 1438 train).
DIGITS_TEST_FRACTION = 0.2
_MAX_VALUE = 16.0


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    datasets = import_optional("sklearn.datasets", "the embedded digits (otloss.data.Digits)")
    bunch = datasets.load_digits()
    return bunch.images, bunch.target


class Digits(Dataset):
    """scikit-learn's 8 x 8 digits, upsampled, as ``(image, label)`` items.

    ``image`` is a float32 ``(1, S, S)`` tensor in [0, 1] (ink is 1, as in MNIST),
    ``label`` an int64 scalar in 0..9. The split is a fixed permutation
    (seed `DIGITS_SPLIT_SEED`), identical on every machine: 1438 train and
    359 test images. The whole split is kept as one float tensor (`images`).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        image_size: side length ``S`` (default 28; 8 keeps the native digits).

    Examples:
        >>> from otloss.data import Digits
        >>> image, label = Digits("train", image_size=32)[0]
        >>> tuple(image.shape)
        (1, 32, 32)
    """

    classes: tuple[str, ...] = tuple(str(d) for d in range(10))

    def __init__(self, split: str = "train", *, image_size: int | None = 28) -> None:
        check_choice("split", split, ("train", "test", "all"))
        self.split = split
        self.image_size = check_image_size(image_size) or 8
        pixels, labels = _load_digits()
        order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
        n_test = round(DIGITS_TEST_FRACTION * len(labels))
        chosen = {"train": order[n_test:], "test": order[:n_test], "all": np.arange(len(labels))}
        keep = np.sort(chosen[split])
        images = torch.from_numpy(pixels[keep].astype(np.float32) / _MAX_VALUE).unsqueeze(1)
        self.images = resize_images(images, self.image_size)
        self.targets = torch.from_numpy(labels[keep].astype(np.int64))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.targets[index]
