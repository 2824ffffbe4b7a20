r"""Figures of the reference papers, drawn with matplotlib's Agg backend and saved as PNG.

- `plot_reconstructions`: rows of originals, each above a row of their reconstructions.
- `plot_samples`: a grid of generated images.
- `plot_traversals`: latent traversals, one row per latent dimension.
- `plot_isometry`: GWAE's figure 1b, the 2-D histogram of
  $(\Delta z, \Delta x)$ over generated pairs (`otloss.metrics.isometry_pairs`).
- `plot_gw_curves`: GWAE's figure 1a, $L_{GW}$ against POT's empirical GW over
  training (`otloss.metrics.empirical_gw`).
- `plot_latent_scatter`: codes projected to 2-D, coloured by label (GM-WAE fig. 7c).
- `plot_cluster_posterior`: GM-WAE's figure 7a, $\mathbb{E}_{x \mid \ell}\, q(k \mid x)$
  per digit class.
- `plot_losses`: each term of a run's ``metrics.jsonl`` against the step.
- `plot_learning_curves`: an evaluation metric against the step, one line per run.

Each function writes a PNG to ``path`` (creating missing folders) and returns its
``Path``. Figures are built on a ``matplotlib.figure.Figure`` with an Agg canvas, never
through ``pyplot``, so they work headless and leave the caller's backend alone. Images are
``(N, C, H, W)`` (C = 1 or 3), ``(N, H, W)``, ``(N, H, W, C)``, or flat ``(N, D)`` with
``image_shape`` (a square grey image when D is a square number), numpy or torch, with
values in ``value_range``. Needs matplotlib (otloss's ``examples`` extra).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from otloss._checks import check_count, check_positive
from otloss._optional import import_optional
from otloss.metrics.arrays import as_codes, as_labels, as_scores, to_numpy
from otloss.metrics.clustering import class_cluster_matrix, greedy_class_assignment

__all__ = [
    "plot_cluster_posterior",
    "plot_gw_curves",
    "plot_isometry",
    "plot_latent_scatter",
    "plot_learning_curves",
    "plot_losses",
    "plot_reconstructions",
    "plot_samples",
    "plot_traversals",
]

_PAD = 1  # pixels between grid cells


def _new_figure(figsize: tuple[float, float]) -> Any:
    figure = import_optional("matplotlib.figure", "otloss.plots")
    backend_agg = import_optional("matplotlib.backends.backend_agg", "otloss.plots")
    fig = figure.Figure(figsize=figsize, layout="constrained")
    backend_agg.FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return path


def _images(
    name: str,
    images: object,
    image_shape: Sequence[int] | None,
    value_range: tuple[float, float],
) -> np.ndarray:
    """Images as float ``(N, H, W, C)`` in [0, 1] with C = 1 or 3."""
    a = to_numpy(name, images).astype(np.float64, copy=False)
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch of images, got shape {a.shape}")
    if image_shape is not None:
        target = (a.shape[0], *tuple(image_shape))
        if math.prod(target) != a.size:
            raise ValueError(f"{name} of shape {a.shape} cannot be viewed as image_shape {target}")
        a = a.reshape(target)
    elif a.ndim == 2:
        side = math.isqrt(a.shape[1])
        if side * side != a.shape[1]:
            raise ValueError(
                f"{name} has shape {a.shape}: flat images need image_shape=(C, H, W) or (H, W)"
            )
        a = a.reshape(a.shape[0], side, side)
    if a.ndim == 3:
        a = a[..., None]
    elif a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    elif not (a.ndim == 4 and a.shape[-1] in (1, 3)):
        raise ValueError(
            f"{name} must be images of shape (N, C, H, W), (N, H, W, C) with C in (1, 3) "
            f"or (N, H, W), got shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return np.clip((a - low) / (high - low), 0.0, 1.0)


def _label(value: object) -> str:
    """A class value as legend text (``3``, not ``3.0``, for integer-valued floats)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _grid(images: np.ndarray, ncol: int) -> np.ndarray:
    """Tile ``(N, H, W, C)`` images into one ``(H', W', C)`` array, row by row."""
    n, h, w, c = images.shape
    nrow = math.ceil(n / ncol)
    grid = np.ones((nrow * (h + _PAD) + _PAD, ncol * (w + _PAD) + _PAD, c))
    for idx in range(n):
        r, col = divmod(idx, ncol)
        top, left = _PAD + r * (h + _PAD), _PAD + col * (w + _PAD)
        grid[top : top + h, left : left + w] = images[idx]
    return grid


