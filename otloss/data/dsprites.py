"""dSprites (Matthey et al., 2017) from the official ``.npz``.

The release ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` holds ``imgs`` uint8
``(737280, 64, 64)`` of 0/1 pixels, ``latents_values`` and ``latents_classes``
``(737280, 6)`` (color, shape, scale, orientation, posX, posY; color takes one value)
and a pickled ``metadata`` dict, which is never unpickled here. The images are
decompressed once in chunks straight into a 1-bit-per-pixel array (377 MB instead of the
3 GB a plain ``np.load`` would allocate) and unpacked per item.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from otloss.data.errors import CorruptDatasetError
from otloss.data.factor_grid import grid_from_labels
from otloss.data.ground_truth import GroundTruthData
from otloss.data.paths import SOURCES, dataset_dir, missing_file_error
from otloss.data.splits import check_whole_dataset_split
from otloss.data.transforms import check_image_size, resize_images

__all__ = ["DSPRITES_FACTORS", "DSPRITES_FILENAME", "DSprites"]

#: The release's file name.
DSPRITES_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
#: Factor names (the constant color latent is dropped).
DSPRITES_FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
_SOURCE = SOURCES["dsprites"].url
_CHUNK_BYTES = 1 << 24


def _read_packed_images(path: Path, archive: zipfile.ZipFile) -> tuple[np.ndarray, int]:
    """Stream ``imgs.npy`` out of the archive into a bit-packed ``(N, H, ceil(W / 8))``
    array; return it and the width ``W``."""
    if "imgs.npy" not in archive.namelist():
        raise CorruptDatasetError(path, f"has no 'imgs' array (has {archive.namelist()})", _SOURCE)
    with archive.open("imgs.npy") as stream:
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(stream)
        if dtype != np.uint8 or len(shape) != 3 or fortran_order:
            raise CorruptDatasetError(
                path, f"'imgs' must be C-ordered uint8 (N, H, W), got {dtype} {shape}", _SOURCE
            )
        n, height, width = shape
        rows_per_chunk = max(1, _CHUNK_BYTES // max(1, height * width))
        packed = np.empty((n, height, (width + 7) // 8), dtype=np.uint8)
        for start in range(0, n, rows_per_chunk):
            rows = min(rows_per_chunk, n - start)
            buffer = stream.read(rows * height * width)
            if len(buffer) != rows * height * width:
                raise CorruptDatasetError(
                    path,
                    f"'imgs' is truncated: image {start + len(buffer) // (height * width)}"
                    f" of {n} ends early",
                    _SOURCE,
                )
            chunk = np.frombuffer(buffer, dtype=np.uint8).reshape(rows, height, width)
            if chunk.max(initial=0) > 1:
                raise CorruptDatasetError(
                    path, f"'imgs' holds pixel value {chunk.max()}, expected 0/1 masks", _SOURCE
                )
            packed[start : start + rows] = np.packbits(chunk, axis=-1)
    return packed, width


class DSprites(Dataset, GroundTruthData):
    """dSprites as ``(image, factors)`` items, and as `GroundTruthData`.

    ``image`` is a float32 ``(1, S, S)`` tensor of 0/1 pixels (values in [0, 1] after a
    resize); ``factors`` the int64 ``(5,)`` classes of shape (3: square, ellipse, heart),
    scale (6), orientation (40), posX (32) and posY (32).

    Args:
        root: data root (holding ``dsprites/<release name>.npz``), the ``dsprites`` folder,
            or the ``.npz`` file itself.
        split: ``"train"`` or ``"all"``: the whole dataset (there is no official split).
        image_size: output side length, None keeps 64.

    Attributes:
        factors: ``(N, 5)`` int64 factor classes.
        latents_values: ``(N, 6)`` float64 values of all six latents (color first).
    """

    factor_names = DSPRITES_FACTORS

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "all",
        *,
        image_size: int | None = None,
    ) -> None:
        check_whole_dataset_split("dSprites", split)
        self.image_size = check_image_size(image_size)
        given = None if root is None else os.fspath(root)
        if given is not None and given.endswith(".npz"):
            self.path = Path(given).expanduser().resolve()
        else:
            self.path = dataset_dir("dsprites", root) / DSPRITES_FILENAME
        if not self.path.is_file():
            raise missing_file_error("dsprites", self.path, self.path.parent)
        try:
            with zipfile.ZipFile(self.path) as archive:
                self._packed, self._width = _read_packed_images(self.path, archive)
            with np.load(self.path, allow_pickle=False) as data:
                missing = {"latents_classes", "latents_values"} - set(data.files)
                if missing:
                    raise CorruptDatasetError(
                        self.path, f"missing arrays {sorted(missing)} (has {data.files})", _SOURCE
                    )
                classes, values = data["latents_classes"], data["latents_values"]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            if isinstance(err, CorruptDatasetError):
                raise
            raise CorruptDatasetError(
                self.path, f"not a readable npz archive ({err})", _SOURCE
            ) from err
        n = self._packed.shape[0]
        for name, array in (("latents_classes", classes), ("latents_values", values)):
            if array.shape != (n, 6):
                raise CorruptDatasetError(
                    self.path, f"'{name}' has shape {array.shape}, expected ({n}, 6)", _SOURCE
                )
        if classes.size and np.any(classes[:, 0] != classes[0, 0]):
            raise CorruptDatasetError(
                self.path, "the color latent (column 0) must take a single value", _SOURCE
            )
        self._grid = grid_from_labels(classes[:, 1:])
        self.factors = torch.from_numpy(self._grid.classes)
        self.latents_values = torch.from_numpy(values.astype(np.float64))

    @property
    def factors_num_values(self) -> tuple[int, ...]:
        """Number of values of each factor: (3, 6, 40, 32, 32) for the release."""
        return self._grid.num_values

    def __len__(self) -> int:
        return self._packed.shape[0]

    def _images(self, indices: np.ndarray) -> Tensor:
        pixels = np.unpackbits(self._packed[indices], axis=-1, count=self._width)
        images = torch.from_numpy(pixels.astype(np.float32)).unsqueeze(1)
        return resize_images(images, self.image_size)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self._images(np.array([int(index)]))[0], self.factors[index]

    def observations_from_factors(self, factors: np.ndarray) -> Tensor:
        """Images of factor classes ``(n, 5)`` -> ``(n, 1, S, S)``."""
        self._grid.require_full_grid(self.path, _SOURCE)
        return self._images(self.factors_to_index(factors))
