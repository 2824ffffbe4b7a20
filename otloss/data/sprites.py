r"""Procedural dSprites-like sprites with known generative factors, rendered on the fly.

Five factors, each on a regular grid like dSprites: ``shape`` (square, ellipse, heart),
``scale`` (``num_scales`` values in [0.5, 1]), ``orientation`` (``num_orientations``
angles in $[0, 2\pi)$), ``pos_x`` and ``pos_y`` (``num_positions`` centres in
[0.2, 0.8] of the image width). An image is a pure function of its factor indices: a
pixel is white where its centre lies inside the rotated, scaled, translated shape
(optionally supersampled 4 x 4 for antialiased grey edges, useful below 64 px). Rendering
is vectorised over a batch in torch, so no image is stored.

As in dSprites, symmetric shapes make orientation partly unidentifiable (a square
rotated by 90 degrees, an ellipse by 180 degrees, look the same).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from otloss._checks import check_count
from otloss.data.ground_truth import GroundTruthData
from otloss.data.splits import check_whole_dataset_split
from otloss.data.transforms import check_image_size

__all__ = ["SPRITES_FACTORS", "SPRITE_SHAPES", "Sprites", "render_sprites"]

SPRITE_SHAPES = ("square", "ellipse", "heart")
SPRITES_FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
#: Sprite radius at scale 1, as a fraction of the image width.
SPRITE_RADIUS = 0.13
SCALE_RANGE = (0.5, 1.0)
#: Range of sprite centres: the largest sprite (square corner at 1.13 radii) stays inside.
POSITION_RANGE = (0.2, 0.8)
SUPERSAMPLE = 4
# Shape geometry in sprite units (radius 1): square half-side, ellipse semi-axes, heart
# size and the vertical shift that centres the heart curve's bounding box.
_SQUARE_HALF_SIDE = 0.8
_ELLIPSE_AXES = (1.0, 0.5)
_HEART_SIZE = 0.75
_HEART_SHIFT = 0.12
_PIXELS_PER_CHUNK = 1 << 21


def _inside(shape: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Whether sprite coordinates ``(u, v)`` (radius units, v pointing down) are inside."""
    square = torch.maximum(u.abs(), v.abs()) <= _SQUARE_HALF_SIDE
    ellipse = (u / _ELLIPSE_AXES[0]) ** 2 + (v / _ELLIPSE_AXES[1]) ** 2 <= 1.0
    x, y = u / _HEART_SIZE, _HEART_SHIFT - v / _HEART_SIZE
    heart = (x**2 + y**2 - 1.0) ** 3 - x**2 * y**3 <= 0.0
    shape = shape.view(-1, 1, 1)
    return torch.where(shape == 0, square, torch.where(shape == 1, ellipse, heart))


