"""CelebA (Liu et al., 2015) from its release layout, with the official splits and attributes.

Expected in ``<data root>/celeba/`` (the files of the "Align&Cropped Images" release;
``list_eval_partition.txt`` may also sit in ``Eval/`` and ``list_attr_celeba.txt`` in
``Anno/`` as in the download)::

    img_align_celeba/000001.jpg ... 202599.jpg   (178 x 218 RGB; unzip img_align_celeba.zip)
    list_eval_partition.txt                      "000001.jpg 0" (0 train, 1 valid, 2 test)
    list_attr_celeba.txt                         count, 40 attribute names, "000001.jpg -1 1 ..."

Each image is centre-cropped to 144 x 144 and resized to 64 x 64 (the preprocessing of
the WAE/GWAE experiments); the 40 binary attributes are the factors, mapped from
{-1, 1} to {0, 1}. Images are decoded lazily, one JPEG per item.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from otloss._checks import check_choice
from otloss._optional import import_optional
from otloss.data.errors import CorruptDatasetError
from otloss.data.paths import SOURCES, dataset_dir, missing_file_error
from otloss.data.transforms import check_image_size

__all__ = ["CELEBA_SPLITS", "CelebA"]

#: Split name -> partition code of list_eval_partition.txt (None: every image).
CELEBA_SPLITS: dict[str, int | None] = {
    "train": 0,
    "valid": 1,
    "val": 1,
    "test": 2,
    "all": None,
}
CELEBA_NUM_ATTRIBUTES = 40
_SOURCE = SOURCES["celeba"].url


def _find_text(folder: Path, name: str, subfolder: str) -> Path:
    for candidate in (folder / name, folder / subfolder / name):
        if candidate.is_file():
            return candidate
    raise missing_file_error("celeba", folder / name, folder)


def _read_lines(path: Path) -> list[str]:
    """The lines of a release text file (ASCII in the release; UTF-8 accepted)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise CorruptDatasetError(
            path, f"is not a text file in UTF-8 (byte {err.start}: {err.reason})", _SOURCE
        ) from err


def _is_plain_file_name(name: str) -> bool:
    """Whether ``name`` names a file inside the image folder (no folders, no ``..``)."""
    return name not in (".", "..") and "/" not in name and "\\" not in name


def _read_partition(path: Path) -> dict[str, int]:
    partition: dict[str, int] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise CorruptDatasetError(
                path, f"line {number} is {line!r}, expected '<file>.jpg <0|1|2>'", _SOURCE
            )
        if not _is_plain_file_name(fields[0]):
            raise CorruptDatasetError(
                path,
                f"line {number} names {fields[0]!r}, which is not a file name inside "
                "img_align_celeba/ (no folders or '..' allowed)",
                _SOURCE,
            )
        partition[fields[0]] = int(fields[1])
    if not partition:
        raise CorruptDatasetError(path, "holds no entries", _SOURCE)
    return partition


