"""Each figure of otloss.plots writes a readable, non-blank PNG; bad inputs raise."""

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

from otloss import plots  # noqa: E402
from otloss.metrics import isometry_pairs  # noqa: E402


def assert_png(path):
    assert path.exists() and path.stat().st_size > 0
    with PIL_Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels.std() > 1.0  # not a blank canvas


@pytest.fixture
def images():
    # Smooth, non-uniform 28x28 greyscale images with values in [0, 1].
    t = torch.linspace(0, 1, 28)
    phases = torch.arange(10, dtype=torch.float32)[:, None, None]
    return (torch.sin(6 * t[None, :, None] + phases) * torch.cos(4 * t[None, None, :]) + 1) / 2


def test_plot_reconstructions_writes_a_png(tmp_path, images):
    noisy = images + 0.1 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    target = tmp_path / "new_folder" / "rec.png"
    out = plots.plot_reconstructions(images[:, None], noisy[:, None], target, n=4)
    assert out == target
    assert_png(out)


def test_plot_samples_takes_flat_and_rgb_images(tmp_path, images):
    assert_png(plots.plot_samples(images.reshape(10, -1).numpy(), tmp_path / "flat.png"))
    rgb = images[:, None].repeat(1, 3, 1, 1) * torch.tensor([1.0, 0.5, 0.2])[None, :, None, None]
    assert_png(plots.plot_samples(rgb, tmp_path / "rgb.png", ncol=5))
    channels_last = (255 * rgb.permute(0, 2, 3, 1)).numpy()
    assert_png(plots.plot_samples(channels_last, tmp_path / "hwc.png", value_range=(0, 255)))


def test_plot_traversals_decodes_each_dimension_at_each_value(tmp_path):
    calls = []

    def decode(z):
        calls.append(z.shape)
        grid = torch.linspace(-1, 1, 16)
        return torch.sigmoid(z[:, :1, None] * grid[None, :, None] + z[:, 1:2, None] * grid)

    out = plots.plot_traversals(decode, torch.zeros(3), tmp_path / "trav.png", dims=[0, 1])
    assert calls == [torch.Size([12, 3])]  # 2 dims x 6 default values, one call
    assert_png(out)


def test_plot_isometry_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 4))
    x = 2.0 * z @ np.linalg.qr(rng.normal(size=(4, 4)))[0] + 0.05 * rng.normal(size=(60, 4))
    dz, dx = isometry_pairs(x, z)
    assert_png(plots.plot_isometry(dz, dx, tmp_path / "iso.png", bins=30, scale=2.0))
    assert_png(plots.plot_isometry(dz, dx, tmp_path / "iso_log.png", bins=30, log_counts=True))


def test_plot_gw_curves_writes_a_png(tmp_path):
    steps = np.arange(0, 1000, 100)
    estimate = 3.0 * np.exp(-steps / 300) + 1.2
    assert_png(plots.plot_gw_curves(steps, estimate, estimate - 0.2, tmp_path / "gw.png"))


def test_plot_latent_scatter_projects_codes(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=300)
    codes = 4.0 * np.eye(10)[labels] @ rng.normal(size=(10, 8)) + rng.normal(size=(300, 8))
    prior = rng.normal(size=(200, 8))
    assert_png(plots.plot_latent_scatter(codes, labels, tmp_path / "pca.png", prior_samples=prior))
    assert_png(plots.plot_latent_scatter(codes[:, :2], labels, tmp_path / "two.png"))
    tsne = plots.plot_latent_scatter(
        codes[:30], labels[:30], tmp_path / "tsne.png", method="tsne", tsne_max_iter=250
    )
    assert_png(tsne)


def test_plot_cluster_posterior_writes_a_png(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=200)
    logits = 3.0 * np.eye(5)[rng.permutation(5)[labels]] + rng.normal(size=(200, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert_png(plots.plot_cluster_posterior(labels, probs, tmp_path / "qk.png"))
    assert_png(plots.plot_cluster_posterior(labels, probs, tmp_path / "raw.png", reorder=False))


def test_plots_reject_bad_inputs(tmp_path, images):
    with pytest.raises(ValueError, match="image_shape"):
        plots.plot_samples(np.zeros((4, 10)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_reconstructions(images, images[:5], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        plots.plot_samples(np.zeros((2, 5, 6, 7)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="dims"):
        plots.plot_traversals(lambda z: z, torch.zeros(3), tmp_path / "x.png", dims=[3])
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_isometry(np.ones(3), np.ones(4), tmp_path / "x.png")
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_gw_curves(np.arange(3), np.ones(3), np.ones(2), tmp_path / "x.png")
    with pytest.raises(ValueError, match="method"):
        plots.plot_latent_scatter(np.zeros((4, 3)), np.zeros(4), tmp_path / "x.png", method="umap")
    assert not (tmp_path / "x.png").exists()
