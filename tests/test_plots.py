"""Each figure of otloss.plots writes a readable, non-blank PNG; bad inputs raise."""

import json

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
def figures(monkeypatch):
    """The matplotlib figures the plots save, in order, to inspect what they draw."""
    saved = []
    save = plots._save

    def capture(fig, path, dpi):
        saved.append(fig)
        return save(fig, path, dpi)

    monkeypatch.setattr(plots, "_save", capture)
    return saved


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


def test_plot_reconstructions_labels_its_alternating_rows(tmp_path, images, figures):
    plots.plot_reconstructions(images[:, None], images[:, None], tmp_path / "rec.png", n=4)
    (ax,) = figures[0].axes
    rows = [label.get_text() for label in ax.get_yticklabels()]
    # 10 images in rows of 4: three rows of originals, each above its reconstructions
    assert rows == ["original", "reconstruction"] * 3
    assert "top" not in ax.get_title() and "bottom" not in ax.get_title()


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


@pytest.mark.parametrize("log_counts", [False, True])
def test_plot_isometry_keeps_the_line_inside_the_data_and_leaves_empty_bins_blank(
    tmp_path, figures, log_counts
):
    rng = np.random.default_rng(3)
    dz = rng.uniform(1.0, 3.0, size=500)
    dx = 1.5 * dz + rng.normal(scale=0.1, size=500)
    plots.plot_isometry(dz, dx, tmp_path / "iso.png", bins=20, scale=2.0, log_counts=log_counts)
    ax = figures[0].axes[0]
    assert ax.get_xlim() == pytest.approx((dz.min(), dz.max()))
    assert ax.get_ylim() == pytest.approx((dx.min(), dx.max()))
    (line,) = ax.get_lines()
    x, y = line.get_data()
    assert x.min() >= dz.min() - 1e-12 and y.max() <= dx.max() + 1e-9
    np.testing.assert_allclose(y, 2.0 * x)
    counts = np.histogram2d(dz, dx, bins=20)[0].T
    shown = np.ma.getmaskarray(ax.collections[0].get_array())
    assert shown.shape == counts.shape
    np.testing.assert_array_equal(shown, counts == 0)  # masked exactly where no pairs fall


def test_plot_isometry_rejects_a_non_positive_scale(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        plots.plot_isometry(np.ones(3), np.ones(3), tmp_path / "x.png", scale=0.0)


def test_plot_gw_curves_writes_a_png(tmp_path):
    steps = np.arange(0, 1000, 100)
    estimate = 3.0 * np.exp(-steps / 300) + 1.2
    assert_png(plots.plot_gw_curves(steps, estimate, estimate - 0.2, tmp_path / "gw.png"))


def test_plot_learning_curves_draws_runs_of_different_lengths(tmp_path):
    curves = {"SWAE": (np.arange(0, 500, 100), np.linspace(0.5, 0.9, 5)),
              "WAE": ([0, 250, 500], [0.4, 0.8, 0.92])}
    assert_png(plots.plot_learning_curves(curves, tmp_path / "knn.png", ylabel="5-NN",
                                          target=0.96))


def test_plot_learning_curves_rejects_mismatched_or_empty_curves(tmp_path):
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_learning_curves({"a": ([0, 1], [0.5])}, tmp_path / "x.png", ylabel="m")
    with pytest.raises(ValueError, match="no runs"):
        plots.plot_learning_curves({}, tmp_path / "x.png", ylabel="m")


def test_plot_latent_scatter_projects_codes(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=300)
    codes = 4.0 * np.eye(10)[labels] @ rng.normal(size=(10, 8)) + rng.normal(size=(300, 8))
    prior = rng.normal(size=(200, 8))
    assert_png(plots.plot_latent_scatter(codes, labels, tmp_path / "pca.png", prior_samples=prior))
    assert_png(plots.plot_latent_scatter(codes[:, :2], labels, tmp_path / "two.png"))


@pytest.mark.slow
def test_plot_latent_scatter_projects_codes_by_tsne(tmp_path):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=300)
    codes = 4.0 * np.eye(10)[labels] @ rng.normal(size=(10, 8)) + rng.normal(size=(300, 8))
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


def test_plot_cluster_posterior_colours_probabilities_on_a_fixed_scale(tmp_path, figures):
    labels = np.repeat(np.arange(10), 5)
    uniform = np.full((50, 10), 0.1)
    plots.plot_cluster_posterior(labels, uniform, tmp_path / "qk.png")
    ax = figures[0].axes[0]
    # a uniform posterior is 0.1 of the scale, not its maximum
    assert ax.images[0].get_clim() == (0.0, 1.0)
    numbers = [t for t in ax.texts if t.get_text() == "0.10"]
    assert len(numbers) == 100
    assert min(t.get_fontsize() for t in numbers) >= 8
    assert all(t.get_color() == "black" for t in numbers)  # dark text on the pale cells


def _metrics_records():
    return [
        {"step": s, "loss": 10.0 / s, "gw": 1.0 + 1.0 / s, "critic/loss": -0.5, "lr": 1e-4,
         "critic/lr": 5e-5, "elapsed": 0.1 * s}
        for s in (50, 100, 150, 200)
    ]


def test_plot_losses_draws_each_logged_term_against_the_step(tmp_path, figures):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _metrics_records()))
    out = plots.plot_losses(path, tmp_path / "run" / "losses.png")
    assert out == tmp_path / "run" / "losses.png"
    assert_png(out)
    panels = [ax for ax in figures[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["loss", "gw", "critic/loss"]
    x, y = panels[0].get_lines()[0].get_data()
    np.testing.assert_array_equal(x, [50, 100, 150, 200])
    np.testing.assert_allclose(y, [0.2, 0.1, 10 / 150, 0.05])
    assert all(ax.get_xlabel() == "step" for ax in panels)  # one row: each shows the steps


def test_plot_losses_leaves_a_gap_for_a_term_missing_from_a_record(tmp_path, figures):
    records = _metrics_records()
    del records[1]["gw"]
    plots.plot_losses(records, tmp_path / "losses.png", exclude=(), ncol=2)
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_visible()]
    assert titles == ["loss", "gw", "critic/loss", "lr", "critic/lr", "elapsed"]
    gw = figures[0].axes[1].get_lines()[0].get_data()[1]
    assert np.isnan(gw[1]) and np.isfinite(gw[[0, 2, 3]]).all()


def test_plot_losses_rejects_records_without_steps_or_terms(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        plots.plot_losses([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="record 0 has no numeric 'step'"):
        plots.plot_losses([{"loss": 1.0}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no numeric terms"):
        plots.plot_losses([{"step": 1, "lr": 1e-3}], tmp_path / "x.png")
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl line 2"):
        plots.plot_losses(bad, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


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
