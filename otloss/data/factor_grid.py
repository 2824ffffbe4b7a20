"""Discrete factor indices of datasets stored as a full row-major grid of factors.

3D Shapes stores factor *values* and dSprites factor *classes* per image; both releases
enumerate every combination once, in row-major order. `grid_from_labels` recovers
the integer index of each factor and checks that ordering, so that the observation of a
factor combination is found by arithmetic instead of a search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from otloss.data.errors import CorruptDatasetError

__all__ = ["FactorGrid", "grid_from_labels"]


class FactorGrid:
    """Factor indices ``(N, K)`` and sizes ``(K,)`` of a dataset's images.

    Attributes:
        classes: ``(N, K)`` int64 index of each factor of each image.
        values: ``(K,)`` list of the sorted distinct values of each factor.
        num_values: ``(K,)`` number of values of each factor.
        is_full_grid: whether the N images enumerate every combination once in row-major
            order (true for the official releases), so that
            ``np.ravel_multi_index(factors.T, num_values)`` is the image of ``factors``.
    """

    def __init__(self, classes: np.ndarray, values: list[np.ndarray]) -> None:
        self.classes = classes
        self.values = values
        self.num_values = tuple(len(v) for v in values)
        n = classes.shape[0]
        self.is_full_grid = n == int(np.prod(self.num_values)) and bool(
            np.array_equal(np.ravel_multi_index(tuple(classes.T), self.num_values), np.arange(n))
        )

    def require_full_grid(self, path: Path, source: str) -> None:
        """Raise unless the images form the full row-major grid of factors."""
        if not self.is_full_grid:
            raise CorruptDatasetError(
                path,
                f"its {self.classes.shape[0]} images do not enumerate the {self.num_values} "
                "factor grid once in row-major order, so observations cannot be looked up "
                "from factors",
                source,
            )


def grid_from_labels(labels: np.ndarray) -> FactorGrid:
    """Index the factor values ``(N, K)`` (floats or integers) of each image."""
    values = [np.unique(labels[:, k]) for k in range(labels.shape[1])]
    classes = np.stack(
        [np.searchsorted(v, labels[:, k]) for k, v in enumerate(values)], axis=1
    ).astype(np.int64)
    return FactorGrid(classes, values)