def render_sprites(
    shape: Tensor,
    scale: Tensor,
    orientation: Tensor,
    pos_x: Tensor,
    pos_y: Tensor,
    *,
    image_size: int = 64,
    antialias: bool = False,
) -> Tensor:
    r"""Render sprites from continuous factor values, vectorised over the batch.

    A pixel with centre $p$ is inside the sprite when
    $R(-\theta)(p - c) / (r\, s)$ lies inside the unit shape, with $c$ the
    position, $\theta$ the orientation, $s$ the scale and $r$ =
    `SPRITE_RADIUS` the radius at scale 1.

    Args:
        shape: ``(n,)`` integer shape index (0 square, 1 ellipse, 2 heart).
        scale: ``(n,)`` scale in [0.5, 1].
        orientation: ``(n,)`` angle in radians.
        pos_x: ``(n,)`` horizontal centre, a fraction of the width (0 left, 1 right).
        pos_y: ``(n,)`` vertical centre, a fraction of the height (0 top, 1 bottom).
        image_size: output side length ``S``.
        antialias: average a 4 x 4 supersampling grid per pixel (grey edges) instead of
            testing the pixel centre only (binary images, like dSprites).

    Returns:
        ``(n, 1, S, S)`` float32 tensor in [0, 1].
    """
    samples = SUPERSAMPLE if antialias else 1
    side = image_size * samples
    grid = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    chunk = max(1, _PIXELS_PER_CHUNK // (side * side))
    images = []
    for start in range(0, shape.shape[0], chunk):
        end = start + chunk
        radius = (SPRITE_RADIUS * scale[start:end].float()).view(-1, 1, 1)
        cos = torch.cos(orientation[start:end].float()).view(-1, 1, 1)
        sin = torch.sin(orientation[start:end].float()).view(-1, 1, 1)
        dx = grid.view(1, 1, side) - pos_x[start:end].float().view(-1, 1, 1)
        dy = grid.view(1, side, 1) - pos_y[start:end].float().view(-1, 1, 1)
        u = (cos * dx + sin * dy) / radius
        v = (cos * dy - sin * dx) / radius
        mask = _inside(shape[start:end], u, v).to(torch.float32).unsqueeze(1)
        images.append(F.avg_pool2d(mask, samples) if samples > 1 else mask)
    if not images:
        return torch.zeros(0, 1, image_size, image_size)
    return torch.cat(images)


class Sprites(Dataset, GroundTruthData):
    """Procedural sprites as ``(image, factors)`` items, and as `GroundTruthData`.

    Item ``i`` is the ``i``-th combination of the factor grid in row-major order
    (``shape`` slowest, ``pos_y`` fastest, as dSprites), rendered on access: ``image`` a
    float32 ``(1, S, S)`` tensor in [0, 1], ``factors`` the int64 ``(5,)`` indices.
    The default grid is dSprites' (3 x 6 x 40 x 32 x 32 = 737280 images at 64 px).

    Args:
        split: ``"train"`` or ``"all"``, the whole grid (there is no test split).
        image_size: side length ``S`` (64 like dSprites; 32 or 28 for smaller models).
        num_scales: number of scale values in [0.5, 1].
        num_orientations: number of angles in $[0, 2\\pi)$.
        num_positions: number of x (and of y) positions.
        antialias: supersample 4 x 4 for grey edges instead of binary pixels.

    Examples:
        >>> import numpy as np
        >>> from otloss.data import Sprites
        >>> sprites = Sprites(image_size=32)
        >>> factors, images = sprites.sample(8, np.random.RandomState(0))
        >>> tuple(images.shape)
        (8, 1, 32, 32)
    """

    factor_names = SPRITES_FACTORS

    def __init__(
        self,
        split: str = "all",
        *,
        image_size: int | None = 64,
        num_scales: int = 6,
        num_orientations: int = 40,
        num_positions: int = 32,
        antialias: bool = False,
    ) -> None:
        check_whole_dataset_split("Sprites", split)
        self.image_size = check_image_size(image_size) or 64
        for name, count in (
            ("num_scales", num_scales),
            ("num_orientations", num_orientations),
            ("num_positions", num_positions),
        ):
            check_count(name, count)
        self.antialias = bool(antialias)
        self._num_values = (
            len(SPRITE_SHAPES),
            num_scales,
            num_orientations,
            num_positions,
            num_positions,
        )
        self.scales = (
            torch.linspace(*SCALE_RANGE, num_scales)
            if num_scales > 1
            else (torch.tensor([SCALE_RANGE[1]]))
        )
        self.orientations = torch.arange(num_orientations) * (2 * math.pi / num_orientations)
        self.positions = (
            torch.linspace(*POSITION_RANGE, num_positions)
            if num_positions > 1
            else (torch.tensor([0.5]))
        )

    @property
    def factors_num_values(self) -> tuple[int, ...]:
        """(3, num_scales, num_orientations, num_positions, num_positions)."""
        return self._num_values

    def __len__(self) -> int:
        return math.prod(self._num_values)

    def factor_values(self, factors: np.ndarray) -> dict[str, Tensor]:
        """Continuous values (shape index, scale, angle in radians, x, y) of factor indices."""
        f = torch.from_numpy(self.check_factors(factors))
        return {
            "shape": f[:, 0],
            "scale": self.scales[f[:, 1]],
            "orientation": self.orientations[f[:, 2]],
            "pos_x": self.positions[f[:, 3]],
            "pos_y": self.positions[f[:, 4]],
        }

    def observations_from_factors(self, factors: np.ndarray) -> Tensor:
        """Render factor indices ``(n, 5)`` -> ``(n, 1, S, S)``."""
        return render_sprites(
            **self.factor_values(factors), image_size=self.image_size, antialias=self.antialias
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} sprites")
        factors = self.index_to_factors(int(index) % len(self))
        return self.observations_from_factors(factors)[0], torch.from_numpy(factors[0])
