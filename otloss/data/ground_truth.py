"""The ground-truth-factor interface that disentanglement metrics consume.

A dataset generated from known discrete factors (shape, scale, position, ...) exposes the
number of values of each factor, draws factor combinations, and returns the observation
of a combination. The method names follow ``disentanglement_lib``'s ``GroundTruthData``
so metric code written against it ports directly:

- ``factors_num_values``: ``(K,)`` number of values of each factor;
- ``sample_factors(n, random_state) -> (n, K)`` int64 factor indices, uniform over the grid;
- ``sample_observations_from_factors(factors, random_state) -> (n, C, H, W)`` float32
  tensor in [0, 1].

`Sprites`, `DSprites` and
`Shapes3D` implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from torch import Tensor

__all__ = ["GroundTruthData", "RandomState"]

#: What ``random_state`` may be: a NumPy ``RandomState`` (as in disentanglement_lib),
#: a NumPy ``Generator``, or an integer seed.
RandomState = np.random.RandomState | np.random.Generator | int


def _as_generator(random_state: RandomState) -> np.random.RandomState | np.random.Generator:
    if isinstance(random_state, np.random.RandomState | np.random.Generator):
        return random_state
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise TypeError(
        "random_state must be a numpy RandomState, a numpy Generator or an int seed, got "
        f"{type(random_state).__name__}"
    )


def _integers(rng: np.random.RandomState | np.random.Generator, high: int, n: int) -> np.ndarray:
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, high, size=n, dtype=np.int64)
    return rng.randint(0, high, size=n).astype(np.int64)


class GroundTruthData(ABC):
    """A dataset whose observations are a deterministic function of discrete factors.

    Subclasses define `factor_names`, `factors_num_values` and
    `observations_from_factors`; sampling and validation are shared.
    """

    #: Name of each factor, in the order of the factor columns.
    factor_names: tuple[str, ...]

    @property
    @abstractmethod
    def factors_num_values(self) -> tuple[int, ...]:
        """Number of values of each factor, ``(K,)``."""

    @abstractmethod
    def observations_from_factors(self, factors: np.ndarray) -> Tensor:
        """Observations of validated factor indices ``(n, K)`` -> ``(n, C, H, W)``."""

    @property
    def num_factors(self) -> int:
        """Number of factors ``K``."""
        return len(self.factors_num_values)

    def sample_factors(self, n: int, random_state: RandomState) -> np.ndarray:
        """Draw ``n`` factor combinations uniformly from the grid.

        Args:
            n: number of samples.
            random_state: NumPy ``RandomState``/``Generator`` or an int seed.

        Returns:
            ``(n, K)`` int64 array of factor indices, column ``k`` in
            ``[0, factors_num_values[k])``.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = _as_generator(random_state)
        columns = [_integers(rng, size, int(n)) for size in self.factors_num_values]
        return np.stack(columns, axis=1) if columns else np.zeros((n, 0), np.int64)

    def sample_observations_from_factors(
        self, factors: np.ndarray | Sequence[Sequence[int]] | Tensor, random_state: RandomState
    ) -> Tensor:
        """The observations of given factor indices.

        Args:
            factors: ``(n, K)`` integer factor indices.
            random_state: unused by these deterministic datasets (each factor combination
                has exactly one observation); accepted for interface compatibility.

        Returns:
            ``(n, C, H, W)`` float32 tensor with values in [0, 1].
        """
        _as_generator(random_state)
        return self.observations_from_factors(self.check_factors(factors))

    def sample(self, n: int, random_state: RandomState) -> tuple[np.ndarray, Tensor]:
        """Draw ``n`` factor combinations and their observations."""
        factors = self.sample_factors(n, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, n: int, random_state: RandomState) -> Tensor:
        """Draw ``n`` observations with uniformly random factors."""
        return self.sample(n, random_state)[1]

    def check_factors(self, factors: np.ndarray | Sequence[Sequence[int]] | Tensor) -> np.ndarray:
        """Validate factor indices and return them as an ``(n, K)`` int64 array.

        Raises:
            ValueError: wrong shape, non-integer values or an index out of range (the
                message names the factor).
        """
        if isinstance(factors, Tensor):
            factors = factors.detach().cpu().numpy()
        array = np.asarray(factors)
        sizes = self.factors_num_values
        if array.ndim != 2 or array.shape[1] != len(sizes):
            raise ValueError(
                f"factors must have shape (n, {len(sizes)}) for the factors "
                f"{self.factor_names}, got shape {array.shape}"
            )
        if array.size and not np.issubdtype(array.dtype, np.integer):
            if not np.array_equal(array, np.round(array)):
                raise ValueError(f"factors must be integer indices, got dtype {array.dtype}")
        array = array.astype(np.int64)
        for k, (name, size) in enumerate(zip(self.factor_names, sizes, strict=True)):
            column = array[:, k]
            if column.size and (column.min() < 0 or column.max() >= size):
                raise ValueError(
                    f"factor {name!r} (column {k}) takes indices in [0, {size}), got values in "
                    f"[{column.min()}, {column.max()}]"
                )
        return array

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Row-major position of each factor combination in the full grid, ``(n,)``."""
        return np.ravel_multi_index(tuple(self.check_factors(factors).T), self.factors_num_values)

    def index_to_factors(self, index: np.ndarray | int) -> np.ndarray:
        """Factor indices ``(n, K)`` of row-major grid positions (inverse of
        `factors_to_index`)."""
        flat = np.atleast_1d(np.asarray(index, dtype=np.int64))
        return np.stack(np.unravel_index(flat, self.factors_num_values), axis=1).astype(np.int64)
