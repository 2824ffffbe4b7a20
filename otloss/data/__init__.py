"""Datasets in their real release formats, the embedded digits and procedural sprites.

Every dataset is a ``torch.utils.data.Dataset`` of ``(image, target)`` items with
``image`` a float32 ``(C, H, W)`` tensor in [0, 1]. `load_dataset` loads any of
them by name; the data root is resolved by `data_root` (argument, else
``$OTLOSS_DATA``, else ``~/.otloss/data``). Nothing here touches the network.
"""

from otloss.data.celeba import CelebA
from otloss.data.digits import Digits
from otloss.data.dsprites import DSprites
from otloss.data.errors import CorruptDatasetError, DatasetNotFoundError
from otloss.data.ground_truth import GroundTruthData
from otloss.data.idx import MNIST, FashionMNIST, read_idx
from otloss.data.omniglot import Omniglot
from otloss.data.paths import DATA_ENV_VAR, DEFAULT_DATA_ROOT, SOURCES, data_root
from otloss.data.registry import DATASETS, load_dataset
from otloss.data.shapes3d import Shapes3D
from otloss.data.sprites import Sprites, render_sprites
from otloss.data.transforms import resize_images

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "DEFAULT_DATA_ROOT",
    "MNIST",
    "SOURCES",
    "CelebA",
    "CorruptDatasetError",
    "DSprites",
    "DatasetNotFoundError",
    "Digits",
    "FashionMNIST",
    "GroundTruthData",
    "Omniglot",
    "Shapes3D",
    "Sprites",
    "data_root",
    "load_dataset",
    "read_idx",
    "render_sprites",
    "resize_images",
]
