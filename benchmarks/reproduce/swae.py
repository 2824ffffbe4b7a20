"""2. SWAE against WAE-MMD on MNIST (L = 8): 5-NN accuracy of test codes, reconstruction.

The paper (SWAE, Table 3 and section 4.2): 5-NN accuracy 0.96-0.97 for SWAE and 0.97
for WAE, reconstruction loss 23.20 (beta = 0.5) / 30.11 (beta = 1) against WAE's 24.76.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from benchmarks.reproduce.budget import Context
from benchmarks.reproduce.data import MNIST_SHAPE, subset
from benchmarks.reproduce.report import (
    Row,
    Section,
    at_least,
    at_most,
    choose,
    fmt,
    learning,
    shortfall,
)
from benchmarks.reproduce.training import batched, mean_squared_error, train
from otloss import metrics
from otloss.models import SWAE, WAE
from otloss.plots import plot_latent_scatter, plot_learning_curves
from otloss.train import seed_everything

#: The paper's lower edge of the 5-NN accuracy (0.96-0.97), rounded down.
KNN_TARGET = 0.955
#: The paper's reconstruction losses with a margin: SWAE (beta = 0.5) 23.20, WAE 24.76.
SWAE_REC_TARGET, WAE_REC_TARGET = 25.0, 26.0

ORDERING = {True: " (the paper's ordering, SWAE lower).",
            False: " (the paper has SWAE lower; here it is not)."}


def swae_experiment(ctx: Context, mnist: tuple[Tensor, ...]) -> tuple[Section, WAE]:
    """Train SWAE and WAE-MMD; returns the section and the WAE (section 4's baseline)."""
    x_train, y_train, x_test, y_test = mnist
    b = ctx.budget
    steps, batch = b.steps(400), b.batch(64)
    n_ref, n_test = b.size(10000, 100), b.size(10000, 100)
    n_pseudo = b.size(4000, 20)
    x_ref, y_ref = subset(x_train, y_train, n_ref, ctx.seed)
    x_eval, y_eval = subset(x_test, y_test, n_test, ctx.seed)
    # the learning curves' 5-NN: a fifth of the final evaluation's codes
    x_ref_c, y_ref_c = x_ref[: max(10, n_ref // 5)], y_ref[: max(10, n_ref // 5)]
    x_eval_c, y_eval_c = x_eval[: max(10, n_test // 5)], y_eval[: max(10, n_test // 5)]

    def knn_of(model: SWAE | WAE) -> Callable[[], float]:
        return lambda: metrics.knn_accuracy(batched(model.encode, x_ref_c), y_ref_c,
                                            batched(model.encode, x_eval_c), y_eval_c, k=5)

    seed_everything(ctx.seed)
    swae = SWAE(MNIST_SHAPE, latent_dim=8, n_pseudo=n_pseudo)
    swae.init_pseudo_inputs(subset(x_train, y_train, n_pseudo, ctx.seed + 1)[0])
    curves = {"SWAE": train(swae, x_train, steps, "swae", ctx, evaluate=knn_of(swae),
                            batch_size=batch)}
    seed_everything(ctx.seed)
    wae = WAE(MNIST_SHAPE, latent_dim=8)
    curves["WAE-MMD"] = train(wae, x_train, steps, "wae_mmd", ctx, evaluate=knn_of(wae),
                              batch_size=batch)
    curve_fig = plot_learning_curves({k: c.points for k, c in curves.items()},
                                     ctx.figures / "swae_knn_curve.png",
                                     ylabel="5-NN accuracy of test codes", target=KNN_TARGET,
                                     target_label="paper (lower edge)")
    scores, figures = {}, [(f"5-NN accuracy against steps ({x_ref_c.shape[0]} reference, "
                            f"{x_eval_c.shape[0]} test codes)", curve_fig)]
    for name, model in (("swae", swae), ("wae", wae)):
        codes_ref, codes_eval = batched(model.encode, x_ref), batched(model.encode, x_eval)
        scores[name] = {
            "knn": metrics.knn_accuracy(codes_ref, y_ref, codes_eval, y_eval, k=5),
            "rec": mean_squared_error(x_eval, batched(model.reconstruct, x_eval)),
        }
        path = plot_latent_scatter(codes_eval[:2000], y_eval[:2000],
                                   ctx.figures / f"{name}_latent.png", title=f"{name} codes (PCA)")
        figures.append((f"{name.upper()} test codes, first two principal axes", path))
    sw, wa = scores["swae"], scores["wae"]
    epochs = steps * batch / x_train.shape[0]
    exp = "SWAE vs WAE-MMD, MNIST, L = 8"
    rows = [
        Row(exp, "SWAE 5-NN accuracy of test codes", "0.96-0.97", fmt(sw["knn"]),
            at_least(sw["knn"], KNN_TARGET)),
        Row(exp, "WAE-MMD 5-NN accuracy", "0.97", fmt(wa["knn"]), at_least(wa["knn"], KNN_TARGET)),
        Row(exp, f"SWAE reconstruction loss (beta = {swae.beta:g})",
            "23.20 (beta = 0.5), 30.11 (beta = 1)", fmt(sw["rec"], 2),
            at_most(sw["rec"], SWAE_REC_TARGET)),
        Row(exp, "WAE-MMD reconstruction loss", "24.76", fmt(wa["rec"], 2),
            at_most(wa["rec"], WAE_REC_TARGET)),
    ]
    settings = (
        f"Both: L = 8, {steps} Adam steps of batch {batch} ({epochs:.2f} epochs), the models' "
        "default networks (otloss's convolutional encoder/decoder, not the paper's "
        "VampPrior networks; SWAE's He-initialised with its conditional prior's variances "
        "starting at e^-6, WAE-MMD's with PyTorch's default initialisation) and optimiser "
        f"settings. SWAE: beta = {swae.beta:g}, {n_pseudo} pseudo-inputs initialised with "
        f"training images (paper: 4000). 5-NN: {n_ref} training codes as the reference, "
        f"{n_test} test codes classified. Reconstruction loss: mean over the test images of "
        "||x - D(E(x))||^2 (SWAE's Table 3)."
    )
    why = (f"{steps} steps of {batch} images ({epochs:.2f} epochs) instead of the paper's "
           "full training; the codes of an under-trained encoder separate the classes less "
           "well")
    discussion = [
        shortfall("SWAE's 5-NN accuracy", sw["knn"], KNN_TARGET, why),
        shortfall("WAE-MMD's 5-NN accuracy", wa["knn"], KNN_TARGET, why),
        *(learning(name, c.steps, c.values, c.seconds, KNN_TARGET) for name, c in curves.items()),
        f"Reconstruction: SWAE {fmt(sw['rec'], 2)} against WAE-MMD {fmt(wa['rec'], 2)} "
        "under the same budget" + choose(ORDERING, sw["rec"] < wa["rec"]),
    ]
    numbers = {"swae.knn5": sw["knn"], "wae_mnist.knn5": wa["knn"]}
    return Section("2. SWAE against WAE-MMD on MNIST (L = 8)", rows, settings, discussion,
                   figures, numbers), wae