def _show_grid(ax: Any, grid: np.ndarray) -> None:
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid_figure(grid: np.ndarray, title: str | None, cell: float = 0.04) -> Any:
    h, w = grid.shape[:2]
    fig = _new_figure((max(2.0, w * cell), max(1.0, h * cell + (0.3 if title else 0.0))))
    ax = fig.add_subplot()
    _show_grid(ax, grid)
    if title:
        ax.set_title(title)
    return fig


def plot_reconstructions(
    x: object,
    x_hat: object,
    path: str | Path,
    *,
    n: int = 8,
    image_shape: Sequence[int] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = "originals and their reconstructions",
    dpi: int = 100,
) -> Path:
    """Originals and their reconstructions in alternating rows of ``min(n, N)`` images.

    Each row of originals is followed by the row of their reconstructions; the rows are
    labelled "original" and "reconstruction" on the left.

    Args:
        x: ``(N, ...)`` original images.
        x_hat: their reconstructions, same shape.
        path: PNG file to write.
        n: images per row; with more than ``n`` images, rows of originals and
            reconstructions alternate.
        image_shape: ``(C, H, W)`` or ``(H, W)`` for flat inputs.
        value_range: pixel values mapped to black and white.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    a = _images("x", x, image_shape, value_range)
    b = _images("x_hat", x_hat, image_shape, value_range)
    if a.shape != b.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {a.shape} and {b.shape}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    ncol = min(n, a.shape[0])
    rows = []
    for start in range(0, a.shape[0], ncol):
        chunk_a, chunk_b = a[start : start + ncol], b[start : start + ncol]
        fill = ncol - chunk_a.shape[0]
        if fill:
            blank = np.ones((fill, *a.shape[1:]))
            chunk_a, chunk_b = np.concatenate([chunk_a, blank]), np.concatenate([chunk_b, blank])
        rows += [chunk_a, chunk_b]
    fig = _grid_figure(_grid(np.concatenate(rows), ncol), title)
    ax = fig.axes[0]
    h = a.shape[1] + _PAD
    ax.set_yticks([_PAD + r * h + a.shape[1] / 2 for r in range(len(rows))])
    ax.set_yticklabels(["original", "reconstruction"] * (len(rows) // 2), fontsize="small")
    ax.tick_params(axis="y", length=0)
    return _save(fig, path, dpi)


def plot_samples(
    x: object,
    path: str | Path,
    *,
    ncol: int = 8,
    image_shape: Sequence[int] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = "samples",
    dpi: int = 100,
) -> Path:
    """A grid of images (e.g. ``decoder(z)`` for ``z`` from the prior), ``ncol`` per row.

    Args:
        x: ``(N, ...)`` images.
        path: PNG file to write.
        ncol: images per row.
        image_shape: ``(C, H, W)`` or ``(H, W)`` for flat inputs.
        value_range: pixel values mapped to black and white.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    a = _images("x", x, image_shape, value_range)
    if ncol < 1:
        raise ValueError(f"ncol must be positive, got {ncol}")
    fig = _grid_figure(_grid(a, min(ncol, a.shape[0])), title)
    return _save(fig, path, dpi)


