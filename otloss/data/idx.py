"""MNIST and Fashion-MNIST from their IDX release files (gzip-compressed or raw).

IDX is a big-endian format: a 4-byte magic number (two zero bytes, a type code, the
number of dimensions), one 4-byte size per dimension, then the data. Images have magic
2051 (unsigned bytes, 3 dimensions ``(N, 28, 28)``), labels 2049 (``(N,)``). Every file
is checked against its header: a wrong magic number, a truncated body or trailing bytes
raise `CorruptDatasetError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from otloss._checks import check_choice
from otloss.data.errors import CorruptDatasetError
from otloss.data.paths import SOURCES, dataset_dir, missing_file_error
from otloss.data.transforms import check_image_size, resize_images, to_unit_float

__all__ = ["IDX_IMAGE_MAGIC", "IDX_LABEL_MAGIC", "MNIST", "FashionMNIST", "read_idx"]

#: Magic number of an IDX file of unsigned-byte images ``(N, rows, cols)``.
IDX_IMAGE_MAGIC = 2051
#: Magic number of an IDX file of unsigned-byte labels ``(N,)``.
IDX_LABEL_MAGIC = 2049
_GZIP_SIGNATURE = b"\x1f\x8b"
#: Deflate expands a stream at most about 1032-fold (RFC 1951: a 258-byte match coded in as
#: few as 2 bits), so a gzip file of n bytes holds at most this times n bytes of data; a header
#: declaring more proves the file truncated before anything is decompressed.
_MAX_DEFLATE_RATIO = 1032
_FILE_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | os.PathLike[str], magic: int, *, source: str | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzip-compressed or raw.

    The file is streamed: the magic number and the declared shape are checked before the
    body is read, and no more than the declared body is ever decompressed, so a damaged or
    hostile gzip file cannot expand into memory beyond what its header announces.

    Args:
        path: the file (compression is detected from its content, not its name).
        magic: the expected magic number, `IDX_IMAGE_MAGIC` (2051) or
            `IDX_LABEL_MAGIC` (2049).
        source: where to download a good copy, quoted in errors.

    Returns:
        A read-only uint8 array of the shape stored in the header.

    Raises:
        CorruptDatasetError: wrong magic number, truncated header or body, trailing bytes,
            a declared size the file cannot hold, or a damaged gzip stream.
    """
    path = Path(path)
    kind = {IDX_IMAGE_MAGIC: "images", IDX_LABEL_MAGIC: "labels"}.get(magic, "data")
    size = path.stat().st_size
    with path.open("rb") as probe:
        compressed = probe.read(len(_GZIP_SIGNATURE)) == _GZIP_SIGNATURE
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as stream:
            head = stream.read(4)
            if len(head) < 4:
                raise CorruptDatasetError(
                    path, f"{len(head)} bytes, too short for the 4-byte IDX magic number", source
                )
            found = int.from_bytes(head, "big")
            if found != magic:
                raise CorruptDatasetError(
                    path, f"IDX magic number is {found}, expected {magic} for {kind}", source
                )
            ndim = head[3]
            header = 4 + 4 * ndim
            sizes = stream.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise CorruptDatasetError(
                    path,
                    f"truncated IDX header ({4 + len(sizes)} bytes, the header needs {header})",
                    source,
                )
            dims = tuple(int.from_bytes(sizes[4 * k : 4 * k + 4], "big") for k in range(ndim))
            expected = header + math.prod(dims)
            capacity = size * _MAX_DEFLATE_RATIO if compressed else size
            if expected > capacity:
                holds = f"at most {capacity} once decompressed" if compressed else str(size)
                raise CorruptDatasetError(
                    path,
                    f"truncated: the header declares shape {dims}, i.e. {expected} bytes, but "
                    f"the file holds {holds}",
                    source,
                )
            body = stream.read(expected - header)
            if len(body) < expected - header:
                raise CorruptDatasetError(
                    path,
                    f"truncated: the header declares shape {dims}, i.e. {expected} bytes, but "
                    f"the file holds {header + len(body)}",
                    source,
                )
            if stream.read(1):
                raise CorruptDatasetError(
                    path,
                    f"has trailing bytes: the header declares shape {dims}, i.e. {expected} "
                    "bytes, and more follow",
                    source,
                )
    except (EOFError, OSError, zlib.error) as err:
        if not compressed:
            raise
        raise CorruptDatasetError(
            path, f"the gzip stream is truncated or damaged ({err})", source
        ) from err
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


class MNIST(Dataset):
    """MNIST handwritten digits from the four IDX files.

    Items are ``(image, label)``: ``image`` a float32 ``(1, S, S)`` tensor in [0, 1]
    (ink is 1), ``label`` an int64 scalar in ``0..9``. Images are kept as uint8 (47 MB for
    the training split) and converted per item.

    Args:
        root: the data root (holding ``mnist/``) or the ``mnist`` folder itself; None uses
            ``$OTLOSS_DATA`` or ``~/.otloss/data`` (see `otloss.data.data_root`).
            Files are looked up as ``train-images-idx3-ubyte.gz`` or without ``.gz``, in
            the folder or its torchvision-style ``raw/`` subfolder.
        split: ``"train"`` (60000 images) or ``"test"`` (10000).
        image_size: output side length ``S`` (bilinear resize), or None for 28.

    Attributes:
        images: ``(N, 28, 28)`` uint8 tensor.
        targets: ``(N,)`` int64 labels.
        classes: the class names.

    Examples:
        >>> from otloss.data import MNIST
        >>> train = MNIST("../shared/data", split="train")  # doctest: +SKIP
        >>> image, label = train[0]  # (1, 28, 28) in [0, 1], tensor(5)  # doctest: +SKIP
    """

    dataset_name = "mnist"
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        *,
        image_size: int | None = None,
    ) -> None:
        check_choice("split", split, tuple(_FILE_PREFIX))
        self.split = split
        self.image_size = check_image_size(image_size)
        self.folder = dataset_dir(self.dataset_name, root)
        source = SOURCES[self.dataset_name].url
        prefix = _FILE_PREFIX[split]
        images_path = self._find(f"{prefix}-images-idx3-ubyte")
        labels_path = self._find(f"{prefix}-labels-idx1-ubyte")
        images = read_idx(images_path, IDX_IMAGE_MAGIC, source=source)
        labels = read_idx(labels_path, IDX_LABEL_MAGIC, source=source)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise CorruptDatasetError(
                images_path, f"expected images of shape (N, 28, 28), got {images.shape}", source
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise CorruptDatasetError(
                labels_path,
                f"holds labels of shape {labels.shape} but {images_path.name} holds "
                f"{images.shape[0]} images",
                source,
            )
        if labels.size and labels.max() >= len(self.classes):
            raise CorruptDatasetError(
                labels_path, f"label {labels.max()} outside 0..{len(self.classes) - 1}", source
            )
        self.images = torch.from_numpy(images.copy())
        self.targets = torch.from_numpy(labels.astype(np.int64))

    def _find(self, stem: str) -> Path:
        for folder in (self.folder, self.folder / "raw"):
            for name in (f"{stem}.gz", stem):
                if (folder / name).is_file():
                    return folder / name
        raise missing_file_error(self.dataset_name, self.folder / f"{stem}.gz", self.folder)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = to_unit_float(self.images[index]).unsqueeze(0)
        return resize_images(image, self.image_size), self.targets[index]


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando) from its IDX files, with the layout and items of
    `MNIST`; the folder below the data root is ``fashion-mnist/``."""

    dataset_name = "fashion-mnist"
    classes = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
