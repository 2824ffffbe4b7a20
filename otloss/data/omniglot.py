"""Omniglot handwritten characters (Lake et al., 2015): the npz arrays and the official zips.

Convention: **ink is 1, background is 0**, like MNIST. The official PNGs (and the
``images_*.npz`` arrays converted from them) store ``True``/white for the background and
``False``/black for the ink; the readers invert them, so a model trained on MNIST sees
Omniglot strokes with the same polarity (the MNIST-vs-Omniglot out-of-distribution setup,
with ``image_size=28``).

Sources, looked up in ``<data root>/omniglot/``:

- ``images_background.npz`` / ``images_evaluation.npz``: ``images`` bool
  ``(characters, 20, 105, 105)`` and ``labels`` int64 ``(characters, 20)``;
- ``images_background.zip`` / ``images_evaluation.zip`` / ``images_background_small1.zip``
  / ``images_background_small2.zip`` (github.com/brendenlake/omniglot): PNGs laid out as
  ``images_<set>/<alphabet>/character<NN>/<id>_<drawer>.png``, decoded lazily per item.
"""

from __future__ import annotations

import io
import os
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from otloss._checks import check_choice
from otloss._optional import import_optional
from otloss.data.errors import CorruptDatasetError
from otloss.data.handles import ProcessLocalHandle
from otloss.data.paths import SOURCES, dataset_dir, missing_file_error
from otloss.data.transforms import check_image_size, resize_images

__all__ = ["OMNIGLOT_SPLITS", "Omniglot"]

#: Split name -> file stem (``.npz`` or ``.zip``). "train"/"test" are the background and
#: evaluation sets of the one-shot benchmark; the small background subsets exist as zips.
OMNIGLOT_SPLITS = {
    "background": "images_background",
    "evaluation": "images_evaluation",
    "train": "images_background",
    "test": "images_evaluation",
    "background_small1": "images_background_small1",
    "background_small2": "images_background_small2",
}
OMNIGLOT_SIZE = 105
_SOURCE = SOURCES["omniglot"].url


class Omniglot(Dataset):
    """Omniglot characters as ``(image, label)`` items, ink = 1.

    ``image`` is a float32 ``(1, S, S)`` tensor in [0, 1] (ink 1, background 0), ``label``
    the int64 character index within the split (0..963 for background, 0..658 for
    evaluation; for a zip, characters are numbered in sorted (alphabet, character) order,
    which matches the npz labels).

    Args:
        root: data root (holding ``omniglot/``) or the ``omniglot`` folder itself.
        split: ``"background"`` (alias ``"train"``), ``"evaluation"`` (alias ``"test"``),
            ``"background_small1"`` or ``"background_small2"`` (zip only).
        image_size: side length ``S`` (antialiased bilinear resize; 28 for the
            MNIST-vs-Omniglot out-of-distribution setup), None keeps 105.
        source: ``"npz"``, ``"zip"`` or ``"auto"`` (the npz when present, else the zip).

    Attributes:
        targets: ``(N,)`` int64 character labels.
        path: the file read.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "background",
        *,
        image_size: int | None = None,
        source: str = "auto",
    ) -> None:
        check_choice("split", split, tuple(OMNIGLOT_SPLITS))
        check_choice("source", source, ("auto", "npz", "zip"))
        self.split = split
        self.image_size = check_image_size(image_size)
        folder = dataset_dir("omniglot", root)
        stem = OMNIGLOT_SPLITS[split]
        npz, archive = folder / f"{stem}.npz", folder / f"{stem}.zip"
        if source == "auto":
            source = "npz" if npz.is_file() or not archive.is_file() else "zip"
        self.path = npz if source == "npz" else archive
        if not self.path.is_file():
            raise missing_file_error("omniglot", self.path, folder)
        self._packed: np.ndarray | None = None
        self._members: list[str] = []
        if source == "npz":
            self.targets = self._load_npz(self.path)
        else:
            self.targets = self._index_zip(self.path)
            self._zip = ProcessLocalHandle(partial(zipfile.ZipFile, self.path))

    def _load_npz(self, path: Path) -> Tensor:
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"images", "labels"} - set(data.files)
                if missing:
                    raise CorruptDatasetError(
                        path, f"missing arrays {sorted(missing)} (has {data.files})", _SOURCE
                    )
                images, labels = data["images"], data["labels"]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            if isinstance(err, CorruptDatasetError):
                raise
            raise CorruptDatasetError(path, f"not a readable npz archive ({err})", _SOURCE) from err
        if images.dtype != np.bool_ or images.ndim != 4 or images.shape[2:] != (105, 105):
            raise CorruptDatasetError(
                path,
                f"'images' must be bool (characters, drawers, 105, 105), got {images.dtype} "
                f"{images.shape}",
                _SOURCE,
            )
        if labels.shape != images.shape[:2]:
            raise CorruptDatasetError(
                path, f"'labels' has shape {labels.shape}, expected {images.shape[:2]}", _SOURCE
            )
        if labels.dtype.kind not in "iu":
            raise CorruptDatasetError(
                path,
                f"'labels' must be integer character indices, got dtype {labels.dtype}",
                _SOURCE,
            )
        if labels.size and labels.min() < 0:
            raise CorruptDatasetError(
                path, f"'labels' must be non-negative, got {labels.min()}", _SOURCE
            )
        # 1 bit per pixel (27 MB instead of 212 MB for the background set); inverting the
        # packed bytes turns white-background pixels into ink = 1 without a full-size copy.
        packed = np.packbits(images.reshape(-1, OMNIGLOT_SIZE, OMNIGLOT_SIZE), axis=-1)
        self._packed = np.invert(packed, out=packed)
        return torch.from_numpy(labels.reshape(-1).astype(np.int64))

    def _index_zip(self, path: Path) -> Tensor:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise CorruptDatasetError(path, f"not a readable zip archive ({err})", _SOURCE) from err
        pngs = sorted(tuple(name.split("/")) for name in names if name.lower().endswith(".png"))
        pngs = [parts for parts in pngs if len(parts) >= 3]
        if not pngs:
            raise CorruptDatasetError(
                path, "holds no PNG files in <alphabet>/<character>/ folders", _SOURCE
            )
        characters = sorted({parts[:-1] for parts in pngs})
        label_of = {character: k for k, character in enumerate(characters)}
        self._members = ["/".join(parts) for parts in pngs]
        return torch.tensor([label_of[parts[:-1]] for parts in pngs], dtype=torch.int64)

    def _ink_from_zip(self, index: int) -> np.ndarray:
        image_module = import_optional("PIL.Image", "reading Omniglot's zip archives")
        name = self._members[index]
        try:
            with image_module.open(io.BytesIO(self._zip.get().read(name))) as png:
                pixels = np.asarray(png.convert("L"))
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise CorruptDatasetError(self.path, f"cannot decode {name} ({err})", _SOURCE) from err
        if pixels.shape != (OMNIGLOT_SIZE, OMNIGLOT_SIZE):
            raise CorruptDatasetError(
                self.path, f"{name} is {pixels.shape}, expected (105, 105)", _SOURCE
            )
        return pixels < 128

    def __len__(self) -> int:
        return self.targets.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if self._packed is not None:
            ink = np.unpackbits(self._packed[index], axis=-1, count=OMNIGLOT_SIZE)
        else:
            ink = self._ink_from_zip(index)
        image = torch.from_numpy(ink.astype(np.float32)).unsqueeze(0)
        return resize_images(image, self.image_size), self.targets[index]