def plot_traversals(
    decode: Callable[[Any], Any],
    z: object,
    path: str | Path,
    *,
    dims: Sequence[int] | None = None,
    values: Sequence[float] = (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5),
    image_shape: Sequence[int] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = "latent traversals",
    dpi: int = 100,
) -> Path:
    """Latent traversals: row d decodes ``z`` with coordinate ``dims[d]`` set to each value.

    Args:
        decode: maps codes ``(M, L)`` to images ``(M, ...)`` (called under
            ``torch.no_grad()``).
        z: the base code, ``(L,)`` or ``(1, L)``; a torch tensor keeps its device and dtype.
        path: PNG file to write.
        dims: latent dimensions to traverse (default: all).
        values: the values each traversed coordinate takes, one column each.
        image_shape: ``(C, H, W)`` or ``(H, W)`` when ``decode`` returns flat vectors.
        value_range: pixel values mapped to black and white.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    base = z.detach().reshape(-1) if isinstance(z, torch.Tensor) else to_numpy("z", z).reshape(-1)
    latent_dim = base.shape[0]
    if latent_dim == 0:
        raise ValueError("z is empty")
    dims = list(range(latent_dim)) if dims is None else [int(d) for d in dims]
    if not dims or any(not 0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must be non-empty indices in [0, {latent_dim}), got {dims}")
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must not be empty")
    codes = (
        base.repeat(len(dims) * len(values), 1)
        if isinstance(base, torch.Tensor)
        else np.tile(base, (len(dims) * len(values), 1))
    )
    for r, d in enumerate(dims):
        for c, v in enumerate(values):
            codes[r * len(values) + c, d] = v
    with torch.no_grad():
        images = decode(codes)
    a = _images("decode(codes)", images, image_shape, value_range)
    if a.shape[0] != codes.shape[0]:
        raise ValueError(f"decode returned {a.shape[0]} images for {codes.shape[0]} codes")
    grid = _grid(a, len(values))
    fig = _grid_figure(grid, title, cell=0.05)
    ax = fig.axes[0]
    h = a.shape[1] + _PAD
    ax.set_yticks([_PAD + r * h + a.shape[1] / 2 for r in range(len(dims))])
    ax.set_yticklabels([f"z{d}" for d in dims])
    w = a.shape[2] + _PAD
    ax.set_xticks([_PAD + c * w + a.shape[2] / 2 for c in range(len(values))])
    ax.set_xticklabels([f"{v:g}" for v in values])
    return _save(fig, path, dpi)


def plot_isometry(
    dz: object,
    dx: object,
    path: str | Path,
    *,
    bins: int = 100,
    scale: float | None = None,
    log_counts: bool = False,
    title: str | None = "isometry of generated pairs",
    dpi: int = 100,
) -> Path:
    r"""GWAE's isometry histogram: counts of $(\Delta z, \Delta x)$ pairs.

    $\Delta z$ is on the horizontal axis and $\Delta x$ on the vertical one, as in
    GWAE's figure 1b; an isometry up to scale $C$ puts all mass on the line
    $\Delta x = C \Delta z$, drawn when ``scale`` is given. The axes span the pairs'
    range: the line is drawn where it crosses that box, and bins without pairs are left
    blank.

    Args:
        dz: ``(P,)`` latent distances (from `otloss.metrics.isometry_pairs`).
        dx: ``(P,)`` data distances.
        path: PNG file to write.
        bins: bins per axis.
        scale: $C$ (e.g. ``float(gw.scale)``) to draw the isometry line.
        log_counts: colour by log counts.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    colors = import_optional("matplotlib.colors", "otloss.plots")
    dz, dx = as_scores("dz", dz), as_scores("dx", dx)
    if dz.shape != dx.shape:
        raise ValueError(f"dz and dx must have the same shape, got {dz.shape} and {dx.shape}")
    fig = _new_figure((4.5, 4.0))
    ax = fig.add_subplot()
    *_, mesh = ax.hist2d(
        dz,
        dx,
        bins=bins,
        cmap="viridis",
        norm=colors.LogNorm() if log_counts else None,
        cmin=1,  # empty bins are not coloured
    )
    fig.colorbar(mesh, ax=ax, label="pairs")
    if scale is not None:
        c = check_positive("scale", float(scale))
        # The part of the line inside the histogram's box [dz range] x [dx range].
        start, stop = max(dz.min(), dx.min() / c), min(dz.max(), dx.max() / c)
        if start < stop:
            line = np.array([start, stop])
            label = rf"$\Delta x = {c:.3g}\,\Delta z$"
            ax.plot(line, c * line, "--", color="tab:red", lw=1, label=label)
            ax.legend(loc="upper left")
    ax.set_xlim(dz.min(), dz.max())
    ax.set_ylim(dx.min(), dx.max())
    ax.set_xlabel(r"$\Delta z = d_Z(z, z')$")
    ax.set_ylabel(r"$\Delta x = d_X(x, x')$")
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def plot_gw_curves(
    steps: object,
    estimated: object,
    empirical: object,
    path: str | Path,
    *,
    xlabel: str = "step",
    title: str | None = "GW estimate vs empirical GW (POT)",
    dpi: int = 100,
) -> Path:
    r"""GWAE's figure 1a: the estimate $L_{GW}$ (solid) and POT's empirical GW (dashed).

    Args:
        steps: ``(T,)`` training steps or epochs.
        estimated: ``(T,)`` $L_{GW}$ on validation batches.
        empirical: ``(T,)`` `otloss.metrics.empirical_gw` on the same batches.
        path: PNG file to write.
        xlabel: horizontal axis label.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    steps, estimated = as_scores("steps", steps), as_scores("estimated", estimated)
    empirical = as_scores("empirical", empirical)
    if not steps.shape == estimated.shape == empirical.shape:
        raise ValueError(
            f"steps, estimated and empirical must have the same shape, got {steps.shape}, "
            f"{estimated.shape} and {empirical.shape}"
        )
    fig = _new_figure((5.0, 3.5))
    ax = fig.add_subplot()
    ax.plot(steps, estimated, "-", color="tab:blue", marker=".", label=r"$L_{GW}$ (estimate)")
    ax.plot(steps, empirical, "--", color="tab:orange", marker=".", label="empirical GW (POT)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GW")
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def plot_learning_curves(
    curves: Mapping[str, tuple[object, object]],
    path: str | Path,
    *,
    ylabel: str,
    target: float | None = None,
    target_label: str = "paper",
    xlabel: str = "step",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """An evaluation metric against the training step, one line per run.

    Args:
        curves: ``{label: (steps, values)}``, each a ``(T,)`` sequence (T >= 1; the runs
            may have different T).
        path: PNG file to write.
        ylabel: the metric's name.
        target: a reference value drawn as a dotted horizontal line (``None``: none).
        target_label: its legend entry.
        xlabel: horizontal axis label.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    if not curves:
        raise ValueError("curves holds no runs")
    fig = _new_figure((5.0, 3.5))
    ax = fig.add_subplot()
    for label, (steps, values) in curves.items():
        steps, values = as_scores(f"steps of {label!r}", steps), as_scores(label, values)
        if steps.shape != values.shape:
            raise ValueError(
                f"steps and values of {label!r} must have the same shape, got {steps.shape} "
                f"and {values.shape}"
            )
        ax.plot(steps, values, "-", marker=".", label=label)
    if target is not None:
        ax.axhline(float(target), color="grey", linestyle=":", label=target_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def _project(points: np.ndarray, method: str, random_state: int, tsne_max_iter: int) -> np.ndarray:
    if points.shape[1] == 2:
        return points
    if method == "pca":
        centered = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        return centered @ vt[:2].T
    manifold = import_optional("sklearn.manifold", "plot_latent_scatter(method='tsne')")
    perplexity = min(30.0, (points.shape[0] - 1) / 3)
    tsne = manifold.TSNE(
        n_components=2, perplexity=perplexity, max_iter=tsne_max_iter, random_state=random_state
    )
    return tsne.fit_transform(points)


def plot_latent_scatter(
    codes: object,
    labels: object,
    path: str | Path,
    *,
    prior_samples: object = None,
    method: str = "pca",
    random_state: int = 0,
    tsne_max_iter: int = 1000,
    title: str | None = "latent codes",
    dpi: int = 100,
) -> Path:
    """Codes in 2-D, coloured by label (GM-WAE's figure 7c uses UMAP; here PCA or t-SNE).

    Codes with L > 2 are projected: ``"pca"`` onto the top two principal axes of the codes
    (prior samples projected on the same axes), ``"tsne"`` by scikit-learn's t-SNE on codes
    and prior samples together. Two-dimensional codes are drawn as they are.

    Args:
        codes: ``(N, L)`` codes, L >= 2.
        labels: ``(N,)`` class labels (one colour each).
        path: PNG file to write.
        prior_samples: optional ``(M, L)`` prior samples, drawn in grey underneath.
        method: ``"pca"`` or ``"tsne"``.
        random_state: t-SNE seed.
        tsne_max_iter: t-SNE optimisation steps (at least 250).
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    codes = as_codes("codes", codes, min_dims=2)
    labels = as_labels("labels", labels)
    if labels.shape[0] != codes.shape[0]:
        raise ValueError(f"labels must have shape ({codes.shape[0]},), got {labels.shape}")
    if method not in ("pca", "tsne"):
        raise ValueError(f"unknown method {method!r}; expected one of 'pca', 'tsne'")
    prior = None if prior_samples is None else as_codes("prior_samples", prior_samples)
    if prior is not None and prior.shape[1] != codes.shape[1]:
        raise ValueError(
            f"prior_samples must have L = {codes.shape[1]} columns, got shape {prior.shape}"
        )
    if method == "pca" and prior is not None and codes.shape[1] > 2:
        mean = codes.mean(axis=0)
        _, _, vt = np.linalg.svd(codes - mean, full_matrices=False)
        xy, prior_xy = (codes - mean) @ vt[:2].T, (prior - mean) @ vt[:2].T
    else:
        joint = codes if prior is None else np.concatenate([codes, prior])
        projected = _project(joint, method, random_state, tsne_max_iter)
        xy, prior_xy = projected[: codes.shape[0]], projected[codes.shape[0] :]
    fig = _new_figure((5.0, 4.5))
    ax = fig.add_subplot()
    if prior is not None:
        ax.scatter(*prior_xy.T, s=4, c="0.75", label="prior", rasterized=True)
    classes = np.unique(labels)
    matplotlib = import_optional("matplotlib", "otloss.plots")
    palette = matplotlib.colormaps["tab20" if classes.size > 10 else "tab10"]
    for i, c in enumerate(classes):
        pts = xy[labels == c]
        ax.scatter(*pts.T, s=5, color=palette(i % palette.N), label=_label(c), rasterized=True)
    if classes.size <= 20:
        ax.legend(markerscale=3, fontsize="small", ncols=2 if classes.size > 10 else 1)
    if codes.shape[1] == 2:
        names = ("z0", "z1")
    else:
        names = ("PC1", "PC2") if method == "pca" else ("t-SNE 1", "t-SNE 2")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def plot_cluster_posterior(
    labels: object,
    cluster_probs: object,
    path: str | Path,
    *,
    reorder: bool = True,
    title: str | None = r"$\mathbb{E}_{x \mid \mathrm{class}}\, q(k \mid x)$",
    dpi: int = 120,
) -> Path:
    r"""GM-WAE's figure 7a: row $\ell$ shows $\mathbb{E}_{x \mid \ell}\, q(k \mid x)$.

    Args:
        labels: ``(N,)`` classes (e.g. digit labels).
        cluster_probs: ``(N, K)`` responsibilities $q(k \mid x)$, or ``(N,)`` ids.
        path: PNG file to write.
        reorder: order the components by GM-WAE's greedy class assignment
            (`otloss.metrics.greedy_class_assignment`), so a faithful encoder shows a
            diagonal staircase; unassigned components go last.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    matrix, classes = class_cluster_matrix(labels, cluster_probs)
    order = np.arange(matrix.shape[1])
    if reorder:
        owner = greedy_class_assignment(matrix)
        order = np.argsort(np.where(owner < 0, matrix.shape[0] + order, owner), kind="stable")
    shown = matrix[:, order]
    n_cls, n_comp = shown.shape
    fig = _new_figure((max(3.5, 0.55 * n_comp + 2.0), max(3.0, 0.45 * n_cls + 1.2)))
    ax = fig.add_subplot()
    # Probabilities on a fixed [0, 1] scale: a uniform q(k | x) looks pale, a confident one
    # dark, in every figure alike.
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, label="probability")
    ax.set_xticks(range(n_comp))
    ax.set_xticklabels([str(k) for k in order])
    ax.set_yticks(range(n_cls))
    ax.set_yticklabels([_label(c) for c in classes])
    ax.set_xlabel("component k")
    ax.set_ylabel("class")
    if n_cls * n_comp <= 400:
        for (r, c), v in np.ndenumerate(shown):
            color = "white" if v > 0.55 else "black"
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color=color)
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