def _read_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    lines = [line for line in _read_lines(path) if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise CorruptDatasetError(
            path, "expected an image count on line 1 and attribute names on line 2", _SOURCE
        )
    names = tuple(lines[1].split())
    if len(names) != CELEBA_NUM_ATTRIBUTES:
        raise CorruptDatasetError(
            path, f"line 2 names {len(names)} attributes, expected {CELEBA_NUM_ATTRIBUTES}", _SOURCE
        )
    count = int(lines[0])
    if count != len(lines) - 2:
        raise CorruptDatasetError(
            path, f"line 1 announces {count} images but {len(lines) - 2} rows follow", _SOURCE
        )
    attributes: dict[str, np.ndarray] = {}
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        values = fields[1:]
        if len(values) != CELEBA_NUM_ATTRIBUTES or any(v not in ("1", "-1") for v in values):
            raise CorruptDatasetError(
                path,
                f"line {number} must be a file name and {CELEBA_NUM_ATTRIBUTES} values in "
                f"{{-1, 1}}, got {line[:80]!r}",
                _SOURCE,
            )
        attributes[fields[0]] = np.array([v == "1" for v in values], dtype=np.int64)
    return names, attributes


class CelebA(Dataset):
    """Aligned CelebA faces as ``(image, attributes)`` items.

    ``image`` is a float32 ``(3, S, S)`` tensor in [0, 1]: the centre ``crop`` x ``crop``
    square of the 178 x 218 aligned image, resized to ``S`` = ``image_size`` with Pillow's
    antialiased bilinear filter. ``attributes`` is an int64 ``(40,)`` tensor of {0, 1}
    (the release's -1 becomes 0), in the order of `attribute_names`.

    Args:
        root: data root (holding ``celeba/``) or the ``celeba`` folder itself.
        split: ``"train"`` (162770 images), ``"valid"`` (19867), ``"test"`` (19962) or
            ``"all"``, from ``list_eval_partition.txt``.
        image_size: output side length (default 64).
        crop: side of the centre crop (default 144).

    Attributes:
        filenames: the JPEG names of the split.
        attributes: ``(N, 40)`` int64 {0, 1} tensor.
        attribute_names: the 40 names from ``list_attr_celeba.txt``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        *,
        image_size: int = 64,
        crop: int = 144,
    ) -> None:
        check_choice("split", split, tuple(CELEBA_SPLITS))
        self.split = split
        self.image_size = check_image_size(image_size) or 64
        self.crop = check_image_size(crop) or 144
        folder = dataset_dir("celeba", root)
        self.image_dir = folder / "img_align_celeba"
        if not self.image_dir.is_dir():
            raise missing_file_error("celeba", self.image_dir, folder)
        partition_path = _find_text(folder, "list_eval_partition.txt", "Eval")
        attribute_path = _find_text(folder, "list_attr_celeba.txt", "Anno")
        partition = _read_partition(partition_path)
        self.attribute_names, attributes = _read_attributes(attribute_path)
        unlabelled = sorted(set(partition) - set(attributes))
        if unlabelled:
            raise CorruptDatasetError(
                attribute_path,
                f"has no row for {len(unlabelled)} images of {partition_path.name}, e.g. "
                f"{unlabelled[0]}",
                _SOURCE,
            )
        code = CELEBA_SPLITS[split]
        self.filenames = [name for name, c in partition.items() if code is None or c == code]
        rows = [attributes[name] for name in self.filenames]
        self.attributes = torch.from_numpy(
            np.stack(rows) if rows else np.zeros((0, CELEBA_NUM_ATTRIBUTES), np.int64)
        )

    def __len__(self) -> int:
        return len(self.filenames)

    def load_image(self, index: int) -> Tensor:
        """Decode, crop and resize image ``index`` to a ``(3, S, S)`` float tensor."""
        image_module = import_optional("PIL.Image", "reading CelebA")
        path = self.image_dir / self.filenames[index]
        if not path.is_file():
            raise missing_file_error("celeba", path, self.image_dir.parent)
        try:
            with image_module.open(path) as jpeg:
                rgb = jpeg.convert("RGB")
        except image_module.DecompressionBombError as err:
            raise CorruptDatasetError(
                path, f"is far larger than a CelebA image, refused as a decompression bomb ({err})",
                _SOURCE,
            ) from err
        except OSError as err:
            raise CorruptDatasetError(path, f"cannot decode the image ({err})", _SOURCE) from err
        width, height = rgb.size
        if min(width, height) < self.crop:
            raise CorruptDatasetError(
                path, f"is {width} x {height}, smaller than the {self.crop}-pixel crop", _SOURCE
            )
        left, top = (width - self.crop) // 2, (height - self.crop) // 2
        face = rgb.crop((left, top, left + self.crop, top + self.crop))
        face = face.resize((self.image_size, self.image_size), image_module.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(face, dtype=np.uint8).copy())
        return pixels.permute(2, 0, 1).to(torch.float32).div_(255.0)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.load_image(index), self.attributes[index]
