"""Dataset readers: real MNIST/Fashion-MNIST/Omniglot files, self-written CelebA, 3D Shapes
and dSprites files in their release formats, the embedded digits and procedural sprites."""

from __future__ import annotations

import gzip
import io
import sys
import zipfile

import numpy as np
import pytest
import torch

from otloss.data import (
    MNIST,
    CelebA,
    CorruptDatasetError,
    DatasetNotFoundError,
    Digits,
    DSprites,
    FashionMNIST,
    Omniglot,
    Shapes3D,
    Sprites,
    data_root,
    load_dataset,
    read_idx,
)
from otloss.data.idx import IDX_IMAGE_MAGIC, IDX_LABEL_MAGIC
from tests.conftest import SHARED_DATA

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

needs_mnist = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST files absent"
)
needs_fashion = pytest.mark.skipif(
    not (SHARED_DATA / "fashion-mnist").is_dir(), reason="shared Fashion-MNIST files absent"
)
needs_omniglot = pytest.mark.skipif(
    not (SHARED_DATA / "omniglot" / "images_background.npz").is_file(),
    reason="shared Omniglot files absent",
)


def _check_images(images: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert images.dtype == torch.float32
    assert tuple(images.shape[-len(shape) :]) == shape
    assert images.min() >= 0.0 and images.max() <= 1.0


def _idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


# --------------------------------------------------------------------------- MNIST (real)


@pytest.fixture(scope="module")
def mnist_train() -> MNIST:
    return MNIST(SHARED_DATA, "train")


@needs_mnist
def test_mnist_train_has_known_size_and_label_counts(mnist_train: MNIST) -> None:
    assert len(mnist_train) == 60000
    assert mnist_train.images.shape == (60000, 28, 28)
    assert torch.bincount(mnist_train.targets).tolist() == MNIST_TRAIN_COUNTS
    image, label = mnist_train[0]
    _check_images(image, (1, 28, 28))
    assert image.shape == (1, 28, 28) and image.max() == 1.0 and image.min() == 0.0
    assert label.dtype == torch.int64 and label.item() == 5


@needs_mnist
def test_mnist_test_split_and_resize() -> None:
    test = MNIST(SHARED_DATA / "mnist", "test", image_size=32)
    assert len(test) == 10000
    assert torch.bincount(test.targets).tolist() == MNIST_TEST_COUNTS
    image, label = test[0]
    _check_images(image, (1, 32, 32))
    assert label.item() == 7


@pytest.mark.slow
@needs_fashion
def test_fashion_mnist_splits_are_balanced() -> None:
    for split, n in (("train", 60000), ("test", 10000)):
        data = load_dataset("fashion-mnist", SHARED_DATA, split=split)
        assert isinstance(data, FashionMNIST) and len(data) == n
        assert torch.bincount(data.targets).tolist() == [n // 10] * 10
    image, label = data[0]
    _check_images(image, (1, 28, 28))
    assert data.classes[label] == "Ankle boot"  # the first test image


@needs_mnist
def test_data_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLOSS_DATA", str(SHARED_DATA))
    assert data_root() == SHARED_DATA.resolve()
    assert len(load_dataset("mnist", split="test")) == 10000
    monkeypatch.delenv("OTLOSS_DATA")
    assert data_root().name == "data" and data_root().parent.name == ".otloss"


# --------------------------------------------------------------------------- IDX format


def test_idx_reads_raw_and_gzip_files(tmp_path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(_idx_bytes(IDX_IMAGE_MAGIC, images))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(IDX_LABEL_MAGIC, labels))
    )
    data = MNIST(tmp_path, "train")
    assert len(data) == 5 and data.targets.tolist() == [3, 1, 4, 1, 5]
    torch.testing.assert_close(data[2][0][0], torch.from_numpy(images[2]).float() / 255)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[:2], "too short"),
        (lambda raw: raw[:10], "truncated IDX header"),
        (lambda raw: raw[:-7], "truncated"),
        (lambda raw: raw + b"\x00", "trailing bytes"),
        (lambda raw: IDX_LABEL_MAGIC.to_bytes(4, "big") + raw[4:], "magic number is 2049"),
        (lambda raw: gzip.compress(raw)[:-30], "gzip stream is truncated"),
    ],
)
def test_idx_damage_is_reported_with_the_file_name(tmp_path, damage, message) -> None:
    raw = _idx_bytes(IDX_IMAGE_MAGIC, np.zeros((4, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(raw))
    with pytest.raises(CorruptDatasetError, match=message) as info:
        read_idx(path, IDX_IMAGE_MAGIC)
    assert str(path) in str(info.value)


def _gzip_of_zeros_after(prefix: bytes, n_zeros: int) -> bytes:
    """A gzip file of ``prefix`` and ``n_zeros`` zero bytes, compressed chunk by chunk."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as stream:
        stream.write(prefix)
        chunk = bytes(1 << 20)
        for _ in range(n_zeros // len(chunk)):
            stream.write(chunk)
    return out.getvalue()


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (_idx_bytes(IDX_IMAGE_MAGIC, np.zeros((2, 28, 28), np.uint8)), "trailing bytes"),
        (_idx_bytes(IDX_LABEL_MAGIC, np.zeros(2, np.uint8)), "magic number is 2049"),
    ],
    ids=["trailing-bytes", "wrong-magic"],
)
def test_idx_gzip_bomb_is_rejected_without_decompressing_it(tmp_path, prefix, message) -> None:
    import tracemalloc

    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(_gzip_of_zeros_after(prefix, 64 << 20))  # ~64 KB expanding to 64 MB
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(CorruptDatasetError, match=message):
            read_idx(path, IDX_IMAGE_MAGIC)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"read {peak} bytes into memory for a 1.6 KB body"


def test_idx_declared_size_beyond_what_the_gzip_can_hold_is_truncated(tmp_path) -> None:
    header = IDX_IMAGE_MAGIC.to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in (2**31, 28, 28)
    )
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(CorruptDatasetError, match=r"truncated.*at most \d+ once decompressed"):
        read_idx(path, IDX_IMAGE_MAGIC)


def test_mnist_rejects_mismatched_labels(tmp_path) -> None:
    folder = tmp_path / "mnist" / "raw"  # torchvision's layout
    folder.mkdir(parents=True)
    images = _idx_bytes(IDX_IMAGE_MAGIC, np.zeros((4, 28, 28), np.uint8))
    (folder / "t10k-images-idx3-ubyte").write_bytes(images)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(IDX_LABEL_MAGIC, np.zeros(3)))
    with pytest.raises(CorruptDatasetError, match=r"t10k-labels.*holds 4 images"):
        MNIST(tmp_path, "test")
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(IDX_LABEL_MAGIC, np.full(4, 10)))
    with pytest.raises(CorruptDatasetError, match=r"label 10 outside 0\.\.9"):
        MNIST(tmp_path / "mnist", "test")


def test_missing_mnist_says_where_to_get_it(tmp_path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "ossci-datasets" in message and "OTLOSS_DATA" in message
    assert "load_dataset('digits')" in message


# --------------------------------------------------------------------------- Omniglot (real)


@pytest.fixture(scope="module")
def omniglot_background() -> Omniglot:
    return Omniglot(SHARED_DATA, "background")


@pytest.mark.slow
@needs_omniglot
def test_omniglot_npz_shapes_labels_and_ink_convention(omniglot_background: Omniglot) -> None:
    data = omniglot_background
    assert len(data) == 964 * 20
    assert torch.bincount(data.targets).tolist() == [20] * 964
    image, label = data[0]
    _check_images(image, (1, 105, 105))
    assert label.item() == 0
    assert set(image.unique().tolist()) == {0.0, 1.0}
    # ink is the minority colour and is 1; the border of a drawing is background (0)
    ink = torch.stack([data[i][0] for i in range(0, len(data), 997)])
    assert 0.02 < ink.mean() < 0.2
    assert ink[..., 0, :].sum() == 0


@needs_omniglot
def test_omniglot_evaluation_split_and_mnist_size() -> None:
    data = load_dataset("omniglot", SHARED_DATA, split="test", image_size=28)
    assert len(data) == 659 * 20
    image, _ = data[123]
    _check_images(image, (1, 28, 28))
    assert image.max() > 0.5  # strokes survive the antialiased resize


@pytest.mark.slow
@needs_omniglot
def test_omniglot_zip_matches_npz(omniglot_background: Omniglot) -> None:
    small = Omniglot(SHARED_DATA, "background_small1")
    assert small.path.suffix == ".zip" and len(small) == 2720
    for index in range(0, len(small), 271):
        image, _ = small[index]
        # members are <set>/<alphabet>/character<NN>/<character id>_<drawer>.png
        character_id, drawer = small._members[index].rsplit("/", 1)[1][:-4].split("_")
        reference, label = omniglot_background[(int(character_id) - 1) * 20 + int(drawer) - 1]
        assert label.item() == int(character_id) - 1
        assert torch.equal(image, reference)


def test_omniglot_corrupt_and_missing_files(tmp_path) -> None:
    folder = tmp_path / "omniglot"
    folder.mkdir()
    with pytest.raises(DatasetNotFoundError, match="images_background"):
        Omniglot(tmp_path)
    (folder / "images_background.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CorruptDatasetError, match=r"images_background\.npz"):
        Omniglot(tmp_path)
    np.savez(
        folder / "images_evaluation.npz",
        images=np.zeros((2, 20, 105, 105), np.uint8),
        labels=np.zeros((2, 20), np.int64),
    )
    with pytest.raises(CorruptDatasetError, match="must be bool"):
        Omniglot(tmp_path, "evaluation")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.full((2, 20), np.nan), "integer character indices, got dtype float64"),
        (np.full((2, 20), -1, np.int64), "non-negative, got -1"),
    ],
)
def test_omniglot_npz_labels_must_be_character_indices(tmp_path, labels, message) -> None:
    folder = tmp_path / "omniglot"
    folder.mkdir()
    images = np.ones((2, 20, 105, 105), bool)
    np.savez(folder / "images_evaluation.npz", images=images, labels=labels)
    with pytest.raises(CorruptDatasetError, match=message) as info:
        Omniglot(tmp_path, "evaluation")
    assert "images_evaluation.npz" in str(info.value)


# --------------------------------------------------------------------------- CelebA (written)

CELEBA_WIDTH, CELEBA_HEIGHT, CELEBA_CROP = 178, 218, 144


def _write_celeba(folder, partitions=(0, 0, 0, 1, 2, 2), annotated_subfolders=False):
    from PIL import Image

    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{k + 1:06d}.jpg" for k in range(len(partitions))]
    left = (CELEBA_WIDTH - CELEBA_CROP) // 2
    top = (CELEBA_HEIGHT - CELEBA_CROP) // 2
    for k, name in enumerate(names):
        pixels = np.zeros((CELEBA_HEIGHT, CELEBA_WIDTH, 3), np.uint8)  # black outside the crop
        pixels[top : top + CELEBA_CROP, left : left + CELEBA_CROP] = (255, 255, 40 * k)
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=98)
    attribute_names = [f"Attribute_{a}" for a in range(40)]
    signs = np.where((np.arange(len(names))[:, None] + np.arange(40)) % 3 == 0, 1, -1)
    rows = [
        " ".join([name, *(f"{s:2d}" for s in row)]) for name, row in zip(names, signs, strict=True)
    ]
    attr_text = "\n".join([str(len(names)), " ".join(attribute_names), *rows]) + "\n"
    part_text = "".join(f"{name} {p}\n" for name, p in zip(names, partitions, strict=True))
    anno = folder / "Anno" if annotated_subfolders else folder
    evals = folder / "Eval" if annotated_subfolders else folder
    anno.mkdir(exist_ok=True)
    evals.mkdir(exist_ok=True)
    (anno / "list_attr_celeba.txt").write_text(attr_text)
    (evals / "list_eval_partition.txt").write_text(part_text)
    return names, (signs + 1) // 2


def test_celeba_reads_release_layout_with_official_splits(tmp_path) -> None:
    names, attributes = _write_celeba(tmp_path / "celeba")
    train = load_dataset("celeba", tmp_path)
    assert isinstance(train, CelebA) and len(train) == 3
    assert len(CelebA(tmp_path, "valid")) == 1 and len(CelebA(tmp_path, "test")) == 2
    assert len(CelebA(tmp_path, "all")) == 6
    image, factors = train[1]
    _check_images(image, (3, 64, 64))
    # the 144-pixel centre crop keeps only the bright square drawn inside it
    assert image[:2].min() > 0.9
    assert abs(image[2].mean().item() - 40 / 255) < 0.03
    assert factors.dtype == torch.int64 and factors.tolist() == attributes[1].tolist()
    assert set(train.attributes.unique().tolist()) == {0, 1}
    test = CelebA(tmp_path, "test", image_size=32)
    assert test.filenames == names[4:]
    _check_images(test[0][0], (3, 32, 32))


def test_celeba_finds_anno_and_eval_subfolders(tmp_path) -> None:
    _write_celeba(tmp_path / "celeba", annotated_subfolders=True)
    assert len(CelebA(tmp_path / "celeba", "train")) == 3


def test_celeba_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(DatasetNotFoundError, match="img_align_celeba") as info:
        load_dataset("celeba", tmp_path)
    assert "mmlab.ie.cuhk.edu.hk" in str(info.value) and "digits" in str(info.value)
    folder = tmp_path / "celeba"
    names, _ = _write_celeba(folder)
    jpeg = folder / "img_align_celeba" / names[0]
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    data = CelebA(tmp_path)
    with pytest.raises(CorruptDatasetError, match=names[0]):
        data[0]
    (folder / "img_align_celeba" / names[1]).unlink()
    with pytest.raises(DatasetNotFoundError, match=names[1]):
        data[1]
    attributes = folder / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines()
    attributes.write_text("\n".join([lines[0], *lines[1:-1], lines[-1].rsplit(" ", 1)[0]]))
    with pytest.raises(CorruptDatasetError, match=r"list_attr_celeba\.txt.*line 8"):
        CelebA(tmp_path)
    attributes.write_text("\n".join(["7", *lines[1:]]))
    with pytest.raises(CorruptDatasetError, match="announces 7 images"):
        CelebA(tmp_path)


@pytest.mark.parametrize("name", ["list_attr_celeba.txt", "list_eval_partition.txt"])
def test_celeba_text_that_is_not_utf8_names_the_file(tmp_path, name) -> None:
    folder = tmp_path / "celeba"
    _write_celeba(folder)
    text = folder / name
    text.write_bytes(text.read_bytes().replace(b"0", b"\xff", 1))
    with pytest.raises(CorruptDatasetError, match=rf"{name}.*not a text file in UTF-8"):
        CelebA(tmp_path)


@pytest.mark.parametrize("entry", ["../outside.jpg", "sub/000001.jpg", ".."])
def test_celeba_partition_names_outside_the_image_folder_are_rejected(tmp_path, entry) -> None:
    folder = tmp_path / "celeba"
    names, _ = _write_celeba(folder)
    partition = folder / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace(names[0], entry))
    attributes = folder / "list_attr_celeba.txt"
    attributes.write_text(attributes.read_text().replace(names[0], entry))
    with pytest.raises(CorruptDatasetError, match=r"list_eval_partition\.txt.*line 1 names"):
        CelebA(tmp_path)


def test_celeba_decompression_bomb_is_reported_with_the_file_name(tmp_path, monkeypatch) -> None:
    image_module = pytest.importorskip("PIL.Image")
    names, _ = _write_celeba(tmp_path / "celeba")
    data = CelebA(tmp_path)
    # Pillow refuses images over twice MAX_IMAGE_PIXELS; a 178 x 218 image exceeds 2 * 1000.
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(CorruptDatasetError, match=rf"{names[0]}.*decompression bomb"):
        data[0]


# --------------------------------------------------------------------------- 3D Shapes (written)

SHAPES_GRID = (2, 2, 2, 2, 2, 3)


def _write_shapes3d(path, grid=SHAPES_GRID, shuffle=False):
    h5py = pytest.importorskip("h5py")
    n = int(np.prod(grid))
    columns = [
        np.linspace(0.0, 0.9, grid[0]),
        np.linspace(0.0, 0.9, grid[1]),
        np.linspace(0.0, 0.9, grid[2]),
        np.linspace(0.75, 1.25, grid[3]),
        np.arange(grid[4], dtype=np.float64),
        np.linspace(-30.0, 30.0, grid[5]),
    ]
    mesh = np.meshgrid(*columns, indexing="ij")
    labels = np.stack([m.reshape(-1) for m in mesh], axis=1)
    images = np.zeros((n, 64, 64, 3), np.uint8)
    images[:, :, :, 0] = np.arange(n, dtype=np.uint8)[:, None, None]  # image i has red = i
    images[:, :, :, 2] = 255
    if shuffle:
        labels = labels[::-1].copy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=images, chunks=(1, 64, 64, 3))
        h5.create_dataset("labels", data=labels)
    return labels


def test_shapes3d_reads_h5_lazily_with_factors(tmp_path) -> None:
    _write_shapes3d(tmp_path / "3dshapes" / "3dshapes.h5")
    data = load_dataset("3dshapes", tmp_path)
    assert isinstance(data, Shapes3D) and len(data) == 96
    assert data.factors_num_values == SHAPES_GRID
    image, factors = data[37]
    _check_images(image, (3, 64, 64))
    assert image[0, 0, 0] == pytest.approx(37 / 255) and image[2].min() == 1.0
    assert factors.tolist() == list(np.unravel_index(37, SHAPES_GRID))
    rng = np.random.RandomState(0)
    sampled = data.sample_factors(50, rng)
    assert sampled.shape == (50, 6) and (sampled < np.array(SHAPES_GRID)).all()
    sampled[1] = sampled[0]  # repeated and unordered rows
    images = data.sample_observations_from_factors(sampled, rng)
    index = np.ravel_multi_index(tuple(sampled.T), SHAPES_GRID)
    torch.testing.assert_close(images[:, 0, 0, 0], torch.from_numpy(index).float() / 255)
    assert tuple(Shapes3D(tmp_path / "3dshapes" / "3dshapes.h5", image_size=32)[0][0].shape) == (
        3,
        32,
        32,
    )


def test_shapes3d_errors(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"3dshapes\.h5"):
        Shapes3D(tmp_path)
    path = tmp_path / "3dshapes" / "3dshapes.h5"
    _write_shapes3d(path, shuffle=True)
    data = Shapes3D(tmp_path)
    with pytest.raises(CorruptDatasetError, match="row-major"):
        data.sample_observations_from_factors([[0, 0, 0, 0, 0, 0]], 0)
    with pytest.raises(ValueError, match="no official 'test' split"):
        Shapes3D(tmp_path, "test")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CorruptDatasetError, match=r"3dshapes\.h5"):
        Shapes3D(tmp_path)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"3dshapes\.h5.*h5py"):
        Shapes3D(tmp_path)


@pytest.mark.parametrize("key", ["images", "labels"])
def test_shapes3d_arrays_stored_as_groups_are_reported(tmp_path, key) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "3dshapes.h5"
    _write_shapes3d(path)
    with h5py.File(path, "a") as h5:
        del h5[key]
        h5.create_group(key).create_dataset("data", data=np.zeros(3))
    message = rf"3dshapes\.h5.*'{key}' must be an HDF5 dataset"
    with pytest.raises(CorruptDatasetError, match=message):
        Shapes3D(path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.full((96, 6), b"red", dtype="S3"), "must be numbers, got dtype"),
        (np.full((96, 6), np.nan), "NaN or Inf"),
    ],
)
def test_shapes3d_labels_must_be_finite_numbers(tmp_path, labels, message) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "3dshapes.h5"
    _write_shapes3d(path)
    with h5py.File(path, "a") as h5:
        del h5["labels"]
        h5.create_dataset("labels", data=labels)
    with pytest.raises(CorruptDatasetError, match=message) as info:
        Shapes3D(path)
    assert "3dshapes.h5" in str(info.value)


# --------------------------------------------------------------------------- dSprites (written)

DSPRITES_GRID = (1, 3, 2, 2, 2, 2)


def _write_dsprites(path, imgs=None, drop=None):
    n = int(np.prod(DSPRITES_GRID))
    classes = np.stack(
        [c.reshape(-1) for c in np.meshgrid(*map(np.arange, DSPRITES_GRID), indexing="ij")], 1
    ).astype(np.int64)
    values = classes.astype(np.float64) / 2
    if imgs is None:
        imgs = np.random.default_rng(1).integers(0, 2, size=(n, 64, 64), dtype=np.uint8)
    arrays = {
        "imgs": imgs,
        "latents_values": values,
        "latents_classes": classes,
        "metadata": np.array({"date": "April 2017", "latents_sizes": DSPRITES_GRID}),
    }
    if drop:
        del arrays[drop]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return imgs, classes


def test_dsprites_reads_official_npz_without_unpickling(tmp_path) -> None:
    path = tmp_path / "dsprites" / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    imgs, classes = _write_dsprites(path)
    data = load_dataset("dsprites", tmp_path)
    assert isinstance(data, DSprites) and len(data) == 48
    assert data.factors_num_values == DSPRITES_GRID[1:]
    image, factors = data[13]
    _check_images(image, (1, 64, 64))
    assert torch.equal(image[0], torch.from_numpy(imgs[13]).float())
    assert factors.tolist() == classes[13, 1:].tolist()
    factors = data.sample_factors(10, np.random.default_rng(0))
    observations = data.sample_observations_from_factors(factors, 0)
    index = np.ravel_multi_index(tuple(factors.T), DSPRITES_GRID[1:])
    assert torch.equal(observations[:, 0], torch.from_numpy(imgs[index]).float())
    assert data.latents_values.shape == (48, 6)
    _check_images(DSprites(path, image_size=32)[0][0], (1, 32, 32))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "not a readable npz"),
        ("not binary", "pixel value 255"),
        ("no classes", "latents_classes"),
        ("no images", "no 'imgs' array"),
    ],
)
def test_dsprites_damage_is_reported(tmp_path, damage, message) -> None:
    path = tmp_path / "d.npz"
    imgs = np.full((48, 64, 64), 255, np.uint8) if damage == "not binary" else None
    drop = {"no classes": "latents_classes", "no images": "imgs"}.get(damage)
    _write_dsprites(path, imgs=imgs, drop=drop)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptDatasetError, match=message) as info:
        DSprites(path)
    assert "d.npz" in str(info.value)


def test_missing_dsprites_names_the_release_file(tmp_path) -> None:
    with pytest.raises(DatasetNotFoundError, match="dsprites_ndarray_co1sh3sc6or40x32y32"):
        load_dataset("dsprites", tmp_path)


# --------------------------------------------------------------------------- digits (embedded)


def test_digits_default_needs_no_files() -> None:
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert isinstance(train, Digits) and (len(train), len(test)) == (1438, 359)
    image, label = train[0]
    _check_images(image, (1, 28, 28))
    assert label.dtype == torch.int64
    assert train.images.max() == 1.0
    counts = sum(torch.bincount(d.targets, minlength=10) for d in (train, test))
    assert counts.sum() == 1797 and (counts > 170).all()
    # deterministic split, identical on a second load
    assert torch.equal(Digits("test").targets, test.targets)


def test_digits_without_scikit_learn_say_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="embedded digits") as info:
        Digits()
    message = str(info.value)
    assert "pip install scikit-learn" in message and "[examples] extra" in message
    assert "otloss[" not in message  # `pip install otloss` is another project on the index


def test_digits_native_size_and_upsampling() -> None:
    from sklearn.datasets import load_digits

    native = Digits("all", image_size=8)
    expected = torch.from_numpy(load_digits().images).float() / 16
    torch.testing.assert_close(native.images[:, 0], expected)
    big = Digits("all", image_size=64)
    _check_images(big.images, (1, 64, 64))
    # bilinear (align_corners=False) samples pixel 8k + 3 of the output at input coordinate
    # k - 1/16, so it differs from digit pixel k by at most 1 - (15/16)^2 < 0.125
    error = (big.images[..., 3::8, 3::8] - native.images).abs().max()
    assert 0 < error < 0.125


# --------------------------------------------------------------------------- sprites (procedural)


def test_sprites_are_deterministic_and_round_trip_factors() -> None:
    sprites = Sprites(image_size=64)
    assert sprites.factors_num_values == (3, 6, 40, 32, 32) and len(sprites) == 737280
    factors = sprites.sample_factors(64, np.random.RandomState(3))
    assert np.array_equal(factors, sprites.sample_factors(64, np.random.RandomState(3)))
    images = sprites.sample_observations_from_factors(factors, np.random.RandomState(0))
    _check_images(images, (1, 64, 64))
    assert torch.equal(images, Sprites(image_size=64).observations_from_factors(factors))
    assert set(images.unique().tolist()) == {0.0, 1.0}
    index = sprites.factors_to_index(factors)
    assert np.array_equal(sprites.index_to_factors(index), factors)
    for row in (0, 17):
        image, item_factors = sprites[int(index[row])]
        assert item_factors.tolist() == factors[row].tolist()
        assert torch.equal(image, images[row])


def test_every_sprite_factor_changes_the_image() -> None:
    sprites = Sprites(image_size=64)
    base = np.array([2, 3, 5, 15, 15])  # a heart, which has no rotational symmetry
    variants = [base]
    for k, size in enumerate(sprites.factors_num_values):
        for value in range(size):
            if value != base[k]:
                changed = base.copy()
                changed[k] = value
                variants.append(changed)
    images = sprites.observations_from_factors(np.stack(variants)).flatten(1)
    differs = (images[1:] != images[0]).any(dim=1)
    assert differs.all(), np.stack(variants)[1:][~differs.numpy()]


def test_sprites_stay_inside_the_image() -> None:
    for size, antialias in ((64, False), (32, True), (16, True)):
        sprites = Sprites(
            image_size=size, num_scales=1, num_orientations=8, num_positions=2, antialias=antialias
        )
        # the largest sprites, in every corner, at every orientation
        images = sprites.observations_from_factors(sprites.index_to_factors(range(len(sprites))))
        _check_images(images, (1, size, size))
        assert (images.flatten(1).amax(1) > 0).all()
        if size >= 32:  # a 3-pixel margin at 64 px
            border = torch.cat(
                [images[..., 0, :], images[..., -1, :], images[..., 0], images[..., -1]]
            )
            assert border.max() == 0
    assert len(load_dataset("sprites", image_size=28, num_scales=2)) == 3 * 2 * 40 * 32 * 32


def test_ground_truth_interface_validates_inputs() -> None:
    sprites = Sprites(image_size=16, num_positions=4)
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        sprites.sample_observations_from_factors(np.zeros((2, 4), np.int64), 0)
    with pytest.raises(ValueError, match=r"'pos_x' .* \[0, 4\)"):
        sprites.sample_observations_from_factors([[0, 0, 0, 4, 0]], 0)
    with pytest.raises(TypeError, match="random_state"):
        sprites.sample_factors(3, "seed")
    generator_draw = sprites.sample_factors(5, np.random.default_rng(2))
    assert np.array_equal(generator_draw, sprites.sample_factors(5, 2))


# --------------------------------------------------------------------------- load_dataset


def test_load_dataset_rejects_unknown_names_and_splits() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*'digits'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        load_dataset("digits", split="validation")
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("digits", image_size=0)
    assert isinstance(load_dataset("Sprites", image_size=16), Sprites)


def test_pickled_lazy_datasets_reopen_their_files(tmp_path) -> None:
    import pickle

    _write_shapes3d(tmp_path / "3dshapes" / "3dshapes.h5")
    data = Shapes3D(tmp_path)
    first = data[5][0]
    clone = pickle.loads(pickle.dumps(data))
    assert torch.equal(clone[5][0], first)


def test_omniglot_zip_layout_written_by_hand(tmp_path) -> None:
    from PIL import Image

    folder = tmp_path / "omniglot"
    folder.mkdir()
    ink = np.zeros((105, 105), bool)
    ink[50:55, 10:90] = True
    with zipfile.ZipFile(folder / "images_evaluation.zip", "w") as archive:
        for alphabet in ("Beta", "Alpha"):
            for character in ("character02", "character01"):
                buffer = io.BytesIO()
                Image.fromarray(~ink).convert("1").save(buffer, format="PNG")
                name = f"images_evaluation/{alphabet}/{character}/0001_01.png"
                archive.writestr(name, buffer.getvalue())
    data = Omniglot(tmp_path, "evaluation", source="zip")
    assert data.targets.tolist() == [0, 1, 2, 3]
    assert data._members[0].startswith("images_evaluation/Alpha/character01")
    assert torch.equal(data[3][0][0], torch.from_numpy(ink).float())