#: Logged quantities that are not terms of an objective: wall-clock time and learning rates.
NOT_LOSS_TERMS = ("elapsed", "lr", "*/lr")


def _is_excluded(key: str, exclude: Sequence[str]) -> bool:
    return any(key == e or (e.startswith("*/") and key.endswith(e[1:])) for e in exclude)


def _records(metrics: str | Path | Iterable[Mapping[str, object]]) -> list[Mapping[str, object]]:
    if isinstance(metrics, (str, Path)):
        path = Path(metrics)
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path} line {number}: not a JSON record ({err})") from err
        return records
    return list(metrics)


def plot_losses(
    metrics: str | Path | Iterable[Mapping[str, object]],
    path: str | Path,
    *,
    exclude: Sequence[str] = NOT_LOSS_TERMS,
    ncol: int = 3,
    title: str | None = "training losses",
    dpi: int = 100,
) -> Path:
    """Each logged term against the step, one panel per term (terms differ in scale).

    Args:
        metrics: a run's ``metrics.jsonl`` (one JSON record per line) or its records:
            mappings with a ``"step"`` and the logged values, e.g. ``loss``, ``gw``,
            ``critic/loss``. A term missing from a record, or not finite, leaves a gap.
        path: PNG file to write.
        exclude: keys not drawn: names, or ``"*/name"`` for every ``prefix/name``
            (default: ``elapsed`` and the learning rates ``lr``, ``critic/lr``).
        ncol: panels per row.
        title: figure title (``None`` for none).
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    records = _records(metrics)
    if not records:
        raise ValueError("metrics holds no records")
    ncol = check_count("ncol", ncol)
    for k, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(record.get("step"), (int, float)):
            raise ValueError(f"record {k} has no numeric 'step': {record!r:.120}")
    terms: list[str] = []
    for record in records:
        for key, value in record.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key != "step" and numeric and key not in terms and not _is_excluded(key, exclude):
                terms.append(key)
    if not terms:
        raise ValueError(f"metrics has no numeric terms besides 'step' (excluded: {exclude})")
    steps = np.array([float(r["step"]) for r in records])
    ncol = min(ncol, len(terms))
    nrow = math.ceil(len(terms) / ncol)
    fig = _new_figure((3.2 * ncol, 2.3 * nrow + (0.3 if title else 0.0)))
    axes = fig.subplots(nrow, ncol, squeeze=False, sharex=True)
    for ax, term in zip(axes.flat, terms, strict=False):
        values = np.array([float(r.get(term, math.nan)) for r in records])
        ax.plot(steps, values, "-", color="tab:blue", marker="." if len(steps) <= 50 else None)
        ax.set_title(term, fontsize="medium")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(terms) :]:
        ax.set_visible(False)
    for column in range(ncol):  # the lowest panel of each column shows the steps
        lowest = axes[(len(terms) - 1 - column) // ncol, column]
        lowest.set_xlabel("step")
        lowest.xaxis.set_tick_params(labelbottom=True)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)
