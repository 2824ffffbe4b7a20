"""Where datasets live: the data root and each dataset's sources and layout.

The data root is resolved in one place, `data_root`: the ``root`` argument, else
the environment variable ``OTLOSS_DATA``, else ``~/.otloss/data``. Each dataset has its
own folder below the root (``mnist/``, ``fashion-mnist/``, ``omniglot/``, ``celeba/``,
``3dshapes/``, ``dsprites/``), the layout of ``../shared/data`` in this repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from otloss.data.errors import DatasetNotFoundError

__all__ = [
    "DATA_ENV_VAR",
    "DEFAULT_DATA_ROOT",
    "SOURCES",
    "DatasetSource",
    "data_root",
    "dataset_dir",
    "missing_file_error",
]

#: Environment variable naming the data root when no ``root`` is passed.
DATA_ENV_VAR = "OTLOSS_DATA"
#: Data root used when neither ``root`` nor ``$OTLOSS_DATA`` is given.
DEFAULT_DATA_ROOT = Path("~/.otloss/data")


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and how it is laid out on disk.

    Attributes:
        title: the dataset's name in messages.
        folder: its folder below the data root.
        url: the official download page.
        files: the files (or folders) expected inside ``folder``.
    """

    title: str
    folder: str
    url: str
    files: tuple[str, ...]


#: Every dataset read from disk, keyed by the name `otloss.data.load_dataset` takes.
SOURCES: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        "MNIST",
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of http://yann.lecun.com/exdb/mnist/)",
        (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ),
    ),
    "fashion-mnist": DatasetSource(
        "Fashion-MNIST",
        "fashion-mnist",
        "https://github.com/zalandoresearch/fashion-mnist#get-the-data",
        (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ),
    ),
    "omniglot": DatasetSource(
        "Omniglot",
        "omniglot",
        "https://github.com/brendenlake/omniglot/tree/master/python",
        ("images_background.zip or .npz", "images_evaluation.zip or .npz"),
    ),
    "celeba": DatasetSource(
        "CelebA",
        "celeba",
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images)",
        ("img_align_celeba/*.jpg", "list_eval_partition.txt", "list_attr_celeba.txt"),
    ),
    "3dshapes": DatasetSource(
        "3D Shapes",
        "3dshapes",
        "https://github.com/google-deepmind/3d-shapes "
        "(https://storage.googleapis.com/3d-shapes/3dshapes.h5)",
        ("3dshapes.h5",),
    ),
    "dsprites": DatasetSource(
        "dSprites",
        "dsprites",
        "https://github.com/google-deepmind/dsprites-dataset",
        ("dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",),
    ),
}


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: ``root``, else ``$OTLOSS_DATA``, else ``~/.otloss/data``.

    Args:
        root: an explicit data root, or None.

    Returns:
        The root as an absolute path (``~`` expanded). It need not exist.
    """
    if root is None:
        root = os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_ROOT
    return Path(root).expanduser().resolve()


def dataset_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of dataset ``name`` below the data root.

    When ``root`` is itself that folder (its name is the dataset's folder name and it has
    no such subfolder), ``root`` is returned unchanged, so both ``root="data"`` and
    ``root="data/mnist"`` work.
    """
    folder = SOURCES[name].folder
    base = data_root(root)
    if base.name.lower() == folder and not (base / folder).is_dir():
        return base
    return base / folder


def missing_file_error(name: str, path: Path, folder: Path) -> DatasetNotFoundError:
    """Build the error for a missing file of dataset ``name``.

    Args:
        name: a key of `SOURCES`.
        path: the file or folder that was looked for.
        folder: the dataset folder the files belong in.
    """
    source = SOURCES[name]
    listing = ", ".join(source.files)
    return DatasetNotFoundError(
        f"{source.title}: {path} not found. Download {source.title} from {source.url} and "
        f"put {listing} in {folder} (<data root>/{source.folder}/, the data root being "
        f"root=..., else ${DATA_ENV_VAR}, else {DEFAULT_DATA_ROOT}). To run without any "
        "files, use the embedded scikit-learn digits: load_dataset('digits') "
        "(--dataset digits in the example scripts)."
    )
