"""3D Shapes (Burgess and Kim, 2018) from the official ``3dshapes.h5``.

The file holds ``images`` uint8 ``(480000, 64, 64, 3)`` and ``labels`` float64
``(480000, 6)``: the values of floor hue (10), wall hue (10), object hue (10), scale (8),
shape (4) and orientation (15), every combination once in row-major order. Images are
read lazily from the HDF5 file (one handle per DataLoader worker); only the 23 MB of
labels are loaded. Reading needs the optional dependency ``h5py``.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from otloss._optional import import_optional
from otloss.data.errors import CorruptDatasetError
from otloss.data.factor_grid import grid_from_labels
from otloss.data.ground_truth import GroundTruthData
from otloss.data.handles import ProcessLocalHandle
from otloss.data.paths import SOURCES, dataset_dir, missing_file_error
from otloss.data.splits import check_whole_dataset_split
from otloss.data.transforms import check_image_size, resize_images, to_unit_float

__all__ = ["SHAPES3D_FACTORS", "Shapes3D"]

#: Factor names, in the order of the ``labels`` columns.
SHAPES3D_FACTORS = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
_SOURCE = SOURCES["3dshapes"].url


class Shapes3D(Dataset, GroundTruthData):
    """3D Shapes as ``(image, factors)`` items, and as `GroundTruthData`.

    ``image`` is a float32 ``(3, S, S)`` tensor in [0, 1]; ``factors`` the int64 ``(6,)``
    index of each factor's value (sorted order; the raw values are in
    `factor_values`).

    Args:
        root: data root (holding ``3dshapes/3dshapes.h5``), the ``3dshapes`` folder, or
            the ``.h5`` file itself.
        split: ``"train"`` or ``"all"``: the whole dataset (3D Shapes has no official
            split; disentanglement metrics sample from the full grid).
        image_size: output side length, None keeps 64.

    Attributes:
        factors: ``(N, 6)`` int64 factor indices of every image.
        factor_values: the distinct values of each factor.
    """

    factor_names = SHAPES3D_FACTORS

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "all",
        *,
        image_size: int | None = None,
    ) -> None:
        check_whole_dataset_split("3D Shapes", split)
        self.image_size = check_image_size(image_size)
        h5py = import_optional("h5py", "reading 3D Shapes (3dshapes.h5)")
        given = None if root is None else os.fspath(root)
        if given is not None and given.endswith(".h5"):
            self.path = Path(given).expanduser().resolve()
        else:
            self.path = dataset_dir("3dshapes", root) / "3dshapes.h5"
        if not self.path.is_file():
            raise missing_file_error("3dshapes", self.path, self.path.parent)
        try:
            with h5py.File(self.path, "r") as h5:
                missing = {"images", "labels"} - set(h5.keys())
                if missing:
                    raise CorruptDatasetError(
                        self.path, f"missing datasets {sorted(missing)} (has {list(h5)})", _SOURCE
                    )
                for key in ("images", "labels"):
                    if not isinstance(h5[key], h5py.Dataset):
                        raise CorruptDatasetError(
                            self.path,
                            f"'{key}' must be an HDF5 dataset (an array), got an HDF5 "
                            f"{type(h5[key]).__name__}",
                            _SOURCE,
                        )
                images, labels = h5["images"], h5["labels"]
                n = images.shape[0]
                if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
                    raise CorruptDatasetError(
                        self.path,
                        f"'images' must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}",
                        _SOURCE,
                    )
                if labels.shape != (n, len(SHAPES3D_FACTORS)):
                    raise CorruptDatasetError(
                        self.path,
                        f"'labels' has shape {labels.shape}, expected ({n}, "
                        f"{len(SHAPES3D_FACTORS)}) for {n} images",
                        _SOURCE,
                    )
                if labels.dtype.kind not in "iuf":
                    raise CorruptDatasetError(
                        self.path, f"'labels' must be numbers, got dtype {labels.dtype}", _SOURCE
                    )
                label_values = labels[()]
                if not np.isfinite(label_values).all():
                    raise CorruptDatasetError(
                        self.path, "'labels' contains NaN or Inf factor values", _SOURCE
                    )
                self._native_size = images.shape[1]
        except OSError as err:
            raise CorruptDatasetError(
                self.path, f"not a readable HDF5 file ({err})", _SOURCE
            ) from err
        self._grid = grid_from_labels(label_values)
        self.factors = torch.from_numpy(self._grid.classes)
        self.factor_values = self._grid.values
        self._h5 = ProcessLocalHandle(partial(h5py.File, self.path, "r"))

    @property
    def factors_num_values(self) -> tuple[int, ...]:
        """Number of values of each factor: (10, 10, 10, 8, 4, 15) for the release."""
        return self._grid.num_values

    def __len__(self) -> int:
        return self.factors.shape[0]

    def _read(self, indices: np.ndarray) -> Tensor:
        """Images at ``indices`` (any order, repeats allowed) as ``(n, 3, S, S)`` floats."""
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            # h5py fancy indexing needs increasing indices.
            pixels = (
                self._h5.get()["images"][unique]
                if unique.size
                else np.zeros((0, self._native_size, self._native_size, 3), np.uint8)
            )
        except OSError as err:
            raise CorruptDatasetError(self.path, f"cannot read images ({err})", _SOURCE) from err
        images = to_unit_float(torch.from_numpy(pixels[inverse.reshape(-1)])).permute(0, 3, 1, 2)
        return resize_images(images.contiguous(), self.image_size)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self._read(np.array([int(index)]))[0], self.factors[index]

    def observations_from_factors(self, factors: np.ndarray) -> Tensor:
        """Images of factor indices ``(n, 6)`` -> ``(n, 3, S, S)``."""
        self._grid.require_full_grid(self.path, _SOURCE)
        return self._read(self.factors_to_index(factors))
